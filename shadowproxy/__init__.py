"""shadowproxy: serve from the primary, mirror to the shadow, compare the JSON, see the differences."""

__version__ = "0.1.0"
__all__ = ["__version__"]

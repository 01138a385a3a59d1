"""shadowproxy: answer from the primary, mirror to the shadow, compare, show the differences."""

__version__ = "0.1.0"
__all__ = ["__version__"]

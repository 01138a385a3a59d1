"""Reports: collect a store's numbers once (:func:`collect_report`), gate them
(:mod:`~shadowproxy.report.readiness`) and render them as HTML, JSON, CSV, Markdown or JUnit XML.
"""

from shadowproxy.report.formats import FORMATS, Format
from shadowproxy.report.model import Report, collect_report
from shadowproxy.report.readiness import Criteria, Readiness, assess
from shadowproxy.report.window import Window, WindowError, parse_window

__all__ = [
    "FORMATS",
    "Criteria",
    "Format",
    "Readiness",
    "Report",
    "Window",
    "WindowError",
    "assess",
    "collect_report",
    "parse_window",
]

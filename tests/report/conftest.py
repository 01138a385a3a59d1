"""Fixtures for the report tests."""

from __future__ import annotations

import pytest

from shadowproxy.report.model import Report
from tests.report.sample import build_report


@pytest.fixture
def report() -> Report:
    return build_report()

"""The CSV report: one row per endpoint, and no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io

import pytest

from shadowproxy.report.csv_report import COLUMNS, render_csv, safe_cell
from shadowproxy.report.model import Report
from tests.report.sample import FORMULA

FAILED = "mismatch_rate; critical; shadow_error_rate; latency_ratio"


def test_rows_carry_the_numbers(report: Report) -> None:
    """Header row, then each endpoint's counts, rates and readiness."""
    rows = list(csv.DictReader(io.StringIO(render_csv(report).decode("utf-8"))))
    assert list(COLUMNS) == list(rows[0].keys())
    assert [
        (
            r["compared"],
            r["mismatches"],
            r["shadow_errors"],
            r["mismatch_rate"],
            r["ready"],
            r["failed_checks"],
        )
        for r in rows
    ] == [
        (
            "400",
            "18",
            "2",
            "0.045000",
            "no",
            "mismatch_rate; critical; shadow_error_rate; latency_ratio",
        ),
        ("1000", "0", "0", "0.000000", "yes", ""),
    ]


def test_formula_cells_are_defused(report: Report) -> None:
    """An endpoint named like a formula is written with a leading quote."""
    rows = list(csv.reader(io.StringIO(render_csv(report).decode("utf-8"))))
    assert rows[2][0] == "'" + FORMULA
    starts = {cell[:1] for row in rows[1:] for cell in row}
    assert set() == starts & {"=", "+", "-", "@", "\t", "\r"}


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("GET /titles", "GET /titles"),
        ("a=b", "a=b"),
    ],
)
def test_safe_cell(cell: str, expected: str) -> None:
    """Only a leading formula character triggers the quote."""
    assert expected == safe_cell(cell)

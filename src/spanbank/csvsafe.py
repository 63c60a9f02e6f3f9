"""CSV that is safe to open in a spreadsheet: text cells cannot start a formula."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable

# A spreadsheet reads a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """A cell value with formulas neutralised: text starting like a formula gets a leading '.

    Numbers stay numbers (a negative kappa is not a formula); NaN/None become empty.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_text(header: list[str], rows: Iterable[Iterable]) -> str:
    """CSV text (one header line, "\\n" line ends) with every cell passed through :func:`safe_cell`."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([safe_cell(h) for h in header])
    for row in rows:
        w.writerow([safe_cell(v) for v in row])
    return buf.getvalue()

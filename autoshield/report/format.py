"""How numbers and tables are written, the same in the terminal, in Markdown and in CSV."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autoshield.privacy.metrics import Estimate

Rows = list[dict[str, str]]


def percent(value: float | None) -> str:
    """A fraction as percent with one decimal; '—' where there is no number."""
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def interval(estimate: Estimate) -> str:
    """A proportion as 'mean [low–high]' in percent."""
    return f"{percent(estimate.mean)} [{percent(estimate.low)}–{percent(estimate.high)}]"


def markdown_table(rows: Rows, header: Sequence[str] | None = None) -> str:
    header = list(header or dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row.get(k, "") for k in header) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_rows(rows: Rows, stem: Path) -> tuple[Path, Path]:
    """The same rows as CSV and as a Markdown table (columns: union of the rows' keys, in order)."""
    header = list(dict.fromkeys(key for row in rows for key in row))
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    stem.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, restval="")
        writer.writeheader()
        writer.writerows(rows)
    md_path.write_text(markdown_table(rows, header))
    return csv_path, md_path

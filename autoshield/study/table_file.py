"""An attack table as one file, to move results between studies and machines that share no database (issue #35).

Gzipped JSON lines: a header (format, version, identity, row count, SHA-256 of the rows' bytes), then one row per
judged victim, with no images. A file is refused in one line when it is not such a table, when its rows no longer
hash to the header's checksum, or when it was computed under another identity than the study it is imported
into: other data, another judge, or other attack settings would make its rows answer another question.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoshield.core.errors import AutoshieldError
from autoshield.core.files import atomic_path
from autoshield.evaluation.table import Problem, Row
from autoshield.study.attack_table import all_rows, write_rows

FORMAT, VERSION = "autoshield-attack-table", 1


@dataclass(frozen=True)
class TableIdentity:
    """What every row of a table shares with the study that reads it."""

    data: str  # the data's fingerprint
    judge: str  # SHA-256 of the judge's weights
    settings: str  # the attack settings and the attacked network, hashed (what the attack cache keys hold)


@dataclass(frozen=True)
class Moved:
    """What an import read, and how many of its rows were new to the table."""

    rows: int
    new: int


def export_table(*, url: str, path: Path, identity: TableIdentity) -> int:
    """Write the rows scored by `identity.judge` to `path` (atomically: a cut export leaves no half file); returns
    how many."""
    return write_table_file(path=path, identity=identity, rows=all_rows(url=url, judge=identity.judge))


def write_table_file(*, path: Path, identity: TableIdentity, rows: Iterable[Row]) -> int:
    """`rows` as a table file of `identity` at `path`, atomically, in the order given; returns how many."""
    body = b"".join(_line(_row_json(row)) for row in rows)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "identity": dataclasses.asdict(identity),
        "rows": body.count(b"\n"),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    try:
        with atomic_path(path) as tmp, gzip.open(tmp, "wb") as file:
            file.write(_line(header) + body)
    except OSError as error:
        raise AutoshieldError(f"cannot write {path}: {error.strerror or error}") from None
    return header["rows"]


def import_table(*, url: str, path: Path, identity: TableIdentity) -> Moved:
    """Add the rows of `path` to the table at `url`, refusing a file of another identity than `identity`; rows
    already stored are kept as they are."""
    header, rows = read_table_file(path)
    theirs = TableIdentity(**header["identity"])
    for field in dataclasses.fields(TableIdentity):
        mine, other = getattr(identity, field.name), getattr(theirs, field.name)
        if mine != other:
            raise AutoshieldError(
                f"{path} holds attacks of another {field.name} ({other[:12]}, the study's is {mine[:12]}): "
                "its rows answer another question, so none was imported"
            )
    stray = next((row for row in rows if row.problem.judge != identity.judge), None)
    if stray is not None:
        raise AutoshieldError(f"{path} is damaged: a row scored by judge {stray.problem.judge[:12]} under its header")
    return Moved(rows=len(rows), new=write_rows(url=url, rows=rows))


def read_table_file(path: Path) -> tuple[dict[str, Any], list[Row]]:
    """The header and rows of a table file, checked against its checksum."""
    try:
        with gzip.open(path, "rb") as file:
            head, _, body = file.read().partition(b"\n")
    except FileNotFoundError:
        raise AutoshieldError(f"no table file at {path}") from None
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise AutoshieldError(f"{path} is not an attack table ({error})") from None
    try:
        header = json.loads(head)
        ours = isinstance(header, dict) and header.get("format") == FORMAT
    except (ValueError, UnicodeDecodeError):
        ours = False
    if not ours:
        raise AutoshieldError(f"{path} is not an attack table (no {FORMAT} header)")
    if header.get("version") != VERSION:
        raise AutoshieldError(f"{path} is an attack table of version {header.get('version')}; this reads {VERSION}")
    if hashlib.sha256(body).hexdigest() != header.get("sha256") or body.count(b"\n") != header.get("rows"):
        raise AutoshieldError(f"{path} is damaged: its rows do not match the checksum in its header")
    return header, [_row_of(json.loads(line)) for line in body.splitlines()]


def _line(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, allow_nan=False).encode() + b"\n"


def _row_json(row: Row) -> dict[str, Any]:
    return {**dataclasses.asdict(row.problem), "outcome": row.outcome, "seconds": row.seconds}


def _row_of(value: dict[str, Any]) -> Row:
    problem = Problem(**{f.name: value[f.name] for f in dataclasses.fields(Problem)})
    return Row(problem=problem, outcome=value["outcome"], seconds=float(value["seconds"]))

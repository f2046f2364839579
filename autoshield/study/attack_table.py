"""The attack table: each judged (victim, cell, attacker) result, once, in the study's own storage (issue #35).

At `init` an attack's outcome depends only on the transformed victim, its cell, the attacker, the attack settings
and the judge (docs/design.md §1). A row is keyed by exactly those, so every worker on every machine that shares
the storage URL reads and writes one table, and a result computed once is never computed again. Rows hold one
victim's numbers (the `Outcomes` columns and the attack's seconds), never an image; the local attack cache, which
holds reconstructions, is only a mirror. Kept beside Optuna's tables, not in them, as the judge is
(`study.judges`): a table named `autoshield_attack_table` in the database, or, for `journal:PATH`, a SQLite file
beside the journal.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Engine, Float, MetaData, String, Table, Text, inspect, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from autoshield.core.errors import AutoshieldError
from autoshield.core.runtime import beating
from autoshield.evaluation.table import Problem, Row
from autoshield.study import claims
from autoshield.study.claims import builder_id
from autoshield.study.storage import create_table, engine_for, first_line, redact, table_url, transaction

TABLE = "autoshield_attack_table"
_CHUNK = 500  # keys per query: well under every database's limit on bound parameters


@dataclass(frozen=True)
class StudyTable:
    """The attack table of the study at `url`, as the `RowStore` a worker's trials read and fill."""

    url: str
    owner: str = field(default_factory=builder_id)  # this process, as its claims name it
    # the caller holds the claims already and finishes them once all its rows are in (a `table build` chunk): a
    # row written here must not finish an attack whose other attackers' rows are still to come
    held: bool = False

    def read(self, problems: Sequence[Problem]) -> dict[str, Row]:
        return read_rows(url=self.url, problems=problems)

    def write(self, rows: Sequence[Row]) -> int:
        return write_rows(url=self.url, rows=rows)

    def claim(self, keys: Sequence[str]) -> list[str]:
        return list(keys) if self.held else claims.claim(url=self.url, keys=keys, owner=self.owner)

    def unfinished(self, keys: Sequence[str]) -> list[str]:
        return claims.unfinished(url=self.url, keys=keys)

    def finish(self, keys: Sequence[str]) -> None:
        if not self.held:
            claims.finish(url=self.url, keys=keys, owner=self.owner)

    def holding(self) -> AbstractContextManager[None]:
        if self.held:
            return contextlib.nullcontext()
        return beating(lambda: claims.beat(url=self.url, owner=self.owner), every=claims.BEAT_SECONDS)


def read_rows(*, url: str, problems: Iterable[Problem]) -> dict[str, Row]:
    """The stored rows of `problems`, by key; a problem with no row is absent."""
    keys = sorted({p.key for p in problems})
    found: dict[str, Row] = {}
    if not keys:
        return found
    try:
        with _connected(url, create=False) as (engine, table):
            if engine is None:
                return found
            with engine.connect() as connection:
                for start in range(0, len(keys), _CHUNK):
                    query = select(table).where(table.c.key.in_(keys[start : start + _CHUNK]))
                    for stored in connection.execute(query):
                        found[stored.key] = _row_of(stored)
    except SQLAlchemyError as error:
        raise AutoshieldError(f"cannot read the attack table in {redact(url)}: {first_line(error)}") from None
    return found


def write_rows(*, url: str, rows: Iterable[Row]) -> int:
    """Store `rows`; a row whose key is stored already (another worker's, or an earlier run's) is kept as it is.
    Returns how many were new."""
    pending = list(rows)
    new = 0
    if not pending:  # a trial whose rows were all stored: no connection
        return new
    try:
        with _connected(url, create=True) as (engine, table):
            assert engine is not None
            for row in pending:  # one transaction each: a duplicate aborts only its own insert
                with contextlib.suppress(IntegrityError), transaction(engine) as connection:
                    connection.execute(table.insert().values(**_columns(row)))
                    new += 1
    except SQLAlchemyError as error:
        raise AutoshieldError(f"cannot write the attack table in {redact(url)}: {first_line(error)}") from None
    return new


def all_rows(*, url: str, judge: str | None = None) -> Iterator[Row]:
    """Every stored row (scored by `judge`, when given), in key order: what an export writes."""
    try:
        with _connected(url, create=False) as (engine, table):
            if engine is None:
                return
            query = select(table).order_by(table.c.key)
            if judge is not None:
                query = query.where(table.c.judge == judge)
            with engine.connect() as connection:
                for stored in connection.execute(query):
                    yield _row_of(stored)
    except SQLAlchemyError as error:
        raise AutoshieldError(f"cannot read the attack table in {redact(url)}: {first_line(error)}") from None


def _columns(row: Row) -> dict[str, Any]:
    p = row.problem
    return {
        "key": p.key,
        "attack": p.attack,
        "cell": p.cell,
        "attacker": p.attacker,
        "judge": p.judge,
        "outcome": json.dumps(row.outcome, sort_keys=True, allow_nan=False),
        "seconds": row.seconds,
    }


def _row_of(stored: Any) -> Row:
    problem = Problem(attack=stored.attack, cell=stored.cell, attacker=stored.attacker, judge=stored.judge)
    if problem.key != stored.key:
        raise AutoshieldError(f"the attack table's row {stored.key[:12]} is damaged: its fields hash to another key")
    return Row(problem=problem, outcome=json.loads(stored.outcome), seconds=float(stored.seconds))


def _table() -> Table:
    return Table(
        TABLE,
        MetaData(),
        Column("key", String(64), primary_key=True),
        Column("attack", String(128), nullable=False),
        Column("cell", String(64), nullable=False),
        Column("attacker", String(32), nullable=False),
        Column("judge", String(64), nullable=False, index=True),
        Column("outcome", Text, nullable=False),
        Column("seconds", Float, nullable=False),
    )


@contextlib.contextmanager
def _connected(url: str, *, create: bool) -> Iterator[tuple[Engine | None, Table]]:
    """The engine and table; (None, table) when the table does not exist and `create` is false."""
    table = _table()
    engine = engine_for(table_url(url))
    try:
        if create:
            create_table(table, engine)
        elif not inspect(engine).has_table(TABLE):
            yield None, table
            return
        yield engine, table
    finally:
        engine.dispose()

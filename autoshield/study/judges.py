"""The judge a study is scored with, kept in the study's own storage so that every worker uses the same weights.

Judges retrained on two machines differ, and their verdicts differ by as much as the effects measured
(docs/design.md §4). A worker on another machine shares only the storage URL, so the weights live where that URL
points: a table of the study's database (`autoshield_judges`, one row per study name, shared by its grid, search and
DP-SGD baseline), or, for `journal:PATH`, a file beside the journal. The first worker stores its judge; every
later one, on any machine, fetches that one and never trains or loads its own. Kept apart from the Optuna storage
itself, as its heartbeat is.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Column, LargeBinary, MetaData, String, Table, inspect, select
from sqlalchemy.dialects.mysql import LONGBLOB
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from autoshield.core.errors import AutoshieldError
from autoshield.privacy.judge_file import JudgeFile, JudgeIdentity, check_fits, judge_bytes, read_judge
from autoshield.study.storage import create_table, engine_for, first_line, redact, transaction

TABLE = "autoshield_judges"


def stored_judge(*, url: str, name: str) -> JudgeFile | None:
    """The judge stored for the studies named `name`; None when none is. A stored judge whose weights no longer
    hash to the digest it was stored under is refused."""
    try:
        found = _journal_read(url, name) if url.startswith("journal:") else _rdb_read(url, name)
    except (OSError, SQLAlchemyError) as error:
        raise AutoshieldError(f"cannot read the judge of {name!r} in {redact(url)}: {first_line(error)}") from None
    if found is None:
        return None
    digest, payload = found
    judge = read_judge(payload, source=f"the judge stored for {name!r} in {redact(url)}")
    if judge.digest != digest:
        raise AutoshieldError(
            f"the judge stored for {name!r} in {redact(url)} is damaged: its weights hash to {judge.digest[:12]}, "
            f"not {digest[:12]}"
        )
    return judge


def store_judge(*, url: str, name: str, judge: JudgeFile) -> JudgeFile:
    """Store `judge` for the studies named `name` unless one is stored already; returns the one that is, so that
    two workers storing at once agree on the first."""
    payload = judge_bytes(judge)
    try:
        if url.startswith("journal:"):
            _journal_insert(url, name, judge.digest, payload)
        else:
            _rdb_insert(url, name, judge.digest, payload)
    except (OSError, SQLAlchemyError) as error:
        raise AutoshieldError(f"cannot store the judge of {name!r} in {redact(url)}: {first_line(error)}") from None
    found = stored_judge(url=url, name=name)
    assert found is not None  # just inserted, or inserted by another worker first
    return found


def study_judge(
    *, url: str, name: str, identity: JudgeIdentity, local: Callable[[], JudgeFile]
) -> tuple[JudgeFile, bool]:
    """The judge the studies named `name` are scored with: the stored one, else `local()` (this machine's, trained
    if need be), stored now. Returns it and whether this call stored it. A stored judge of another width, data or
    victim pool than `identity` is refused."""
    judge = stored_judge(url=url, name=name)
    stored_now = judge is None
    if judge is None:
        mine = local()
        judge = store_judge(url=url, name=name, judge=mine)
        stored_now = judge.digest == mine.digest
    check_fits(
        judge, identity, source=f"the judge stored for {name!r} (a study of another profile needs its own --study)"
    )
    return judge, stored_now


def _table() -> Table:
    return Table(
        TABLE,
        MetaData(),
        Column("name", String(512), primary_key=True),
        Column("digest", String(64), nullable=False),
        Column("payload", LargeBinary().with_variant(LONGBLOB(), "mysql", "mariadb"), nullable=False),  # MBs
    )


def _rdb_read(url: str, name: str) -> tuple[str, bytes] | None:
    table, engine = _table(), engine_for(url)
    try:
        if not inspect(engine).has_table(TABLE):
            return None
        with engine.connect() as connection:
            row = connection.execute(select(table.c.digest, table.c.payload).where(table.c.name == name)).first()
    finally:
        engine.dispose()
    return None if row is None else (row.digest, bytes(row.payload))


def _rdb_insert(url: str, name: str, digest: str, payload: bytes) -> None:
    """Insert unless a row exists; a worker that loses the race to create the table or the row reads the winner's."""
    table, engine = _table(), engine_for(url)
    try:
        create_table(table, engine)
        with contextlib.suppress(IntegrityError), transaction(engine) as connection:  # else another worker's is stored
            connection.execute(table.insert().values(name=name, digest=digest, payload=payload))
    finally:
        engine.dispose()


def _journal_path(url: str, name: str) -> Path:
    journal = Path(url.removeprefix("journal:"))
    return journal.with_name(f"{journal.name}.judges") / f"{name}.judge"


def _journal_read(url: str, name: str) -> tuple[str, bytes] | None:
    path = _journal_path(url, name)
    if not path.is_file():
        return None
    digest, _, payload = path.read_bytes().partition(b"\n")
    return digest.decode(errors="replace"), payload


def _journal_insert(url: str, name: str, digest: str, payload: bytes) -> None:
    """Written beside the final name, then linked to it: a link never replaces a file, so the first one stays."""
    path = _journal_path(url, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(digest.encode() + b"\n" + payload)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another worker's judge is stored: the caller reads it
        except OSError:  # a file system without hard links: create the name exclusively instead
            with contextlib.suppress(FileExistsError), open(path, "xb") as file:
                file.write(digest.encode() + b"\n" + payload)
    finally:
        os.unlink(tmp)

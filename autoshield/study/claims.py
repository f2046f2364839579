"""Who is attacking which problem: claims in the study's storage, so that builders on several machines, each with
its own attack cache, attack every problem of a table exactly once (issue #35).

A builder claims a chunk's problems before it attacks them and marks them done once their rows are in the attack
table. A claim stays live while its builder beats (`beat`, called from a heartbeat thread, `core.runtime.beating`)
and its process runs. One whose builder is gone is taken over by the next that asks: at once on the machine that
ran it (its process no longer exists), after `stale` seconds without a beat elsewhere. The table sits beside the
attack table: `autoshield_attack_claims` in the database, or beside a journal.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from sqlalchemy import Boolean, Column, Engine, Float, MetaData, String, Table, and_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from autoshield.core.errors import AutoshieldError
from autoshield.study.storage import create_table, engine_for, first_line, redact, table_url, transaction

TABLE = "autoshield_attack_claims"
BEAT_SECONDS = 30.0  # how often a builder says it is alive
STALE_SECONDS = 300.0  # a claim not beaten for this long belongs to a builder that died
_CHUNK = 500  # keys per query, as the attack table's


def builder_id() -> str:
    """This process, named so that another process on the same machine can tell whether it still runs: the boot's
    id (host names repeat across containers), the process id, the host name for people."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = socket.gethostname()
    return f"{boot}:{os.getpid()}:{socket.gethostname()}"


def claim(*, url: str, keys: Sequence[str], owner: str, stale: float = STALE_SECONDS) -> list[str]:
    """Claim `keys` for `owner`; returns those it may attack: unclaimed, its own and not done, or not done and held
    by a builder that is gone. A key another builder holds live, or finished, is not returned."""
    granted = []
    with _connected(url) as (engine, table):
        for key in keys:  # one transaction each: a key another builder holds aborts only its own insert
            now = time.time()
            try:
                with transaction(engine) as connection:
                    connection.execute(table.insert().values(key=key, owner=owner, beat=now, done=False))
                granted.append(key)
                continue
            except IntegrityError:
                pass
            with engine.connect() as connection:
                held = connection.execute(select(table).where(table.c.key == key)).one()
            if held.owner == owner and not held.done:  # its own open claim (a trial that failed, retried): still its
                granted.append(key)
                continue
            if held.done or not _gone(held.owner, held.beat, stale=stale):
                continue
            taken = and_(table.c.key == key, table.c.owner == held.owner, table.c.done.is_(False))
            with transaction(engine) as connection:  # the takeover is one conditional UPDATE: one builder wins it
                if connection.execute(update(table).where(taken).values(owner=owner, beat=now)).rowcount == 1:
                    granted.append(key)
    return granted


def beat(*, url: str, owner: str) -> None:
    """Keep `owner`'s open claims live."""
    with _connected(url) as (engine, table), transaction(engine) as connection:
        mine = and_(table.c.owner == owner, table.c.done.is_(False))
        connection.execute(update(table).where(mine).values(beat=time.time()))


def finish(*, url: str, keys: Sequence[str], owner: str) -> None:
    """Mark `owner`'s claims on `keys` done: their rows are in the attack table, and no one attacks them again."""
    with _connected(url) as (engine, table), transaction(engine) as connection:
        for start in range(0, len(keys), _CHUNK):
            chosen = and_(table.c.owner == owner, table.c.key.in_(keys[start : start + _CHUNK]))
            connection.execute(update(table).where(chosen).values(done=True))


def unfinished(*, url: str, keys: Sequence[str]) -> list[str]:
    """The keys among `keys` whose rows no builder has finished: unclaimed, or claimed and not done."""
    done: set[str] = set()
    with _connected(url) as (engine, table), engine.connect() as connection:
        for start in range(0, len(keys), _CHUNK):
            finished = and_(table.c.key.in_(keys[start : start + _CHUNK]), table.c.done.is_(True))
            done.update(row.key for row in connection.execute(select(table.c.key).where(finished)))
    return [key for key in keys if key not in done]


def _gone(owner: str, beat: float, *, stale: float) -> bool:
    """Whether the builder `owner` has stopped: its process is gone from this machine, or it has not beaten for
    `stale` seconds."""
    boot, _, rest = owner.partition(":")
    if boot == builder_id().partition(":")[0]:
        try:
            os.kill(int(rest.partition(":")[0]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError):
            pass
    return beat < time.time() - stale


def _table() -> Table:
    return Table(
        TABLE,
        MetaData(),
        Column("key", String(64), primary_key=True),
        Column("owner", String(128), nullable=False, index=True),
        Column("beat", Float, nullable=False),
        Column("done", Boolean, nullable=False),
    )


@contextlib.contextmanager
def _connected(url: str) -> Iterator[tuple[Engine, Table]]:
    table = _table()
    engine = engine_for(table_url(url))
    try:
        create_table(table, engine)
        yield engine, table
    except SQLAlchemyError as error:
        raise AutoshieldError(f"cannot use the attack claims in {redact(url)}: {first_line(error)}") from None
    finally:
        engine.dispose()

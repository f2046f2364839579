"""Where studies live: storage URLs, opening and checking them, the artifact store.

One storage holds a name's three studies (`<name>-grid`, `<name>-search`,
`<name>-dpsgd`). SQLite files are checked before Optuna writes to them, so a
foreign or corrupt file is refused untouched; PostgreSQL (any SQLAlchemy URL)
lets workers on many machines share a study; `journal:PATH` serves clusters
that have only a shared file system. Passwords never reach the terminal.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from sqlalchemy import Connection, Engine, Table, create_engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from autoshield.core.errors import AutoshieldError
from autoshield.core.files import writable_folder
from autoshield.core.interrupts import deferred
from autoshield.study import heartbeat

DEFAULT_STORAGE = "sqlite:///studies/autoshield.db"


def study_name(name: str, kind: str) -> str:
    """The study of one kind under a name prefix: `<name>-grid`, `<name>-search`, `<name>-dpsgd`."""
    return f"{name}-{kind}"


class _OneLine(logging.Filter):
    """Optuna logs a failed trial with its whole traceback, then again as "failed with value None". A user needs
    the first line only (the reason is also stored on the trial), and nothing for Ctrl-C, which the command
    reports itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and issubclass(record.exc_info[0], KeyboardInterrupt):
            return False
        if record.getMessage().endswith("failed with value None."):
            return False
        record.exc_info, record.exc_text = None, None
        return True


def quiet_optuna() -> None:
    """Optuna's per-trial log lines and experimental-feature warnings (heartbeat, metric names) say nothing a
    user of autoshield needs, and its failure warnings come without tracebacks; the CLI and every worker
    process call this at start."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(f, _OneLine) for f in handler.filters):
            handler.addFilter(_OneLine())


def _credentials(url: str) -> tuple[str, str, str | None, str] | None:
    """(scheme, user, password, host and the rest) of a URL with credentials, split at the *last* `@` of the
    part before the path: a password with an unescaped `@`, `:` or `/` stays whole. None without credentials."""
    if "://" not in url:
        return None
    scheme, rest = url.split("://", 1)
    credentials, at, host = rest.rpartition("@")
    if not at:
        return None
    user, colon, password = credentials.partition(":")
    return scheme, user, password if colon else None, host


def redact(url: str) -> str:
    """The storage URL safe to print: the password replaced by ***, whatever characters it holds."""
    parts = _credentials(url)
    if parts is None or parts[2] is None:
        return url
    scheme, user, _, host = parts
    return f"{scheme}://{user}:***@{host}"


def scrub(text: str, url: str) -> str:
    """`text` (e.g. a driver's error) without the URL's password, or any `@`-separated piece of it, which a
    driver that split the URL at the wrong `@` may quote as a host name."""
    parts = _credentials(url)
    text = text.replace(url, redact(url))
    if parts is None or not parts[2]:
        return text
    for secret in sorted({parts[2], *parts[2].split("@")}, key=len, reverse=True):
        if len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def quoted(url: str) -> str:
    """The URL with its password percent-encoded, so that SQLAlchemy parses a password holding `@`, `:`, `/`
    or `%` as the user meant it (an already encoded password is left as it is)."""
    parts = _credentials(url)
    if parts is None or parts[2] is None or ("%" in parts[2] and unquote(parts[2]) != parts[2]):
        return url
    scheme, user, password, host = parts
    return f"{scheme}://{user}:{quote(password, safe='')}@{host}"


def default_artifacts(url: str) -> Path:
    """Reconstruction sheets go beside a SQLite file (`artifacts/`), else to `studies/artifacts`."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).parent / "artifacts"
    return Path("studies/artifacts")


def _check_sqlite_file(url: str, *, create: bool, writes: bool = True) -> None:
    """Refuse a file that is not SQLite, or a SQLite database of another program, before Optuna writes to it;
    refuse a missing one unless `create`, and one this process cannot write unless the command only reads.

    The check opens the file read-write (never creating it) because a worker killed mid-write leaves a
    hot journal that only a read-write connection can roll back; reading the table list writes nothing else."""
    path = Path(url.removeprefix("sqlite:///"))
    fresh = not path.exists() or path.stat().st_size == 0
    if fresh and not create:
        raise AutoshieldError(f"no study database at {path} (check --storage; nothing was created)")
    if writes:  # SQLite writes its journal beside the database: the folder must take a new file too
        writable_folder(path.parent)
    if fresh:
        return
    if writes:
        try:  # SQLite would quietly open a write-protected file read-only and fail at the first trial
            os.close(os.open(path, os.O_RDWR))
        except OSError as error:
            raise AutoshieldError(f"cannot write the study database {path}: {error.strerror or error}") from None
    try:
        with sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30) as connection:
            tables = {row[0] for row in connection.execute("select name from sqlite_master where type='table'")}
    except sqlite3.DatabaseError as error:
        raise AutoshieldError(f"{path} is not a usable SQLite database ({error})") from None
    if tables and "studies" not in tables:
        raise AutoshieldError(f"{path} is a SQLite database of another program (no Optuna tables); not touching it")


def check_storage(url: str) -> None:
    """What can be checked of a storage without creating anything (a SQLite file's kind and whether this process can
    write it and its folder), so that a study command refuses a bad one before the data loads."""
    if url.startswith("sqlite:///"):
        _check_sqlite_file(url, create=True)


def open_storage(
    url: str | None = None, *, heartbeat: bool = True, create: bool = True, writes: bool = True
) -> optuna.storages.BaseStorage:
    """`sqlite:///…`, `postgresql+psycopg://…` (any SQLAlchemy URL) or `journal:PATH` for a shared file system.

    Commands that only read studies (`report`, `export`, `dashboard`, `confirm`) pass `create=False`: a mistyped
    SQLite or journal path is then an error, not a new empty storage. Those that never write (`report`, `export`)
    also pass `writes=False`, so a read-only database serves them; every other command is refused one before it
    starts work."""
    url = url or DEFAULT_STORAGE
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        if not create and not path.is_file():
            raise AutoshieldError(f"no journal storage at {path} (check --storage; nothing was created)")
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        _check_sqlite_file(url, create=create, writes=writes)
    try:
        return _rdb_storage(quoted(url), engine_options(url), heartbeat)
    except ModuleNotFoundError as error:
        raise AutoshieldError(
            f"storage {redact(url)} needs the '{error.name}' driver: pip install 'autoshield[postgres]'"
        ) from None
    except Exception as error:  # SQLAlchemy/driver errors: one line, never the password
        raise AutoshieldError(f"cannot open storage {redact(url)}: {scrub(first_line(error), quoted(url))}") from None


def first_line(error: BaseException) -> str:
    """An error's message in one line (its type's name when it has none): what a user is shown."""
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def engine_options(url: str) -> dict[str, Any]:
    """SQLAlchemy engine arguments for a storage URL: SQLite workers queue for the lock instead of failing, and a
    PostgreSQL connection is checked before use and gives up on an unreachable host."""
    if url.startswith("sqlite:///"):
        return {"connect_args": {"timeout": 120}}
    if url.startswith("postgresql"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    return {}


def table_url(url: str) -> str:
    """Where a study's tables beside Optuna's (the attack table, its claims) live: its database, or a SQLite file
    beside a journal."""
    if not url.startswith("journal:"):
        return url
    journal = Path(url.removeprefix("journal:"))
    return f"sqlite:///{journal.with_name(f'{journal.name}.table.sqlite')}"


def engine_for(url: str) -> Engine:
    """A SQLAlchemy engine on a storage URL, for the tables autoshield keeps beside Optuna's (the judge, the attack
    table); the caller disposes of it."""
    return create_engine(quoted(url), **engine_options(url))


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """`engine.begin()` for autoshield's own tables, with Ctrl-C and SIGTERM held until it has committed or rolled
    back (`core.interrupts.deferred`): a commit cut short can leave SQLite's lock held."""
    with deferred(), engine.begin() as connection:
        yield connection


def create_table(table: Table, engine: Engine) -> None:
    """Create `table` unless it exists; a worker that loses the race to create it goes on with the winner's."""
    try:
        table.create(engine, checkfirst=True)
    except SQLAlchemyError:
        if not inspect(engine).has_table(table.name):  # else another worker created it between check and CREATE
            raise


def _rdb_storage(url: str, engine_kwargs: dict[str, Any], beating: bool) -> RDBStorage:
    """RDBStorage, retried when workers starting together race to create the schema of a new database."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(5):
        try:
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat.HEARTBEAT_SECONDS if beating else None,
                grace_period=heartbeat.GRACE_SECONDS if beating else None,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3) if beating else None,
            )
        except (IntegrityError, OperationalError) as error:
            # the other process holds the lock, or created a table between our check and our CREATE
            racing = isinstance(error, IntegrityError) or any(m in str(error) for m in ("locked", "already exists"))
            if not racing or attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def storage_failure(error: BaseException) -> str | None:
    """The cause of a storage error raised mid-run (a read-only or full disk, a locked database) in one line, or
    None when `error` did not come from the storage. Optuna chains the driver's message under a guess of its own
    ("invalid data in the commit"); the deepest cause is the one that says what happened."""

    def from_driver(e: BaseException, *, or_optuna: bool = False) -> bool:
        drivers = ("sqlalchemy", "psycopg", "optuna") if or_optuna else ("sqlalchemy", "psycopg")
        return isinstance(e, sqlite3.Error) or type(e).__module__.split(".")[0] in drivers

    chain: list[BaseException] = []  # an unrelated error is never hidden: the chain holds storage errors only
    while error is not None and error not in chain and from_driver(error, or_optuna=True):
        chain.append(error)
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    for cause in reversed(chain):
        if from_driver(cause):
            return first_line(cause).removeprefix("(sqlite3.OperationalError) ")
    return None


def artifact_store(path: Path) -> FileSystemArtifactStore:
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))

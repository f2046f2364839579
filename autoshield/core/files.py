"""Files that several workers, on one machine or many sharing a folder, read and write together.

A shared artifact (the decoded data set, the reference classifier) is built
once: the first worker builds it under a file lock while the others wait on
the lock and then read what it wrote. Every write goes to a unique temporary
name beside the target and is renamed over it, so a reader never sees half a
file and two writers never share a temporary name. `filelock` uses `flock`,
which Linux maps to POSIX locks on NFS, so the lock also holds across machines.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from filelock import FileLock

from autoshield.core.errors import AutoshieldError

T = TypeVar("T")


def cache_dir() -> Path:
    """Where decoded data, reference classifiers and attack results are cached ($AUTOSHIELD_CACHE)."""
    env = os.environ.get("AUTOSHIELD_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "autoshield"


TEXT_FILE_BYTES = 1_000_000  # a policy, space or profile file is a few hundred bytes; anything this large is not one


def read_text_file(path: Path | str, *, what: str) -> str:
    """A small UTF-8 file the user named (policy, search space, profile), or one line saying why it is not one:
    missing, a folder, unreadable, too large, or binary."""
    path = Path(path)
    try:
        if path.is_dir():
            raise AutoshieldError(f"{what} {str(path)!r} is a folder, not a file")
        if path.stat().st_size > TEXT_FILE_BYTES:
            raise AutoshieldError(f"{what} {str(path)!r} is larger than {TEXT_FILE_BYTES:,} bytes: not a {what}")
        data = path.read_bytes()
    except FileNotFoundError:
        raise AutoshieldError(f"{what} {str(path)!r} does not exist") from None
    except OSError as error:
        raise AutoshieldError(f"cannot read {what} {str(path)!r}: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AutoshieldError(f"{what} {str(path)!r} is not UTF-8 text (a binary file?)") from None
    if "\x00" in text:
        raise AutoshieldError(f"{what} {str(path)!r} holds NUL bytes: not a text file")
    return text


def file_stem(name: str) -> str:
    """A study's name as the stem of the files named after it: letters, digits, `.`, `_` and `-`, anything else
    `_`, so that no name writes outside its folder. The study itself keeps the name as given."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def writable_folder(path: Path) -> Path:
    """`path` as a folder this process can write in, created if missing; one line when it cannot be, checked
    before any work is spent on what would be written there."""
    blocking = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise AutoshieldError(f"cannot write in {path}: {blocking} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".autoshield-probe-"):
            pass
    except OSError as error:
        raise AutoshieldError(f"cannot write in {path}: {error.strerror or error}") from None
    return path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A unique temporary path beside `path`: renamed over `path` when the block succeeds, removed when it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_file_beside(path)
    try:
        yield tmp
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_file_beside(path: Path) -> Path:
    """An empty file of a unique name beside `path`, created as `open` creates files, so the umask sets its mode
    (`mkstemp` makes every file private, 0600, and every report and CSV with it)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            with open(tmp, "xb"):
                return tmp
        except FileExistsError:
            continue


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verified(path: Path, load: Callable[[Path], T | None]) -> T | None:
    """`load(path)` when the file matches its recorded checksum (files written before checksums existed are
    only parsed); None when it is missing, damaged or unreadable in any way."""
    if not path.exists():
        return None
    recorded = _digest_path(path)
    try:
        if recorded.exists() and recorded.read_text().strip() != _digest(path):
            return None
        return load(path)
    except Exception:  # any parser's error on a damaged file (BadZipFile, UnpicklingError, ...) means rebuild
        return None


def move_aside(path: Path) -> None:
    """Keep a damaged file for inspection under a new name, and say so in one line; another worker that found the
    same file damaged may have moved it first."""
    aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
    try:
        path.replace(aside)
    except FileNotFoundError:
        return
    print(f"warning: {path} was damaged; moved it to {aside.name} and rebuilding", file=sys.stderr)


def shared_artifact(
    path: Path, *, load: Callable[[Path], T | None], build: Callable[[], T], save: Callable[[T, Path], None]
) -> tuple[T, bool]:
    """`load(path)`, or build the artifact once for every worker sharing the folder; True when built here.

    Every file is written with a checksum beside it and verified on read. A damaged one (truncated, altered,
    unreadable) is moved aside under the lock, said in one line, and rebuilt.
    """
    found = _verified(path, load)
    if found is not None:
        return found, False
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        found = _verified(path, load)  # built by another worker while this one waited
        if found is not None:
            return found, False
        if path.exists():
            move_aside(path)
        value = build()
        _write(path, value, save)
        return value, True


def _write(path: Path, value: T, save: Callable[[T, Path], None]) -> None:
    with atomic_path(path) as tmp:
        save(value, tmp)
        digest = _digest(tmp)
    with atomic_path(_digest_path(path)) as tmp:
        tmp.write_text(digest + "\n")


def replace_artifact(path: Path, value: T, *, save: Callable[[T, Path], None]) -> None:
    """Put `value` at `path` in `shared_artifact`'s form (checksum beside it), under its lock: an artifact brought
    from elsewhere (an imported judge) instead of the one built here."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        _write(path, value, save)

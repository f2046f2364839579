"""Files that several workers, on one machine or many sharing a folder, read and write together.

A shared artifact (the decoded data set, the reference classifier) is built
once: the first worker builds it under a file lock while the others wait on
the lock and then read what it wrote. Every write goes to a unique temporary
name beside the target and is renamed over it, so a reader never sees half a
file and two writers never share a temporary name. `filelock` uses `flock`,
which Linux maps to POSIX locks on NFS, so the lock also holds across machines.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from filelock import FileLock

T = TypeVar("T")


def cache_dir() -> Path:
    """Where decoded data, reference classifiers and attack results are cached ($AUTOSHIELD_CACHE)."""
    env = os.environ.get("AUTOSHIELD_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "autoshield"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A unique temporary path beside `path`: renamed over `path` when the block succeeds, removed when it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def shared_artifact(
    path: Path, *, load: Callable[[Path], T | None], build: Callable[[], T], save: Callable[[T, Path], None]
) -> tuple[T, bool]:
    """`load(path)`, or build the artifact once for every worker sharing the folder; True when built here.

    `load` returns None for a missing or unreadable file, which is then rebuilt.
    """
    found = load(path) if path.exists() else None
    if found is not None:
        return found, False
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        found = load(path) if path.exists() else None  # built by another worker while this one waited
        if found is not None:
            return found, False
        value = build()
        with atomic_path(path) as tmp:
            save(value, tmp)
        return value, True

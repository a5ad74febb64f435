"""Atomic file writing: an output is either complete or untouched, never half-written.

Folders are replaced only when they are edgeseg's own output of the same kind (a bundle, a
report, a dataset edgeseg wrote): a folder that holds anything else is refused, never emptied.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from edgeseg.errors import fail

_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def check_output_folder(path: Path, is_ours: Callable[[Path], bool] | None, what: str) -> None:
    """Refuse, in one line, an output folder that exists and holds something edgeseg did not write."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir() or path.is_symlink():
        raise fail(path, f"exists and is not a folder; choose another path for the {what}")
    if any(path.iterdir()) and not (is_ours and is_ours(path)):
        raise fail(path, f"folder is not empty and is not a {what}; refusing to replace it "
                         "(choose another output folder or empty it)")


def prepare_parent(path: Path) -> None:
    """Create the folder ``path`` goes in, or say in one line why it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise fail(path.parent, "is not a folder; cannot write inside it") from None
    except OSError as e:
        raise fail(path.parent, f"cannot create folder ({e.strerror})") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise fail(path.parent, "folder is not writable")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, is_ours: Callable[[Path], bool] | None = None, what: str = "output"):
    """Yield a temporary path next to ``path``; on success it replaces ``path`` in one rename.

    The caller creates a file or a folder at the temporary path. An existing folder at ``path``
    is replaced only when empty or when ``is_ours(path)`` says edgeseg wrote it; the swap is
    atomic where the system allows it, so there is no moment with neither the old nor the new
    content. On error (or Ctrl-C / SIGTERM turned into KeyboardInterrupt) the temporary path is
    removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    prepare_parent(path)
    if path.is_dir() and not path.is_symlink():
        check_output_folder(path, is_ours, what)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / "out"
    try:
        yield target
        _commit(target, path, is_ours, what)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _commit(new: Path, path: Path, is_ours, what: str) -> None:
    if path.is_dir() and not path.is_symlink():
        check_output_folder(path, is_ours, what)  # it may have changed while we worked
        if new.is_dir() and _exchange(new, path):
            shutil.rmtree(new, ignore_errors=True)  # ``new`` now holds the previous content
            return
        old = new.with_name("old")
        os.replace(path, old)
        os.replace(new, path)
    elif new.is_dir() and path.exists():
        raise fail(path, f"exists and is not a folder; choose another path for the {what}")
    else:
        os.replace(new, path)


def check_output(path, what: str, is_ours=None) -> Path:
    """``path``, or a one-line error before any work when it cannot be written: a folder where a file
    goes; for a folder output (``is_ours`` given) a file, the current folder or a folder edgeseg did
    not write; anything under a file or in a read-only folder."""
    given, path = path, Path(path)
    if path.name in ("", ".."):
        path = path.resolve()
    if is_ours is None:
        if path.is_dir():
            raise fail(given, f"is a folder; expected a file name for the {what}")
    else:
        cwd = Path.cwd()
        if path.resolve() in (cwd, *cwd.parents):
            raise fail(given, f"is the current folder (or holds it); choose another folder for the {what}")
        check_output_folder(path, is_ours, what)
    base = next(p for p in path.parents if p.exists())
    if not base.is_dir():
        raise fail(base, "is not a folder; cannot write inside it")
    if not os.access(base, os.W_OK | os.X_OK):
        raise fail(base, "folder is not writable")
    return path


def write_bytes(path, data: bytes) -> None:
    path = Path(path)
    if path.is_dir():
        raise fail(path, "is a folder; expected a file name")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent) + "\n")


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

"""Atomic writes: a reader sees the old file, or the new one, never half of either.

Files are written to a temporary sibling and renamed (`os.replace` is atomic on POSIX);
folders are built in a hidden temporary sibling and renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from olr.errors import OLRError


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _plain_mode(path, mode: int) -> None:
    # mkstemp/mkdtemp create private (0600/0700) entries; datasets and runs are meant to be
    # readable like any file the user writes, so apply the usual mode minus the umask.
    os.chmod(path, mode & ~_umask())


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        _plain_mode(tmp, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    # numpy scalars and arrays show up in metrics and meta; make them plain JSON.
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def replace_file_from(tmp_path: str | os.PathLike, path: str | os.PathLike) -> None:
    """Move a finished temporary file into place atomically (same folder required)."""
    os.replace(tmp_path, path)


def temp_sibling(path: str | os.PathLike, suffix: str = "") -> Path:
    """A fresh, unused name next to `path` for writing before an atomic rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    _plain_mode(tmp, 0o666)
    return Path(tmp)


@contextlib.contextmanager
def staged_folder(final: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder in a hidden temporary sibling; rename it to `final` on success.

    On any exception the temporary folder is removed and `final` is untouched. An
    existing `final` is an error unless `overwrite` is true; then it is replaced only
    once the new folder is complete. Disk-full and permission errors become OLRError.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise OLRError(f"{final} already exists; choose another name or pass --overwrite to replace it.")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
        _plain_mode(tmp, 0o777)
    except PermissionError as e:
        raise OLRError(f"Cannot write in {final.parent} ({e.strerror}); choose a folder you can write to.") from None
    try:
        yield tmp
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
            os.replace(final, old / "x")
            try:
                os.replace(tmp, final)
            except BaseException:
                os.replace(old / "x", final)  # put the previous version back
                shutil.rmtree(old, ignore_errors=True)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(final.parent)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OLRError(f"The disk is full while writing {final}; nothing was kept. Free some space and try again.") from None
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise OLRError(f"Permission denied while writing {final}; nothing was kept. Choose a folder you can write to.") from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_partials(folder: str | os.PathLike, min_age_s: float = 3600.0) -> list[Path]:
    """Delete leftovers of builds killed mid-way (`.*.partial`, `.*.old`, `.*.tmp`).

    Only leftovers older than `min_age_s` go, so a build still running elsewhere is safe.
    """
    import time

    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    now = time.time()
    for p in folder.glob(".*"):
        if p.name.endswith((".partial", ".old", ".tmp")) and now - p.stat().st_mtime >= min_age_s:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            removed.append(p)
    return removed

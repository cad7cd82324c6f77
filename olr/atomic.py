"""Atomic writes: a reader sees the old file, or the new one, never half of either.

Files are written to a temporary sibling and renamed (`os.replace` is atomic on POSIX);
folders are built in a hidden temporary sibling and renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

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


def is_disk_full(error: BaseException) -> bool:
    """True if `error`, or an error it was raised from, says the disk is full (ENOSPC, also via h5py)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(error):  # h5py and TensorFlow keep only the message
            return True
        error = error.__cause__ or error.__context__
    return False


#: below this much free space after a failed write, the disk is taken to be full: GDAL and SQLite often
#: report a full disk as something else ("no such table: gpkg_contents", "Write failed")
LOW_DISK_BYTES = 2**20


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


@contextlib.contextmanager
def staged_folder(final: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder in a hidden temporary sibling; rename it to `final` on success.

    On any exception the temporary folder is removed and `final` is untouched. An
    existing `final` is an error unless `overwrite` is true; then it is replaced only
    once the new folder is complete. Disk-full and permission errors become OLRError, and so
    does any error of a writer (GDAL, SQLite) when the disk is then (nearly) full.

    Killed at any moment (kill -9 included), the build leaves only hidden entries: the
    staging folder `.NAME.XXXX.partial`, perhaps the previous version in `.NAME.XXXX.old`,
    and the owner lock `.NAME.XXXX.lock` that the process held. The next build in the same
    folder (or `finish_interrupted`) finds the lock free, puts a previous version back if
    it was moved aside, and removes the rest.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise OLRError(f"{final} already exists; choose another name or pass --overwrite to replace it.")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        finish_interrupted(final.parent)
        # The lock comes first, so a staging folder never exists without its held lock.
        while True:
            stem = str(final.parent / f".{final.name}.{secrets.token_hex(4)}")
            try:
                lock_fd = os.open(stem + LOCK, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                break
            except FileExistsError:
                continue
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # held until the end: the build is alive
        tmp = Path(stem + PARTIAL)
        tmp.mkdir()
    except PermissionError as e:
        raise OLRError(f"Cannot write in {final.parent} ({e.strerror}); choose a folder you can write to.") from None
    try:
        yield tmp
        with _folder_lock(final.parent):
            _move_into_place(tmp, final, Path(stem + OLD), overwrite)
        _fsync_dir(final.parent)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OLRError(
                f"The disk is full while writing {final}; nothing was kept. Free some space and try again."
            ) from None
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise OLRError(
                f"Permission denied while writing {final}; nothing was kept. Choose a folder you can write to."
            ) from None
        raise
    except Exception as e:
        free = _free_bytes(final.parent)  # before the staging folder's space is given back
        shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(e, OLRError) and (is_disk_full(e) or (free is not None and free < LOW_DISK_BYTES)):
            raise OLRError(
                f"The disk is full while writing {final}; nothing was kept. Free some space and try again."
            ) from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(stem + LOCK)
        os.close(lock_fd)


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive flock on `folder` itself: builds of the same parent rename one at a time."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _move_into_place(tmp: Path, final: Path, old: Path, overwrite: bool) -> None:
    """Rename the complete `tmp` to `final`; call under `_folder_lock` so the existence check holds.

    Without `overwrite`, a `final` that appeared while `tmp` was being built (another build of
    the same name) is an error: it is never replaced silently.
    """
    if not final.exists():
        os.replace(tmp, final)
        return
    if not overwrite:
        raise OLRError(
            f"{final} was created meanwhile by another build; choose another name or pass --overwrite to replace it."
        )
    old.mkdir()
    os.replace(final, old / "x")
    try:
        os.replace(tmp, final)
    except BaseException:
        os.replace(old / "x", final)  # put the previous version back
        shutil.rmtree(old, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


PARTIAL, OLD, LOCK = ".partial", ".old", ".lock"
_BUILD_LOCK = re.compile(r"\..+\.[0-9a-f]{8}\.lock")


def _owner_alive(stem: str) -> bool | None:
    """Whether the build that owns `stem` still runs (None: no lock file, so unknown)."""
    try:
        fd = os.open(stem + LOCK, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def finish_interrupted(folder: str | os.PathLike, min_age_s: float = 3600.0) -> list[Path]:
    """Clean up after folder builds in `folder` that were killed; return what was removed.

    A build whose owner lock is free (its process is gone) had its staging folder removed;
    if it had moved the previous version aside and not yet put the new one in place, the
    previous version is put back. Leftovers without a lock file (a build killed in the
    instant before it took its lock, or `.tmp` files of `write_bytes`) go once older than
    `min_age_s`, so a build still running elsewhere is safe.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    stems: dict[str, list[Path]] = {}
    for p in folder.glob(".*"):
        if p.name.endswith(LOCK) and not _BUILD_LOCK.fullmatch(p.name):
            continue  # another tool's lock file (e.g. the demo's), not a build's
        for suffix in (PARTIAL, OLD, ".tmp", LOCK):
            if p.name.endswith(suffix):
                stems.setdefault(str(p)[: -len(suffix)], []).append(p)
                break
    for stem, entries in sorted(stems.items()):
        alive = _owner_alive(stem)
        if alive:
            continue
        leftovers = [p for p in entries if not p.name.endswith(LOCK)]
        if alive is None:  # no lock: only age tells that nobody works on it any more
            try:
                if any(now - p.lstat().st_mtime < min_age_s for p in leftovers):
                    continue
            except FileNotFoundError:
                continue
        for p in sorted(leftovers, key=lambda p: not p.name.endswith(OLD)):
            if p.name.endswith(OLD):
                final = folder / Path(stem).name[1:].rsplit(".", 1)[0]
                if (p / "x").exists() and not final.exists():
                    with contextlib.suppress(OSError):
                        os.replace(p / "x", final)  # the replacement never landed: keep the previous version
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            removed.append(p)
        # Last, so a build that made its lock file but has not locked it yet only loses the file
        # (its staging folder then falls under the age rule).
        with contextlib.suppress(OSError):
            os.unlink(stem + LOCK)
    return removed

"""Checkpoint files written safely: a model saved under a temporary name beside its target, then
renamed; temporary names left behind by a killed process removed; a full disk told apart.

A temporary checkpoint is `.<stem>.<pid>.tmp.keras` in the run folder (`.best.4242.tmp.keras`),
so the process that wrote it can be checked. Imports no Keras (the model is only `.save`d).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from olr.runs import store

_TEMP_SUFFIX = ".tmp.keras"


def temp_checkpoint(path: Path, pid: int | None = None) -> Path:
    """The temporary name `path` is written under by process `pid` (default: this one)."""
    return path.with_name(f".{path.stem}.{pid or os.getpid()}{_TEMP_SUFFIX}")


def save_atomic(model, path: Path) -> None:
    """model.save to a temporary name in the same folder, then rename over `path`.

    The temporary file goes on any failure (a full disk included), so the space it took is free
    again for status.json and the previous `path` stays whole.
    """
    tmp = temp_checkpoint(path)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _writer_pid(tmp: Path) -> int | None:
    parts = tmp.name[: -len(_TEMP_SUFFIX)].split(".")
    return int(parts[-1]) if len(parts) >= 3 and parts[-1].isdigit() else None


def remove_stale_temp_checkpoints(run_dir: Path) -> list[Path]:
    """Remove the temporary checkpoints of processes that are gone (or of this one); returns them."""
    removed = []
    for tmp in Path(run_dir).glob(f".*{_TEMP_SUFFIX}"):
        pid = _writer_pid(tmp)
        if pid is None or (pid != os.getpid() and store.process_alive(pid)):
            continue
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def disk_full_sentence(folder: Path, then: str = "resume the run") -> str:
    """What went wrong and what to do (free space, then `then`), with the space now free where `folder` lives."""
    try:
        free_mb = shutil.disk_usage(folder).free // (1024 * 1024)
    except OSError:
        return f"The disk is full; free space and {then}."
    return f"The disk is full ({free_mb} MB free); free space and {then}."

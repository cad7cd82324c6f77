"""The training process's console: timestamped log lines, copied into the run's console.log."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from olr.runs.store import RunLayout


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class _Tee:
    """A text stream that also appends everything to a file."""

    def __init__(self, stream, file):
        self._stream, self._file = stream, file

    def write(self, text):
        self._stream.write(text)
        try:
            self._file.write(text)
            self._file.flush()
        except (OSError, ValueError):
            pass
        return len(text)

    def flush(self):
        self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def start_console_log(run_dir: Path):
    """Copy stdout/stderr into console.log unless stdout already writes there. Returns an undo.

    The launcher redirects the process into console.log, so then nothing is written twice;
    TensorFlow's C++ messages reach the file only in that case (they bypass Python's streams).
    """
    path = RunLayout(run_dir).console
    try:
        if path.exists() and os.path.samestat(os.fstat(sys.stdout.fileno()), os.stat(path)):
            return lambda: None
    except (OSError, ValueError, AttributeError):
        pass
    # stays open until undo() (for the rest of the run), so no with-block can hold it
    file = open(path, "a", encoding="utf-8")  # noqa: SIM115
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tee(sys.stdout, file), _Tee(sys.stderr, file)

    def undo():
        sys.stdout, sys.stderr = old
        file.close()

    return undo

"""One run per device, when asked: advisory locks on `models/.devices/<device>.lock`.

Every training run holds a *shared* lock on each device it trains on (the CPU, or each GPU
of CUDA_VISIBLE_DEVICES) for as long as it trains. A run launched with "wait for the
device" (`python -m olr train --wait-for-device`, the Train page's queue toggle) stays
"queued" until no other run holds the device; queued runs then start one at a time (not
necessarily in launch order). Runs launched without the toggle never wait.

The locks are `flock`s: the kernel releases them when the process ends in any way (kill -9
included), so a crashed run never blocks the queue.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from olr import workspace

LOCKS_FOLDER = ".devices"


def device_names(cuda_visible_devices: str | None) -> list[str]:
    """Lock names of the devices a process with this CUDA_VISIBLE_DEVICES trains on.

    "" or None -> ["cpu"]; "0,1" -> ["gpu0", "gpu1"] (sorted, so two runs lock in the same order).
    """
    ids = [part.strip() for part in (cuda_visible_devices or "").split(",") if part.strip() and part.strip() != "-1"]
    if not ids:
        return ["cpu"]
    return sorted({f"gpu{int(i)}" if i.isdigit() else "gpu-" + "".join(c for c in i if c.isalnum()) for i in ids})


def _lock_path(name: str) -> Path:
    folder = workspace.models_dir() / LOCKS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.lock"


def busy(name: str) -> bool:
    """True if some run holds device `name` now."""
    fd = _open(_lock_path(name))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we may have taken
    return False


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def _wait_exclusive(fd: int, on_wait, should_stop, poll_s: float) -> bool:
    """Poll for an exclusive lock; False if `should_stop` said so first."""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if should_stop is not None and should_stop():
                return False
            if on_wait is not None:
                on_wait()
            time.sleep(poll_s)


@contextlib.contextmanager
def hold_devices(
    names: list[str],
    *,
    wait: bool,
    on_wait: Callable[[], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    poll_s: float = 0.5,
) -> Iterator[bool]:
    """Hold the devices `names` while the block runs; yield False if a stop came while waiting.

    Each device has a use lock (`<name>.lock`, shared by every run while it trains) and a
    queue lock (`<name>.queue`, held by the one queued run whose turn is next).
    wait=False: take the use locks shared when free, never wait. wait=True: take the queue
    lock, then wait for the use lock to be free of every run, then hold it shared like any
    run and let the next queued run take the queue. `on_wait` is called at each poll (a
    heartbeat); `should_stop` ends the wait early.
    """
    fds = []
    try:
        for name in names:
            use = _open(_lock_path(name))
            fds.append(use)
            if not wait:
                with contextlib.suppress(BlockingIOError):
                    fcntl.flock(use, fcntl.LOCK_SH | fcntl.LOCK_NB)
                continue
            queue = _open(_lock_path(name).with_suffix(".queue"))
            try:
                if not (
                    _wait_exclusive(queue, on_wait, should_stop, poll_s)
                    and _wait_exclusive(use, on_wait, should_stop, poll_s)
                ):
                    yield False
                    return
                # Only the queue holder asks for the use lock exclusively, so turning it shared
                # (not atomic in flock) cannot let another queued run in.
                fcntl.flock(use, fcntl.LOCK_SH)
            finally:
                os.close(queue)
        yield True
    finally:
        for fd in fds:
            os.close(fd)

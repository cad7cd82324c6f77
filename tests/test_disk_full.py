"""A run that fills its disk: a real full disk (a small tmpfs mounted as the workspace's models
folder), a real training process through the command line, then more space and `--resume`."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from olr.runs.store import RunState
from olr.training.lifecycle import StatusFile
from tests.fixtures.runs import TINY_CLASSIFIER, make_tiny_dataset, train_cli

# One tiny checkpoint is about 380 KB: best.keras and last.keras of epoch 1 fit in 1 MB, the
# temporary best checkpoint of epoch 2 does not.
SMALL_DISK = "1m"
ROOMY_DISK = "16m"
SENTENCE = re.compile(r"The disk is full \(\d+ MB free\); free space and resume the run\.")


def _mount(folder, size: str, remount: bool = False) -> None:
    options = f"remount,size={size}" if remount else f"size={size}"
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"a tmpfs could not be mounted ({proc.stderr.strip()}); run this test as root (as CI does).")


@pytest.fixture
def small_disk_home(tmp_path):
    """A workspace whose models/ folder is a 1 MB tmpfs; unmounted afterwards."""
    make_tiny_dataset(tmp_path / "data" / "tiny")
    models = tmp_path / "models"
    models.mkdir()
    _mount(models, SMALL_DISK)
    yield tmp_path
    subprocess.run(["umount", "-l", str(models)], check=False)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_full_disk_fails_the_run_with_a_sentence_and_resume_continues(small_disk_home):
    run = small_disk_home / "models" / "full"
    proc = train_cli(small_disk_home, *TINY_CLASSIFIER, "--epochs", "3", "--run-id", "full")  # the last --epochs wins
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert SENTENCE.search(proc.stderr) and "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and SENTENCE.fullmatch(status["error"]), status
    assert not list(run.glob("*.tmp.keras")), "a half-written checkpoint was left on the full disk"
    assert json.loads((run / "train_state.json").read_text())["epoch"] == 1  # the last good checkpoint

    _mount(run.parent, ROOMY_DISK, remount=True)  # space freed
    stale, alive = run / f".best.{_dead_pid()}.tmp.keras", run / f".last.{1}.tmp.keras"  # pid 1 never dies
    stale.write_bytes(b"half a checkpoint of a killed run")
    alive.write_bytes(b"being written by a live process")
    resumed = train_cli(small_disk_home, "--resume", "full")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    assert json.loads((run / "train_state.json").read_text())["epoch"] == 3
    assert not stale.exists(), "the temporary checkpoint of a dead process survived the resume"
    assert alive.exists(), "a live process's temporary checkpoint was removed"


def _fill(folder) -> Path:
    """Write a file into `folder` until its disk is full; returns it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    with contextlib.suppress(OSError):
        while os.write(fd, b"\0" * 4096):
            pass
    os.close(fd)
    return filler


def test_final_status_is_retried_until_the_full_disk_has_room(small_disk_home):
    """The final status.json write waits out a disk that is full for a moment (another process freeing space)."""
    run = small_disk_home / "models" / "r"
    run.mkdir()
    status = StatusFile(run, {"state": "running", "pid": os.getpid()})
    status.update()
    filler = _fill(small_disk_home / "models")
    with pytest.raises(OSError):
        status.update(epoch=1)  # the disk is really full
    threading.Timer(0.6, filler.unlink).start()
    status.end(RunState.FAILED, error="The disk is full (0 MB free); free space and resume the run.")
    assert json.loads((run / "status.json").read_text())["state"] == "failed"

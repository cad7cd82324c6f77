"""Concurrency with real processes: one run per device when asked (a queue that survives kill -9),
and two sessions launching the same thing at the same moment start one run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from olr.runs import device_queue, launcher, store
from olr.workspace import REPO_ROOT
from tests.fixtures.runs import TINY_LAUNCH, make_tiny_dataset, wait_for

TINY = {**TINY_LAUNCH, "log_every_steps": 1}


def state_of(run_id: str) -> str:
    return store.load_run(run_id).state


@pytest.fixture
def tiny_home(_isolated_workspace, monkeypatch) -> Path:
    monkeypatch.setenv("OLR_HEARTBEAT_S", "0.5")
    make_tiny_dataset(_isolated_workspace / "data" / "tiny", n_tiles=96)
    return _isolated_workspace


def test_device_names_and_the_lock_of_a_killed_holder_is_released(tiny_home):
    assert device_queue.device_names("") == ["cpu"] and device_queue.device_names(None) == ["cpu"]
    assert device_queue.device_names("1,0") == ["gpu0", "gpu1"]
    with device_queue.hold_devices(["cpu"], wait=False) as turn:
        assert turn and device_queue.busy("cpu")
    assert not device_queue.busy("cpu")
    # a queued holder that is asked to stop while waiting gets no turn
    with (
        device_queue.hold_devices(["cpu"], wait=False),
        device_queue.hold_devices(["cpu"], wait=True, should_stop=lambda: True, poll_s=0.01) as turn,
    ):
        assert turn is False


def test_queued_runs_wait_for_the_device_and_start_one_at_a_time(tiny_home):
    first = launcher.launch_training({**TINY, "epochs": 200, "seed": 1}, "cpu", wait_for_device=True)
    wait_for(
        lambda: state_of(first) == "running" and store.read_metrics(first).shape[0] > 0, 120, "the first run to train"
    )
    second = launcher.launch_training({**TINY, "epochs": 1, "seed": 2}, "cpu", wait_for_device=True)
    third = launcher.launch_training({**TINY, "epochs": 1, "seed": 3}, "cpu", wait_for_device=True)
    # both wait behind the first (their processes are up: heartbeats fresh, not dead)
    wait_for(
        lambda: "queued:" in "\n".join(store.tail_log(second, 5) + store.tail_log(third, 5)),
        90,
        "the queued runs to say they wait",
    )
    time.sleep(2)
    assert state_of(first) == "running"
    assert state_of(second) == "queued" and state_of(third) == "queued"
    assert not (store.load_run(second).path / "metrics.jsonl").stat().st_size
    # a queued run can be stopped while it waits
    assert launcher.stop_run(third, grace_s=30, wait=True)
    wait_for(lambda: state_of(third) == "stopped", 60, "the third run to stop while queued")
    assert "stopped while queued" in "\n".join(store.tail_log(third, 5))
    # the first is killed outright: the kernel frees its lock and the second starts and finishes
    os.killpg(launcher.run_process(first), signal.SIGKILL)
    wait_for(lambda: state_of(second) in ("running", "finished"), 120, "the second run to get the device")
    wait_for(lambda: state_of(second) == "finished", 180, "the second run to finish")
    assert state_of(first) in ("failed", "dead")
    assert store.load_run(second).train_state["epoch"] == 1
    assert not device_queue.busy("cpu")


# Each "session" is a separate Python process (plain subprocesses: AppTest, used elsewhere in the
# test run, replaces __main__, which multiprocessing's spawn would re-run).
_LAUNCH_AT = """
import json, sys, time
from olr.runs import launcher
start_at, key, config = float(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
time.sleep(max(0.0, start_at - time.time()))
print(launcher.launch_training(config, "cpu", key=key))
"""


def test_two_sessions_launching_the_same_run_at_once_start_one(tiny_home):
    config = {**TINY, "epochs": 200}
    start_at = time.time() + 4  # both processes are up by then and launch in the same instant
    env = {**os.environ, "OLR_HOME": str(tiny_home)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _LAUNCH_AT, str(start_at), key, json.dumps(config)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for key in ("sessionA", "sessionB")
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outputs]
    ids = [out.strip().splitlines()[-1] for out, _ in outputs]
    try:
        assert ids[0] == ids[1]
        folders = [p.name for p in (tiny_home / "models").iterdir() if not p.name.startswith(".")]
        assert folders == [ids[0]]
        assert launcher.launched_by(ids[0], "sessionA") != launcher.launched_by(ids[0], "sessionB")
        # each session's key now names that run: its reruns start nothing either
        assert launcher.launched_run("sessionA") == launcher.launched_run("sessionB") == ids[0]
        # a different configuration is a different run, even while the first is live
        other = launcher.launch_training({**config, "seed": 5}, "cpu")
        assert other != ids[0]
    finally:
        for run in store.list_runs():
            launcher.stop_run(run.id, grace_s=5, wait=True)

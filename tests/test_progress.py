"""Progress as people read it (`olr.runs.progress`): time left, throughput, phases, and why a run failed.

Runs are real run folders (status.json, console.log, launch_config.json written to disk) read back
through the store, so the Run's fallbacks are exercised as the pages and `olr runs` meet them.
"""

from __future__ import annotations

import argparse
import json
import time

import pytest

from olr import atomic, workspace
from olr.runs import listing, progress, store
from olr.runs.progress import Phase, Throughput
from olr.runs.store import RunLayout, RunState


def _run(name: str, status: dict, config: dict | None = None, console: str = "", request: dict | None = None):
    """A run folder written as the launcher and the training process write it, read back by the store."""
    folder = workspace.models_dir() / name
    folder.mkdir(parents=True)
    files = RunLayout(folder)
    store.write_status(folder, status)
    if config is not None:
        atomic.write_json(files.config, config)
    if request is not None:
        atomic.write_json(files.launch_config, request)
    if console:
        files.console.write_text(console)
    return store.load_run(name)


def _training(**fields) -> dict:
    """The status of a live run of this process (alive, fresh heartbeat) with `fields` over it."""
    import os

    return {"state": "running", "pid": os.getpid(), "heartbeat": time.time(), "started": time.time() - 60, **fields}


MID_EPOCH = {
    "phase": Phase.TRAINING,
    "epoch": 2,
    "epochs": 4,
    "epoch_step": 30,
    "epoch_steps": 100,
    "step": 130,
    "steps_per_s": 10.0,
    "samples_per_s": 320.0,
    "sample_unit": "tiles",
    "epoch_end_s": 5.0,
}


def test_time_left_counts_the_steps_left_and_one_epoch_end_per_epoch_not_yet_validated():
    steps_left = 70 + 2 * 100  # the rest of epoch 2, then epochs 3 and 4
    validations_left = 3  # the ends of epochs 2, 3 and 4 (validation and checkpoints, 5 s each)
    assert progress.seconds_left(MID_EPOCH, 4) == pytest.approx(steps_left / 10 + validations_left * 5)
    # after epoch 2's validation (saving its checkpoint): epochs 3 and 4 are left
    saved = {**MID_EPOCH, "phase": Phase.SAVING, "epoch_step": 100}
    assert progress.seconds_left(saved, 4) == pytest.approx(200 / 10 + 2 * 5)
    # before any epoch end was timed: the validation samples at a third of the cost of training ones
    first = {**MID_EPOCH, "epoch_end_s": None, "val_samples": 960}
    assert progress.seconds_left(first, 4) == pytest.approx(27 + 3 * 960 / 3 / 320)
    assert progress.seconds_left({**MID_EPOCH, "steps_per_s": None}, 4) is None  # no rate yet: no guess
    assert progress.seconds_left({**MID_EPOCH, "phase": Phase.EVALUATING}, 4) is None  # training is over


def test_the_progress_line_shows_the_step_within_the_epoch_the_throughput_and_the_time_left():
    line = progress.progress_line(MID_EPOCH, 4)
    assert line == "epoch 2/4 · step 30/100 · 10 steps/s (320 tiles/s) · about 0:42 left"
    assert progress.fraction_done(MID_EPOCH, 4) == pytest.approx(130 / 400)
    slow = {**MID_EPOCH, "steps_per_s": 0.0123, "samples_per_s": 0.39, "sample_unit": "pairs"}
    assert "0.012 steps/s (0.39 pairs/s)" in progress.progress_line(slow, 4)
    # from an hour on as h:mm:ss: 270 steps at 0.07 steps/s and three 5 s validations are 3872 s
    assert progress.progress_line({**MID_EPOCH, "steps_per_s": 0.07}, 4).endswith("about 1:04:32 left")


def test_throughput_is_measured_within_an_epoch_over_the_last_steps():
    now = [0.0]
    meter = Throughput(batch_size=32, window=4, clock=lambda: now[0])
    meter.step()
    assert meter.steps_per_s is None  # one step end gives no interval
    for t in (0.5, 1.0, 1.5):
        now[0] = t
        meter.step()
    assert meter.steps_per_s == pytest.approx(2.0) and meter.samples_per_s == pytest.approx(64.0)
    for t in (1.75, 2.0, 2.25, 2.5):  # the window holds the last 4 intervals only: 4 steps/s now
        now[0] = t
        meter.step()
    assert meter.steps_per_s == pytest.approx(4.0)
    meter.restart()  # a new epoch: validation time is no training time; the last rate stays meanwhile
    now[0] = 60.0
    meter.step()
    assert meter.steps_per_s == pytest.approx(4.0)
    now[0] = 61.0
    meter.step()
    assert meter.steps_per_s == pytest.approx(1.0)


def test_a_run_that_has_not_trained_yet_says_what_it_is_doing():
    queued = _run("queued", {**_training(state="queued"), "phase": Phase.WAITING})
    told = progress.describe(queued)
    assert told.doing == progress.PHASE_SENTENCES[Phase.WAITING] and told.text == told.doing
    launched = _run("launched", {**_training(state="queued")})  # the launcher's status; the process not yet
    assert progress.describe(launched).doing == progress.STARTING_SENTENCE
    starting = _run("starting", _training(phase=Phase.STARTING, epoch=0, step=0))
    assert progress.describe(starting).text == progress.PHASE_SENTENCES[Phase.STARTING]  # no "epoch 0, step 0"
    compiling = _run("compiling", _training(phase=Phase.COMPILING, epoch=1, epochs=3, epoch_step=0, epoch_steps=7))
    told = progress.describe(compiling)
    assert told.doing.startswith("compiling the model") and told.doing in told.text
    assert told.fraction == 0.0 and told.seconds_left is None and "step 0/7" in told.text
    training = progress.describe(_run("training", _training(**MID_EPOCH)))
    assert training.text == progress.progress_line(MID_EPOCH, 4) and training.seconds_left == pytest.approx(42)


def test_a_failed_run_gives_the_last_line_of_its_error_else_of_its_console():
    traceback = "Traceback (most recent call last):\n  File 'x.py', line 1\nValueError: the tiles are 0 x 0\n"
    by_error = _run("error", {"state": "failed", "error": traceback}, console="[10:00:01] starting\n")
    assert progress.describe(by_error).failure == "ValueError: the tiles are 0 x 0"
    # the launcher's record of a process that exited before training: the console's last line, prefix dropped
    exited = "The process exited with code 2.\n$ train --config x\nerror: The dataset 'gone' does not exist."
    assert progress.failure_reason(_run("exited", {"state": "failed", "error": exited})) == (
        "The dataset 'gone' does not exist."
    )
    by_console = _run("console", {"state": "failed"}, console="[10:00:01] starting\n[10:00:02] killed by OOM\n\n")
    assert progress.describe(by_console).failure == "[10:00:02] killed by OOM"
    silent = _run("silent", {"state": "running", "pid": 2**22 + 12345, "heartbeat": 0})
    assert silent.state == RunState.DEAD and "stopped reporting" in progress.describe(silent).failure
    assert progress.describe(_run("fine", {"state": "finished", "epoch": 2}, {"kind": "classifier"})).failure is None


def test_a_run_that_failed_before_writing_its_config_is_named_by_the_launchers_request(capsys):
    request = {"kind": "classifier", "dataset": "tiny", "epochs": 3}
    run = _run("early", {"state": "failed", "error": "error: The dataset 'tiny' cannot be read."}, request=request)
    assert not run.config and run.kind == "classifier" and run.dataset == "tiny"
    assert progress.describe(run).text == "never started training"
    listing.runs_command(argparse.Namespace(tail=None, json=False, n=20, search="", tag=[]))
    out = capsys.readouterr().out
    assert "classifier" in out and "tiny" in out and "reason: The dataset 'tiny' cannot be read." in out
    listing.runs_command(argparse.Namespace(tail=None, json=True, n=20, search="", tag=[]))
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["kind"] == "classifier" and line["reason"] == "The dataset 'tiny' cannot be read."


def test_every_phase_has_its_sentence():
    for phase in Phase:
        assert phase in progress.PHASE_SENTENCES

"""Crash safety with real processes: a training run killed with -9 at a random step is shown as
dead by a freshly opened app, resumed from its Resume button and finishes; a preparation killed
at random moments never leaves a half dataset and never loses the previous version."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import pytest
from streamlit.testing.v1 import AppTest

from olr import atomic
from olr.data.dataset import list_datasets, load_dataset
from olr.runs import annotations, launcher, store
from olr.workspace import REPO_ROOT
from tests.fixtures.data import make_scene
from tests.fixtures.pages import open_app
from tests.fixtures.runs import TINY_CLASSIFIER, make_tiny_dataset, olr_env, start_train_cli, wait_for
from tests.test_app_pages import shown

EPOCHS = 30  # about 0.5 s each: long enough to look at the live run before the kill
STEPS_PER_EPOCH = 115 // 16  # make_tiny_dataset: 115 training tiles, batch 16, drop remainder


def logged_steps(run_dir: Path) -> int:
    if not (run_dir / "metrics.jsonl").exists():
        return 0
    df = store.read_metrics(run_dir)
    return int(df["step"].max()) if "step" in df else 0


def open_train_page() -> AppTest:
    return open_app("pages/train.py")


@contextlib.contextmanager
def killable_run(home: Path, run_id: str):
    """A training process of its own, started outside the app (the app learns of it only from
    disk); killed at the end of the block if still alive."""
    proc = start_train_cli(
        home,
        *TINY_CLASSIFIER,
        "--epochs",
        str(EPOCHS),
        "--log-every-steps",
        "1",
        "--early-stopping-patience",
        "0",
        "--run-id",
        run_id,
        OLR_HEARTBEAT_S="0.5",
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def sigkill_at_step(proc: subprocess.Popen, run_dir: Path, step: int, why: str = "") -> None:
    """Wait until the run has logged `step` steps, then kill it with SIGKILL."""
    wait_for(lambda: logged_steps(run_dir) >= step or proc.poll() is not None, 240, f"step {step} {why}", 0.02)
    assert proc.poll() is None, f"the run ended before it could be killed {why}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture
def crash_home(_isolated_workspace, monkeypatch) -> Path:
    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    make_tiny_dataset(_isolated_workspace / "data" / "tiny")
    return _isolated_workspace


def test_run_killed_at_a_random_step_is_found_dead_by_a_fresh_app_and_resumed_to_the_end(crash_home):
    seed = random.randrange(10**6)
    kill_at = random.Random(seed).randrange(STEPS_PER_EPOCH + 1, EPOCHS * STEPS_PER_EPOCH * 2 // 3)
    why = f"(kill at step {kill_at}, seed {seed})"
    run_dir = crash_home / "models" / "crashy"
    with killable_run(crash_home, "crashy") as proc:
        wait_for(lambda: logged_steps(run_dir) >= 1 or proc.poll() is not None, 240, f"the first step {why}", 0.05)
        # A freshly started app (no session state) finds the live run on disk, with a Stop button.
        at = open_train_page()
        assert "crashy" in "\n".join(m.value for m in at.markdown) and at.button(key="stop.crashy"), why
        sigkill_at_step(proc, run_dir, kill_at, why)
    state_before = json.loads((run_dir / "train_state.json").read_text())
    assert 1 <= state_before["epoch"] < EPOCHS, why
    assert store.load_run("crashy").state == "dead", why
    keras.models.load_model(run_dir / "last.keras")  # the last complete checkpoint always loads

    last_status = store.read_json(run_dir / "status.json")  # what the killed process last reported
    at = open_train_page()
    errors = shown("\n".join(e.value for e in at.error))
    title = annotations.run_title(store.load_run("crashy"))
    assert f"{title} stopped reporting" in errors and f"epoch {last_status['epoch']}/{EPOCHS}" in errors, errors
    resume = at.button(key="resume.crashy")
    assert resume.label == f"Resume from epoch {state_before['epoch']}" and not resume.disabled
    resume.click().run()
    assert not at.exception and any("Resuming **crashy**" in s.value for s in at.success), why
    assert store.load_run("crashy").is_live

    wait_for(
        lambda: store.load_run("crashy").state not in ("queued", "running"), 300, f"the resumed run to end {why}", 0.5
    )
    run = store.load_run("crashy")
    assert run.state == "finished", (why, store.tail_log(run, 30))
    state = run.train_state
    assert state["epoch"] == EPOCHS and state["step"] == EPOCHS * STEPS_PER_EPOCH, why
    # One epoch summary per epoch: what the killed process logged past its checkpoint was dropped.
    train_epochs = store.epoch_metrics(run, "train")["epoch"].tolist()
    assert train_epochs == list(range(1, EPOCHS + 1)), (why, train_epochs)
    steps = store.read_metrics(run)["step"].tolist()
    assert steps == sorted(steps) and steps[-1] == EPOCHS * STEPS_PER_EPOCH, why
    assert keras.models.load_model(run_dir / "last.keras").optimizer.iterations.numpy() == state["step"]
    assert (run_dir / "evaluation" / "summary.json").is_file()  # the follow-ups ran after the resumed run
    assert "resuming classifier run crashy" in (run_dir / "console.log").read_text()


def test_a_run_killed_before_its_first_checkpoint_offers_a_new_run_not_a_resume(crash_home):
    run_dir = crash_home / "models" / "early"
    with killable_run(crash_home, "early") as proc:
        sigkill_at_step(proc, run_dir, 1)
    run = store.load_run("early")
    assert run.state == "dead" and not (run_dir / "last.keras").exists()
    assert "before its first checkpoint" in launcher.resumable(run)
    at = open_train_page()
    assert not [b for b in at.button if b.key == "resume.early"]
    assert any("before its first checkpoint" in c.value for c in at.caption)


# --- preparation ------------------------------------------------------------------------------


def prepare_cmd(scene, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "olr",
        "prepare",
        "--image",
        str(scene.image),
        "--labels",
        str(scene.labels),
        "--out",
        "data/ds",
        "--tile",
        "16",
        "--split-block",
        "4",
        *extra,
    ]


def test_preparation_killed_at_random_moments_leaves_no_half_dataset_and_loses_nothing(_isolated_workspace, tmp_path):
    home = _isolated_workspace
    scene = make_scene(tmp_path / "scene", size=2048)  # 16,384 tiles: about 2 s to prepare
    env = olr_env(home)
    started = time.monotonic()
    subprocess.run(prepare_cmd(scene), cwd=REPO_ROOT, env=env, check=True, capture_output=True, timeout=300)
    full_s = time.monotonic() - started
    complete = load_dataset("ds")
    n_tiles, created = complete.n_tiles, complete.meta["created"]
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    outcomes = []
    for attempt in range(6):
        delay = rng.uniform(0.05, full_s)
        proc = subprocess.Popen(
            prepare_cmd(scene, "--overwrite"),
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=60)
        why = f"(attempt {attempt}, killed after {delay:.2f} s of {full_s:.2f}, seed {seed})"
        atomic.finish_interrupted(home / "data")
        # Whatever the moment: the dataset is there, complete (old or new version), and nothing else.
        assert list_datasets() == ["ds"], why
        ds = load_dataset("ds")
        assert ds.n_tiles == n_tiles and ds.images.shape[0] == ds.fractions.shape[0] == n_tiles, why
        assert int(ds.images[-1].sum()) > 0, why  # the last tile was written, not left as zeros
        assert sorted(p.name for p in (home / "data").iterdir()) == ["ds"], why
        outcomes.append("killed" if code == -signal.SIGKILL else "finished")
    assert outcomes.count("killed") >= 3, outcomes  # most attempts really were cut short
    # A new dataset killed mid-way leaves no folder at all, and the next preparation works.
    fresh_cmd = [arg if arg != "data/ds" else "data/fresh" for arg in prepare_cmd(scene)]
    proc = subprocess.Popen(fresh_cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(full_s / 2)
    proc.kill()
    proc.wait(timeout=60)
    assert list_datasets() == ["ds"]
    subprocess.run(
        prepare_cmd(scene, "--overwrite"), cwd=REPO_ROOT, env=env, check=True, capture_output=True, timeout=300
    )
    assert sorted(p.name for p in (home / "data").iterdir()) == ["ds"]
    assert load_dataset("ds").meta["created"] >= created

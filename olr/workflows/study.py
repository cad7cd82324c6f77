"""`python -m olr study`: the whole OLR study on any prepared dataset, into one study folder.

    python -m olr study --dataset my-scene [--quick]
    python -m olr study --from models/<study-id>/report.html     # repeat a study with its settings

Stages: the dataset (the demo dataset is prepared if needed; any other is checked for
training, validation and test tiles), the classifier, the Siamese network against it, the
report. Training runs as `python -m olr train` subprocesses, exactly as the app launches
them, so `<study-id>-classifier` and `<study-id>-siamese` appear on every page as they start;
each evaluates itself (thresholds tuned on validation, intervals) and computes its label
correlations with their references before it says "finished".

The study folder `models/<study-id>/` lives among the runs (`olr.runs.store.RunLayout`):
`config.json` {"kind": "study", "dataset", "quick", "settings"} so the run list shows it;
`status.json` (running -> finished/failed, with a heartbeat while the study waits on its
runs, `error` one sentence on failure); `study.json` the record, rewritten atomically at every
stage change (see `Study.begin` for its keys); `report.html` (`olr.workflows.study_report`).
A folder the launcher made for the study (console.log, launch.json, a queued status) is
adopted. A study that fails or is stopped says "failed" with a sentence in both files; its
status says "finished" only once its report is written (the record, which the report shows,
says so just before, and turns to "failed" if the report cannot be written).

Settings: the full study passes no training option at all (the option schema's defaults are
the tuned recipe, which decides epochs, batch size and pruning per dataset); `--quick` is the
small preset `presets/study.json`. The demo scene's targets (`TARGETS`) apply to the demo
dataset only; on every dataset the study checks the references (`CHECKS`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import olr
from olr import atomic, workspace
from olr.analysis import correlations
from olr.data.dataset import list_datasets, load_dataset
from olr.data.demo_scene import DEMO_DATASET, ensure_demo_dataset
from olr.errors import OLRError
from olr.runs import store
from olr.runs.store import RunLayout, RunState
from olr.training import options
from olr.training.plan import meta_checksum_of
from olr.workflows import presets, study_report

#: The demo scene's targets on its test split (issue "Make OLR work"); other datasets have none.
TARGETS = {
    "micro_f2": 0.85,  # with per-label thresholds tuned on validation
    "macro_ap": 0.70,
    "siamese_spearman": 0.80,  # Siamese self-score correlation vs ground-truth phi
}
#: What every study checks, on any dataset: the references a result must beat.
CHECKS = {
    "accuracy_beats_baseline": "binary accuracy beats predicting every label absent (every threshold mode)",
    "no_starved_label": "no label with enough test positives goes without a true positive",
    "siamese_beats_label_prior": "the Siamese view beats the label prior (the verdict)",
}
#: The stages of a study, in order: name -> title.
STAGES = {
    "dataset": "Dataset: checked for three splits (the demo's prepared if needed)",
    "classifier": "Classifier: train, tune thresholds on validation, evaluate on test",
    "siamese": "Siamese network: train, correlations with references",
    "report": "Report",
}
#: The study's training stages and the run kind each trains.
TRAINED = ("classifier", "siamese")
#: Keys a stage's settings never carry: what the study itself decides (kind, dataset, classifier run).
IDENTITY_KEYS = ("kind", "dataset", "classifier_run")
#: Seconds between heartbeats of a running study (readers call a running study dead after 30 s without one).
HEARTBEAT_S = 5.0
#: Seconds a stopped study waits for its training run to stop.
STOP_GRACE_S = 60.0
#: The software whose versions the record keeps (record key -> distributions to ask, first found wins).
SOFTWARE = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "keras": ("keras",),
    "numpy": ("numpy",),
    "rasterio": ("rasterio",),
    "pandas": ("pandas",),
}


# ------------------------------------------------------------------ settings


def study_settings(quick: bool = False) -> dict[str, dict]:
    """{"classifier": options, "siamese": options} a study passes to training besides kind, dataset
    and classifier run: none for the full study (the schema's defaults are the recipe), the small
    preset `presets/study.json` for `quick`."""
    if not quick:
        return {stage: {} for stage in TRAINED}
    preset = presets.load("study")
    return {stage: _without_identity(preset[f"{stage}_quick"]) for stage in TRAINED}


def _without_identity(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k not in IDENTITY_KEYS}


def check_settings(settings: dict) -> dict[str, dict]:
    """`settings` ({"classifier": {...}, "siamese": {...}}) validated by the option schema; OLRError (one
    sentence) on a bad stage or option."""
    if not isinstance(settings, dict) or set(settings) - set(TRAINED):
        raise OLRError(f"Study settings must be an object with the stages {' and '.join(TRAINED)}; fix them.")
    checked = {}
    for stage in TRAINED:
        stage_settings = _without_identity(settings.get(stage) or {})
        options.check_preset({**stage_settings, "kind": stage}, f"study settings:{stage}")
        checked[stage] = stage_settings
    return checked


def settings_of_run(config: dict) -> dict:
    """The settings that repeat a run: its stored config (read through `options.upgrade`) without the
    derived keys and the study's identity keys.

    The options the training recipe decided for the run's dataset (`config["recipe"]["decided"]`)
    go back to blank where the schema allows blank, so the recipe decides them again: on the same
    dataset to the same values, together with what it decides alongside them that a config does not
    keep as an option (the steps of an epoch)."""
    upgraded = options.upgrade(config)
    settings = {k: v for k, v in upgraded.items() if k not in options.DERIVED_KEYS and k not in IDENTITY_KEYS}
    decided = ((config.get("recipe") or {}).get("decided")) or {}
    for key in decided:
        if key in settings and options.OPTIONS[key].nullable:
            settings[key] = None
    return settings


@dataclass
class Repeat:
    """What `olr study --from SOURCE` repeats: the dataset, the quick flag and the stages' settings."""

    source: str
    dataset: str
    quick: bool
    settings: dict
    recorded_checksum: str | None = None
    warnings: list[str] = field(default_factory=list)


def repeat_of(source: str) -> Repeat:
    """The study behind `source` (a report.html, a study folder or id, or a Siamese run id) as a
    `Repeat` on the same dataset; OLRError (one sentence) when it is none of these or its dataset is
    missing. A dataset changed since (another meta.json checksum) is said in `warnings`."""
    record, configs = _recorded(source)
    classifier = configs.get("classifier") or {}
    dataset = record.get("dataset") or classifier.get("dataset")
    if not dataset:
        raise OLRError(f"{source} does not say which dataset it studied; repeat it with --dataset NAME instead.")
    settings = {
        stage: settings_of_run(configs[stage]) if configs.get(stage) else (record.get("settings") or {}).get(stage, {})
        for stage in TRAINED
    }
    checksum = record.get("dataset_checksum") or classifier.get("dataset_checksum")
    repeat = Repeat(source, dataset, bool(record.get("quick", False)), check_settings(settings), checksum)
    folder = workspace.dataset_path(dataset)
    if not (folder / "meta.json").is_file():
        raise OLRError(
            f"The dataset {dataset} that {source} studied is not in this workspace; prepare or import it again"
            + (f" (its meta.json checksum was {checksum})." if checksum else ".")
        )
    current = meta_checksum_of(folder)
    if checksum and current != checksum:
        repeat.warnings.append(
            f"the dataset {dataset} has changed since the study (meta.json checksum {checksum} then, {current} now); "
            "the repeat trains on it as it is now"
        )
    return repeat


def _recorded(source: str) -> tuple[dict, dict]:
    """(study record or {}, {"classifier": config, "siamese": config}) behind `source`."""
    path = Path(source)
    if path.is_file():
        if path.suffix.lower() not in (".html", ".htm"):
            raise OLRError(f"{source} is not a study report; give a report.html, a study folder or a Siamese run id.")
        embedded = study_report.read_embedded(path)
        configs = embedded.get("configs") or {}
        if not configs.get("classifier"):
            raise OLRError(f"The report {source} holds no classifier config to repeat; give its study folder instead.")
        return embedded.get("study") or {}, configs
    run_dir = path if path.is_dir() else workspace.run_path(workspace.check_name(source, "study or run id"))
    if not run_dir.is_dir():
        raise OLRError(
            f"There is no report, study or run {source!r}; give a report.html, a study folder or id, "
            "or a Siamese run id (python -m olr runs)."
        )
    run = store.load_run(run_dir)
    if run.problem:
        raise OLRError(run.problem)
    if run.kind == store.STUDY_KIND:
        record = store.read_json(RunLayout(run_dir).study)
        runs = record.get("runs") or {}
        return record, {stage: _run_config(run_dir, runs[stage]) for stage in TRAINED if runs.get(stage)}
    if run.kind == "siamese":
        return {}, {"siamese": run.config, "classifier": _run_config(run_dir, run.config.get("classifier_run"))}
    raise OLRError(
        f"The run {run.id} is a {run.kind} run; repeat a study from its report, its study folder or its Siamese run."
    )


def _run_config(beside: Path, run_id: str | None) -> dict:
    """The config of the run `run_id` in the models folder of the run folder `beside`."""
    if not run_id:
        return {}
    run = store.load_run(beside.parent / workspace.check_name(run_id, "run id"))
    if run.problem or not run.config:
        raise OLRError(run.problem or f"The run {run_id} has no config.json to repeat; pick a finished study.")
    return run.config


# ------------------------------------------------------------------ the study folder


def _now() -> float:
    return time.time()


@dataclass
class Study:
    """One study folder and its record (`study.json`); every change is written at once."""

    dir: Path
    record: dict
    progress: Callable[[str], None] = print
    _status_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def files(self) -> RunLayout:
        return RunLayout(self.dir)

    @classmethod
    def begin(cls, study_id: str | None, dataset: str, quick: bool, settings: dict, progress) -> Study:
        """Create (or adopt the launcher's) folder and write its config, a running status and the record:

        {"id", "dataset", "quick", "state": running|finished|failed, "started", "ended", "error": null or a
        sentence, "stages": [{"name", "title", "state": pending|running|done|failed|skipped, "started",
        "ended", "run": run id or null}], "runs": {"classifier", "siamese"}, "settings": {"classifier",
        "siamese"}, "figures" (`collect_figures`), "checks" (name -> bool: `CHECKS`, plus the targets' on the
        demo), "targets" (`TARGETS` on the demo dataset, else null), "versions", "dataset_checksum", "minutes"}.
        """
        folder = store.create_run_folder(study_id, store.STUDY_KIND)
        started = _now()
        record = {
            "id": folder.name,
            "dataset": dataset,
            "quick": quick,
            "state": RunState.RUNNING.value,
            "started": started,
            "ended": None,
            "error": None,
            "stages": [
                {"name": name, "title": title, "state": "pending", "started": None, "ended": None, "run": None}
                for name, title in STAGES.items()
            ],
            "runs": {stage: None for stage in TRAINED},
            "settings": settings,
            "figures": None,
            "checks": None,
            "targets": TARGETS if dataset == DEMO_DATASET else None,
            "versions": software_versions(),
            "dataset_checksum": None,
            "minutes": None,
        }
        study = cls(folder, record, progress)
        config = {"kind": store.STUDY_KIND, "dataset": dataset, "quick": quick, "settings": settings}
        atomic.write_json(study.files.config, config)
        study.set_status(
            state=RunState.RUNNING,
            pid=os.getpid(),
            host=socket.gethostname(),
            started=started,
            heartbeat=started,
            ended=None,
            error=None,
        )
        study.save()
        return study

    def save(self) -> None:
        atomic.write_json(self.files.study, self.record)

    def set_status(self, **fields) -> None:
        # one writer at a time: the heartbeat thread's read-modify-write must not undo a state change
        with self._status_lock:
            store.merge_status(self.dir, fields)

    def stage_entry(self, name: str) -> dict:
        return next(s for s in self.record["stages"] if s["name"] == name)

    @contextlib.contextmanager
    def stage(self, name: str, run: str | None = None):
        """Mark stage `name` running (with its run id, before the run starts), then done or failed."""
        entry = self.stage_entry(name)
        entry.update(state="running", started=_now(), run=run)
        if run:
            self.record["runs"][name] = run
        self.save()
        number = list(STAGES).index(name) + 1
        self.progress(f"stage {number}/{len(STAGES)}: {entry['title']}" + (f" (run {run})" if run else ""))
        try:
            yield entry
        except BaseException:
            entry.update(state="failed", ended=_now())
            self.save()
            raise
        if entry["state"] == "running":  # not already concluded
            entry.update(state="done", ended=_now())
            self.save()

    def conclude(self, last_stage: dict) -> None:
        """The record as it ends: `last_stage` done and the study finished (what its report shows).

        Written before the report; status.json says finished only once the report is there (`finish`),
        and a report that fails turns both to failed."""
        ended = _now()
        last_stage.update(state="done", ended=ended)
        self.record.update(state=RunState.FINISHED.value, ended=ended, minutes=self._minutes(ended))
        self.save()

    def finish(self) -> None:
        self.set_status(state=RunState.FINISHED, ended=self.record["ended"], heartbeat=_now())

    def fail(self, sentence: str, stopped: bool = False) -> None:
        ended = _now()
        for entry in self.record["stages"]:
            if entry["state"] == "running":
                entry.update(state="failed", ended=ended)
            elif entry["state"] == "pending":
                entry["state"] = "skipped"
        self.record.update(state=RunState.FAILED.value, ended=ended, error=sentence, minutes=self._minutes(ended))
        self.save()
        self.set_status(state=RunState.STOPPED if stopped else RunState.FAILED, ended=ended, error=sentence)

    def _minutes(self, ended: float) -> float:
        return round((ended - self.record["started"]) / 60, 1)

    @contextlib.contextmanager
    def heartbeat(self, every_s: float = HEARTBEAT_S):
        """Refresh status.json's heartbeat every `every_s` seconds while the body runs (a daemon thread)."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(every_s):
                with contextlib.suppress(OSError):
                    self.set_status(heartbeat=_now())

        thread = threading.Thread(target=beat, name=f"olr-study-heartbeat-{self.id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


def software_versions() -> dict:
    """The versions a study ran with (read from the installed packages; TensorFlow is not imported)."""
    versions = {"olr": olr.__version__, "python": platform.python_version()}
    for key, distributions in SOFTWARE.items():
        versions[key] = None
        for name in distributions:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                versions[key] = importlib.metadata.version(name)
                break
    return versions


# ------------------------------------------------------------------ the stages


def check_dataset(dataset: str) -> None:
    """OLRError (one sentence) unless `dataset` is a dataset of the workspace with training, validation
    and test tiles (a study tunes thresholds on validation and reports on test)."""
    workspace.check_name(dataset, "dataset name")
    if not (workspace.dataset_path(dataset) / "meta.json").is_file():
        known = list_datasets()
        raise OLRError(
            f"There is no dataset {dataset!r} in this workspace; "
            + (f"pick one of {', '.join(known)}" if known else "prepare or import one first")
            + " (python -m olr datasets)."
        )
    ds = load_dataset(workspace.dataset_path(dataset))
    missing = [split for split in ("train", "val", "test") if len(ds.split_indices(split)) == 0]
    if missing:
        raise OLRError(
            f"The dataset {dataset} has no {' and no '.join(missing)} tiles, and a study needs all three splits; "
            "prepare it again with a split that has some."
        )


def _check_free(study_id: str | None) -> None:
    """OLRError unless the study id and its runs' ids are unused (checked before anything is written)."""
    if not study_id:
        return
    if RunLayout(workspace.run_path(study_id)).config.exists():
        raise OLRError(f"The study or run {study_id} already exists; choose another study id.")
    _check_free_runs(study_id)


def _check_free_runs(study_id: str) -> None:
    for stage in TRAINED:
        run_id = f"{study_id}-{stage}"
        if workspace.run_path(run_id).exists():
            raise OLRError(f"The run {run_id} already exists; choose another study id.")


def _prepare_dataset(dataset: str, progress) -> None:
    """The dataset stage: the demo dataset is prepared if needed; any dataset is then checked."""
    if dataset == DEMO_DATASET:
        last = [-1]

        def preparing(done: int, total: int, message: str = "") -> None:
            pct = int(100 * done / max(total, 1))
            if pct >= last[0] + 10 or done == total:
                last[0] = pct
                progress(f"  preparing: {done}/{total} {message}")

        ensure_demo_dataset(progress=preparing)
    check_dataset(dataset)


def _train(run_id: str, settings: dict) -> Path:
    """Run `python -m olr train` to completion (its output streams through); OLRError when it fails,
    with the training command's own sentence when it refused its input."""
    cmd = [sys.executable, "-m", "olr", "train", "--run-id", run_id]
    for key, value in settings.items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    proc = subprocess.Popen(cmd, cwd=str(workspace.REPO_ROOT), stderr=subprocess.PIPE, text=True, errors="replace")
    sentence = None
    try:
        for line in proc.stderr:  # passed on as it comes; the CLI's "error: <sentence>" kept
            sys.stderr.write(line)
            if line.startswith("error: "):
                sentence = line[len("error: ") :].strip()
        code = proc.wait()
    except BaseException:  # the study was stopped: its run stops too (it saves its state), before the study ends
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=STOP_GRACE_S)
        raise
    if code == 0:
        return workspace.run_path(run_id)
    if sentence:
        raise OLRError(f"The run {run_id} refused to start: {sentence}")
    raise OLRError(
        f"The run {run_id} failed (exit code {code}); its console.log on the Live page or in its folder says why."
    )


class Stopped(Exception):
    """The study's process was asked to stop (SIGTERM from the launcher's Stop)."""


def stop_on_sigterm() -> None:
    """Turn SIGTERM into `Stopped` in the main thread, so a stopped study records why it ended.

    The launcher signals the whole process group: the training run in progress stops on its own."""

    def handler(_signum, _frame):
        raise Stopped

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def run_study(
    dataset: str, quick: bool = False, study_id: str | None = None, settings: dict | None = None, progress=print
) -> dict:
    """Dataset -> classifier -> Siamese -> report in the study folder `models/<study-id>/`; returns the
    record (`study.json`). `settings` default to `study_settings(quick)`.

    Bad input (a dataset that is not there or lacks a split, an id in use) fails with one sentence:
    before anything is written when the study makes its own folder, else in the launcher's folder,
    which then says "failed" with that sentence, as it does when a training run fails."""
    workspace.require_writable("run a study")
    settings = check_settings(study_settings(quick) if settings is None else settings)
    # the launcher makes the study's folder (console.log, launch.json, a queued status) before the study starts
    adopted = bool(study_id) and _launched_folder(workspace.run_path(workspace.check_name(study_id, "study id")))
    if not adopted:  # bad input leaves nothing behind
        _check_free(study_id)
        if dataset != DEMO_DATASET:
            check_dataset(dataset)
    study = Study.begin(study_id, dataset, quick, settings, progress)
    progress(f"study {study.id} on the dataset {dataset}" + (" (quick)" if quick else ""))
    try:
        with study.heartbeat():
            _stages(study, dataset, settings, adopted)
    except OLRError as e:
        study.fail(str(e))
        raise
    except (Stopped, KeyboardInterrupt):
        study.fail("The study was stopped before it finished; run it again to complete it.", stopped=True)
        raise
    except BaseException as e:
        study.fail(f"The study failed unexpectedly ({type(e).__name__}: {e}); its console.log says where.")
        raise
    study.finish()
    return study.record


def _launched_folder(folder: Path) -> bool:
    return folder.is_dir() and not RunLayout(folder).config.exists()


def _stages(study: Study, dataset: str, settings: dict, adopted: bool) -> None:
    with study.stage("dataset"):
        if adopted:
            _check_free_runs(study.id)
        _prepare_dataset(dataset, study.progress)
        study.record["dataset_checksum"] = meta_checksum_of(workspace.dataset_path(dataset))
    classifier_id, siamese_id = (f"{study.id}-{stage}" for stage in TRAINED)
    with study.stage("classifier", run=classifier_id):
        classifier_dir = _train(classifier_id, {"kind": "classifier", "dataset": dataset, **settings["classifier"]})
    with study.stage("siamese", run=siamese_id):
        siamese_dir = _train(siamese_id, {"kind": "siamese", "classifier_run": classifier_id, **settings["siamese"]})
    with study.stage("report") as entry:
        figures = collect_figures(classifier_dir, siamese_dir)
        study.record.update(figures=figures, checks=check(figures, study.record["targets"]))
        study.conclude(entry)
        study_report.write_report(study.dir)


# ------------------------------------------------------------------ figures, checks and the printed report


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        run = path.parent.parent.name
        raise OLRError(
            f"The run {run} has no readable {path.parent.name}/{path.name}; it did not complete its evaluation."
        ) from None


def _figure(mode: dict, key: str, value) -> dict:
    """{"value", "low", "high"} of one headline figure: its estimate and its 95 % block-bootstrap interval."""
    band = mode.get("intervals", {}).get(key, {})
    return {"value": value, "low": band.get("low"), "high": band.get("high")}


def _rho(entry: dict | None) -> dict:
    """{"value", "low", "high", "p"} of one agreement entry of agreement.json (None values when absent)."""
    entry = entry or {}
    band = entry.get("interval") or {}
    return {
        "value": entry.get("spearman"),
        "low": band.get("low"),
        "high": band.get("high"),
        "p": (entry.get("permutation") or {}).get("p"),
    }


def collect_figures(classifier_dir: Path, siamese_dir: Path) -> dict:
    """Headline figures of the test split, with their intervals and references.

    Classifier figures are at per-label thresholds tuned on validation (and accuracy also at
    those thresholds, against the all-absent baseline); the Siamese agreement is read beside
    its three references: the label prior (training-split labels, no image), the classifier's
    own probability view and an untrained network."""
    summary = _read_json(RunLayout(classifier_dir).summary)
    tuned, configured = summary["modes"]["per_label"], summary["modes"]["configured"]
    agreement = _read_json(RunLayout(siamese_dir).agreement_for("test"))
    return {
        "split": "test",
        "threshold_mode": tuned.get("mode", "per-label-tuned"),
        "thresholds_from": tuned.get("thresholds_from", "val"),
        "n_tiles": summary.get("n_tiles"),
        "n_blocks": summary.get("n_blocks"),
        "micro_f2": _figure(tuned, "micro_f2", tuned["micro"]["f2"]),
        "macro_f2": _figure(tuned, "macro_f2", tuned["macro"]["f2"]),
        "samples_f2": _figure(tuned, "samples_f2", (tuned.get("samples") or {}).get("f2")),
        "macro_ap": {
            "value": tuned["macro"]["ap"],
            "low": (summary.get("macro_ap_interval") or {}).get("low"),
            "high": (summary.get("macro_ap_interval") or {}).get("high"),
        },
        "accuracy_tuned": _figure(tuned, "accuracy", tuned["binary_accuracy"]),
        "accuracy_configured": _figure(configured, "accuracy", configured["binary_accuracy"]),
        "all_absent_baseline": summary["baseline_accuracy"],
        "beats_baseline": all(m.get("beats_baseline", True) for m in summary["modes"].values()),
        "labels": len(summary.get("labels", [])) or None,
        "starved_labels": sorted({lab for m in summary["modes"].values() for lab in m.get("starved_labels") or []}),
        "siamese": _rho(agreement.get("siamese_self")),
        "label_prior": _rho(agreement.get("label_prior")),
        "classifier_view": _rho(agreement.get("classifier_prob")),
        "untrained": _rho(agreement.get("untrained", {}).get("siamese_self")),
        "verdict": agreement.get("verdict", {}),
        "warnings": [w for w in summary.get("interval_warnings", []) if w],
    }


def check(figures: dict, targets: dict | None) -> dict:
    """name -> passed: the references (`CHECKS`) on every dataset, and each of `targets` where given."""
    checks = {
        "accuracy_beats_baseline": bool(figures["beats_baseline"]),
        "no_starved_label": not figures["starved_labels"],
        "siamese_beats_label_prior": figures["verdict"].get("outcome") == "beats",
    }
    for name, target in (targets or {}).items():
        value = figures["siamese" if name == "siamese_spearman" else name]["value"]
        checks[name] = value is not None and value >= target
    return checks


def _fmt(figure: dict) -> str:
    """ "0.867 [0.841, 0.890]": a figure with its 95 % interval (or "n/a")."""
    value = figure.get("value")
    if value is None:
        return "n/a"
    if figure.get("low") is None or figure.get("high") is None:
        return f"{value:.3f} (no interval)"
    return f"{value:.3f} [{figure['low']:.3f}, {figure['high']:.3f}]"


def _count(n, noun: str) -> str:
    """ "1 tile", "460 tiles"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def report(record: dict) -> str:
    """A finished study's figures as printed: each with its split, threshold mode, 95 % interval and
    references, and the demo's targets where they apply."""
    f, checks, targets = record["figures"], record["checks"], record.get("targets") or {}
    ok = {True: "ok", False: "BELOW TARGET"}

    def target(name: str) -> str:
        return f"  target >= {targets[name]}  {ok[checks[name]]}" if name in targets else ""

    mode = f"{f['threshold_mode']} thresholds (tuned on {f['thresholds_from']})"
    runs = record["runs"]
    lines = [
        f"OLR study {record['id']} on {record['dataset']} — classifier {runs['classifier']}, "
        f"Siamese {runs['siamese']} ({record['minutes']} min)",
        f"  TEST split, reported once: {_count(f['n_tiles'], 'tile')} in {_count(f['n_blocks'], 'spatial block')}; "
        "[low, high] = 95 % spatial block-bootstrap interval",
        f"  micro F2, {mode}: {_fmt(f['micro_f2'])}{target('micro_f2')}",
        f"  macro F2, {mode}: {_fmt(f['macro_f2'])};  sample-averaged F2: {_fmt(f['samples_f2'])}",
        f"  macro AP (no threshold): {_fmt(f['macro_ap'])}{target('macro_ap')}",
        f"  binary accuracy: {_fmt(f['accuracy_tuned'])} at {f['threshold_mode']} thresholds, "
        f"{_fmt(f['accuracy_configured'])} at the configured threshold; all-absent baseline "
        f"{f['all_absent_baseline']:.3f}  {ok[checks['accuracy_beats_baseline']]}",
        "  labels with enough test positives and no true positive (any threshold mode): "
        + (", ".join(f["starved_labels"]) or "none")
        + f"  {ok[checks['no_starved_label']]}",
        f"  Siamese self-score agreement with ground-truth phi (Spearman ρ): {_fmt(f['siamese'])}"
        f"{target('siamese_spearman')}",
        "  references it must beat:",
        f"    label prior (training-split labels, no image): {_fmt(f['label_prior'])}",
        f"    classifier probability view (its teacher):     {_fmt(f['classifier_view'])}",
        f"    untrained network (chance level):              {_fmt(f['untrained'])}",
    ]
    verdict = f["verdict"]
    if verdict:
        shares = [
            f"above the {name} in {share:.0%} of paired resamples"
            for name, share in (
                ("label prior", verdict.get("share_above_prior")),
                ("classifier view", verdict.get("share_above_classifier")),
            )
            if share is not None
        ]
        shares += [text for text in [correlations.minus_prior_text(verdict)] if text]
        lines.append(
            (
                f"  verdict: the Siamese view {verdict['text']}"
                if verdict.get("outcome") in ("beats", "below", "tie")
                else f"  verdict: {verdict.get('text', 'none')}"
            )
            + (f" ({'; '.join(shares)})" if shares else "")
            + f"  {ok[checks['siamese_beats_label_prior']]}"
        )
    lines += [f"  warning: {w}" for w in f["warnings"]]
    passed = all(checks.values())
    what = "targets and references" if targets else "references"
    lines.append(f"  all {what} met" if passed else f"  some {what} not met (see above)")
    lines.append(f"  report: {RunLayout(workspace.run_path(record['id'])).report}")
    return "\n".join(lines)


# ------------------------------------------------------------------ the command


def say(message: str) -> None:
    print(f"[study {time.strftime('%H:%M:%S')}] {message}", flush=True)


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """--quick and --json, which `olr study` and `olr demo` share."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small models and a small step budget (a few minutes; for tests and first impressions)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the study's record (study.json) to FILE")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--dataset", metavar="NAME", help="the prepared dataset to study (python -m olr datasets)")
    what.add_argument(
        "--from",
        dest="source",
        metavar="REPORT_OR_RUN",
        help="repeat a study with its settings on its dataset: its report.html, folder or id, or its Siamese run id",
    )
    add_run_flags(parser)
    parser.add_argument(
        "--study-id",
        metavar="NAME",
        help="name of the study folder, prefix of its runs (default <UTC time>-study-<random>)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the dataset and the settings the study would use, and stop"
    )


def study_command(args) -> int:
    if args.source:
        if args.quick:
            raise OLRError("--quick does not combine with --from: a repeated study takes the settings it repeats.")
        repeat = repeat_of(args.source)
        for warning in repeat.warnings:
            say(f"warning: {warning}")
        dataset, quick, settings = repeat.dataset, repeat.quick, repeat.settings
    else:
        dataset, quick, settings = args.dataset, args.quick, study_settings(args.quick)
    if args.dry_run:
        print(json.dumps({"dataset": dataset, "quick": quick, "settings": settings}, indent=2), flush=True)
        return 0
    return run_and_report(dataset, quick, args.study_id, settings, args.json)


def run_and_report(dataset: str, quick: bool, study_id: str | None, settings: dict, json_file: str | None) -> int:
    stop_on_sigterm()
    try:
        record = run_study(dataset, quick=quick, study_id=study_id, settings=settings, progress=say)
    except Stopped:
        print("stopped", file=sys.stderr)
        return 143
    print(report(record), flush=True)
    if json_file:
        Path(json_file).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return 0

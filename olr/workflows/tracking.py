"""Runs mirrored to MLflow, the tracker many researchers already use (optional; CLI `python -m olr track`).

When the `mlflow` package is importable and `MLFLOW_TRACKING_URI` is set, a run is copied to an
MLflow run when its training process ends (finished, stopped or failed) and whenever `olr track RUN`
is called (after a later `evaluate` or `correlations`, say). The run folder stays the source of truth:
nothing is read back, and mirroring again replaces the earlier MLflow copy (deleted, so no metric
history is doubled). Without MLflow or a tracking URI nothing happens, and MLflow is not imported.

- experiment: `MLFLOW_EXPERIMENT_NAME` (MLflow's own variable), else "OLR Studio";
- the MLflow run: named by the run's title, tagged `olr.run_id`, `olr.kind`, `olr.dataset`,
  `olr.state` (and `olr.classifier_run` for a Siamese run), ended FINISHED, KILLED (stopped) or FAILED;
- params: the run's config.json, a list or mapping as JSON, cut to MLflow's 6000 characters;
- metrics: each epoch's lines of metrics.jsonl as `<split>_<metric>` at step = epoch, then the figures
  of the Compare table (`olr.analysis.compare.results_table`: test micro/macro F2, macro AP, accuracy,
  ρ, val ρ, duration; `_low`/`_high` for their 95 % intervals; the references beside them), at step 0
  (val loss is in the epochs already);
- artifacts: config.json, status.json, metrics.jsonl and the evaluation/ and correlations*/ folders
  (not the checkpoints, which stay in the run folder).

A tracker that cannot be reached never fails a run: the training process logs one sentence and the
run can be mirrored again with `olr track`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

from olr.analysis import compare
from olr.errors import OLRError
from olr.runs import annotations, store
from olr.runs.store import RunLayout, RunState

DEFAULT_EXPERIMENT = "OLR Studio"
#: MLflow's longest param value, and its most params and metrics in one `log_batch`
MAX_PARAM_CHARS, MAX_BATCH_PARAMS, MAX_BATCH_METRICS = 6000, 100, 1000
#: how a run's state ends its MLflow run
END_STATUS = {RunState.FINISHED: "FINISHED", RunState.STOPPED: "KILLED"}
#: what of the run folder goes along as artifacts (files, then folders by pattern)
ARTIFACT_FILES = (RunLayout.CONFIG, RunLayout.STATUS, RunLayout.METRICS)
ARTIFACT_FOLDERS = (RunLayout.EVALUATION, f"{RunLayout.CORRELATIONS}*")
#: metrics.jsonl columns that say where a line belongs, not what was measured
BOOKKEEPING = {"step", "epoch", "time", "split", "scope"}


def why_not_configured() -> str | None:
    """None when runs are mirrored, else the sentence saying what is missing."""
    if importlib.util.find_spec("mlflow") is None:
        return "MLflow is not installed; install it (pip install mlflow) to mirror runs to a tracker."
    if not os.environ.get("MLFLOW_TRACKING_URI", "").strip():
        return "MLFLOW_TRACKING_URI is not set; set it to your tracking server (e.g. http://localhost:5000)."
    return None


def _params(config: dict) -> dict[str, str]:
    return {
        key: (value if isinstance(value, str) else json.dumps(value, sort_keys=True))[:MAX_PARAM_CHARS]
        for key, value in config.items()
    }


def epoch_metrics(run) -> list[tuple[str, float, int]]:
    """(name, value, epoch) of each epoch-end line of the run's metrics.jsonl: `train_loss`, `val_macro_pr_auc`."""
    df = store.read_metrics(run)
    if df.empty or "scope" not in df:
        return []
    found = []
    for row in df[df["scope"] == "epoch"].to_dict("records"):
        for key, value in row.items():
            if key not in BOOKKEEPING and compare.finite_number(value) is not None:
                found.append((f"{row['split']}_{key}", float(value), int(row["epoch"])))
    return found


def figure_metrics(run) -> dict[str, float]:
    """The run's figures as the Compare table has them, with their interval bounds and references."""
    row = compare.results_table([run]).iloc[0].to_dict()
    keys = [f.key for f in compare.FIGURES] + list(compare.REFERENCES)
    found = {}
    for key in keys:
        for name in (key, f"{key}_low", f"{key}_high"):
            if compare.finite_number(row.get(name)) is not None:
                found[name] = float(row[name])
    return found


def mirror_run(run) -> str:
    """Copy one run to MLflow (see the module docstring); returns the MLflow run id."""
    problem = why_not_configured()
    if problem:
        raise OLRError(problem)
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    run = run if isinstance(run, store.Run) else store.load_run(run)
    client = MlflowClient()
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "").strip() or DEFAULT_EXPERIMENT
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    for earlier in client.search_runs([experiment_id], filter_string=f"tags.`olr.run_id` = '{run.id}'"):
        client.delete_run(earlier.info.run_id)
    tags = {"olr.run_id": run.id, "olr.kind": run.kind, "olr.state": str(run.state)}
    tags["olr.dataset"] = str(run.config["dataset"])
    if run.kind == "siamese":
        tags["olr.classifier_run"] = str(run.config["classifier_run"])
    mirrored = client.create_run(experiment_id, run_name=annotations.run_title(run), tags=tags)
    mlflow_id = mirrored.info.run_id
    now = int(time.time() * 1000)
    params = [Param(k, v) for k, v in _params(run.config).items()]
    metrics = [Metric(key, value, now, epoch) for key, value, epoch in epoch_metrics(run)]
    per_epoch = {m.key for m in metrics}  # "val_loss" is there already, epoch by epoch
    metrics += [Metric(key, value, now, 0) for key, value in figure_metrics(run).items() if key not in per_epoch]
    for start in range(0, len(params), MAX_BATCH_PARAMS):
        client.log_batch(mlflow_id, params=params[start : start + MAX_BATCH_PARAMS])
    for start in range(0, len(metrics), MAX_BATCH_METRICS):
        client.log_batch(mlflow_id, metrics=metrics[start : start + MAX_BATCH_METRICS])
    for file in ARTIFACT_FILES:
        if (run.path / file).is_file():
            client.log_artifact(mlflow_id, str(run.path / file))
    for pattern in ARTIFACT_FOLDERS:
        for folder in sorted(p for p in run.path.glob(pattern) if p.is_dir() and not p.name.startswith(".")):
            client.log_artifacts(mlflow_id, str(folder), artifact_path=folder.name)
    client.set_terminated(mlflow_id, status=END_STATUS.get(run.state, "FAILED"))
    return mlflow_id


def mirror_quietly(run_dir: Path) -> None:
    """At the end of a training process: mirror the run when MLflow is configured; a failure is one
    logged sentence, never the run's."""
    if why_not_configured():
        return
    try:
        mlflow_id = mirror_run(store.load_run(run_dir))
    except Exception as error:  # the tracker is a copy: the run stays as it ended
        print(
            f"The run could not be mirrored to MLflow ({type(error).__name__}: {error}); the run itself is "
            f"unaffected; mirror it again with python -m olr track {Path(run_dir).name}.",
            file=sys.stderr,
            flush=True,
        )
        return
    print(f"Mirrored to MLflow run {mlflow_id}.", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ CLI: python -m olr track


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="*", metavar="RUN", help="run ids (folder names under models/)")
    parser.add_argument("--all", action="store_true", help="every run that is not training now")


def track_command(args) -> int:
    problem = why_not_configured()
    if problem:
        raise OLRError(problem)
    if bool(args.runs) == bool(args.all):
        raise OLRError("Name the runs to mirror (python -m olr track RUN ...) or pass --all, not both.")
    runs = [store.load_run(r) for r in args.runs] if args.runs else [r for r in store.list_runs() if not r.is_live]
    live = [r.id for r in runs if r.is_live]
    if live:
        raise OLRError(f"Run {live[0]} is still training; mirror it when it has ended (its process mirrors it then).")
    for run in runs:
        print(f"{run.id} -> MLflow run {mirror_run(run)}")
    return 0

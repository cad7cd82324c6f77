"""What an analysis needs from a trained run: the run itself, its labels, dataset, targets,
classifier run and predictions, resolved the way training built them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from olr import workspace
from olr.analysis import inference
from olr.data.dataset import load_dataset
from olr.data.label_schemes import Label
from olr.errors import OLRError
from olr.runs import store
from olr.runs.store import RunLayout
from olr.training.plan import label_presence, meta_checksum_of


def as_run(run):
    """A `olr.runs.store.Run` from a Run, a run id or a run folder (OLRError for unknown runs)."""
    if hasattr(run, "config") and hasattr(run, "path"):
        return run
    return store.load_run(run)


def require_finished(run) -> None:
    """OLRError unless the run ended with a usable best checkpoint (finished or stopped)."""
    state = getattr(run, "state", None) or run.status.get("state")
    if state not in store.USABLE_STATES:
        raise OLRError(
            f"The run {run.id} is {state or 'in an unknown state'}, not finished; wait for it to finish "
            "(python -m olr runs) or pick a finished run."
        )
    if not RunLayout(run.path).best.exists():
        raise OLRError(f"The run {run.id} has no best.keras checkpoint; train it again.")


def run_labels(run) -> list[Label]:
    return [Label.from_json(d) for d in run.config["labels"]]


class DatasetChanged(OLRError):
    """The run's dataset was prepared again (other content) after the run was trained on it."""


def _dataset_folder(run) -> Path | str:
    """Where the run's dataset is: `<workspace of the run>/data/<name>` (the run folder is
    `<workspace>/models/<id>`, so a moved workspace keeps working), the recorded `dataset_path`,
    else the name (looked up in the current workspace by `load_dataset`)."""
    cfg = run.config
    name = cfg.get("dataset")
    if not name or not isinstance(name, str):
        raise OLRError(f"The run {run.id} names no dataset in its config.json; train it again.")
    beside = Path(run.path).parent.parent / "data" / name
    recorded = cfg.get("dataset_path")
    for candidate in (beside, Path(recorded) if isinstance(recorded, str) and recorded else None):
        if candidate is not None and (candidate / "meta.json").exists():
            return candidate
    return name


def run_dataset(run):
    """The dataset a run was trained on (see `_dataset_folder`), checked by `check_dataset`."""
    return check_dataset(run, load_dataset(_dataset_folder(run)))


def check_dataset(run, dataset):
    """`dataset`, unless it is not the dataset the run was trained on (`DatasetChanged`).

    Stored predictions and matrices hold rows of the run's dataset, so a dataset prepared again
    under the same name would put other tiles beside them (or rows past its end). Compared by
    the `dataset_checksum` training recorded (`olr.training.plan.meta_checksum`); a run from
    before checksums cannot be checked and is taken as is. Re-evaluating is refused too: the
    model learned the old tiles, so numbers on new ones would be another experiment.
    """
    _compare_checksum(run, dataset.path, dataset.name)
    return dataset


def check_results(run) -> None:
    """`DatasetChanged` if the run's dataset is no longer the one its stored results were computed on.

    Reads only the dataset's meta.json; a dataset that is gone is not a mismatch (the stored
    numbers still stand; what needs its tiles says so when it opens it).
    """
    try:
        folder = _dataset_folder(run)
    except OLRError:
        return
    path = Path(folder) if not isinstance(folder, str) else _workspace_dataset(folder)
    if path is not None and (path / "meta.json").is_file():
        _compare_checksum(run, path, path.name)


def _workspace_dataset(name: str) -> Path | None:
    try:
        return workspace.dataset_path(name)
    except OLRError:  # not a valid name: there is no such dataset to compare with
        return None


def _compare_checksum(run, folder: Path, name: str) -> None:
    recorded = run.config.get("dataset_checksum")
    if recorded and meta_checksum_of(folder) != recorded:
        raise DatasetChanged(
            f"The dataset {name} changed after run {run.id} was trained on it, so the run's results no longer "
            "match its tiles; restore the dataset the run was trained on, or train a new run on this one."
        )


def run_presence(run, dataset, min_fraction: float | None = None) -> np.ndarray:
    """(N, L) uint8 targets of the run's labels on every tile of `dataset`, as training built them.

    `min_fraction`: the run's override (default: its config's; for a Siamese run pass its
    classifier's); None means the dataset's own.
    """
    mf = run.config.get("min_fraction") if min_fraction is None else min_fraction
    return label_presence(dataset, run_labels(run), mf).astype(np.uint8)


def tile_blocks(dataset, rows) -> np.ndarray | None:
    """(n,) spatial block (`tiles.parquet` `block_id`) of the dataset rows `rows`, or None when the
    dataset records no blocks (intervals then cannot be computed)."""
    if "block_id" not in dataset.tiles.columns:
        return None
    return dataset.tiles["block_id"].to_numpy()[np.asarray(rows, dtype=np.int64)]


def classifier_run_of(run):
    """The classifier run a Siamese run was trained against (OLRError if it is gone)."""
    name = run.config.get("classifier_run")
    if not name:
        raise OLRError(f"The Siamese run {run.id} names no classifier_run in its config.json; train it again.")
    beside = Path(run.path).parent / str(name)
    if beside.is_dir() and RunLayout(beside).config.exists():
        return store.load_run(beside)
    if RunLayout(workspace.models_dir() / str(name)).config.exists():
        return store.load_run(name)
    raise OLRError(
        f"The classifier run {name} of Siamese run {run.id} is gone; restore models/{name} or train a new Siamese run."
    )


def best_model(run):
    """The run's best checkpoint as a keras.Model (`run`: a Run, run id or run folder)."""
    from olr.training.models import load_model  # Keras loads here, not when the app lists runs

    return load_model(RunLayout(as_run(run).path).best)


def predict_run(run, dataset, indices, batch_size) -> np.ndarray:
    """(n, L) float32 probabilities of the run's best checkpoint for the tiles `indices`."""
    return np.asarray(
        inference.predict_probabilities(best_model(run), dataset, indices, batch_size=batch_size), dtype=np.float32
    )

"""Planning a training run: the config, dataset, labels and classifier run, validated before
the run folder exists, so bad input (exit 2, one sentence) leaves nothing behind.

`prepare(raw)` plans a new run, `prepare_resume(run_id, overrides)` continues one; both
return a `Plan`. No TensorFlow here.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from olr import __version__, atomic
from olr.data.dataset import Dataset, load_dataset, presence_from_fractions
from olr.data.label_schemes import Label
from olr.errors import OLRError
from olr.runs import store
from olr.runs.store import RunLayout, RunState
from olr.training import backbones, options, recipe

#: options a resumed run may change
RESUMABLE_KEYS = ("epochs", "early_stopping_patience", "log_every_steps")


@dataclass
class Plan:
    """A validated run: resolved config (with derived keys), data, and where it goes."""

    cfg: dict
    dataset: Dataset
    train_idx: np.ndarray
    val_idx: np.ndarray
    y_train: np.ndarray | None = None  # (n_train, L) float32 presence (classifier)
    y_val: np.ndarray | None = None
    classifier_run: store.Run | None = None
    run_dir: Path | None = None
    train_state: dict | None = None  # set when resuming
    notes: list[str] = field(default_factory=list)
    # a follower process of a multi-process run (`olr.training.processes`): the run folder process 0 writes;
    # run_dir is then the follower's scratch copy
    shared_run_dir: Path | None = None

    @property
    def resuming(self) -> bool:
        return self.train_state is not None


def meta_checksum(ds: Dataset) -> str:
    """The `dataset_checksum` a run records: a hash of the dataset's meta.json (which holds its sources' checksums)."""
    return meta_checksum_of(ds.path)


def meta_checksum_of(folder: Path) -> str:
    """`meta_checksum` of the dataset folder `folder`, without opening its arrays."""
    return "sha256:" + hashlib.sha256((Path(folder) / "meta.json").read_bytes()).hexdigest()


def split_indices(ds: Dataset, split: str, cap: int, seed: int) -> np.ndarray:
    """Rows of one split, at most `cap` (a seeded random subset kept in index order)."""
    idx = ds.split_indices(split)
    if cap and len(idx) > cap:
        idx = np.sort(np.random.default_rng(seed).choice(idx, cap, replace=False))
    return idx


def check_finite_pixels(ds: Dataset) -> None:
    """OLRError unless the dataset's pixels are known to be finite, so no NaN or infinity reaches a model.

    Cheap (meta.json and the array header only): every band statistic (mean, std, min, max) must
    be a finite number, and a float dataset must say it was checked (meta["finite"], recorded by
    preparations that make NaN and infinite pixels nodata).
    """
    for i, band in enumerate(ds.meta.get("bands", [])):
        stats = {k: band.get(k) for k in ("mean", "std", "min", "max") if k in band}
        bad = [k for k, v in stats.items() if not _finite_number(v)]
        if bad:
            raise OLRError(
                f"The dataset {ds.name} has a band statistic that is not a finite number ({bad[0]} of band "
                f"{band.get('name') or i + 1} is {stats[bad[0]]}), so its images hold NaN or infinite pixels; "
                "prepare it again, which makes such pixels nodata."
            )
    if np.issubdtype(ds.images.dtype, np.floating) and ds.meta.get("finite") is not True:
        raise OLRError(
            f"The dataset {ds.name} holds {ds.images.dtype} pixels that were never checked for NaN or infinite "
            "values; prepare (or import) it again, which checks them."
        )


def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def label_presence(ds: Dataset, labels: list[Label], min_fraction: float | None) -> np.ndarray:
    """(N, L) bool presence of `labels` from the dataset's area fractions."""
    mf = ds.meta.get("min_fraction", 0.0) if min_fraction is None else min_fraction
    return presence_from_fractions(ds.fractions_for(labels), mf).astype(bool)


def prepare(raw: dict) -> Plan:
    """Plan a new run from raw options (see `olr.training.options`)."""
    cfg = options.resolve(raw)
    return prepare_classifier(cfg) if cfg["kind"] == "classifier" else prepare_siamese(cfg)


def _recipe(ds: Dataset, cfg: dict) -> dict:
    """What `olr.training.recipe` decides for the blank options of `cfg` on `ds`."""
    n_train = len(ds.split_indices("train"))
    if cfg["max_train_tiles"]:
        n_train = min(n_train, cfg["max_train_tiles"])
    return recipe.decide(cfg, n_train=n_train, n_val=len(ds.split_indices("val")), tile_shape=ds.tile_shape)


def _with_recipe(ds: Dataset, cfg: dict, notes: list[str]) -> dict:
    """`cfg` with its blank options decided for `ds` (said in `notes`)."""
    decisions = _recipe(ds, cfg)
    notes.extend(recipe.describe(decisions))
    return recipe.apply(cfg, decisions)


def recipe_preview(raw: dict) -> dict:
    """What the recipe would decide for the options `raw` (a dataset among them) without planning a run:
    the Train page shows it before launching. OLRError when the dataset cannot be opened."""
    cfg = options.resolve(raw, complete=False)
    return _recipe(load_dataset(cfg["dataset"]), cfg)


def _open_splits(ds: Dataset, cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    train_idx = split_indices(ds, "train", cfg["max_train_tiles"], cfg["seed"])
    val_idx = split_indices(ds, "val", cfg["max_val_tiles"], cfg["seed"] + 1)
    for split, idx in (("train", train_idx), ("val", val_idx)):
        if len(idx) == 0:
            raise OLRError(f"The dataset {ds.name} has no {split} tiles; prepare it again with a split that has some.")
    return train_idx, val_idx


def derived_keys(ds: Dataset, train_idx, val_idx) -> dict:
    """The facts about its dataset a new run's config.json records (`options.DERIVED_KEYS`)."""
    return {
        "dataset": ds.name,
        "dataset_path": str(ds.path),
        "dataset_checksum": meta_checksum(ds),
        "tile_shape": list(ds.tile_shape),
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "created": time.time(),
        "olr_version": __version__,
    }


def validation_facts(labels: list[Label], y_val: np.ndarray) -> dict:
    """What a classifier run's checks read of its validation targets `y_val` (n_val, L): the all-absent
    baseline's accuracy and the labels without validation positives (left out of the macro averages)."""
    return {
        "val_all_absent_accuracy": float(1.0 - y_val.mean()),
        "val_labels_without_positives": [lab.name for lab, n in zip(labels, y_val.sum(axis=0), strict=True) if n == 0],
    }


def _labels_to_keep(
    ds: Dataset, labels: list[Label], train_counts: np.ndarray, cfg: dict, notes: list[str]
) -> np.ndarray:
    """(L,) bool: the labels kept after `on_missing_label` and `prune_below`; why others go is added to `notes`."""
    keep = np.ones(len(labels), dtype=bool)
    missing = [lab.name for lab, c in zip(labels, train_counts, strict=True) if c == 0]
    if missing:
        where = f"the training split of dataset {ds.name}"
        if cfg["on_missing_label"] == "error":
            raise OLRError(
                f"The label{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
                f"never occur{'' if len(missing) > 1 else 's'} "
                f"in {where}; set on_missing_label=prune or warn, or choose another scheme."
            )
        if cfg["on_missing_label"] == "prune":
            keep &= train_counts > 0
            notes.append(f"pruned labels absent from {where}: {', '.join(missing)}")
        else:
            notes.append(f"WARNING: labels absent from {where} (kept, they cannot be learned): {', '.join(missing)}")
    if cfg["prune_below"] > 0:
        # labels absent from training are on_missing_label's to keep or drop; pruning takes the rare ones
        rare_mask = keep & (train_counts > 0) & (train_counts < cfg["prune_below"])
        rare = [lab.name for lab, r in zip(labels, rare_mask, strict=True) if r]
        keep &= ~rare_mask
        if rare:
            notes.append(f"pruned labels in fewer than {cfg['prune_below']} training tiles: {', '.join(rare)}")
    if not keep.any():
        raise OLRError(
            f"No label of dataset {ds.name} is left after pruning (prune_below={cfg['prune_below']}); "
            "lower prune_below or choose another scheme."
        )
    return keep


def prepare_classifier(cfg: dict, fixed_labels: list[Label] | None = None) -> Plan:
    """Open the dataset, resolve and prune the labels, build the targets.

    `fixed_labels`: when resuming, exactly the labels the run started with (no pruning).
    """
    ds = load_dataset(cfg["dataset"])
    check_finite_pixels(ds)
    backbones.check_architecture(cfg["model"], ds.tile_shape, cfg["backbone_weights"])
    notes = []
    if fixed_labels is not None:
        labels = fixed_labels
    else:
        labels = list(ds.labels if cfg["scheme"] is None else ds.scheme(cfg["scheme"]).labels)
    presence = label_presence(ds, labels, cfg["min_fraction"])
    cfg = _with_recipe(ds, cfg, notes)
    train_idx, val_idx = _open_splits(ds, cfg)
    pruned = []
    if fixed_labels is None:
        keep = _labels_to_keep(ds, labels, presence[train_idx].sum(axis=0), cfg, notes)
        pruned = [lab.name for lab, k in zip(labels, keep, strict=True) if not k]
        labels = [lab for lab, k in zip(labels, keep, strict=True) if k]
        presence = presence[:, keep]
    y = presence.astype(np.float32)
    cfg = {**cfg, **derived_keys(ds, train_idx, val_idx)}
    cfg["labels"] = [lab.to_json() for lab in labels]
    cfg["pruned_labels"] = pruned
    cfg.update(validation_facts(labels, y[val_idx]))
    if cfg["val_labels_without_positives"]:
        notes.append(
            "validation macro averages leave out the labels without validation positives: "
            + ", ".join(cfg["val_labels_without_positives"])
        )
    if cfg["batch_size"] > len(train_idx):
        notes.append(
            f"batch_size {cfg['batch_size']} is larger than the {len(train_idx)} training tiles; using {len(train_idx)}"
        )
    return Plan(cfg, ds, train_idx, val_idx, y[train_idx], y[val_idx], notes=notes)


def finished_classifier(run_id: str) -> store.Run:
    crun = store.load_run(run_id)
    if crun.kind != "classifier":
        raise OLRError(
            f"The run {crun.id} is a {crun.kind} run, not a classifier run; set classifier_run to a classifier run."
        )
    if crun.state != RunState.FINISHED:
        raise OLRError(
            f"The classifier run {crun.id} is {crun.state}, not finished; "
            "wait for it to finish or pick a finished classifier run."
        )
    if not crun.files.best.is_file() or not crun.config.get("labels") or not crun.config.get("tile_shape"):
        raise OLRError(f"The classifier run {crun.id} has no best.keras or no label list; train the classifier again.")
    return crun


def _check_fits_classifier(ds: Dataset, crun: store.Run, labels: list[Label]) -> None:
    """OLRError unless `ds` has the classifier run's tile shape and can build its labels."""
    ccfg = crun.config
    if tuple(ds.tile_shape) != tuple(ccfg["tile_shape"]):
        raise OLRError(
            f"The dataset {ds.name} has tiles of shape {tuple(ds.tile_shape)} but the classifier run {crun.id} takes "
            f"{tuple(ccfg['tile_shape'])}; use the classifier's dataset or one with the same tile size and bands."
        )
    own = set(ds.label_names)
    # A label of another scheme is regrouped from the per-code fractions; codes the scene lacks
    # just add nothing, so each label needs at least one of its codes in the dataset.
    present = set(ds.codes)
    codes_ok = ds.code_fractions is not None and all(present.intersection(lab.codes) for lab in labels)
    missing = [lab.name for lab in labels if lab.name not in own]
    if missing and not codes_ok:
        raise OLRError(
            f"The dataset {ds.name} does not have the labels {', '.join(map(repr, missing))} "
            f"of the classifier run {crun.id}; "
            "use a dataset prepared with the same labels."
        )


def prepare_siamese(cfg: dict, resuming: bool = False) -> Plan:
    """Check the classifier run and that the dataset fits it (tile shape and labels)."""
    crun = finished_classifier(cfg["classifier_run"])
    ccfg = crun.config
    ds = load_dataset(cfg["dataset"] or ccfg["dataset"])
    check_finite_pixels(ds)
    _check_fits_classifier(ds, crun, [Label.from_json(d) for d in ccfg["labels"]])
    notes = []
    if meta_checksum(ds) != ccfg.get("dataset_checksum") and ds.name == ccfg.get("dataset"):
        notes.append(f"WARNING: dataset {ds.name} changed since classifier run {crun.id} was trained")
    cfg = _with_recipe(ds, cfg, notes)
    train_idx, val_idx = _open_splits(ds, cfg)
    if not resuming:
        cfg = {**cfg, **derived_keys(ds, train_idx, val_idx)}
        cfg["labels"] = ccfg["labels"]
        cfg["classifier_run"] = crun.id
        # A teacher not trained here (a registered model, an ensemble) has no trunk of ours: the default family.
        family = options.upgrade(ccfg)["model"]
        cfg["trunk"] = cfg["trunk"] or (family if family in options.MODELS else options.OPTIONS["model"].default)
        backbones.check_architecture(cfg["trunk"], ds.tile_shape, cfg["backbone_weights"])
    return Plan(cfg, ds, train_idx, val_idx, classifier_run=crun, notes=notes)


def _resumable_run(run_id: str) -> tuple[store.Run, dict]:
    """The run to resume and its train state; OLRError unless it ended and has a last checkpoint."""
    run = store.load_run(run_id)
    # The launcher marks a resumed run "queued" with this process's pid before it starts.
    if run.state in store.LIVE_STATES and run.status.get("pid") != os.getpid():
        raise OLRError(f"The run {run.id} is still {run.state}; stop it first or wait until it ends.")
    if not run.config:
        raise OLRError(f"The run {run.id} has no config.json, so it cannot be resumed; start a new run.")
    state = run.train_state
    if not state or not run.files.last.is_file():
        raise OLRError(
            f"The run {run.id} has no checkpoint yet (last.keras), so it cannot be resumed; start a new run."
        )
    return run, state


def _resumed_config(run: store.Run, state: dict, overrides: dict) -> dict:
    """The run's stored options with `overrides` (only `RESUMABLE_KEYS` may change), resolved."""
    stored = {k: v for k, v in run.config.items() if k not in options.DERIVED_KEYS}
    for key, value in overrides.items():
        if key not in RESUMABLE_KEYS and stored.get(key) != value:
            raise OLRError(
                f"The option {key} cannot change when resuming run {run.id}; "
                f"only {', '.join(RESUMABLE_KEYS)} can (start a new run for other changes)."
            )
    cfg = options.resolve({**options.upgrade(stored), **overrides})
    if state.get("epoch", 0) >= cfg["epochs"]:
        raise OLRError(
            f"The run {run.id} has already trained {state.get('epoch')} of {cfg['epochs']} epochs; "
            f"resume with --set epochs=N (N > {state.get('epoch')})."
        )
    return cfg


def _plan_of_run(run: store.Run, cfg: dict, resuming: bool) -> Plan:
    """The plan of an existing run's resolved options `cfg`: its dataset where the run found it, a classifier
    with exactly the labels it started with (no pruning)."""
    dataset = run.config.get("dataset_path") or cfg["dataset"]
    if cfg["kind"] == "classifier":
        return prepare_classifier(
            {**cfg, "dataset": dataset}, fixed_labels=[Label.from_json(d) for d in run.config["labels"]]
        )
    return prepare_siamese({**cfg, "dataset": dataset}, resuming=resuming)


def prepare_resume(run_id: str, overrides: dict) -> Plan:
    """Plan the continuation of a stopped/failed/dead run in its own folder.

    Rewrites its config.json (with the overrides) and drops metrics lines logged after its
    last checkpoint.
    """
    run, state = _resumable_run(run_id)
    cfg = _resumed_config(run, state, overrides)
    plan = _plan_of_run(run, cfg, resuming=True)
    if meta_checksum(plan.dataset) != run.config.get("dataset_checksum"):
        plan.notes.append(f"WARNING: dataset {plan.dataset.name} changed since this run started")
    plan.cfg = {**run.config, **cfg}
    plan.run_dir = run.path
    plan.train_state = state
    atomic.write_json(RunLayout(run.path).config, plan.cfg)
    store.trim_metrics(run.path, state.get("epoch", 0), state.get("step", 0))
    return plan


def follow(run_id: str) -> Plan:
    """A follower process's plan (`olr.training.processes`): the run process 0 planned, read from its folder
    (config.json, and train_state.json when process 0 resumes it); writes nothing."""
    run = store.load_run(run_id)
    if not run.config:
        raise OLRError(
            f"The run {run.id} has no config.json: process 0 of the run did not plan it; "
            "start every process with the same --run-id."
        )
    stored = options.resolve(options.upgrade({k: v for k, v in run.config.items() if k not in options.DERIVED_KEYS}))
    state = run.train_state or None
    plan = _plan_of_run(run, stored, resuming=state is not None)
    plan.cfg = dict(run.config)
    plan.run_dir = run.path
    plan.train_state = state
    return plan


def create_run(plan: Plan, run_id: str | None) -> Plan:
    """Make the run folder of a new plan (`run_id` or a fresh id) and write its config.json."""
    plan.run_dir = store.create_run_folder(run_id, plan.cfg["kind"])
    plan.cfg["run_id"] = plan.run_dir.name
    atomic.write_json(RunLayout(plan.run_dir).config, plan.cfg)
    return plan

"""Side-by-side comparison of runs: one table row per run, and the config keys that differ.

Runs are compared on validation: a run's agreement figures come from its validation correlations
when they exist (`python -m olr correlations RUN --split val`), else from its test record, and the
"agreement split" column says which."""

from __future__ import annotations

import json

import pandas as pd

from olr.analysis import correlations
from olr.runs import store
from olr.runs.store import Run, RunLayout
from olr.training.options import DERIVED_KEYS, OPTIONS

#: config keys shown by `compare_runs` (when present in a run's config), in the schema's order;
#: kind and dataset have their own columns
KEY_CONFIG = tuple(key for key in OPTIONS if key not in ("kind", "dataset"))


def _last_values(df: pd.DataFrame, split: str) -> dict:
    if df.empty or "split" not in df:
        return {}
    rows = df[df["split"] == split]
    if "scope" in rows:
        rows = rows[rows["scope"] == "epoch"]
    if rows.empty:
        return {}
    last = rows.iloc[-1]
    skip = {"step", "epoch", "split", "time", "scope"}
    return {f"{split}_{k}": last[k] for k in rows.columns if k not in skip and pd.notna(last[k])}


#: the agreement figures `compare_runs` puts first (after the run's identity), from agreement.json
RESULT_COLUMNS = (
    "agreement split",
    "learned ρ",
    "learned ρ 95% low",
    "learned ρ 95% high",
    "label prior ρ",
    "classifier ρ",
    "untrained ρ",
    "verdict",
    "share > prior",
    "share > classifier",
)


#: the splits whose agreement a row shows, the first one computed wins: settings are compared on validation
AGREEMENT_SPLITS = ("val", "test")


def _results(data: dict, split: str) -> dict:
    """The `RESULT_COLUMNS` of one agreement.json: the learned view of the verdict (the Siamese
    self-score, or a classifier run's probability view) with its interval, the references and the
    verdict (`olr.analysis.correlations.VERDICT_RULE`), labelled with the `split` they were computed
    on. A file from before references and intervals gives what it has (its ρ), never a guess."""
    verdict = _dict(data.get("verdict"))
    view = verdict.get("view") or ("siamese_self" if "siamese_self" in data else "classifier_prob")
    learned = _dict(data.get(view))
    interval = _dict(learned.get("interval"))
    values = {
        "agreement split": split,
        "learned ρ": learned.get("spearman"),
        "learned ρ 95% low": interval.get("low"),
        "learned ρ 95% high": interval.get("high"),
        "label prior ρ": _dict(data.get("label_prior")).get("spearman"),
        "classifier ρ": _dict(data.get("classifier_prob")).get("spearman") if view != "classifier_prob" else None,
        "untrained ρ": _dict(_dict(data.get("untrained")).get(view)).get("spearman"),
        "verdict": verdict.get("text"),
        "share > prior": verdict.get("share_above_prior"),
        "share > classifier": verdict.get("share_above_classifier"),
    }
    return {k: v for k, v in values.items() if v is not None}


def _dict(x) -> dict:
    return x if isinstance(x, dict) else {}


def _agreement(run: Run) -> dict:
    """The result columns and every number of the run's agreement.json on the first split of
    `AGREEMENT_SPLITS` it has (a damaged file reads as none: the pages name it)."""
    data, split = {}, None
    for split in AGREEMENT_SPLITS:
        folder = correlations.figures_folder(run.path, split)
        data = store.read_json(folder / RunLayout.AGREEMENT) if folder is not None else {}
        if data:
            break
    out = _results(data, split) if data else {}
    for key, value in data.items():
        if key == "verdict":  # in the result columns already
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"agreement_{key}"] = value
        elif isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[f"agreement_{key}_{sub}"] = v
    return out


def _row(run: Run) -> dict:
    cfg = run.config
    ts = run.train_state
    row = {
        "id": run.id,
        "kind": run.kind,
        "state": run.state,
        "dataset": run.dataset,
        "labels": len(cfg.get("labels", [])) or None,
    }
    agreement = _agreement(run)
    row.update({k: agreement.pop(k) for k in RESULT_COLUMNS if k in agreement})  # results before the config
    for key in KEY_CONFIG:
        if key in cfg:
            value = cfg[key]
            row[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
    row["epochs_done"] = ts.get("epoch")
    row["best_metric"] = ts.get("monitor")
    row["best_score"] = ts.get("best")
    metrics = store.read_metrics(run)
    row.update(_last_values(metrics, "train"))
    row.update(_last_values(metrics, "val"))
    row.update(agreement)
    return row


def compare_runs(runs: list[Run | str]) -> pd.DataFrame:
    """One row per run: id, kind, state, dataset, labels, the agreement results (`RESULT_COLUMNS`, on
    validation when computed there, else on test; "agreement split" says which), key config values,
    epochs done, best checkpoint score, the last epoch's train/val metrics, and every agreement number
    (`agreement_<view>_<key>`)."""
    return pd.DataFrame([_row(r if isinstance(r, Run) else store.load_run(r)) for r in runs])


def config_differences(runs: list[Run | str]) -> list[str]:
    """Config keys whose values differ between the given runs (a missing key counts as a value)."""
    configs = [(r if isinstance(r, Run) else store.load_run(r)).config for r in runs]
    keys = sorted({k for c in configs for k in c} - set(DERIVED_KEYS))
    missing = object()
    return [k for k in keys if len({json.dumps(c.get(k, missing), sort_keys=True, default=str) for c in configs}) > 1]

"""Side-by-side comparison of runs: one table row per run, and the config keys that differ."""

from __future__ import annotations

import json

import pandas as pd

from olr.runs import store
from olr.runs.store import Run
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


def _agreement(run: Run) -> dict:
    data = store.read_json(run.files.agreement)
    out = {}
    for key, value in data.items():
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
    row.update(_agreement(run))
    return row


def compare_runs(runs: list[Run | str]) -> pd.DataFrame:
    """One row per run: id, kind, state, dataset, labels, key config values, epochs done,
    best checkpoint score, the last epoch's train/val metrics, and agreement numbers when
    `correlations/agreement.json` exists."""
    return pd.DataFrame([_row(r if isinstance(r, Run) else store.load_run(r)) for r in runs])


def config_differences(runs: list[Run | str]) -> list[str]:
    """Config keys whose values differ between the given runs (a missing key counts as a value)."""
    configs = [(r if isinstance(r, Run) else store.load_run(r)).config for r in runs]
    keys = sorted({k for c in configs for k in c} - set(DERIVED_KEYS))
    missing = object()
    return [k for k in keys if len({json.dumps(c.get(k, missing), sort_keys=True, default=str) for c in configs}) > 1]

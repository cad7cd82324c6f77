"""Cached readers of workspace contents, keyed by path and modification time.

A dataset or run that changes on disk (prepared again, a run still writing) gets a new
key, so a cached copy is never stale; unchanged ones are opened once per server.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import streamlit as st

from olr import workspace
from olr.analysis import correlations, embedding_map, evaluation, predict, run_data
from olr.data import composites, label_stats
from olr.data.dataset import SPLITS, Dataset, list_datasets, load_dataset
from olr.data.label_schemes import Label
from olr.errors import OLRError
from olr.runs import store
from olr.runs.store import RunLayout


def stamp(path: Path) -> float:
    """A file's modification time (0 when it is missing): the version a cache entry is keyed on."""
    try:
        return path.stat().st_mtime_ns / 1e9
    except OSError:
        return 0.0


@st.cache_resource(max_entries=16, show_spinner=False)
def _open_dataset(path: str, stamp: float) -> Dataset:
    return load_dataset(path)


def dataset(name: str) -> Dataset:
    """The opened dataset `name` of the current workspace (memory-mapped, cached)."""
    path = workspace.dataset_path(name)
    return _open_dataset(str(path), stamp(path / "meta.json"))


@st.cache_resource(max_entries=32, show_spinner=False)
def _dataset_stats(path: str, stamp: float, split: str | None, labels_json: str | None):
    ds = _open_dataset(path, stamp)
    if labels_json is None:
        return label_stats.dataset_stats(ds, split=split)
    # Another scheme: regroup the per-code fractions (no re-preparation), then the same statistics.
    labels = [Label.from_json(d) for d in json.loads(labels_json)]
    rows = ds.split_indices(split) if split else slice(None)
    return label_stats.label_stats(
        ds.presence_for(labels)[rows],
        ds.fractions_for(labels)[rows],
        [lab.name for lab in labels],
        [lab.color for lab in labels],
    )


def dataset_stats(name: str, split: str | None = None, labels: list | None = None):
    """`olr.data.label_stats.LabelStats` of dataset `name` (optionally for another label set `labels`), cached."""
    path = workspace.dataset_path(name)
    labels_json = None if labels is None else json.dumps([lab.to_json() for lab in labels])
    return _dataset_stats(str(path), stamp(path / "meta.json"), split, labels_json)


@st.cache_data(max_entries=32, show_spinner=False)
def _stretch_limits(path: str, stamp: float, bands: tuple[int, ...]) -> np.ndarray:
    return composites.dataset_stretch_limits(load_dataset(path), list(bands))


def stretch_limits(ds: Dataset, bands: list[int]) -> np.ndarray:
    """`olr.data.composites.dataset_stretch_limits` of an opened dataset and bands, cached until it changes."""
    return _stretch_limits(str(ds.path), stamp(ds.path / "meta.json"), tuple(int(b) for b in bands))


def dataset_summaries() -> list[dict]:
    """One row per dataset of the workspace, read from meta.json (no tile data is opened)."""
    rows = []
    for name in list_datasets():
        path = workspace.dataset_path(name)
        try:
            meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            rows.append({"name": name, "problem": "meta.json unreadable"})
            continue
        tile = meta.get("tile") or meta.get("tile_size") or (meta.get("parameters") or {}).get("tile")
        splits = meta.get("split_counts") or {}
        scheme = meta.get("scheme") or meta.get("label_scheme")
        rows.append(
            {
                "name": name,
                "tiles": meta.get("n_tiles"),
                "labels": len(meta.get("labels", [])),
                "scheme": scheme.get("name") if isinstance(scheme, dict) else scheme,
                "tile size": f"{tile}×{tile}" if tile else None,
                "bands": len(meta.get("bands", [])),
                "splits": " / ".join(f"{splits.get(s, 0)}" for s in SPLITS) if splits else None,
                "created": meta.get("created"),
                "problem": None,
            }
        )
    return rows


def require_dataset(name: str | None) -> Dataset:
    if not name:
        raise OLRError(
            "No dataset is selected; prepare or import one on the Datasets page, then pick it in the sidebar."
        )
    return dataset(name)


@st.cache_data(max_entries=64, show_spinner=False)
def _metrics(path: str, mtime: float, size: int):
    df = store.read_metrics(store.load_run(path))
    return df, int(df.attrs.get("skipped_lines", 0))


def run_metrics(run):
    """(metrics DataFrame, number of corrupt lines skipped) of a run; re-read only when the file grows."""
    p = RunLayout(run.path).metrics
    try:
        st_ = p.stat()
        key = (st_.st_mtime_ns / 1e9, st_.st_size)
    except OSError:
        key = (0.0, 0)
    return _metrics(str(run.path), *key)


@st.cache_data(max_entries=64, show_spinner=False)
def _metrics_at(run_path: str, stamp: float, thresholds: tuple[float, ...] | float, beta: float):
    return evaluation.metrics_at(
        run_path, np.asarray(thresholds) if isinstance(thresholds, tuple) else thresholds, beta
    )


def metrics_at(run, thresholds, beta: float):
    """`olr.analysis.evaluation.metrics_at` on the run's stored test predictions, cached per threshold."""
    key = tuple(float(t) for t in thresholds) if np.ndim(thresholds) else float(thresholds)
    return _metrics_at(str(run.path), stamp(RunLayout(run.path).test_predictions), key, float(beta))


@st.cache_data(max_entries=16, show_spinner=False)
def _predictions(run_path: str, stamp: float) -> dict:
    return evaluation.load_predictions(run_path)


def predictions(run) -> dict:
    return _predictions(str(run.path), stamp(RunLayout(run.path).test_predictions))


@st.cache_data(max_entries=16, show_spinner=False)
def _matrices(run_path: str, split: str, stamp: float) -> dict:
    return correlations.load_matrices(run_path, split)


def matrices(run, split: str = "test") -> dict:
    """`olr.analysis.correlations.load_matrices` of a run on `split`, cached until the file changes."""
    folder = correlations.figures_folder(run.path, split)
    version = stamp(folder / RunLayout.MATRICES) if folder is not None else 0.0
    return _matrices(str(run.path), split, version)


def run_dataset(run) -> Dataset:
    """The dataset a run was trained on (cached when it is in the workspace)."""
    name = run.config.get("dataset")
    if isinstance(name, str) and name in list_datasets():
        return run_data.check_dataset(run, dataset(name))
    return run_data.run_dataset(run)


def _embeddings_stamp(run) -> tuple[float, float]:
    """Changes when the run's best checkpoint or its embeddings folder (an export added or replaced) does."""
    layout = RunLayout(run.path)
    return stamp(layout.best), stamp(layout.embeddings)


@st.cache_resource(max_entries=4, show_spinner=False)
def _split_embeddings(run_path: str, split: str, stamp: tuple) -> embedding_map.SplitEmbeddings:
    run = store.load_run(run_path)
    return embedding_map.split_embeddings(run, split, dataset=run_dataset(run))


def split_embeddings(run, split: str) -> embedding_map.SplitEmbeddings:
    """`olr.analysis.embedding_map.split_embeddings` of a Siamese run (export or computed), held once per server."""
    return _split_embeddings(str(run.path), split, _embeddings_stamp(run))


@st.cache_data(max_entries=32, show_spinner=False)
def _embedding_map(run_path: str, split: str, stamp: tuple, label: int | None, colour: int | None):
    run = store.load_run(run_path)
    data = _split_embeddings(run_path, split, stamp)
    return embedding_map.embedding_map(data, run_dataset(run), label, colour)


def embedding_map_frame(run, split: str, label: int | None, colour: int | None):
    """`olr.analysis.embedding_map.embedding_map` of the run's `split` tiles, cached until its embeddings change."""
    return _embedding_map(str(run.path), split, _embeddings_stamp(run), label, colour)


@st.cache_data(max_entries=64, show_spinner=False)
def _nearest(run_path: str, split: str, stamp: tuple, position: int, label: int | None, k: int):
    run = store.load_run(run_path)
    data = _split_embeddings(run_path, split, stamp)
    return embedding_map.nearest(data, run_dataset(run), position, label, k)


def nearest_tiles(run, split: str, position: int, label: int | None, k: int = embedding_map.NEIGHBOURS):
    """`olr.analysis.embedding_map.nearest` of one tile of the run's `split` tiles, cached."""
    return _nearest(str(run.path), split, _embeddings_stamp(run), int(position), label, int(k))


@st.cache_data(max_entries=8, show_spinner=False)
def _prediction(run_path: str, name: str, stamp: float):
    return predict.read_prediction(run_path, name)


def prediction(run, name: str):
    """`olr.analysis.predict.read_prediction` of one of a run's predictions, cached until it is replaced."""
    return _prediction(str(run.path), name, stamp(RunLayout(run.path).prediction_for(name) / predict.RECORD))

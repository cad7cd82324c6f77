"""Predicting a new scene from a result page: an image of the workspace's data folder goes through
`python -m olr predict` in a child process (as the Evaluate page evaluates), and a stored prediction is
drawn on the map: each tile in the colour of its most probable label predicted present, or by one
label's probability. The library reads the prediction back (`olr.analysis.predict.read_prediction`);
this module only draws it."""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import streamlit as st

from olr import workspace
from olr.analysis import predict
from olr.data import uploads
from olr.errors import OLRError
from olr.runs import annotations
from ui import downloads, loaders, maps, results, state
from ui.guard import guarded

#: the map's first choice: each tile in the colour of its most probable label predicted present
TOP_LABEL = "Predicted label (most probable present)"
#: colour of a tile with no label predicted present (drawn as an outline only)
NONE_COLOUR = "#ffffff"


def section(run) -> None:
    """The form that predicts an image with `run`, then the run's stored predictions on the map."""
    st.subheader("Predict a new scene")
    st.caption(
        "Apply this run to an image without labels: any CRS, tiled as the run's dataset was, read window by "
        "window. Its bands, data type and scaling must be those the run was trained on (a mismatch is refused "
        "with one sentence). Each prediction is kept in the run folder as per-label probability GeoTIFFs and a "
        f"GeoPackage of tiles (the same as `python -m olr predict {run.id} --image IMG`)."
    )
    if workspace.is_readonly():
        st.caption("This is a read-only demo: new predictions cannot be made here; stored ones are shown below.")
    else:
        _form(run)
    names = predict.list_predictions(run)
    if not names:
        st.caption("This run has no predictions yet.")
        return
    key = f"predict.shown.{run.id}"
    if st.session_state.get(key) not in names:
        st.session_state.pop(key, None)
    name = st.selectbox("Prediction", names, key=key, help="Stored predictions of this run, newest first.")
    scene_map(run, name)


def _form(run) -> None:
    found = uploads.candidate_files(tuple(f".{t}" for t in uploads.RASTER_TYPES))
    with st.form(f"predict.form.{run.id}", border=True):
        c1, c2 = st.columns([3, 2])
        image = c1.selectbox(
            "Image raster",
            found,
            index=None,
            accept_new_options=True,
            placeholder="Pick or type a GeoTIFF",
            key="predict.image",
            help="A GeoTIFF in the workspace data folder (pick one found there, or type its path relative to that "
            "folder). Upload one on the Datasets page.",
        )
        name = c2.text_input(
            "Prediction name",
            key="predict.name",
            placeholder="the image's file name",
            help="The folder under the run's predictions/ (letters, digits, . _ -).",
        )
        overwrite = st.checkbox(
            "Replace a prediction of the same name", key="predict.overwrite", help="Never replaced without this."
        )
        submitted = st.form_submit_button(
            "Predict", type="primary", icon=":material/travel_explore:", key="predict.submit"
        )
    if submitted:
        _predict(run, image, name, overwrite)


@guarded("Predicting the image")
def _predict(run, image: str | None, name: str, overwrite: bool) -> None:
    workspace.require_writable(predict.ACTION)
    path = uploads.server_path(image or "", "image raster")
    name = (name or "").strip() or predict.default_name(path)
    if name in predict.list_predictions(run) and not overwrite:
        raise OLRError(
            f"Run {run.id} already has a prediction named {name!r}; choose another name, or tick "
            "“Replace a prediction of the same name”."
        )
    title = annotations.run_title(run)
    results.run_command(
        ["predict", run.id, "--image", str(path), "--out", name, *(["--overwrite"] if overwrite else [])],
        running=f"Predicting {path.name} with {title}…",
        done=f"Predicted {path.name}",
        failed=f"The prediction of {path.name} with run {run.id} failed",
    )
    st.session_state[f"predict.shown.{run.id}"] = name
    state.flash("success", f"Predicted **{path.name}** with {title} as **{name}**: it is on the map below.")
    st.rerun()


def _drawn(scene: predict.PredictedScene) -> np.ndarray:
    """Rows of the scene's tiles to draw: all, or every k-th tile row and column beyond what a browser draws."""
    n = len(scene.tiles)
    if n <= maps.MAX_TILES_DRAWN:
        return np.arange(n)
    k = math.ceil(math.sqrt(n / maps.MAX_TILES_DRAWN))
    keep = (scene.tiles["tile_row"].to_numpy() % k == 0) & (scene.tiles["tile_col"].to_numpy() % k == 0)
    return np.flatnonzero(keep)


def _shown_path(path: str) -> str:
    """An image path as the form takes it (relative to the data folder) when it lies there; in a read-only
    demo never the server's own path."""
    try:
        return str(Path(path).relative_to(workspace.data_dir()))
    except ValueError:
        return Path(path).name if workspace.is_readonly() else path


def scene_map(run, name: str) -> None:
    scene = loaders.prediction(run, name)
    record = scene.record
    image = _shown_path(record["image"]) if isinstance(record["image"], str) else f"{len(record['image'])} band files"
    thresholds = (
        f"labels predicted present at the {record['threshold_mode'].replace('_', '-')} thresholds of run "
        f"{record['classifier_run']}"
        if scene.predicted is not None
        else "no thresholds (the classifier run has no evaluation): the most probable label is shown"
    )
    left = f", {record['tiles_nodata']:,} left out (too much nodata)" if record.get("tiles_nodata") else ""
    st.caption(f"{len(scene.tiles):,} tiles of `{image}`{left}; {thresholds}.")
    choices = [TOP_LABEL, *scene.label_names]
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    view = c1.selectbox("Colour tiles by", choices, key=f"predict.view.{run.id}.{name}")
    with c2:
        downloads.prediction_button(run, name)
    rows = _drawn(scene)
    if len(rows) < len(scene.tiles):
        st.caption(
            f"The map draws {len(rows):,} of the {len(scene.tiles):,} tiles (a regular subset); the GeoPackage "
            "holds them all."
        )
    tiles = scene.tiles.iloc[rows].reset_index(drop=True)
    properties = {
        "tile": [f"row {r}, column {c}" for r, c in zip(tiles["tile_row"], tiles["tile_col"], strict=True)],
        "labels": [html.escape(text) for text in scene.label_text(rows)],  # the drawn tiles only
    }
    if view == TOP_LABEL:
        top = scene.top_labels()[rows]
        colours = [scene.label_colours[t] if t >= 0 else NONE_COLOUR for t in top]
        opacities = [0.75 if t >= 0 else 0.0 for t in top]
        shown, counts = np.unique(top[top >= 0], return_counts=True)
        items = [(scene.label_names[j], scene.label_colours[j]) for j in shown[np.argsort(-counts, kind="stable")]]
        legend = maps.SwatchLegend("Predicted label", items[:12], note="outline only = no label present")
        properties["value"] = [html.escape(scene.label_names[t]) if t >= 0 else "none" for t in top]
    else:
        j = scene.label_names.index(view)
        values = scene.probabilities[rows, j]
        colours = maps.ramp(values, maps.VIRIDIS, 0.0, 1.0)
        opacities = [0.75] * len(values)
        legend = maps.Legend(f"P({view})", maps.VIRIDIS, 0.0, 1.0)
        properties["value"] = [f"{v:.3f}" for v in values]
    m = maps.tile_map(
        tiles,
        colours,
        opacities,
        properties,
        tooltip_fields=[("tile", ""), ("value", "Predicted label" if view == TOP_LABEL else f"P({view})")],
        popup_fields=[("tile", ""), ("labels", "Predicted")],
        legend=legend,
    )
    maps.show(m, key=f"predict.map.{run.id}.{name}")

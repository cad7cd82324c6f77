"""Predicting a new scene from a result page: an image of the workspace's data folder goes through
`python -m olr predict` in a child process (as the Evaluate page evaluates), and a stored prediction is
drawn on the map: each tile in the colour of its most probable label predicted present, or by one
label's probability. The library reads the prediction back (`olr.analysis.predict.read_prediction`);
this module only draws it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from olr import workspace
from olr.analysis import predict, tile_images
from olr.data import label_schemes, uploads
from olr.errors import OLRError
from olr.runs import annotations
from ui import downloads, loaders, maps, results, state
from ui.guard import guarded
from ui.text import plain

#: the map's first choice: each tile in the colour of its most probable label predicted present
TOP_LABEL = "Predicted label (most probable present)"


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


def _shown_path(path: str) -> str:
    """An image path as the form takes it (relative to the data folder) when it lies there; in a read-only
    demo never the server's own path."""
    try:
        return str(Path(path).relative_to(workspace.data_dir()))
    except ValueError:
        return Path(path).name if workspace.is_readonly() else path


@st.fragment
def scene_map(run, name: str) -> None:
    """A stored prediction on the map and the tile last clicked on it: a fragment, so a click reruns only this part."""
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
    where = maps.prediction_tiles(run, name, scene)
    rows = np.arange(len(scene.tiles))
    if view == TOP_LABEL:
        top = scene.top_labels()
        rgba = label_schemes.hex_rgba(scene.label_colours, tile_images.TILE_ALPHA)[top]
        rgba[top < 0, 3] = 0
        shown, counts = np.unique(top[top >= 0], return_counts=True)
        items = [(scene.label_names[j], scene.label_colours[j]) for j in shown[np.argsort(-counts, kind="stable")]]
        legend = maps.SwatchLegend("Predicted label", items[:12], note="transparent = no label present")
    else:
        j = scene.label_names.index(view)
        rgba = maps.value_rgba(scene.probabilities[:, j], (0.0, 1.0))
        legend = maps.Legend(f"P({view})", maps.stops_for((0.0, 1.0)), 0.0, 1.0)
    m = maps.tile_map(maps.tile_layer(where, rows, rgba), bounds=where.bounds(rows), legend=legend)
    st.caption("Click a tile for its values (the tiles are one image, so hovering shows nothing).")
    clicked = maps.tile_at(where, maps.show(m, key=f"predict.map.{run.id}.{name}", clicks=True))
    opened = f"predict.tile.{run.id}.{name}"
    if clicked is not None:
        st.session_state[opened] = clicked
    clicked_tile(scene, st.session_state.get(opened), view)


def clicked_tile(scene: predict.PredictedScene, k: int | None, view: str) -> None:
    """The predicted tile last clicked on the map (row `k` of the scene's tiles): its place and labels."""
    if k is None or k >= len(scene.tiles):
        st.caption("Click a tile on the map to see its predicted labels here.")
        return
    tile = scene.tiles.iloc[k]
    value = ""
    if view != TOP_LABEL:
        value = f" · P({plain(view)}) = {scene.probabilities[k, scene.label_names.index(view)]:.3f}"
    st.markdown(
        f"**Tile at row {int(tile['tile_row'])}, column {int(tile['tile_col'])}**{value}  \n"
        f"Predicted, most probable first: {plain(scene.label_text([k])[0])}"
    )

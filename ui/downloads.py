"""Download buttons for the GIS exports of `olr.analysis.exports` (a GeoPackage and GeoTIFFs in one .zip).

The archive is built only when the button is pressed (Streamlit runs a callable `data` then, on its own
thread), in a temporary folder outside the workspace: a page stays fast, and downloads work on a read-only
demo too, where exports into the workspace are refused. What cannot be exported (a dataset without map
coordinates, a run without stored results) is said in a caption instead of a button.
"""

from __future__ import annotations

import streamlit as st

from olr.analysis import exports, predict, run_data
from olr.errors import OLRError
from ui.text import plain

LABEL = "Download for a GIS"
HELP = "A .zip with a GeoPackage of the tiles (attributes per label) and GeoTIFFs with one band per label."


def _zip_button(archive, file_name: str, key: str, help_text: str = HELP) -> None:
    """A download button whose .zip `archive()` is built only when it is pressed."""
    st.download_button(
        LABEL,
        data=archive,
        file_name=file_name,
        mime="application/zip",
        icon=":material/download:",
        on_click="ignore",
        help=help_text,
        key=key,
    )


def dataset_button(ds) -> None:
    """The dataset's tile grid with labels and fractions."""
    try:
        exports.tile_places(ds)
    except OLRError as error:
        st.caption(plain(str(error)))
        return
    _zip_button(lambda: exports.dataset_archive(ds), f"{ds.name}-tiles.zip", f"download.dataset.{ds.name}")


def run_button(run, split: str) -> None:
    """A finished run's stored predictions (or self-scores) on `split`, with error types per tile."""
    try:
        dataset = run_data.run_dataset(run)
        exports.tile_places(dataset)
        exports.run_scores(run, dataset, split)
    except OLRError as error:
        st.caption(plain(str(error)))
        return
    _zip_button(lambda: exports.run_archive(run, split), f"{run.id}-{split}.zip", f"download.run.{run.id}.{split}")


def prediction_button(run, name: str) -> None:
    """The files of one stored prediction of a run on a new image."""
    _zip_button(
        lambda: predict.prediction_archive(run, name),
        f"{run.id}-{name}.zip",
        f"download.prediction.{run.id}.{name}",
        "A .zip with the per-label probability GeoTIFF, the GeoPackage of tiles and prediction.json.",
    )

"""Tile thumbnails with label chips: every page shows tiles through `thumbnails` and `gallery`, so a
tile has one look (`olr.data.composites.tile_thumbnails`) and one name (`olr.data.summary.tile_names`)."""

from __future__ import annotations

import html

import numpy as np
import streamlit as st

from olr.data import composites
from ui import loaders


def thumbnails(ds, rows, bands: list[int] | None = None) -> np.ndarray:
    """`composites.tile_thumbnails` of the dataset's `rows`, with its stretch limits cached per dataset and bands."""
    bands = list(bands) if bands is not None else composites.dataset_rgb_bands(ds)
    return composites.tile_thumbnails(ds, rows, bands, loaders.stretch_limits(ds, bands))


def chip(name: str, color: str, share: float | None = None) -> str:
    """An HTML label chip in the label's colour (text dark or light for contrast)."""
    r, g, b = (
        (int(color[i : i + 2], 16) for i in (1, 3, 5)) if color.startswith("#") and len(color) == 7 else (136, 136, 136)
    )
    text = "#111" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#fff"
    label = html.escape(name) + (f" {share * 100:.0f}%" if share is not None else "")
    return (
        f"<span style='display:inline-block;background:{color};color:{text};border-radius:8px;"
        f"padding:0 6px;margin:1px 2px;font-size:11px;line-height:16px;border:1px solid rgba(0,0,0,0.2)'>{label}</span>"
    )


def gallery(
    thumbnails: np.ndarray,
    captions: list[str],
    chips: list[list[tuple[str, str, float | None]]],
    columns: int = 6,
) -> None:
    """A grid of thumbnails, each with a caption line and its label chips."""
    for start in range(0, len(thumbnails), columns):
        cols = st.columns(columns)
        for col, k in zip(cols, range(start, min(start + columns, len(thumbnails)))):
            with col:
                # PNG: the nearest-neighbour upscaled pixels stay crisp (JPEG would smear them)
                st.image(thumbnails[k], caption=captions[k], width="stretch", output_format="PNG")
                if chips[k]:
                    st.html("<div>" + "".join(chip(*c) for c in chips[k]) + "</div>")

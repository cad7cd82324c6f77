"""Tile thumbnails: RGB composites of chosen bands, percentile-stretched, and a labelled gallery."""

from __future__ import annotations

import html

import numpy as np
import streamlit as st

RGB_NAMES = (("red", "r", "b4"), ("green", "g", "b3"), ("blue", "b", "b2"))


def default_rgb_bands(band_names: list[str]) -> list[int]:
    """Indices of the red, green, blue bands by name, else the first three (or one band as grey)."""
    lower = [n.lower() for n in band_names]
    picks = []
    for aliases in RGB_NAMES:
        found = next((i for i, n in enumerate(lower) if n in aliases), None)
        picks.append(found)
    if all(p is not None for p in picks):
        return [int(p) for p in picks]
    n = len(band_names)
    return [0, 1, 2] if n >= 3 else [0, 0, 0]


def stretch_limits(images: np.ndarray, bands: list[int], low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """(3, 2) per-channel percentile limits over `images` (n, h, w, b), ignoring exact zeros (nodata)."""
    limits = np.zeros((3, 2))
    for c, b in enumerate(bands):
        v = np.asarray(images[..., b], dtype=np.float64).ravel()
        v = v[np.isfinite(v) & (v != 0)]
        if v.size == 0:
            limits[c] = (0.0, 1.0)
            continue
        lo, hi = np.percentile(v, [low, high])
        limits[c] = (lo, hi if hi > lo else lo + 1.0)
    return limits


def rgb_composite(images: np.ndarray, bands: list[int], limits: np.ndarray, upscale: int = 1) -> np.ndarray:
    """(n, h*upscale, w*upscale, 3) uint8 composites of `images` (n, h, w, b), linearly stretched to `limits`."""
    x = np.asarray(images[..., bands], dtype=np.float32)
    lo = limits[:, 0].astype(np.float32)
    hi = limits[:, 1].astype(np.float32)
    out = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    out = np.rint(out * 255).astype(np.uint8)
    if upscale > 1:  # nearest-neighbour: pixels stay crisp
        out = out.repeat(upscale, axis=1).repeat(upscale, axis=2)
    return out


def chip(name: str, color: str, share: float | None = None) -> str:
    """An HTML label chip in the label's colour (text dark or light for contrast)."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5)) if color.startswith("#") and len(color) == 7 else (136, 136, 136)
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
                st.image(thumbnails[k], caption=captions[k], width="stretch")
                if chips[k]:
                    st.html("<div>" + "".join(chip(*c) for c in chips[k]) + "</div>")

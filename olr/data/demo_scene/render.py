"""Rendering the scene's 10 m image from its land cover, in strips of rows.

Each pixel takes the class of the label grid under it (boundaries smoothed and wobbled by
about 20 m), that class's texture recipe (olr.data.demo_scene.materials), a per-class
brightness field and hillshade; then thin haze, a mild optical blur and sensor noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from olr.data.demo_scene.arrays import bilinear, cell_and_offset, distance_m, hash01, upsample_rows
from olr.data.demo_scene.canvas import Features
from olr.data.demo_scene.materials import RECIPES, Pixels, recipe_for
from olr.data.demo_scene.spec import PIXEL_M
from olr.data.demo_scene.terrain import FIELD_M, NODE_PX, Grids, hillshade

WATER = (523, 521, 512)  # classes without hillshade
_STRIP_ROWS = 256
_FIELD_NAMES = ("bright1", "bright2", "haze", "disp_x", "disp_y", "blob")
_HAZE_RGBN = np.float32([90, 110, 150, 50])  # reflectance x 10000 a unit of haze adds: bluish


@dataclass
class _Strip:
    """Image rows a0..a0+h (a strip plus a one-row halo for the blur): per pixel, (h, w) each,
    its class (CLC code) and the fields its colour depends on."""

    a0: int
    codes: np.ndarray
    shade: np.ndarray
    bright1: np.ndarray
    bright2: np.ndarray
    haze: np.ndarray
    blob: np.ndarray
    shallow: np.ndarray


def render(g: Grids, codes: np.ndarray, feats: Features, fields: dict, seed: int, write_strip, progress) -> np.ndarray:
    """Render the image in strips of 256 rows, each passed to `write_strip(r0, r1, (h, w, 4)
    uint16)`; returns the pixel count of every class (600,) int64, indexed by CLC code."""
    rng = np.random.default_rng([seed, 2])
    size = g.size
    stack = np.stack([hillshade(fields["elev"])] + [fields[k] for k in _FIELD_NAMES])
    shallow_cells = _shallowness(codes)
    code_salt = {c: int(hash01(c, 5, seed)[()] * 1e6) for c in RECIPES}
    counts = np.zeros(600, np.int64)
    for r0 in range(0, size, _STRIP_ROWS):
        r1 = min(size, r0 + _STRIP_ROWS)
        strip = _sample_strip(g, codes, stack, shallow_cells, max(0, r0 - 1), min(size, r1 + 1))
        counts += np.bincount(strip.codes[r0 - strip.a0 : r1 - strip.a0].ravel(), minlength=counts.size)
        img = _blur(_add_haze(_paint(strip, feats, seed, code_salt), strip.haze))
        img = img[r0 - strip.a0 : r0 - strip.a0 + (r1 - r0)]
        write_strip(r0, r1, _sensor(img, rng))
        if progress:
            progress(r1, size, "rendering the image")
    return counts


def _shallowness(codes: np.ndarray) -> np.ndarray:
    """(H, W) float32 on the label grid: 1 at the water line, towards 0 far off shore or inland."""
    water_cell = np.isin(codes, WATER)
    d_water_edge = distance_m(~water_cell, cap_m=800.0)
    d_land_edge = distance_m(water_cell, cap_m=300.0)
    return np.where(water_cell, np.exp(-d_water_edge / 250.0), np.exp(-d_land_edge / 120.0)).astype(np.float32)


def _sample_strip(
    g: Grids, codes: np.ndarray, stack: np.ndarray, shallow_cells: np.ndarray, a0: int, a1: int
) -> _Strip:
    """The fields at the pixels of rows a0..a1, and each pixel's class.

    Label lookup: exact transform at nodes, bilinear between, wobbled by ~20 m.
    """
    rows = np.arange(a0, a1)
    cols = np.arange(g.size)
    pos_r = ((rows + 0.5) * PIXEL_M + g.f_margin) / FIELD_M
    pos_c = ((cols + 0.5) * PIXEL_M + g.f_margin) / FIELD_M
    shade, b1, b2, haze, dxf, dyf, blob = upsample_rows(stack, pos_r, pos_c)
    nr, nc = rows / NODE_PX, cols / NODE_PX  # node k sits at pixel k * NODE_PX
    lab_c, lab_r = upsample_rows(np.stack([g.node_col, g.node_row]), nr, nc)
    lab_c = lab_c + 0.25 * dxf
    lab_r = lab_r + 0.25 * dyf
    pix_codes = _soft_lookup(codes, lab_c - 0.5, lab_r - 0.5)
    shallow = bilinear(shallow_cells, lab_c - 0.5, lab_r - 0.5)
    return _Strip(a0, pix_codes, shade, b1, b2, haze, blob, shallow)


def _soft_lookup(codes: np.ndarray, fc: np.ndarray, fr: np.ndarray) -> np.ndarray:
    """Class at fractional cell-centre coordinates: the class with the largest bilinear weight
    among the four surrounding cells, so boundaries run smoothly instead of in 100 m steps."""
    c0, r0, ax, ay = cell_and_offset(codes.shape, fc, fr)
    cand = [codes[r0, c0], codes[r0, c0 + 1], codes[r0 + 1, c0], codes[r0 + 1, c0 + 1]]
    wts = [(1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay]
    best = cand[0]
    best_score = np.full(best.shape, -1.0, np.float32)
    for k in range(4):
        score = sum(wts[j] * (cand[j] == cand[k]) for j in range(4))
        better = score > best_score
        best = np.where(better, cand[k], best)
        best_score = np.where(better, score, best_score)
    return best


def _paint(strip: _Strip, feats: Features, seed: int, code_salt: dict) -> np.ndarray:
    """(h, w, 4) float32 reflectance of the strip: each class's recipe over its pixels, times
    its brightness field (a per-class mix of two smooth fields) and, on land, the hillshade."""
    h, w = strip.codes.shape
    img = np.zeros((h, w, 4), np.float32)
    img_flat = img.reshape(-1, 4)
    flat = strip.codes.ravel()
    blob_f, shallow_f, b1_f, b2_f, shade_f = (
        a.ravel() for a in (strip.blob, strip.shallow, strip.bright1, strip.bright2, strip.shade)
    )
    order = np.argsort(flat, kind="stable")
    present, starts = np.unique(flat[order], return_index=True)
    ends = np.append(starts[1:], flat.size)
    for code, s, e in zip(present, starts, ends):
        idx = order[s:e]
        rr, cc = np.divmod(idx, w)
        rows = rr + strip.a0
        px = Pixels(
            ((cc + 0.5) * PIXEL_M).astype(np.float32),
            ((rows + 0.5) * PIXEL_M).astype(np.float32),
            cc,
            rows,
            blob_f[idx],
            shallow_f[idx],
            seed,
            feats,
        )
        refl = recipe_for(int(code))(px)
        theta = code_salt.get(int(code), 0) % 628 / 100.0
        bright = 1.0 + 0.09 * (b1_f[idx] * math.cos(theta) + b2_f[idx] * math.sin(theta))
        if int(code) not in WATER:
            bright = bright * shade_f[idx]
        img_flat[idx] = refl * bright[:, None]
    return img


def _add_haze(img: np.ndarray, haze: np.ndarray) -> np.ndarray:
    """Thin haze: bluish and additive, where the haze field exceeds 1."""
    img += np.clip(haze - 1.0, 0, None)[..., None] * _HAZE_RGBN
    return img


def _blur(img: np.ndarray) -> np.ndarray:
    """A mild optical blur: [1/4, 1/2, 1/4] across, then down (edge rows and columns kept)."""
    blurred = img.copy()
    blurred[:, 1:-1] = 0.5 * img[:, 1:-1] + 0.25 * (img[:, :-2] + img[:, 2:])
    img = blurred.copy()
    img[1:-1] = 0.5 * blurred[1:-1] + 0.25 * (blurred[:-2] + blurred[2:])
    return img


def _sensor(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise (grows with the signal), quantised to uint16 reflectance x 10000 in 1..10000."""
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    img += noise * (25.0 + 0.015 * img)
    return np.clip(np.rint(img), 1, 10000).astype(np.uint16)

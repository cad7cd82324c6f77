"""The scene's land cover: CLC codes on the 100 m CORINE grid, drawn by rules from the terrain.

First a rule-based mosaic of natural and agricultural classes (each class scores its
elevation band plus its own patch noise), then the planted features in a fixed order
(olr.data.demo_scene.planted), then every rule of `PLANTED_STRUCTURE` is enforced; last,
a scene that draws some demo classes as others (`SceneParams.classes`) relabels them.
"""

from __future__ import annotations

import numpy as np

from olr.data.demo_scene import planted
from olr.data.demo_scene.arrays import distance_m, majority, patch_labels, smoothstep
from olr.data.demo_scene.canvas import Canvas, Features
from olr.data.demo_scene.params import SceneParams
from olr.data.demo_scene.spec import (
    CELL_M,
    MOSAIC,
    MOUNTAIN_MIN_SHORE_M,
    MOUNTAIN_ONLY,
    PLANTED_STRUCTURE,
)
from olr.data.demo_scene.terrain import Grids, terrain_fields

# What a mountain class (or a reservoir) becomes where it would break a `far` rule.
_FAR_FALLBACK = {312: 323, 313: 323, 332: 321, 333: 321, 512: 324}
#: Cells further than this (m) outside the image footprint are NODATA, as in an extract of a CORINE map.
_FOOTPRINT_MARGIN_M = 150


def build_land_cover(params: SceneParams | None = None) -> dict:
    """The land cover of the scene `params` (default: the demo's) without rendering: grids, CLC
    codes (H, W) int16 (0 = NODATA), planted features and the cell fields (elevation, distance
    to sea; (H, W) float32). Substituted classes are drawn as the demo's, then relabelled, so the
    planted structure holds for them too (`spec.planted_structure`)."""
    params = (params or SceneParams()).check()
    g = Grids(params.size_px, params.image_crs)
    rng = np.random.default_rng([params.seed, 1])
    fields = terrain_fields(g, rng)
    codes, feats, cell_fields = draw_land_cover(g, fields, rng)
    for old, new in params.classes:
        codes[codes == old] = new
    return {"grids": g, "fields": fields, "codes": codes, "features": feats, "cell_fields": cell_fields}


def draw_land_cover(g: Grids, fields: dict, rng: np.random.Generator) -> tuple[np.ndarray, Features, dict]:
    """CLC codes (label_h, label_w) int16 on the 100 m grid, the planted features, cell fields.

    The steps run in this order because each draws from `rng` and may build on the last.
    """
    c = Canvas(g, fields, rng)
    draw_mosaic(c)
    c.wob = 0.18 * c.patch(250.0)
    planted.draw_lagoons(c)
    planted.draw_beaches(c)
    planted.draw_reservoirs(c)
    planted.draw_burnt_area(c)
    planted.draw_towns(c)
    planted.draw_airports(c)
    d_road = planted.route_motorways(c)
    planted.draw_villages(c, d_road)
    planted.draw_quarries(c)
    planted.draw_motorways(c, d_road)
    enforce_structure(c.codes, c.background)
    _clear_outside_footprint(c)
    return c.codes, c.feats, {"elev": c.elev, "d_sea": c.d_sea}


def draw_mosaic(c: Canvas) -> None:
    """The rule-based mosaic: the best-scoring class wins, then a majority filter removes
    slivers (keeping every class inside its elevation band); the sea is 523.

    Sets `c.background`, the unfiltered first choice, where broken rules fall back to.
    """
    first_choice = _first_choice(c)
    mosaic_codes = list(MOSAIC)
    codes = majority(first_choice, mosaic_codes, passes=2)
    lo = np.zeros(600, np.float32)
    hi = np.zeros(600, np.float32)
    for code, (_m, _w, _k, lo_c, hi_c) in MOSAIC.items():
        lo[code], hi[code] = lo_c, hi_c
    codes = np.where((c.elev >= lo[codes]) & (c.elev <= hi[codes]), codes, first_choice)  # the filter keeps bands
    c.codes = np.where(c.sea, 523, codes).astype(np.int16)
    c.background = first_choice


def _first_choice(c: Canvas) -> np.ndarray:
    """(H, W) int16: per cell, the mosaic class with the best score (elevation suitability plus
    the class's own patch noise), only classes inside their elevation band taking part."""
    near_coast = smoothstep(7000.0, 2000.0, c.d_sea)
    scores = []
    elev_s = np.minimum(c.elev, 1700.0)  # summits above this are all rock
    for code, (mu, width, weight, lo, hi) in MOSAIC.items():
        s = weight * np.exp(-(((elev_s - mu) / width) ** 2)) + 0.36 * c.patch(340.0 if code < 300 else 420.0)
        if code in (212, 222):
            s = s + 0.35 * near_coast - 0.35
        if code in MOUNTAIN_ONLY:
            s = np.where(c.d_sea < MOUNTAIN_MIN_SHORE_M * 1.1, -9.0, s)
        scores.append(np.where((c.elev >= lo) & (c.elev <= hi), s, -99.0))
    return np.asarray(list(MOSAIC), dtype=np.int16)[np.argmax(np.stack(scores), axis=0)]


def enforce_structure(codes: np.ndarray, background: np.ndarray) -> None:
    """Make every rule of PLANTED_STRUCTURE hold, in place: cells or patches that break a
    `near` rule fall back to the background mosaic; cells that break a `far` rule become
    the neighbouring lowland class. Chamfer distances overestimate straight-line ones (by up
    to 8 %), so near rules hold exactly and far rules get a 9 % margin."""
    for _ in range(2):  # a reverted patch can strand another; a second pass settles it
        for rule in PLANTED_STRUCTURE["near"]:
            _enforce_near(codes, background, rule)
    for rule in PLANTED_STRUCTURE["far"]:
        near = distance_m(np.isin(codes, rule["from"]), cap_m=rule["min_m"] * 1.1) < rule["min_m"] * 1.09
        codes[near & (codes == rule["class"])] = _FAR_FALLBACK[rule["class"]]


def _enforce_near(codes: np.ndarray, background: np.ndarray, rule: dict) -> None:
    """Revert to `background` the cells (scope "cell") or whole patches (scope "patch") of the
    rule's class that lie further than `within_m` from the classes it must be near."""
    cls = codes == rule["class"]
    if not cls.any():
        return
    d = distance_m(np.isin(codes, rule["of"]), cap_m=rule["within_m"] + CELL_M)
    bad = cls & (d > rule["within_m"])
    if rule["scope"] == "patch" and bad.any():
        ids = patch_labels(cls)
        good_ids = np.unique(ids[cls & ~bad])
        bad = cls & ~np.isin(ids, good_ids)
    codes[bad] = background[bad]


def _clear_outside_footprint(c: Canvas) -> None:
    """The extract of a CORINE map: cells well outside the image footprint are NODATA (0)."""
    m, L = _FOOTPRINT_MARGIN_M, c.L
    outside = (c.xs < -m) | (c.ys < -m) | (c.xs > L + m) | (c.ys > L + m)
    c.codes[outside] = 0

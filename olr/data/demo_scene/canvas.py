"""The land cover being drawn on the 100 m label grid, and what the drawing steps share.

A `Canvas` holds the terrain sampled at every label cell (land, elevation, distance to
the sea), the CLC codes drawn so far and the masks the steps hand on (wet, guarded,
urban), plus the planted geometry (`Features`) that the renderer draws again at 10 m.
Every random draw goes through `canvas.rng`: the order of the steps fixes the scene.
"""

from __future__ import annotations

import math

import numpy as np

from olr.data.demo_scene.arrays import bilinear, distance_m, smooth_noise
from olr.data.demo_scene.spec import CELL_M
from olr.data.demo_scene.terrain import FIELD_M, Grids

#: Side (m) of the default scene; feature counts and sizes scale with a scene's side.
_DEFAULT_SIDE_M = 35840.0


class Features:
    """Planted geometry in scene metres, shared by the land cover and the renderer."""

    def __init__(self):
        self.roads: list[tuple[float, float, float, float]] = []
        self.airports: list[tuple[float, float, float, float, float]] = []  # cx, cy, angle, length, width
        self.quarries: list[tuple[float, float]] = []
        self.towns: list[tuple[float, float, float]] = []  # cx, cy, radius
        self.villages: list[tuple[float, float, float]] = []

    def road_array(self) -> np.ndarray:
        return np.asarray(self.roads, dtype=np.float32).reshape(-1, 4)


class Canvas:
    """Cell fields, codes and shared masks of the land cover in progress; all (label_h, label_w)."""

    def __init__(self, g: Grids, fields: dict, rng: np.random.Generator):
        self.rng = rng
        self.L = g.L
        self.xs, self.ys = g.cell_x, g.cell_y
        fx = (g.cell_x + g.f_margin) / FIELD_M
        fy = (g.cell_y + g.f_margin) / FIELD_M
        land_score = bilinear(fields["land"], fx, fy)
        elev = bilinear(fields["elev"], fx, fy)
        self.sea = land_score <= 0
        self.land = ~self.sea
        self.elev = np.where(self.land, np.maximum(elev, 1.0), elev)  # interpolation near the shore dips below 0
        self.shape = self.sea.shape
        self.u = g.cell_x / g.L
        self.d_sea = distance_m(self.sea, cap_m=6000.0)
        self.scale = g.L / _DEFAULT_SIDE_M
        self.area_scale = self.scale * self.scale
        L = g.L
        self.in_scene = (self.xs > 0.03 * L) & (self.xs < 0.97 * L) & (self.ys > 0.03 * L) & (self.ys < 0.97 * L)
        self.feats = Features()
        self.codes: np.ndarray = np.zeros(self.shape, np.int16)  # CLC codes, drawn by the mosaic first
        self.background: np.ndarray = self.codes  # the mosaic's first choice, where broken rules fall back
        self.wob: np.ndarray = np.zeros(self.shape, np.float32)  # boundary wobble of planted shapes
        self.lagoons: list[tuple[float, float, float]] = []  # cx, cy, semi-major axis
        self.wet = np.zeros(self.shape, bool)  # lagoons and salt marsh
        self.guarded = np.zeros(self.shape, bool)  # reservoirs and their forest rings: later features keep off
        self.urban = np.zeros(self.shape, bool)

    def patch(self, sigma_m: float) -> np.ndarray:
        """Smooth noise (mean 0, std 1) with patches of about `sigma_m` metres (120 m at least)."""
        return smooth_noise(self.rng, self.shape, max(sigma_m, 120.0) / CELL_M)

    def pick(self, ok: np.ndarray, pref: np.ndarray | None = None) -> tuple[float, float]:
        """A random cell where `ok` holds (weighted by exp(pref)); the best-scoring land cell if none."""
        land, in_scene = self.land, self.in_scene
        cand = np.flatnonzero(ok & in_scene)
        if cand.size == 0:
            cand = np.flatnonzero(land & in_scene) if (land & in_scene).any() else np.arange(ok.size)
        w = np.exp(np.clip(pref.ravel()[cand], -30, 30)) if pref is not None else np.ones(cand.size)
        i = int(self.rng.choice(cand, p=w / w.sum()))
        return float(self.xs.flat[i]), float(self.ys.flat[i])

    def dist(self, cx: float, cy: float) -> np.ndarray:
        """Metres from every cell centre to (cx, cy)."""
        return np.hypot(self.xs - cx, self.ys - cy)

    def ellipse(self, cx, cy, a, b, angle, wobble):
        """Elliptic radius of every cell: < 1 inside the ellipse (semi-axes a, b; turned by `angle`)."""
        ca, sa = math.cos(angle), math.sin(angle)
        ex = ((self.xs - cx) * ca + (self.ys - cy) * sa) / a
        ey = (-(self.xs - cx) * sa + (self.ys - cy) * ca) / b
        return np.sqrt(ex * ex + ey * ey) + wobble

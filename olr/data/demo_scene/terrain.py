"""The scene's geometry and terrain: its three grids and the smooth fields drawn on them.

Coordinates are *scene metres*: x east and y south of the image's upper-left corner, so the
image covers [0, L) x [0, L) with L = 10 * size_px. The field grid (40 m, with a margin)
carries the smooth fields (land score, elevation, rendering noise); the label grid is
CORINE's 100 m EPSG:3035 lattice under the image; the image grid is 10 m in the image CRS
(the demo's UTM 36N, or another projected CRS in true metres there: `SceneParams.image_crs`).
"""

from __future__ import annotations

import math

import numpy as np

from olr.data.demo_scene.arrays import smooth_noise, smoothstep, upsample_rows
from olr.data.demo_scene.spec import CELL_M, CENTER_LONLAT, IMAGE_CRS, LABEL_CRS, PIXEL_M

FIELD_M = 40.0  # resolution of the smooth fields (elevation, brightness, displacement)
NODE_PX = 32  # spacing of the exact image-CRS -> LAEA transform nodes, interpolated between
_CELL_NODE_STEP = 8  # label cells between exact transforms of cell centres


class Grids:
    """The image grid (`image_crs`), the label grid (LAEA) and the field grid (scene metres)."""

    def __init__(self, size_px: int, image_crs: str = IMAGE_CRS):
        self.size = size_px
        self.image_crs = image_crs
        self.L = size_px * PIXEL_M
        self._place_image()
        self._place_labels()
        self._locate_cells()
        self._place_fields()
        self._locate_pixel_nodes()

    def _place_image(self) -> None:
        """The image's upper-left corner (x0, y0), image-CRS metres on a 100 m lattice, and its transform."""
        from rasterio.transform import Affine
        from rasterio.warp import transform

        (cx,), (cy,) = transform("EPSG:4326", self.image_crs, [CENTER_LONLAT[0]], [CENTER_LONLAT[1]])
        self.x0 = round((cx - self.L / 2) / 100.0) * 100.0
        self.y0 = round((cy + self.L / 2) / 100.0) * 100.0
        self.image_transform = Affine(PIXEL_M, 0.0, self.x0, 0.0, -PIXEL_M, self.y0)

    def _place_labels(self) -> None:
        """Label grid: the image footprint in EPSG:3035, snapped to CORINE's 100 m lattice."""
        from rasterio.transform import Affine
        from rasterio.warp import transform

        t = np.linspace(0.0, self.L, 65)
        ex = np.concatenate([t, np.full_like(t, self.L), t[::-1], np.zeros_like(t)])
        ey = np.concatenate([np.zeros_like(t), t, np.full_like(t, self.L), t[::-1]])
        fx, fy = transform(self.image_crs, LABEL_CRS, list(self.x0 + ex), list(self.y0 - ey))
        margin = 3 * CELL_M
        self.lx0 = math.floor((min(fx) - margin) / CELL_M) * CELL_M
        self.ly1 = math.ceil((max(fy) + margin) / CELL_M) * CELL_M
        self.label_w = math.ceil((max(fx) + margin - self.lx0) / CELL_M)
        self.label_h = math.ceil((self.ly1 - (min(fy) - margin)) / CELL_M)
        self.label_transform = Affine(CELL_M, 0.0, self.lx0, 0.0, -CELL_M, self.ly1)

    def _locate_cells(self) -> None:
        """Scene metres of every label-cell centre, cell_x and cell_y (label_h, label_w) float32.

        Exact transform every 8th cell, bilinear in between (the projection change is smooth;
        the error is far below a millimetre).
        """
        from rasterio.warp import transform

        step = _CELL_NODE_STEP
        nr, nc = self.label_h // step + 2, self.label_w // step + 2
        gx, gy = np.meshgrid(
            self.lx0 + (np.arange(nc) * step + 0.5) * CELL_M, self.ly1 - (np.arange(nr) * step + 0.5) * CELL_M
        )
        ux, uy = transform(LABEL_CRS, self.image_crs, gx.ravel(), gy.ravel())
        node_x = (np.asarray(ux) - self.x0).reshape(gx.shape)
        node_y = (self.y0 - np.asarray(uy)).reshape(gx.shape)
        pr, pc = np.arange(self.label_h) / step, np.arange(self.label_w) / step
        self.cell_x = upsample_rows(node_x, pr, pc).astype(np.float32)
        self.cell_y = upsample_rows(node_y, pr, pc).astype(np.float32)

    def _place_fields(self) -> None:
        """Field grid covering the label grid, in scene metres: f_n cells a side from -f_margin."""
        self.f_margin = 0.2 * self.L + 1000.0
        self.f_n = math.ceil((self.L + 2 * self.f_margin) / FIELD_M) + 1

    def _locate_pixel_nodes(self) -> None:
        """Label-grid (column, row) of image pixels at nodes every NODE_PX pixels (interpolated later)."""
        from rasterio.warp import transform

        n_nodes = self.size // NODE_PX + 2
        node_m = (np.arange(n_nodes) * NODE_PX + 0.5) * PIXEL_M
        nx, ny = np.meshgrid(node_m, node_m)
        lx, ly = transform(self.image_crs, LABEL_CRS, list(self.x0 + nx.ravel()), list(self.y0 - ny.ravel()))
        self.node_col = ((np.asarray(lx) - self.lx0) / CELL_M).reshape(nx.shape)
        self.node_row = ((self.ly1 - np.asarray(ly)) / CELL_M).reshape(nx.shape)

    def field_coords(self):
        """(f_n,) scene-metre coordinates of the field grid's cell centres (same for x and y)."""
        return np.arange(self.f_n) * FIELD_M - self.f_margin


def terrain_fields(g: Grids, rng: np.random.Generator) -> dict:
    """Smooth fields on the field grid, each (f_n, f_n) float32: land score, elevation (m) and
    the rendering fields (brightness, haze, boundary displacement, small blobs).

    The draws from `rng` happen in this order, which fixes the scene of a seed.
    """
    n = g.f_n
    coord = g.field_coords()
    u = (coord / g.L)[None, :]
    v = (coord / g.L)[:, None]
    land = _land_score(rng, n, g.L, u, v)
    elev = _elevation(rng, n, g.L, u, v, land)
    return {"land": land.astype(np.float32), "elev": elev.astype(np.float32), **_rendering_fields(rng, n, g.L)}


def _land_score(rng: np.random.Generator, n: int, L: float, u, v) -> np.ndarray:
    """> 0 on land (in units of L): a coast running across the south, bending north-east."""
    macro = smooth_noise(rng, (n, n), 0.06 * L / FIELD_M)
    meso = smooth_noise(rng, (n, n), 0.02 * L / FIELD_M)
    coast_v = 0.84 - 0.27 * smoothstep(0.45, 1.05, u)
    return coast_v + 0.035 * macro + 0.02 * meso - v


def _elevation(rng: np.random.Generator, n: int, L: float, u, v, land: np.ndarray) -> np.ndarray:
    """Metres: a massif in the north-west over rolling lowland hills; -5 at sea."""
    ridge = smooth_noise(rng, (n, n), 0.05 * L / FIELD_M)
    hills = smooth_noise(rng, (n, n), 0.035 * L / FIELD_M)
    valleys = smooth_noise(rng, (n, n), max(0.012 * L, 250.0) / FIELD_M)
    bell = np.exp(-(((u - 0.22) / 0.30) ** 2 + ((v - 0.27) / 0.27) ** 2))
    inland = smoothstep(0.0, 0.12, land)
    elev = 1850.0 * bell**1.25 * (1 + 0.15 * ridge) + 170.0 * (1 - bell) * (0.55 + 0.4 * hills) * inland
    elev -= 140.0 * bell * np.abs(valleys)
    return np.where(land > 0, np.maximum(elev * (0.25 + 0.75 * inland), 2.0), -5.0)


def _rendering_fields(rng: np.random.Generator, n: int, L: float) -> dict:
    """Per-class brightness, haze, boundary displacement and small blobs (mean 0, std 1)."""
    fine = max(60.0, 600.0 * min(1.0, L / 20000.0)) / FIELD_M
    return {
        "bright1": smooth_noise(rng, (n, n), fine),
        "bright2": smooth_noise(rng, (n, n), fine),
        "haze": smooth_noise(rng, (n, n), 3000.0 / FIELD_M),
        "disp_x": smooth_noise(rng, (n, n), 1.5),
        "disp_y": smooth_noise(rng, (n, n), 1.5),
        "blob": smooth_noise(rng, (n, n), 0.8),
    }


def hillshade(elev: np.ndarray) -> np.ndarray:
    """Illumination factor (0.45..1.3, 1 on flat ground) from elevation on the field grid."""
    dzdy, dzdx = np.gradient(elev.astype(np.float64), FIELD_M)
    # Sun from the south-east (azimuth 135 deg), 55 deg above the horizon (a morning pass).
    az, alt = math.radians(135.0), math.radians(55.0)
    sx, sy, sz = math.sin(az) * math.cos(alt), -math.cos(az) * math.cos(alt), math.sin(alt)
    # Scene y runs south; the normal of z(x, y) is (-dz/dx, -dz/dy, 1).
    nx, ny = -dzdx, -dzdy
    cos_i = (nx * sx + ny * sy + sz) / np.sqrt(nx * nx + ny * ny + 1)
    return np.clip(0.35 + 0.65 * cos_i / sz, 0.45, 1.3).astype(np.float32)

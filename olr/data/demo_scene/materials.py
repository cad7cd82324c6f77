"""What each land-cover class looks like at 10 m: material spectra and per-class texture recipes.

A recipe turns the pixels of one class (`Pixels`: scene metres, pixel indices, a smooth
blob field, shore distance) into (n, 4) surface reflectance x 10000 (red, green, blue, nir)
by linear mixing of `MATERIALS` in class-specific patterns (parcels, crowns, rows, streets).
Textures are fixed by position (a hash of the pixel index), never by a random stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from olr.data.demo_scene.arrays import hash01, segment_distance
from olr.data.demo_scene.spec import PIXEL_M

# Surface reflectance x 10000 (red, green, blue, nir) of the materials the classes mix.
MATERIALS: dict[str, tuple[int, int, int, int]] = {
    "sea": (140, 330, 560, 90),
    "shallow": (430, 780, 900, 240),
    "lagoon": (900, 1150, 1000, 600),
    "reservoir": (260, 470, 420, 170),
    "sand": (2900, 2600, 2150, 3200),
    "wet_sand": (1700, 1550, 1300, 1900),
    "mud": (1250, 1150, 950, 1600),
    "salt": (3900, 3900, 3750, 3950),
    "soil_light": (2500, 2050, 1550, 2900),
    "soil_red": (2150, 1450, 950, 2550),
    "soil_dark": (1350, 1120, 850, 1850),
    "stubble": (2350, 2050, 1450, 2800),
    "crop": (420, 830, 420, 4400),
    "grass_green": (700, 960, 540, 3600),
    "grass_dry": (1850, 1700, 1200, 2600),
    "shrub": (480, 660, 420, 2450),
    "conifer": (250, 430, 260, 2000),
    "broadleaf": (380, 730, 360, 3700),
    "olive": (640, 800, 560, 2350),
    "orchard": (350, 720, 350, 3500),
    "vine": (560, 820, 480, 3100),
    "halophyte": (1100, 950, 700, 2300),
    "asphalt": (850, 850, 820, 950),
    "concrete": (2400, 2400, 2300, 2650),
    "roof_red": (2500, 1350, 1050, 2500),
    "roof_grey": (1700, 1700, 1650, 1850),
    "roof_metal": (3400, 3500, 3600, 3500),
    "rock": (1950, 1820, 1600, 2350),
    "rock_dark": (1050, 1000, 920, 1450),
    "ash": (420, 400, 370, 650),
    "turf": (420, 950, 420, 4600),
    "track": (2100, 1000, 750, 2400),
    # Materials of the classes a scene may draw in place of the demo's (appended: the demo's
    # materials keep their rows, so the demo renders byte for byte as before).
    "heather": (1150, 820, 1050, 1500),  # purple-brown flowering heath, low NIR
    "paddy_water": (380, 620, 560, 700),
    "oak": (330, 560, 300, 2900),
}
_MAT_NAMES = tuple(MATERIALS)
_MAT = np.asarray([MATERIALS[m] for m in _MAT_NAMES], dtype=np.float32)  # (M, 4)
_MAT_INDEX = {m: i for i, m in enumerate(_MAT_NAMES)}


class Pixels:
    """The pixels of one class in one strip: coordinates and helpers for textures."""

    def __init__(self, x, y, col, row, blob, shallow, seed, feats):
        self.x, self.y, self.col, self.row = x, y, col, row
        self.blob = blob  # smooth noise ~40-80 m, std ~1
        self.shallow = shallow  # 1 at the shore, 0 in open water
        self.seed = seed
        self.feats = feats
        self.n = x.shape[0]

    def rand(self, salt: int) -> np.ndarray:
        """Per-pixel uniform [0, 1), fixed by the pixel's position."""
        return hash01(self.col, self.row + 65536 * (salt % 7), self.seed * 131 + salt)

    def parcels(self, size: float, salt: int):
        """Field parcels: (parcel uniform id (n,), edge weight (n,), parcel angle (n,))."""
        block = 2400.0
        bi, bj = np.floor(self.x / block), np.floor(self.y / block)
        angle = (hash01(bi, bj, self.seed + salt) - 0.5) * 1.2
        ca, sa = np.cos(angle), np.sin(angle)
        xr = self.x * ca + self.y * sa
        yr = -self.x * sa + self.y * ca
        w = size * (0.75 + 0.5 * hash01(bi, bj, self.seed + salt + 1))
        h = size * (0.5 + 0.7 * hash01(bi, bj, self.seed + salt + 2))
        i = np.floor(xr / w)
        yr = yr + hash01(i, bj, self.seed + salt + 3) * h  # staggered parcel rows
        j = np.floor(yr / h)
        ex = np.minimum(xr - i * w, (i + 1) * w - xr)
        ey = np.minimum(yr - j * h, (j + 1) * h - yr)
        edge = np.clip(1.0 - np.minimum(ex, ey) / 7.0, 0.0, 1.0)
        pid = hash01(i + 7919 * bi, j + 7919 * bj, self.seed + salt + 4)
        return pid, edge, angle + (pid > 0.5) * (math.pi / 2)

    def dots(self, spacing: float, radius: float, angle, jitter: float, salt: int) -> np.ndarray:
        """Cover (0..1) of a regular grid of tree crowns, as seen by 10 m pixels."""
        ca, sa = np.cos(angle), np.sin(angle)
        xr = self.x * ca + self.y * sa
        yr = -self.x * sa + self.y * ca
        i, j = np.floor(xr / spacing), np.floor(yr / spacing)
        cx = (i + 0.5 + jitter * (hash01(i, j, self.seed + salt) - 0.5)) * spacing
        cy = (j + 0.5 + jitter * (hash01(j, i, self.seed + salt + 1) - 0.5)) * spacing
        d = np.hypot(xr - cx, yr - cy)
        return np.clip((radius + PIXEL_M / 2 - d) / PIXEL_M, 0.0, 1.0).astype(np.float32)

    def stripes(self, period: float, angle, duty: float) -> np.ndarray:
        """Cover (0..1) of parallel rows `duty * period` metres wide, as seen by 10 m pixels."""
        phase = np.mod(self.x * np.cos(angle) + self.y * np.sin(angle), period) / period
        return np.clip((duty / 2 - np.abs(phase - 0.5)) * period / PIXEL_M + 0.5, 0.0, 1.0).astype(np.float32)


def mix(px: Pixels, parts: list[tuple[str, np.ndarray | float]]) -> np.ndarray:
    """(n, 4) reflectance of a linear mixture of materials; fractions are normalised to sum 1."""
    total = np.zeros(px.n, np.float32)
    out = np.zeros((px.n, 4), np.float32)
    for name, frac in parts:
        f = np.clip(np.broadcast_to(np.asarray(frac, np.float32), (px.n,)), 0.0, None)
        out += f[:, None] * _MAT[_MAT_INDEX[name]]
        total += f
    return out / np.maximum(total, 1e-6)[:, None]


def pick_material(pid: np.ndarray, options: list[tuple[str, float]]) -> list[tuple[str, np.ndarray]]:
    """Assign each pixel one material by its parcel id and the options' probabilities."""
    cum = np.cumsum([p for _, p in options])
    cum = cum / cum[-1]
    k = np.searchsorted(cum, np.minimum(pid, 0.999999), side="right")
    return [(name, (k == i).astype(np.float32)) for i, (name, _) in enumerate(options)]


def _r_sea(px):
    waves = px.stripes(70.0, 0.5 + 0.1 * px.blob, 0.3)
    s = px.shallow**1.5
    return mix(px, [("sea", (1 - s) * (1 - 0.06 * waves)), ("shallow", s), ("salt", 0.025 * waves * (1 - s))])


def _r_lagoon(px):
    mud = 0.25 * np.clip(px.blob, 0, None) + 0.1 * px.shallow
    return mix(px, [("lagoon", 1.0), ("mud", mud), ("salt", 0.08 * (px.blob > 1.2))])


def _r_reservoir(px):
    return mix(px, [("reservoir", 1.0), ("mud", 0.5 * px.shallow**2)])


def _r_beach(px):
    ripple = px.stripes(30.0, 0.3, 0.5)
    wet = 0.25 * px.shallow + 0.1 * px.rand(1)
    return mix(px, [("sand", 0.85 + 0.1 * ripple), ("wet_sand", wet), ("shrub", 0.05 * (px.blob > 1.0))])


def _r_salt_marsh(px):
    veg = np.clip(0.5 + 0.3 * px.blob, 0.1, 0.9)
    salt = 0.25 * (px.rand(2) > 0.9)
    return mix(px, [("halophyte", veg), ("mud", 1 - veg), ("salt", salt), ("lagoon", 0.15 * (px.blob < -1.0))])


def _streets(px, period: float, width: float, salt: int):
    """(street cover (n,), rotated x, rotated y) of a street grid turned per 1 km district."""
    bi, bj = np.floor(px.x / 1000.0), np.floor(px.y / 1000.0)
    angle = (hash01(bi, bj, px.seed + salt) - 0.5) * 0.8
    ca, sa = np.cos(angle), np.sin(angle)
    xr = px.x * ca + px.y * sa
    yr = -px.x * sa + px.y * ca
    mx = np.abs(np.mod(xr, period) - period / 2)
    my = np.abs(np.mod(yr, period) - period / 2)
    street = np.clip((np.maximum(mx, my) - (period / 2 - width)) / 5.0 + 0.5, 0.0, 1.0)
    return street.astype(np.float32), xr, yr


def _r_urban_continuous(px):
    street, xr, yr = _streets(px, 85.0, 9.0, 11)
    cell = hash01(np.floor(xr / 15.0), np.floor(yr / 15.0), px.seed + 12)
    roofs = pick_material(cell, [("roof_red", 0.35), ("roof_grey", 0.35), ("concrete", 0.3)])
    built = 1 - street
    trees = 0.06 * built * (px.rand(3) > 0.8)
    rest = [("asphalt", street), ("broadleaf", trees), ("rock_dark", 0.12 * built)]  # dark: shadows of tall blocks
    return mix(px, [(m, f * built * 0.9) for m, f in roofs] + rest)


def _r_urban_discontinuous(px):
    street, xr, yr = _streets(px, 120.0, 7.0, 21)
    cell = hash01(np.floor(xr / 24.0), np.floor(yr / 24.0), px.seed + 22)
    house = (cell < 0.5).astype(np.float32) * (1 - street)
    roofs = pick_material(cell * 2.0, [("roof_red", 0.55), ("roof_grey", 0.25), ("concrete", 0.2)])
    garden = (1 - house) * (1 - street)
    trees = garden * (0.25 + 0.4 * (px.rand(4) > 0.6))
    parts = [(m, f * house) for m, f in roofs] + [("asphalt", street), ("broadleaf", trees)]
    return mix(px, [*parts, ("grass_dry", garden * 0.35), ("soil_light", garden * 0.2)])


def _r_industrial(px):
    street, xr, yr = _streets(px, 160.0, 12.0, 31)
    cell = hash01(np.floor(xr / 55.0), np.floor(yr / 40.0), px.seed + 32)
    shed = (cell < 0.62).astype(np.float32) * (1 - street)
    roofs = pick_material(cell / 0.62, [("roof_metal", 0.55), ("roof_grey", 0.3), ("roof_red", 0.15)])
    yard = (1 - shed) * (1 - street)
    yards = [("asphalt", street + 0.5 * yard), ("concrete", 0.4 * yard), ("grass_dry", 0.1 * yard)]
    return mix(px, [(m, f * shed) for m, f in roofs] + yards)


def _r_road(px):
    d = segment_distance(px.x, px.y, px.feats.road_array())
    lanes = np.clip((14.0 - d) / 6.0, 0.0, 1.0)  # a dual carriageway about 28 m wide
    verge = 1 - lanes
    return mix(
        px,
        [
            ("asphalt", lanes),
            ("concrete", 0.15 * lanes * (d < 2.5)),
            ("grass_dry", 0.6 * verge),
            ("soil_light", 0.3 * verge),
            ("shrub", 0.25 * verge * (px.blob > 0.5)),
        ],
    )


def _r_airport(px):
    a = np.asarray(px.feats.airports, dtype=np.float32)
    k = np.argmin((px.x[:, None] - a[None, :, 0]) ** 2 + (px.y[:, None] - a[None, :, 1]) ** 2, axis=1)
    cx, cy, ang, length, width = (a[k, i] for i in range(5))
    along = (px.x - cx) * np.cos(ang) + (px.y - cy) * np.sin(ang)
    across = -(px.x - cx) * np.sin(ang) + (px.y - cy) * np.cos(ang)
    inside = np.abs(along) < 0.45 * length
    runway = (np.abs(across) < 25.0) & inside
    marks = runway & (((np.abs(across) < 4.0) & (np.mod(along, 60.0) < 30.0)) | (np.abs(along) > 0.43 * length))
    taxi = ((np.abs(across - 0.22 * width) < 10.0) | (np.abs(across + 0.3 * width) < 8.0)) & inside
    links = (np.abs(np.mod(along, 450.0) - 225.0) < 8.0) & (across > -0.3 * width) & (across < 0.28 * width) & inside
    apron = (across > 0.28 * width) & (across < 0.4 * width) & (np.abs(along) < 0.2 * length)
    terminal = (across >= 0.4 * width) & (across < 0.46 * width) & (np.abs(along) < 0.15 * length)
    service = (np.abs(np.mod(across, 300.0) - 150.0) < 3.0) & ~inside
    paved = (runway | taxi | links | service).astype(np.float32)
    grass = np.clip(1 - paved - apron - terminal, 0, 1)
    mown = px.stripes(40.0, ang, 0.5)
    planes = apron * (px.dots(45.0, 14.0, ang, 0.3, 191) > 0.5)
    return mix(
        px,
        [
            ("asphalt", paved * (1 - marks)),
            ("concrete", marks + apron * (1 - planes)),
            ("roof_metal", planes + terminal * 0.6),
            ("roof_grey", terminal * 0.4),
            ("grass_dry", grass * (0.75 - 0.25 * mown)),
            ("grass_green", grass * 0.25 * mown),
            ("soil_light", grass * 0.15),
        ],
    )


def _r_port(px):
    cell = hash01(np.floor(px.x / 20.0), np.floor(px.y / 12.0), px.seed + 41)
    kinds = [("concrete", 0.4), ("asphalt", 0.2), ("roof_metal", 0.15), ("roof_red", 0.15), ("track", 0.1)]
    return mix(px, pick_material(cell, kinds))  # quays and containers


def _r_quarry(px):
    q = np.asarray(px.feats.quarries, dtype=np.float32).reshape(-1, 2)
    d = np.min(np.hypot(px.x[:, None] - q[None, :, 0], px.y[:, None] - q[None, :, 1]), axis=1)
    bench = (np.mod(d, 45.0) < 12.0).astype(np.float32)  # terraces around the pit
    return mix(px, [("salt", 0.35 + 0.15 * px.blob), ("soil_light", 0.5), ("rock_dark", 0.3 * bench), ("rock", 0.2)])


def _r_green_urban(px):
    crowns = px.dots(14.0, 6.0, 0.3, 0.8, 51) * (px.rand(6) > 0.3)
    paths = np.clip(px.stripes(90.0, 0.6, 0.08) + px.stripes(110.0, 2.1, 0.08), 0, 1)
    lawn = (1 - crowns) * (1 - paths)
    parts = [("broadleaf", crowns), ("turf", lawn * 0.6), ("grass_green", lawn * 0.4)]
    return mix(px, [*parts, ("concrete", paths * (1 - crowns))])


def _r_sport(px):
    pid, edge, angle = px.parcels(95.0, 61)
    grounds = pick_material(pid, [("turf", 0.5), ("track", 0.15), ("grass_dry", 0.2), ("concrete", 0.15)])
    lines = px.stripes(45.0, angle, 0.12) * (pid < 0.5)
    rest = [("concrete", lines * 0.5 + edge * 0.5), ("broadleaf", edge * 0.5)]
    return mix(px, [(m, f * (1 - edge)) for m, f in grounds] + rest)


def _r_arable(px):
    pid, edge, angle = px.parcels(260.0, 71)
    stages = [
        ("soil_light", 0.2),
        ("soil_red", 0.12),
        ("soil_dark", 0.08),
        ("crop", 0.3),
        ("stubble", 0.22),
        ("grass_dry", 0.08),
    ]
    vigour = 0.85 + 0.3 * hash01(np.floor(pid * 1e6), 3, px.seed)
    rows = 0.06 * px.stripes(20.0, angle, 0.5)
    parts = [(m, f * vigour * (1 - edge) * (1 - rows)) for m, f in pick_material(pid, stages)]
    return mix(px, [*parts, ("soil_dark", rows), ("grass_dry", edge * 0.7), ("shrub", edge * 0.3)])


def _r_irrigated(px):
    pid, edge, _ = px.parcels(140.0, 81)
    kinds = [("crop", 0.6), ("soil_dark", 0.2), ("grass_green", 0.1), ("roof_metal", 0.1)]  # metal: greenhouses
    stages = pick_material(pid, kinds)
    return mix(px, [(m, f * (1 - edge)) for m, f in stages] + [("grass_green", edge * 0.6), ("asphalt", edge * 0.4)])


def _r_vineyard(px):
    pid, edge, angle = px.parcels(150.0, 91)
    rows = px.stripes(30.0, angle, 0.45)
    soil = pick_material(pid, [("soil_red", 0.5), ("soil_light", 0.5)])
    inner = 1 - edge
    parts = [("vine", rows * 0.7 * inner)] + [(m, f * (1 - 0.7 * rows) * inner) for m, f in soil]
    return mix(px, [*parts, ("grass_dry", edge)])


def _r_orchard(px):
    pid, edge, angle = px.parcels(170.0, 101)
    crowns = px.dots(20.0, 7.5, angle, 0.1, 102)  # dense, regular, irrigated green
    ground = pick_material(pid, [("grass_dry", 0.4), ("soil_dark", 0.4), ("grass_green", 0.2)])
    inner = 1 - edge
    parts = [("orchard", crowns * inner)] + [(m, f * (1 - crowns) * inner) for m, f in ground]
    return mix(px, [*parts, ("shrub", edge)])


def _r_olive(px):
    pid, edge, angle = px.parcels(210.0, 111)
    crowns = px.dots(30.0, 6.0, angle, 0.35, 112) * (px.rand(7) > 0.08)  # sparser, greyer, irregular
    ground = pick_material(pid, [("soil_light", 0.5), ("soil_red", 0.3), ("grass_dry", 0.2)])
    inner = 1 - edge
    parts = [("olive", crowns * inner)] + [(m, f * (1 - crowns) * inner) for m, f in ground]
    return mix(px, [*parts, ("shrub", edge * 0.5), ("rock", edge * 0.5)])


def _r_pasture(px):
    pid, edge, _ = px.parcels(320.0, 121)
    green = 0.45 + 0.45 * pid  # grazing intensity differs per field
    dry = (1 - green) * (1 - edge) + 0.1 * px.rand(8)
    return mix(px, [("grass_green", green * (1 - edge)), ("grass_dry", dry), ("shrub", edge)])


def _r_complex(px):
    pid, edge, angle = px.parcels(85.0, 131)
    kinds = [
        ("crop", 0.22),
        ("soil_red", 0.14),
        ("stubble", 0.14),
        ("orchard", 0.18),
        ("vine", 0.12),
        ("grass_green", 0.1),
        ("olive", 0.1),
    ]
    crowns = px.dots(20.0, 6.5, angle, 0.2, 132)
    parts = []
    for m, f in pick_material(pid, kinds):
        if m in ("orchard", "olive"):  # tree crops as crowns over dry ground
            parts += [(m, f * crowns), ("grass_dry", f * (1 - crowns))]
        else:
            parts.append((m, f))
    hedges = [("shrub", edge * 0.6), ("roof_red", edge * 0.1 * (px.rand(9) > 0.7))]
    return mix(px, [(m, f * (1 - edge)) for m, f in parts] + hedges)


def _r_agri_natural(px):
    pid, edge, _ = px.parcels(150.0, 141)
    natural = (px.blob + 0.6 * (pid - 0.5) > 0.0).astype(np.float32)
    crop = pick_material(pid, [("soil_light", 0.3), ("stubble", 0.3), ("crop", 0.25), ("olive", 0.15)])
    shrub = np.clip(0.55 + 0.2 * px.blob, 0.2, 0.9)
    wild = [("shrub", natural * shrub + edge * 0.5), ("soil_red", natural * (1 - shrub))]
    return mix(px, [(m, f * (1 - natural)) for m, f in crop] + wild)


def _r_conifer(px):
    canopy = np.clip(0.78 + 0.12 * px.blob + 0.14 * (px.rand(10) - 0.5), 0.3, 1.0)
    refl = mix(px, [("conifer", canopy), ("shrub", (1 - canopy) * 0.5), ("soil_red", (1 - canopy) * 0.5)])
    return refl * (0.88 + 0.12 * px.rand(11))[:, None]  # crown shadows


def _r_mixed(px):
    canopy = np.clip(0.8 + 0.1 * px.blob + 0.1 * (px.rand(12) - 0.5), 0.3, 1.0)
    broad = np.clip(0.5 + 0.35 * px.blob, 0.1, 0.9)
    refl = mix(px, [("conifer", canopy * (1 - broad)), ("broadleaf", canopy * broad), ("shrub", 1 - canopy)])
    return refl * (0.9 + 0.1 * px.rand(13))[:, None]


def _r_grassland(px):
    rocks = (px.blob > 1.1).astype(np.float32)
    shrubs = px.dots(28.0, 5.0, 0.7, 0.9, 151) * (px.rand(14) > 0.65)
    parts = [("grass_dry", 0.7 * (1 - rocks)), ("grass_green", 0.15), ("soil_light", 0.2), ("rock", rocks * 0.6)]
    return mix(px, [*parts, ("shrub", shrubs)])


def _r_sclerophyllous(px):
    shrub = np.clip(0.68 + 0.2 * px.blob + 0.2 * (px.rand(15) - 0.5), 0.2, 1.0)
    return mix(px, [("shrub", shrub), ("soil_red", (1 - shrub) * 0.6), ("rock", (1 - shrub) * 0.4)])


def _r_transitional(px):
    trees = px.dots(26.0, 6.5, 0.2, 0.9, 161) * (px.rand(16) > 0.45)  # scattered young trees in shrub
    shrub = np.clip(0.5 + 0.2 * px.blob, 0.15, 0.9)
    kind = px.blob > 0.0
    parts = [("conifer", trees * kind), ("broadleaf", trees * ~kind)]
    return mix(px, [*parts, ("shrub", (1 - trees) * shrub), ("grass_dry", (1 - trees) * (1 - shrub))])


def _r_bare_rock(px):
    dark = np.clip(0.4 + 0.35 * px.blob, 0.0, 1.0)
    cracks = 0.2 * (px.rand(17) > 0.85)
    return mix(px, [("rock", 1 - dark), ("rock_dark", dark + cracks)])


def _r_sparse(px):
    veg = px.dots(22.0, 4.5, 1.1, 0.9, 171) * (px.rand(18) > 0.5)
    parts = [("rock", 0.45), ("soil_light", 0.3), ("grass_dry", 0.2), ("shrub", veg * 0.8)]
    return mix(px, [*parts, ("rock_dark", 0.15 * (px.blob > 0.8))])


def _r_burnt(px):
    snags = px.dots(16.0, 3.5, 0.0, 0.9, 181) * (px.rand(19) > 0.4)  # standing dead trees
    return mix(px, [("ash", 0.65 + 0.2 * px.blob), ("soil_dark", 0.25), ("conifer", snags * 0.4), ("rock_dark", 0.1)])


# Classes a scene may draw in place of a demo class of the same CORINE group (SceneParams.classes).


def _r_rice(px):
    """Rice fields (213): small levelled basins, flooded, green or harvested, between grassy bunds."""
    pid, edge, angle = px.parcels(80.0, 201)
    stage = pick_material(pid, [("paddy_water", 0.35), ("crop", 0.4), ("mud", 0.25)])
    rows = px.stripes(12.0, angle, 0.5)
    young = [("crop", 0.35 * rows * stage[0][1]), ("paddy_water", 0.5 * (1 - rows) * stage[1][1])]
    return mix(px, [(m, f * (1 - edge)) for m, f in stage] + young + [("grass_green", edge)])


def _r_agro_forestry(px):
    """Agro-forestry (244): large scattered oaks over pasture and cereal parcels (a dehesa)."""
    pid, edge, _ = px.parcels(300.0, 211)
    trees = px.dots(45.0, 9.0, 0.4, 0.95, 212) * (px.rand(20) > 0.3)
    ground = pick_material(pid, [("grass_dry", 0.45), ("stubble", 0.25), ("grass_green", 0.2), ("soil_light", 0.1)])
    return mix(px, [(m, f * (1 - trees)) for m, f in ground] + [("oak", trees), ("shrub", 0.3 * edge)])


def _r_broadleaf(px):
    """Broad-leaved forest (311): a closed, bright-NIR canopy with crown-scale texture and few gaps."""
    canopy = np.clip(0.9 + 0.08 * px.blob + 0.16 * (px.rand(21) - 0.5), 0.4, 1.0)
    sunlit = 0.3 * (px.rand(22) > 0.6)  # the brightest crowns, greener and brighter in NIR than a conifer ever is
    refl = mix(px, [("broadleaf", canopy), ("crop", canopy * sunlit), ("grass_green", 1 - canopy)])
    return refl * (0.92 + 0.12 * px.rand(24))[:, None]  # crowns lit and shaded


def _r_heath(px):
    """Moors and heathland (322): heather blotches with grass, peaty soil and rock outcrops."""
    heather = np.clip(0.6 + 0.3 * px.blob + 0.2 * (px.rand(23) - 0.5), 0.15, 0.95)
    rocks = 0.5 * (px.blob < -1.3)
    grass = [("grass_green", (1 - heather) * 0.3), ("grass_dry", (1 - heather) * 0.5)]
    return mix(px, [("heather", heather), *grass, ("soil_dark", 0.15), ("rock", rocks)])


def _r_intertidal(px):
    """Intertidal flats (423): wet mud and sand cut by winding tidal channels (zero lines of a smooth field)."""
    channel = np.clip(1.0 - np.abs(px.blob) / 0.12, 0.0, 1.0)
    sandy = np.clip(0.5 + 0.4 * px.blob, 0.0, 1.0)
    ripple = 0.1 * px.stripes(24.0, 1.1, 0.5)
    flat = [("mud", (1 - sandy) * (1 - channel)), ("wet_sand", (sandy + ripple) * (1 - channel))]
    return mix(px, [*flat, ("paddy_water", 0.3 * channel), ("shallow", 0.7 * channel)])


RECIPES: dict[int, Callable[[Pixels], np.ndarray]] = {
    111: _r_urban_continuous,
    112: _r_urban_discontinuous,
    121: _r_industrial,
    122: _r_road,
    123: _r_port,
    124: _r_airport,
    131: _r_quarry,
    141: _r_green_urban,
    142: _r_sport,
    211: _r_arable,
    212: _r_irrigated,
    221: _r_vineyard,
    222: _r_orchard,
    223: _r_olive,
    231: _r_pasture,
    242: _r_complex,
    243: _r_agri_natural,
    312: _r_conifer,
    313: _r_mixed,
    321: _r_grassland,
    323: _r_sclerophyllous,
    324: _r_transitional,
    331: _r_beach,
    332: _r_bare_rock,
    333: _r_sparse,
    334: _r_burnt,
    421: _r_salt_marsh,
    512: _r_reservoir,
    521: _r_lagoon,
    523: _r_sea,
    213: _r_rice,
    244: _r_agro_forestry,
    311: _r_broadleaf,
    322: _r_heath,
    423: _r_intertidal,
}


def recipe_for(code: int) -> Callable[[Pixels], np.ndarray]:
    """The texture recipe of a CLC code; a code without one renders as natural grassland."""
    return RECIPES.get(code, _r_grassland)

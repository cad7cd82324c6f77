"""The planted features of the land cover: water, towns, airports, motorways, villages and quarries.

Each `draw_*` step paints its CLC codes onto a `Canvas` over the rule-based mosaic and
records its geometry in `canvas.feats`; `land_cover.draw_land_cover` calls them in a fixed
order (a later step may rely on, or keep off, what an earlier one drew). The rules they
must satisfy are `PLANTED_STRUCTURE` (olr.data.demo_scene.spec).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from olr.data.demo_scene.arrays import distance_m, segment_distance
from olr.data.demo_scene.canvas import Canvas

_LAGOON_SIZES = (1.8, 1.0, 0.7, 0.6, 0.5, 0.45)  # relative semi-major axes, the largest first
#: (length m, width m) of the airports of towns 0..3 in the default scene; 0 = none.
_AIRPORTS = [(4500.0, 1400.0), (3000.0, 1000.0), (0.0, 0.0), (2000.0, 650.0)]


def draw_lagoons(c: Canvas) -> None:
    """Coastal lagoons (a salt-lake cluster) ringed by salt marsh; marsh on some low shores."""
    land, codes = c.land, c.codes
    for rel in _LAGOON_SIZES[: max(1, round(6 * c.area_scale))]:
        a = 1000.0 * rel * max(c.scale, 0.25)
        ok = land & (c.d_sea > 300 + 0.4 * a) & (c.d_sea < 1800) & (c.elev < 40)
        for lx, ly, la in c.lagoons:
            ok &= c.dist(lx, ly) > 1.25 * (la + a) + 300
        pref = -np.abs(c.u - 0.72) * 8 if not c.lagoons else -c.dist(c.lagoons[0][0], c.lagoons[0][1]) / 1500.0
        cx, cy = c.pick(ok, pref)
        c.lagoons.append((cx, cy, a))
        r = c.ellipse(cx, cy, a, a * c.rng.uniform(0.45, 0.6), c.rng.uniform(0, math.pi), c.wob)
        lagoon = land & (r < 1.0)
        ring = land & ~lagoon & (distance_m(lagoon, cap_m=600.0) <= 280.0 + 150.0 * c.wob)
        codes[ring & ~c.wet] = 421
        codes[lagoon] = 521
        c.wet |= lagoon | ring
    marsh_noise = c.patch(900.0)
    codes[land & (c.d_sea <= 300) & (c.elev < 25) & (marsh_noise > 1.0) & ~c.wet] = 421
    c.wet |= codes == 421


def draw_beaches(c: Canvas) -> None:
    """Beaches on the shoreline (not where marsh or lagoon is), wider where dunes are."""
    beachness = c.patch(1500.0)
    c.codes[c.land & (c.d_sea <= 150) & (beachness > -1.0) & ~c.wet] = 331
    c.codes[c.land & (c.d_sea <= 250) & (beachness > 0.8) & ~c.wet] = 331


def draw_reservoirs(c: Canvas) -> None:
    """Reservoirs in the mountain valleys, ringed by forest; both become `c.guarded`."""
    land, codes, rng = c.land, c.codes, c.rng
    taken = np.zeros(c.shape, bool)
    for _ in range(max(1, round(18 * c.area_scale))):
        ok = land & (c.elev > 550) & (c.elev < 1050) & (c.d_sea > 4500) & ~taken
        cx, cy = c.pick(ok)
        taken |= c.dist(cx, cy) < 2000 * max(c.scale, 0.3)
        a = rng.uniform(300, 650) * max(c.scale, 0.35)
        r = c.ellipse(cx, cy, a, a * rng.uniform(0.4, 0.65), rng.uniform(0, math.pi), 0.5 * c.wob)
        res = land & (r < 1.0)
        ring = land & ~res & (r < 1.0 + 260 / a) & ~np.isin(codes, [312, 313, 324])
        codes[ring] = np.where(c.elev > 700, 312, 324)[ring]
        codes[res] = 512
        c.guarded |= land & (r < 1.0 + 260 / a)


def draw_burnt_area(c: Canvas) -> None:
    """One burnt area in the coniferous forest."""
    ok = (c.codes == 312) & (c.elev < 1300)
    if not ok.any():
        return
    cx, cy = c.pick(ok)
    a = 900 * max(c.scale, 0.4)
    scar = c.ellipse(cx, cy, a, a * 0.6, c.rng.uniform(0, math.pi), 0.6 * c.wob) < 1.0
    burnt = scar & np.isin(c.codes, [312, 313, 324, 323]) & ~c.guarded
    c.codes[burnt] = 334


def draw_towns(c: Canvas) -> None:
    """A coastal city beside the lagoons and the inland towns, each with a dense core, parks
    inside, sport grounds and industry on the edge (and the port for the city)."""
    keep = np.isin(c.codes, [521, 421, 331, 512]) | c.guarded
    for k, (rel, ok, pref) in enumerate(_town_sites(c)):
        town, rr = _draw_town(c, rel * c.L, ok, pref, keep)
        _draw_town_edges(c, k, town, rr, keep)
    c.urban |= np.isin(c.codes, [121, 142])


def _town_sites(c: Canvas) -> list:
    """(radius as a share of L, where the town may stand, preference or None) per town, the city first."""
    land, d_sea, elev = c.land, c.d_sea, c.elev
    lag_x, lag_y, lag_a = c.lagoons[0]
    return [
        (
            0.095,
            land & (d_sea > 1200) & (d_sea < 3200) & (elev < 120),
            -np.abs(c.dist(lag_x, lag_y) - (0.095 * c.L + 1.5 * lag_a)) / 1000.0,
        ),
        (0.07, land & (d_sea >= 6000) & (elev < 220), None),
        (0.05, land & (elev > 120) & (elev < 450), None),
        (0.045, land & (d_sea > 2500) & (elev < 200), None),
        (0.04, land & (d_sea > 1500) & (elev < 350), None),
    ]


def _draw_town(c: Canvas, R: float, ok: np.ndarray, pref, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Place a town of radius R away from other towns and lagoons; paint its fabric (112) and
    core (111). Returns the town's cells and every cell's radius relative to the town's edge."""
    far = np.ones(c.shape, bool)
    for tx, ty, tr in c.feats.towns:
        far &= c.dist(tx, ty) > (tr + R) * 1.4
    for lx, ly, la in c.lagoons:
        far &= c.dist(lx, ly) > R + la + 300
    cx, cy = c.pick(ok & far, pref)
    c.feats.towns.append((cx, cy, R))
    rr = c.dist(cx, cy) / (R * (1 + 0.22 * c.patch(0.3 * R)))
    town = c.land & (rr < 1.0) & ~keep
    c.codes[town] = 112
    c.codes[town & (rr < 0.5)] = 111
    c.urban |= town
    return town, rr


def _draw_town_edges(c: Canvas, k: int, town: np.ndarray, rr: np.ndarray, keep: np.ndarray) -> None:
    """Parks inside town k, sport grounds and golf courses at its edge, industrial zones on its
    outskirts, and for the city (k = 0) the port on its shore."""
    land, codes, rng = c.land, c.codes, c.rng
    cx, cy, R = c.feats.towns[k]
    sz = max(c.scale, 0.5)
    for _ in range(max(1, round(R / 320))):  # parks inside
        px, py = c.pick(town & (rr > 0.2) & (rr < 0.85))
        codes[town & (c.dist(px, py) < rng.uniform(180, 320) * sz)] = 141
    for _ in range(3 + round(R / 800)):  # sport grounds and golf courses at the edge
        px, py = c.pick(land & (rr > 0.85) & (rr < 1.05))
        codes[land & (c.dist(px, py) < rng.uniform(220, 420) * sz) & ~keep & (codes != 111)] = 142
    for _ in range(4 if k == 0 else 3 if k == 1 else 2):  # industrial zones on the outskirts
        px, py = c.pick(land & (rr > 0.9) & (rr < 1.1) & (c.d_sea > 500))
        a = rng.uniform(450, 800) * sz
        zone = land & (c.ellipse(px, py, a, a * 0.6, rng.uniform(0, math.pi), 0.4 * c.wob) < 1.0)
        codes[zone & ~keep & (codes != 111)] = 121
    if k == 0:  # the port: on the city's shore
        px, py = c.pick(land & (c.d_sea <= 150) & ~np.isin(codes, [421, 521]), -c.dist(cx, cy) / 300.0)
        codes[(c.dist(px, py) < 500 * sz) & land & ~np.isin(codes, [421, 521])] = 123


def draw_airports(c: Canvas) -> None:
    """Airports adjoining the city, the second town and the fourth (an airfield): each rounded
    rectangle overlaps its town's edge, so it always touches urban cells."""
    for k, (length, width) in enumerate(_AIRPORTS):
        if length == 0 or (c.scale < 0.5 and k > 0):
            continue
        length, width = length * min(1.0, max(c.scale, 0.3)), width * min(1.0, max(c.scale, 0.3))
        ax, ay, rwy, box = _airport_site(c, c.feats.towns[k], length, width)
        box = box & c.land & ~np.isin(c.codes, [521, 421, 331, 123, 111])
        c.codes[box] = 124
        c.feats.airports.append((ax, ay, rwy, length, width))
        c.urban |= box


def _airport_site(c: Canvas, town: tuple[float, float, float], length: float, width: float):
    """(centre x, centre y, runway angle, cells) of the best of 48 sites around a town: the most
    free land, the least sea and the least overlap with the town, which it must touch."""
    tx, ty, tr = town
    land, codes = c.land, c.codes
    town_cells = np.isin(codes, [111, 112]) & (c.dist(tx, ty) < 1.6 * tr)
    best = None
    for angle in np.linspace(0, 2 * math.pi, 16, endpoint=False):
        for reach in (0.75, 0.95, 1.15):
            ax = tx + math.cos(angle) * (tr * reach + width / 2)
            ay = ty + math.sin(angle) * (tr * reach + width / 2)
            rwy = angle + math.pi / 2 + c.rng.uniform(-0.3, 0.3)
            box = c.ellipse(ax, ay, length / 2, width / 2, rwy, 0) ** 8 < 1.0  # a rounded rectangle
            overlap = (box & town_cells).sum()
            good = (box & land & ~np.isin(codes, [521, 421, 111, 512, 331, 124, 123])).sum()
            good -= 50 * (box & ~land).sum()
            good -= 3 * overlap + (10**6 if overlap == 0 else 0)
            if best is None or good > best[0]:
                best = (good, ax, ay, rwy, box)
    return best[1:]


def route_motorways(c: Canvas) -> np.ndarray:
    """Lay the motorway routes between the towns and out of the scene as jittered polylines
    (`c.feats.roads`); returns every cell's distance to them (m). Their corridors are drawn
    later (`draw_motorways`), after the villages, half of which grow along them."""
    for (x1, y1), (x2, y2) in _motorway_routes(c):
        pts = [(x1, y1)]
        for t in (0.33, 0.66):
            jitter = 0.04 * c.L
            jx, jy = c.rng.uniform(-jitter, jitter, size=2)
            pts.append((x1 + t * (x2 - x1) + jx, y1 + t * (y2 - y1) + jy))
        pts.append((x2, y2))
        c.feats.roads += [(p[0], p[1], q[0], q[1]) for p, q in itertools.pairwise(pts)]
    return segment_distance(c.xs, c.ys, c.feats.road_array())


def _motorway_routes(c: Canvas) -> list:
    """[(start, end), ...] in scene metres: the first three towns linked and leaving the scene,
    each later town joined to the nearest earlier one."""
    L = c.L
    centres = [(tx, ty) for tx, ty, _ in c.feats.towns]
    (ax_, ay_), (bx, by), (cx_, cy_) = centres[:3]
    routes = [
        [(ax_, ay_), (bx, by)],
        [(ax_, ay_), (cx_, cy_)],
        [(bx, by), (cx_, cy_)],
        [(ax_, ay_), (-0.05 * L, min(0.78 * L, ay_ + 0.05 * L))],
        [(bx, by), (bx + 0.1 * L, -0.05 * L)],
        [(ax_, ay_), (1.05 * L, ay_ - 0.25 * L)],
    ]
    for k in range(3, len(centres)):
        tx, ty = centres[k]
        routes.append([(tx, ty), min(centres[:k], key=lambda p: math.hypot(p[0] - tx, p[1] - ty))])
    return routes


def draw_villages(c: Canvas, d_road: np.ndarray) -> None:
    """Villages (112) ringed by complex cultivation (242), or by 243 on mountain slopes; every
    other one is drawn towards a motorway."""
    land, codes, rng = c.land, c.codes, c.rng
    taken = np.zeros(c.shape, bool)
    for tx, ty, tr in c.feats.towns:
        taken |= c.dist(tx, ty) < tr + 1500 * max(c.scale, 0.3)
    ring_noise = c.patch(350.0)
    for k in range(max(2, round(22 * c.area_scale))):
        ok = land & ~taken & (c.d_sea > 700) & (c.elev < 1250) & ~np.isin(codes, [512, 334, 124, 521, 421, 121])
        if not ok.any():
            break
        vx, vy = c.pick(ok, -d_road / 500.0 if k % 2 == 0 else None)
        taken |= c.dist(vx, vy) < 2300 * max(c.scale, 0.3)
        r_v = rng.uniform(230, 380) * max(c.scale, 0.5)
        c.feats.villages.append((vx, vy, r_v))
        rr = c.dist(vx, vy) * (1 + 0.25 * np.clip(ring_noise, -1.2, 2.0))
        ring = land & (rr < r_v + rng.uniform(550, 850) * max(c.scale, 0.5)) & ~c.guarded
        codes[ring & np.isin(codes, [211, 212, 221, 222, 223, 231, 243, 321]) & (c.elev < 700)] = 242
        codes[ring & np.isin(codes, [321, 323, 324]) & (c.elev >= 400) & (c.elev <= 1300)] = 243
        codes[land & (rr < r_v) & ~c.guarded & ~np.isin(codes, [124, 331, 421, 521, 123])] = 112
        c.urban |= land & (rr < r_v)


def draw_quarries(c: Canvas) -> None:
    """Quarries (131) in the foothills, away from towns and villages."""
    land, codes, rng = c.land, c.codes, c.rng
    for _ in range(max(1, round(5 * c.area_scale))):
        ok = land & (c.elev > 250) & (c.elev < 750) & ~c.urban & np.isin(codes, [323, 321, 243, 324, 223])
        if not ok.any():
            break
        qx, qy = c.pick(ok)
        a = rng.uniform(300, 480) * max(c.scale, 0.4)
        pit = c.ellipse(qx, qy, a, a * 0.7, rng.uniform(0, math.pi), 0.4 * c.wob) < 1.0
        q = land & pit & ~np.isin(codes, [112, 111, 124]) & ~c.guarded
        codes[q] = 131
        c.feats.quarries.append((qx, qy))


def draw_motorways(c: Canvas, d_road: np.ndarray) -> None:
    """Motorway corridors (122) over the routes; commercial zones (121) at junctions outside towns."""
    land, codes, rng = c.land, c.codes, c.rng
    road = land & (d_road < 72.0) & ~np.isin(codes, [111, 124, 123, 512, 521, 331, 421])
    codes[road] = 122
    near_town = np.zeros(c.shape, bool)
    for tx, ty, tr in c.feats.towns:
        near_town |= (c.dist(tx, ty) > tr) & (c.dist(tx, ty) < tr + 2500 * max(c.scale, 0.3))
    for _ in range(max(1, round(4 * c.area_scale))):
        px, py = c.pick(road & near_town & ~c.urban)
        a = rng.uniform(350, 600) * max(c.scale, 0.5)
        zone = land & (c.ellipse(px, py, a, a * 0.6, rng.uniform(0, math.pi), 0.4 * c.wob) < 1.0)
        codes[zone & ~np.isin(codes, [111, 112, 122, 124, 331, 421, 521, 512])] = 121

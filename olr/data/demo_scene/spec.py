"""What the demo scene is: its size limits, grids, dataset settings and planted land-cover structure.

`PLANTED_STRUCTURE` is the machine-readable contract between the land-cover generator
(`olr.data.demo_scene.land_cover`), docs/DEMO_SCENE.md and tests/test_demo_scene.py;
`planted_structure` restates it for a scene that draws some classes as others
(`olr.data.demo_scene.params.SceneParams.classes`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from olr.errors import OLRError

#: progress(done, total, message), called as work advances
Progress = Callable[[int, int, str], None]

DEMO_DATASET = "demo"
DEFAULT_SEED = 7
DEFAULT_SIZE_PX = 3584  # 56 x 56 tiles of 64 px = 3136 tiles, 35.84 km square
MIN_SIZE_PX = 256
MAX_SIZE_PX = 8192
PIXEL_M = 10.0
CELL_M = 100.0
IMAGE_CRS = "EPSG:32636"
LABEL_CRS = "EPSG:3035"
CENTER_LONLAT = (33.3, 35.0)  # between Nicosia and Larnaca, like the thesis's area
BAND_NAMES = ("red", "green", "blue", "nir")
NODATA_GRID = 48
#: Presence threshold of the demo dataset; see docs/DEMO_SCENE.md for the reasoning.
DEMO_MIN_FRACTION = 0.05
DEMO_TILE = 64
DEMO_SPLIT = (0.7, 0.15, 0.15)  # train, val, test
DEMO_SPLIT_BLOCK = 6  # tiles per side of a split block: 3.84 km
#: Side of a split block in metres; a scene with other tiles keeps it (48 px tiles: blocks of 8).
SPLIT_BLOCK_M = DEMO_SPLIT_BLOCK * DEMO_TILE * PIXEL_M
#: The CLC classes the generator draws (the land cover's rules name them); a scene may draw
#: some of them as other classes of their CORINE group (`SceneParams.classes`).
DEMO_CLASSES = (
    111, 112, 121, 122, 123, 124, 131, 141, 142,
    211, 212, 221, 222, 223, 231, 242, 243,
    312, 313, 321, 323, 324, 331, 332, 333, 334,
    421, 512, 521, 523,
)  # fmt: skip

# The rule-based mosaic of natural and agricultural classes: CLC code -> (most suitable
# elevation m, width m, weight, lowest m, highest m). A class is drawn only inside its band.
MOSAIC: dict[int, tuple[float, float, float, float, float]] = {
    211: (60, 260, 1.00, 0, 450),
    212: (10, 110, 0.62, 0, 250),
    222: (20, 130, 0.70, 0, 300),
    231: (220, 260, 0.62, 0, 700),
    223: (300, 150, 0.92, 80, 700),
    221: (560, 170, 0.92, 200, 1000),
    243: (380, 260, 0.70, 50, 1300),
    321: (500, 420, 0.56, 0, 1500),
    323: (560, 260, 0.90, 100, 1300),
    324: (820, 260, 0.84, 300, 1500),
    312: (1150, 320, 1.05, 500, 9000),
    313: (1050, 230, 0.70, 500, 1800),
    333: (1450, 180, 0.85, 1000, 9000),
    332: (1650, 160, 0.95, 1200, 9000),
}
MOUNTAIN_ONLY = (312, 313, 332, 333)
SHORE = (523, 331, 421, 521)
MOUNTAIN_MIN_SHORE_M = 3000.0

#: The planted land-cover structure, machine readable; docs/DEMO_SCENE.md explains it and
#: tests check every rule on the generated CORINE grid. Distances are metres between cell
#: centres of the 100 m grid. `near`: with scope "cell", every cell of `class` lies within
#: `within_m` of a cell of one of `of`; with scope "patch", every patch (8-connected) of
#: `class` does. `far`: no cell of `class` lies within `min_m` of a cell of `from`.
#: `elevation_m`: the band (lowest, highest) a class is drawn in.
PLANTED_STRUCTURE: dict = {
    "zones": {
        "coast": "sea (523) in the south and south-east; beaches (331) on the shoreline; a "
        "cluster of coastal lagoons (521) ringed by salt marsh (421), which also fringes low shores",
        "towns": "a coastal city beside the lagoons and three inland towns: a continuous urban "
        "core (111) inside discontinuous fabric (112), parks (141) inside, sport grounds and golf "
        "courses (142) and industrial zones (121) on the edge, airports (124) adjoining three "
        "of them, a small port (123) on the city's shore",
        "villages": "small discontinuous-urban patches (112) ringed by complex cultivation "
        "(242), or by agriculture with natural vegetation (243) on mountain slopes",
        "roads": "motorway corridors (122) linking the towns and leaving the scene, with "
        "commercial zones (121) at junctions near towns",
        "mountains": "a massif in the north-west: sclerophyllous vegetation (323) and "
        "transitional woodland-shrub (324) on the slopes, coniferous (312) and mixed forest "
        "(313) higher, sparse vegetation (333) and bare rock (332) on the summits; reservoirs "
        "(512) ringed by forest; one burnt area (334); a few quarries (131) in the foothills",
        "plain": "non-irrigated arable land (211) with pastures (231); irrigated land (212) and "
        "fruit orchards (222) near the coast; olive groves (223) and vineyards (221) on the "
        "foothill transition; agriculture with natural vegetation (243) and natural grassland (321)",
    },
    "near": [
        {"class": 331, "scope": "cell", "within_m": 300, "of": [523], "why": "beaches lie on the shoreline"},
        {
            "class": 421,
            "scope": "cell",
            "within_m": 500,
            "of": [523, 521],
            "why": "salt marshes fringe lagoons and low shores",
        },
        {"class": 521, "scope": "cell", "within_m": 4000, "of": [523], "why": "lagoons are coastal"},
        {
            "class": 124,
            "scope": "patch",
            "within_m": 150,
            "of": [111, 112, 121, 141, 142],
            "why": "each airport adjoins a town",
        },
        {
            "class": 121,
            "scope": "patch",
            "within_m": 150,
            "of": [111, 112, 122, 124, 141, 142],
            "why": "industry sits on a town's edge or at a motorway",
        },
        {
            "class": 141,
            "scope": "patch",
            "within_m": 150,
            "of": [111, 112, 121, 122, 124, 142],
            "why": "parks lie inside towns",
        },
        {
            "class": 142,
            "scope": "patch",
            "within_m": 150,
            "of": [111, 112, 121, 122, 124, 141],
            "why": "sport grounds sit at a town's edge",
        },
        {
            "class": 111,
            "scope": "patch",
            "within_m": 150,
            "of": [112],
            "why": "a dense core is surrounded by lower-density fabric",
        },
        {
            "class": 512,
            "scope": "patch",
            "within_m": 150,
            "of": [312, 313, 324],
            "why": "reservoirs lie inside the mountain forests",
        },
        {
            "class": 334,
            "scope": "patch",
            "within_m": 150,
            "of": [312, 313, 324],
            "why": "the burnt area is a scar in the forest",
        },
        {"class": 123, "scope": "patch", "within_m": 150, "of": [523], "why": "the port is on the sea"},
        {"class": 242, "scope": "patch", "within_m": 2000, "of": [112], "why": "complex cultivation rings villages"},
    ],
    "far": [
        {"class": c, "min_m": MOUNTAIN_MIN_SHORE_M, "from": list(SHORE), "why": "mountain classes never meet the coast"}
        for c in MOUNTAIN_ONLY
    ]
    + [{"class": 512, "min_m": 3000, "from": [523], "why": "reservoirs are inland"}],
    "elevation_m": {str(c): [lo, hi] for c, (_m, _w, _k, lo, hi) in MOSAIC.items()},
    "rare": {
        "123": "one small port: a handful of tiles",
        "131": "a few quarries: about 15 tiles",
        "334": "one burnt area: under 10 tiles",
    },
    "confusable_pairs": [
        [223, 222, "olive groves vs fruit orchards: both dot grids of tree crowns"],
        [323, 324, "sclerophyllous vegetation vs transitional woodland-shrub"],
        [321, 231, "natural grassland vs pastures"],
        [211, 242, "arable parcels vs complex cultivation"],
        [332, 333, "bare rock vs sparsely vegetated areas"],
        [111, 112, "continuous vs discontinuous urban fabric"],
    ],
}


def planted_structure(substitutions: dict[int, int]) -> dict:
    """`PLANTED_STRUCTURE` of a scene that draws each class `old` as `substitutions[old]`.

    The rules are the demo's with the codes replaced (the land cover is drawn with the demo's
    classes, then relabelled, so every rule still holds); `zones` keeps its words and says
    which code a class is drawn as; a confusable pair with a substituted class is left out:
    it was confusable by the demo class's look, and a substitute has a look of its own.
    """
    if not substitutions:
        return PLANTED_STRUCTURE

    def new(code: int) -> int:
        return substitutions.get(code, code)

    def zone(text: str) -> str:
        return re.sub(
            r"\((\d{3})\)",
            lambda m: f"({m[1]}, drawn as {substitutions[int(m[1])]})" if int(m[1]) in substitutions else m[0],
            text,
        )

    s = PLANTED_STRUCTURE
    return {
        "zones": {k: zone(v) for k, v in s["zones"].items()},
        "near": [{**r, "class": new(r["class"]), "of": [new(c) for c in r["of"]]} for r in s["near"]],
        "far": [{**r, "class": new(r["class"]), "from": [new(c) for c in r["from"]]} for r in s["far"]],
        "elevation_m": {str(new(int(c))): band for c, band in s["elevation_m"].items()},
        "rare": {str(new(int(c))): why for c, why in s["rare"].items()},
        "confusable_pairs": [p for p in s["confusable_pairs"] if not {p[0], p[1]} & set(substitutions)],
    }


def check_params(seed, size_px) -> tuple[int, int]:
    """(seed, size_px) as ints, or OLRError when either is not a whole number in range."""
    try:
        seed_i, size_i = int(seed), int(size_px)
    except (TypeError, ValueError):
        raise OLRError(f"The demo scene needs whole numbers for seed and size (got {seed!r}, {size_px!r}).") from None
    if seed_i < 0 or seed_i >= 2**31:
        raise OLRError(f"The demo scene seed {seed_i} is out of range; use a number from 0 to 2147483647.")
    if size_i < MIN_SIZE_PX or size_i > MAX_SIZE_PX:
        raise OLRError(f"The demo scene size {size_i} px is out of range; use {MIN_SIZE_PX} to {MAX_SIZE_PX} px.")
    return seed_i, size_i

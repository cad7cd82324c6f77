"""What one synthetic scene is made of: `SceneParams`, every `demo-data` scene option declared once.

A scene is the demo's generator run with a seed, a size, a tile size, an image CRS and
optionally some classes drawn as others (`classes`: the land cover is drawn with the
demo's classes, then each substituted class is relabelled and rendered with its own look,
so the planted co-occurrence structure carries over). `SceneParams()` is the demo scene;
`SECOND_SCENE` the documented second scene of the generalisation check (docs/DEMO_SCENE.md).
`check()` turns what a user gave into a checked, complete SceneParams or one OLRError sentence;
the `demo-data` flags are made from the fields' metadata (`olr.data.demo_scene.command`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from olr.data import label_schemes
from olr.data.demo_scene.materials import RECIPES
from olr.data.demo_scene.spec import (
    CENTER_LONLAT,
    DEFAULT_SEED,
    DEFAULT_SIZE_PX,
    DEMO_CLASSES,
    DEMO_TILE,
    IMAGE_CRS,
    PIXEL_M,
    SPLIT_BLOCK_M,
    check_params,
)
from olr.errors import OLRError

MIN_TILE, MAX_TILE = 16, 256
MIN_TILES_A_SIDE = 4
#: How far a pixel's ground size may be from 10 m at the scene's centre in the image CRS.
MAX_SCALE_ERROR = 0.01
_WGS84_A, _WGS84_E2 = 6378137.0, 0.00669437999014


def _option(flag: str, metavar: str, help: str, parse=int) -> dict:
    """A field's metadata: its `demo-data` flag, the flag's value as help shows it, help and how the text is read."""
    return {"flag": flag, "metavar": metavar, "help": help, "parse": parse}


@dataclass(frozen=True)
class SceneParams:
    """One synthetic scene; the defaults are the demo scene. `check()` before use."""

    seed: int = field(
        default=DEFAULT_SEED, metadata=_option("--seed", "N", f"random seed of the scene (default {DEFAULT_SEED})")
    )
    size_px: int | None = field(
        default=None,
        metadata=_option(
            "--size",
            "PX",
            "scene side in 10 m pixels, a whole number of tiles "
            f"(default: the most whole tiles within {DEFAULT_SIZE_PX}, i.e. {DEFAULT_SIZE_PX} for 64 px tiles)",
        ),
    )
    tile: int = field(
        default=DEMO_TILE,
        metadata=_option(
            "--tile",
            "PX",
            f"tile side in pixels of the prepared dataset, {MIN_TILE} to {MAX_TILE} (default {DEMO_TILE})",
        ),
    )
    image_crs: str = field(
        default=IMAGE_CRS,
        metadata=_option(
            "--image-crs",
            "CRS",
            f"projected CRS of the 10 m image, one made for the scene's area (default {IMAGE_CRS}; "
            "e.g. EPSG:6312, Cyprus's national grid)",
            str,
        ),
    )
    classes: tuple[tuple[int, int], ...] = field(
        default=(),
        metadata=_option(
            "--classes",
            "OLD=NEW,...",
            "demo classes drawn as other CLC classes of their group, e.g. 323=322,313=311 "
            f"(available: {', '.join(str(c) for c in sorted(set(RECIPES) - set(DEMO_CLASSES)))})",
            str,
        ),
    )

    def check(self) -> SceneParams:
        """This scene checked and complete (size resolved, CRS and classes normalised), or OLRError."""
        seed, _ = check_params(self.seed, DEFAULT_SIZE_PX)
        tile = _check_tile(self.tile)
        size = _check_size(self.size_px, tile)
        return SceneParams(seed, size, tile, _check_image_crs(self.image_crs), _check_classes(self.classes))

    @property
    def substitutions(self) -> dict[int, int]:
        """{demo class: the CLC code this scene draws it as}."""
        return dict(self.classes)

    @property
    def split_block(self) -> int:
        """Tiles a side of a spatial split block: SPLIT_BLOCK_M (3.84 km) in whole tiles."""
        return max(1, round(SPLIT_BLOCK_M / (self.tile * PIXEL_M)))

    def scene_classes(self) -> tuple[int, ...]:
        """The CLC codes this scene can hold, sorted."""
        return tuple(sorted(self.substitutions.get(c, c) for c in DEMO_CLASSES))

    @classmethod
    def from_scene(cls, scene: dict) -> SceneParams:
        """The parameters a scene.json records (one written before tiles and classes were options: the demo's)."""
        return cls(
            seed=scene["seed"],
            size_px=scene["size_px"],
            tile=scene.get("tile", DEMO_TILE),
            image_crs=scene["image"]["crs"],
            classes=tuple((int(k), int(v)) for k, v in scene.get("substitutions", {}).items()),
        )


#: The second scene of the generalisation check: another seed, 48 px tiles, the image in
#: Cyprus's national grid, and five classes drawn as others (irrigated land as rice fields,
#: olive groves as agro-forestry, mixed as broad-leaved forest, sclerophyllous vegetation as
#: heathland, salt marsh as intertidal flats). docs/DEMO_SCENE.md gives its command.
SECOND_SCENE = SceneParams(
    seed=11,
    tile=48,
    image_crs="EPSG:6312",
    classes=((212, 213), (223, 244), (313, 311), (323, 322), (421, 423)),
)


def default_size(tile: int) -> int:
    """The most whole tiles within DEFAULT_SIZE_PX, in pixels (3584 for 64 px tiles)."""
    return DEFAULT_SIZE_PX // tile * tile


def _check_tile(tile) -> int:
    number = label_schemes.whole_number(tile)
    if number is None or not MIN_TILE <= number <= MAX_TILE:
        raise OLRError(
            f"The tile size {tile!r} is not a whole number of pixels from {MIN_TILE} to {MAX_TILE}; use e.g. 48."
        )
    return number


def _check_size(size_px, tile: int) -> int:
    size = default_size(tile) if size_px is None else check_params(DEFAULT_SEED, size_px)[1]
    if size % tile:
        below, above = size // tile * tile, (size // tile + 1) * tile
        raise OLRError(
            f"The scene size {size} px is not a whole number of {tile} px tiles; use --size {below} or {above}."
        )
    if size // tile < MIN_TILES_A_SIDE:
        raise OLRError(
            f"A {size} px scene holds only {size // tile} tiles of {tile} px a side; use a smaller tile or at "
            f"least --size {MIN_TILES_A_SIDE * tile}."
        )
    return size


def _check_image_crs(value) -> str:
    """The image CRS as 'EPSG:n' (or WKT without an EPSG code), if its 10 m are 10 m at the scene's centre."""
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        crs = CRS.from_user_input(value)
    except (CRSError, TypeError, ValueError):
        raise OLRError(
            f"The image CRS {value!r} is not a CRS PROJ knows; give an EPSG code such as EPSG:32636."
        ) from None
    if not crs.is_projected or crs.linear_units not in ("metre", "meter"):
        raise OLRError(
            f"The image CRS {value} is not a projected CRS in metres; give one such as EPSG:32636 or EPSG:3035."
        )
    scale = _ground_scale(crs)
    lon, lat = CENTER_LONLAT
    if math.isnan(scale):
        raise OLRError(f"The scene's centre ({lon} E, {lat} N) lies outside {value}; choose a CRS for that area.")
    if abs(scale - 1.0) > MAX_SCALE_ERROR:
        raise OLRError(
            f"In {value} a 10 m pixel at the scene's centre ({lon} E, {lat} N) is {10 * scale:.1f} m on the ground; "
            "choose a CRS made for that area, such as EPSG:32636 or EPSG:6312."
        )
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def _ground_scale(crs) -> float:
    """Ground metres per CRS metre at the scene's centre, the worse of east and north (1 = true scale; nan if
    the centre is outside the CRS). Local radii of the WGS84 ellipsoid; exact to well below a per mille."""
    from rasterio.warp import transform

    lon, lat = CENTER_LONLAT
    try:
        (x,), (y,) = transform("EPSG:4326", crs, [lon], [lat])
        lons, lats = transform(crs, "EPSG:4326", [x + 1000.0, x], [y, y + 1000.0])
    except Exception:
        return math.nan
    phi = math.radians(lat)
    w = 1.0 - _WGS84_E2 * math.sin(phi) ** 2
    east_r = _WGS84_A / math.sqrt(w) * math.cos(phi)  # metres per radian of longitude
    north_r = _WGS84_A * (1.0 - _WGS84_E2) / w**1.5  # metres per radian of latitude
    scales = [
        math.hypot(math.radians(lo - lon) * east_r, math.radians(la - lat) * north_r) / 1000.0
        for lo, la in zip(lons, lats)
    ]
    return max(scales, key=lambda s: abs(s - 1.0))


def _check_classes(value) -> tuple[tuple[int, int], ...]:
    """Substitutions as sorted (demo class, new class) pairs; from 'A=B,C=D', a dict or pairs."""
    pairs = _parse_classes(value)
    names = label_schemes.by_code()
    drawable = sorted(set(RECIPES) - set(DEMO_CLASSES))
    if len({old for old, _ in pairs}) < len(pairs) or len({new for _, new in pairs}) < len(pairs):
        raise OLRError("A class is substituted twice, or two classes become one; give each class its own new code.")
    for old, new in pairs:
        if old not in DEMO_CLASSES:
            known = ", ".join(str(c) for c in DEMO_CLASSES)
            raise OLRError(f"The demo scene has no class {old} to substitute; choose one of its classes ({known}).")
        if new not in names:
            raise OLRError(f"{new} is not a CORINE Land Cover code; draw {old} as one of {_listed(drawable, names)}.")
        if new in DEMO_CLASSES:
            raise OLRError(
                f"{new} ({names[new].level3}) is already a class of the scene; draw {old} as a code it lacks."
            )
        if new not in RECIPES:
            raise OLRError(
                f"The generator has no look for {new} ({names[new].level3}); draw {old} as one of "
                f"{_listed(drawable, names)}."
            )
        if new // 100 != old // 100:
            same = [c for c in drawable if c // 100 == old // 100] or ["none"]
            raise OLRError(
                f"{old} ({names[old].level3}) can only become a class of its CORINE group {old // 100}xx "
                f"(available: {', '.join(str(c) for c in same)}), not {new}."
            )
    return tuple(sorted(pairs))


def _parse_classes(value) -> list[tuple[int, int]]:
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, str):
        items = [
            part.split("=", 1) if "=" in part else (part, None) for part in value.replace(" ", "").split(",") if part
        ]
    else:
        items = list(value)
    pairs = []
    for item in items:
        try:
            old, new = item
            pairs.append((_whole(old), _whole(new)))
        except (TypeError, ValueError):
            raise OLRError(
                f"The class substitution {item!r} is not DEMO_CODE=NEW_CODE; write e.g. --classes 323=322,313=311."
            ) from None
    return pairs


def _whole(value) -> int:
    number = label_schemes.whole_number(value)
    if number is None:
        raise ValueError(value)
    return number


def _listed(codes, names) -> str:
    return ", ".join(f"{c} ({names[c].level3})" for c in codes)

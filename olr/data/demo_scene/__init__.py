"""The synthetic demo scene: a Cyprus-like landscape, its CORINE map and a 4-band image.

`generate_scene` writes, deterministically from its `SceneParams` (seed, size, tile, image CRS,
classes; the defaults are the demo's), `clc.tif` (CORINE grid codes, EPSG:3035, 100 m),
`image.tif` (4-band uint16, 10 m, EPSG:32636 for the demo) and `scene.json`.
The land cover is drawn by rules on smooth random fields (elevation, moisture, patch noise)
plus planted features (towns, villages, roads, airports, reservoirs, lagoons); the image is
rendered from it by linear mixing of material spectra with class-specific 10 m textures,
hillshade, haze, blur and sensor noise. `ensure_demo_dataset` turns the scene into the
prepared dataset `data/demo` (CLI: `python -m olr demo-data`; another `--name` and scene
flags make another scene, e.g. `SECOND_SCENE`). See docs/DEMO_SCENE.md.

The stages, in the order they run:

- `spec`         the scene's constants and `PLANTED_STRUCTURE`, the rules tests check;
- `params`       `SceneParams`, what one scene is made of (the `demo-data` scene options);
- `terrain`      the grids (image, label, field) and the smooth fields on them;
- `land_cover`   the rule-based mosaic, then the planted features (`planted`, on a
                 `canvas.Canvas`), then the structure rules enforced;
- `render`       the 10 m image from the land cover, with `materials` (spectra, textures);
- `scene_files`  the GeoTIFFs and scene.json; `demo_dataset` the prepared dataset;
  `command` the `demo-data` command.
"""

from olr.data.demo_scene.demo_dataset import ensure_demo_dataset, split_seed, tile_presence
from olr.data.demo_scene.land_cover import build_land_cover
from olr.data.demo_scene.params import SECOND_SCENE, SceneParams
from olr.data.demo_scene.scene_files import demo_scene_dir, generate_scene
from olr.data.demo_scene.spec import (
    BAND_NAMES,
    CELL_M,
    DEFAULT_SEED,
    DEFAULT_SIZE_PX,
    DEMO_CLASSES,
    DEMO_DATASET,
    DEMO_MIN_FRACTION,
    DEMO_SPLIT,
    DEMO_SPLIT_BLOCK,
    DEMO_TILE,
    IMAGE_CRS,
    LABEL_CRS,
    MAX_SIZE_PX,
    MIN_SIZE_PX,
    NODATA_GRID,
    PIXEL_M,
    PLANTED_STRUCTURE,
)

__all__ = [
    "BAND_NAMES",
    "CELL_M",
    "DEFAULT_SEED",
    "DEFAULT_SIZE_PX",
    "DEMO_CLASSES",
    "DEMO_DATASET",
    "DEMO_MIN_FRACTION",
    "DEMO_SPLIT",
    "DEMO_SPLIT_BLOCK",
    "DEMO_TILE",
    "IMAGE_CRS",
    "LABEL_CRS",
    "MAX_SIZE_PX",
    "MIN_SIZE_PX",
    "NODATA_GRID",
    "PIXEL_M",
    "PLANTED_STRUCTURE",
    "SECOND_SCENE",
    "SceneParams",
    "build_land_cover",
    "demo_scene_dir",
    "ensure_demo_dataset",
    "generate_scene",
    "split_seed",
    "tile_presence",
]

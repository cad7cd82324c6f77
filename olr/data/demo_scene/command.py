"""`python -m olr demo-data`: generate the demo scene, prepare the demo dataset, print its label frequencies.

`--name NAME --seed N` makes another scene of the same generator as its own dataset `NAME` (the
demo stays as it is), e.g. a scene the demo recipe was not tuned on; the scene flags (`--seed`,
`--size`, `--tile`, `--image-crs`, `--classes`) are made from `SceneParams`'s fields. The
second scene of the generalisation check (`params.SECOND_SCENE`, docs/DEMO_SCENE.md):
`python -m olr demo-data --name scene2 --seed 11 --tile 48 --image-crs EPSG:6312
--classes 212=213,223=244,313=311,323=322,421=423`.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from olr.data import label_schemes
from olr.data.dataset import load_dataset
from olr.data.demo_scene.demo_dataset import ensure_demo_dataset, scene_dir_for
from olr.data.demo_scene.params import SceneParams
from olr.data.demo_scene.scene_files import scene_complete
from olr.data.demo_scene.spec import DEMO_DATASET


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(SceneParams):
        option = f.metadata
        parser.add_argument(
            option["flag"],
            dest=f.name,
            type=option["parse"],
            default=None,
            metavar=option["metavar"],
            help=option["help"],
        )
    parser.add_argument("--force", action="store_true", help="regenerate the scene and the dataset even if they exist")
    parser.add_argument(
        "--name",
        default=DEMO_DATASET,
        help=f"dataset name (default {DEMO_DATASET}); another name makes a second scene, which needs its own --seed",
    )


def demo_data_command(args: argparse.Namespace) -> int:

    last = [0.0, ""]

    def progress(done: int, total: int, message: str) -> None:
        now = time.monotonic()
        if message != last[1] or now - last[0] > 2.0 or done >= total:
            print(f"  {message}: {done}/{total}", flush=True)
            last[0], last[1] = now, message

    start = time.monotonic()
    requested = {f.name: getattr(args, f.name) for f in dataclasses.fields(SceneParams)}
    path = ensure_demo_dataset(progress, force=args.force, name=args.name, **requested)
    ds = load_dataset(path)
    scene = scene_complete(scene_dir_for(args.name)) or {}
    print(f"{'demo' if args.name == DEMO_DATASET else 'demo-like'} dataset: {path} ({time.monotonic() - start:.1f} s)")
    print(
        f"scene: seed {scene.get('seed')}, {scene.get('size_px')} x {scene.get('size_px')} px at 10 m (synthetic), "
        f"image CRS {scene.get('image', {}).get('crs')}, tiles of {ds.tile_shape[0]} px"
    )
    names = label_schemes.by_code()
    for old, new in scene.get("substitutions", {}).items():
        print(f"  drawn as another class: {old} {names[int(old)].level3} -> {new} {names[new].level3}")
    counts = np.asarray(ds.presence, dtype=np.int64).sum(axis=0)
    splits = ", ".join(f"{k} {v}" for k, v in ds.meta.get("split_counts", {}).items())
    print(f"tiles: {ds.n_tiles} ({splits}), labels: {len(ds.label_names)}")
    print("label frequencies (tiles with the label present):")
    for i in np.argsort(-counts):
        if counts[i] > 0:
            print(f"  {counts[i]:6d}  {100.0 * counts[i] / max(ds.n_tiles, 1):5.1f}%  {ds.label_names[i]}")
    return 0

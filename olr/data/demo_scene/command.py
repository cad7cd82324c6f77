"""`python -m olr demo-data`: generate the demo scene, prepare the demo dataset, print its label frequencies.

`--name NAME --seed N` makes another scene of the same generator as its own dataset `NAME` (the
demo stays as it is), e.g. a scene the demo recipe was not tuned on:
`python -m olr demo-data --name scene11 --seed 11`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from olr.data.dataset import load_dataset
from olr.data.demo_scene.demo_dataset import ensure_demo_dataset, scene_dir_for
from olr.data.demo_scene.scene_files import scene_complete
from olr.data.demo_scene.spec import DEFAULT_SEED, DEFAULT_SIZE_PX, DEMO_DATASET


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=None, help=f"random seed of the scene (default {DEFAULT_SEED})")
    parser.add_argument("--size", type=int, default=None, help=f"scene size in 10 m pixels (default {DEFAULT_SIZE_PX})")
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
    path = ensure_demo_dataset(progress, seed=args.seed, size_px=args.size, force=args.force, name=args.name)
    ds = load_dataset(path)
    scene = scene_complete(scene_dir_for(args.name)) or {}
    print(f"{'demo' if args.name == DEMO_DATASET else 'demo-like'} dataset: {path} ({time.monotonic() - start:.1f} s)")
    print(f"scene: seed {scene.get('seed')}, {scene.get('size_px')} x {scene.get('size_px')} px at 10 m (synthetic)")
    counts = np.asarray(ds.presence, dtype=np.int64).sum(axis=0)
    splits = ", ".join(f"{k} {v}" for k, v in ds.meta.get("split_counts", {}).items())
    print(f"tiles: {ds.n_tiles} ({splits}), labels: {len(ds.label_names)}")
    print("label frequencies (tiles with the label present):")
    for i in np.argsort(-counts):
        if counts[i] > 0:
            print(f"  {counts[i]:6d}  {100.0 * counts[i] / max(ds.n_tiles, 1):5.1f}%  {ds.label_names[i]}")
    return 0

"""`bench prepare-scenes`: a dataset of several scenes prepared in parallel against one scene after another.

Generates (once, cached in the work folder) `bench prepare`'s scene (`olr.workflows.bench.make_scene`: a
4-band uint16 GeoTIFF in EPSG:32636 over CORINE grid codes in EPSG:3035) and prepares `--scenes` copies of
it as one dataset (`olr.data.scenes.prepare_scenes`), timed the same way in the same run twice per round: on
a local Dask cluster of one worker per scene (at most one per CPU) and on a cluster of one worker, which
tiles the scenes one after another. Both times hold the whole call: starting the cluster, tiling, merging.
The rounds alternate the two, so load from elsewhere hits both alike; the median, min and max are printed,
and the ratio of the medians (the ideal is the number of workers; merging and starting the cluster do not
run in parallel).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from olr.errors import OLRError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "time preparing several scenes in parallel (Dask) against one after another"
    parser.add_argument("--scenes", type=int, default=4, help="scenes in the dataset (default 4)")
    parser.add_argument("--size", type=int, default=3000, help="side of each scene in pixels (default 3000)")
    parser.add_argument("--tile", type=int, default=64, help="tile size in pixels (default 64)")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds of (parallel, one after another)")
    parser.add_argument(
        "--workdir", default=None, help="folder for the generated scene (kept and reused) and the output"
    )


def run(args: argparse.Namespace, make_scene) -> int:
    """The benchmark; `make_scene(workdir, size) -> (image, labels)` is `bench prepare`'s scene maker."""
    from olr.data.dataset import load_dataset
    from olr.data.scenes import SceneSource, prepare_scenes

    if args.scenes < 2 or args.repeat < 1 or args.size < args.tile:
        raise OLRError(
            f"--scenes {args.scenes}, --repeat {args.repeat} and --size {args.size} must be at least 2, 1 and the "
            f"tile ({args.tile}); give larger values."
        )
    cleanup = None if args.workdir else tempfile.TemporaryDirectory(prefix="olr_bench_scenes_")
    workdir = Path(args.workdir or cleanup.name)
    parallel_workers = max(1, min(args.scenes, os.cpu_count() or 1))
    try:
        image, labels = make_scene(workdir, args.size)
        scenes = [SceneSource(f"scene{k + 1}", image, labels) for k in range(args.scenes)]
        out = workdir / "prepared_scenes"
        times: dict[int, list[float]] = {parallel_workers: [], 1: []}
        for _ in range(args.repeat):
            for workers in times:
                start = time.perf_counter()
                # make_scene's labels are grid codes
                prepare_scenes(scenes, out, workers=workers, tile=args.tile, label_encoding="grid", overwrite=True)
                times[workers].append(time.perf_counter() - start)
        ds = load_dataset(out)
        tiles, scene_names = ds.n_tiles, ds.scene_names
    finally:
        if cleanup is not None:
            cleanup.cleanup()
    parallel, serial = (statistics.median(times[w]) for w in (parallel_workers, 1))
    runs = lambda ts: ", ".join(f"{t:.2f}" for t in ts)  # noqa: E731
    spread = lambda ts: f"min {min(ts):.2f}, max {max(ts):.2f}"  # noqa: E731
    print(
        f"scenes: {len(scene_names)} x {args.size} x {args.size} px x 4 bands uint16, tile {args.tile}, {tiles} tiles "
        f"in the dataset; {os.cpu_count()} CPUs; {args.repeat} round(s), medians compared"
    )
    for title, ts in (
        (f"parallel ({parallel_workers} workers)", times[parallel_workers]),
        ("one after another", times[1]),
    ):
        print(f"{title + ':':31s} {statistics.median(ts):8.2f} s   [{runs(ts)}; {spread(ts)}]")
    ratios = [s / p for s, p in zip(times[1], times[parallel_workers], strict=True)]
    print(
        f"ratio one after another / parallel: {serial / parallel:6.2f}   (ideal {parallel_workers}; per round "
        f"{', '.join(f'{r:.2f}' for r in ratios)})"
    )
    return 0

"""`python -m olr prepare`: one scene (`olr.data.prepare.prepare_dataset`) or several (`olr.data.scenes`).

The command sits above both modules (the scenes' module builds on the one-scene preparer), so neither
imports the other for it.
"""

from __future__ import annotations

import argparse

from olr.data import prepare_options, scenes
from olr.data.dataset import load_dataset
from olr.data.prepare import cli_progress, output_folder, prepare_dataset
from olr.data.prepare_options import PrepareOptions
from olr.data.thin_data import print_warnings
from olr.errors import OLRError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--image",
        nargs="+",
        help="image raster (GeoTIFF, any CRS, 1..N bands), or several band files (e.g. Sentinel-2's at 10, 20 and "
        "60 m) stacked onto one grid (see --grid); with --labels, for a dataset of one scene",
    )
    parser.add_argument("--labels", help="CORINE raster (grid or CLC codes) or vector with Code_18")
    parser.add_argument(
        "--scenes",
        metavar="LIST_OR_FOLDER",
        help=f"instead of --image and --labels, several scenes into one dataset with a scene column: a list file "
        f"({scenes.LIST_RULE}), or a folder where {scenes.FOLDER_RULE}; the scenes are tiled in parallel by Dask",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="with --scenes: local Dask worker processes, one thread each (default: one per scene, at most one per "
        "CPU)",
    )
    parser.add_argument(
        "--worker-memory",
        default=scenes.DEFAULT_WORKER_MEMORY,
        help=f"with --scenes: memory limit of each local worker, past which Dask restarts it "
        f"(default {scenes.DEFAULT_WORKER_MEMORY})",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --scenes: the address of an existing Dask cluster's scheduler (e.g. tcp://host:8786) instead of "
        "a local cluster; its workers must see the output folder at the same path",
    )
    parser.add_argument("--out", required=True, metavar="data/NAME", help="dataset folder in the workspace")
    prepare_options.add_flags(parser)


def prepare_command(args: argparse.Namespace) -> int:
    out = output_folder(args.out)
    options = PrepareOptions.from_args(args)
    if args.scenes and (args.image or args.labels):
        raise OLRError("Give either --scenes or --image with --labels, not both; --scenes names each scene's files.")
    if args.scenes:
        path = scenes.prepare_scenes(
            scenes.read_scene_list(args.scenes),
            out,
            options,
            workers=args.workers,
            scheduler=args.scheduler,
            worker_memory=args.worker_memory,
            progress=scenes.cli_progress(),
        )
    elif args.image and args.labels:
        path = prepare_dataset(args.image, args.labels, out, options, progress=cli_progress())
    else:
        raise OLRError(
            "Give the image and its labels (--image and --labels), or several scenes (--scenes LIST_OR_FOLDER)."
        )
    ds = load_dataset(path)
    in_scenes = f" in {len(ds.scene_names)} scenes" if ds.scene_names else ""
    print(
        f"prepared {path}: {ds.n_tiles} tiles of {ds.tile_shape}{in_scenes}, {len(ds.meta['labels'])} labels, "
        f"split {ds.meta['split_counts']}, dropped {ds.meta['dropped']}"
    )
    print_warnings(ds.meta)
    return 0

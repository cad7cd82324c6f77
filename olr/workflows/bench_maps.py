"""The tile map benchmark (CLI `bench maps`): how long the map of a 500,000-tile dataset takes to build as
one image (`olr.analysis.tile_images`) next to the GeoJSON polygons the maps drew before, on a synthetic
grid (`olr.analysis.map_timing`). Target: the image in under 2 s, so the map opens in under 2 s (the
page sends it and the browser draws one image; the Datasets page caches it per dataset, label and split).

Prints per step the median and the range over the repetitions; `--json PATH` also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from olr.errors import OLRError

#: seconds the image of 500,000 tiles may take to build
TARGET_S = 2.0
TOTAL_STEP = "image (tile_image, colours included)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tiles", type=int, default=500_000, help="tiles of the synthetic grid (default 500000)")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions of every timing (default 5)")
    parser.add_argument(
        "--geojson-tiles",
        type=int,
        default=20_000,
        help="tiles the polygons are built for, extrapolated to --tiles (default 20000)",
    )
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")


def run(args: argparse.Namespace) -> int:
    from olr.analysis.map_timing import map_image_timing

    if args.tiles < 1 or args.repeats < 1 or args.geojson_tiles < 1:
        raise OLRError("--tiles, --repeats and --geojson-tiles must each be at least 1.")
    figures = map_image_timing(args.tiles, args.repeats, args.geojson_tiles)
    image, polygons = figures["image"], figures["polygons"]
    rows, cols = figures["grid"]
    print(
        f"{figures['n_tiles']:,} tiles on a {rows} x {cols} grid (UTM 36N), {figures['repeats']} repetitions; "
        f"median [min - max] seconds"
    )
    width = max(map(len, figures["seconds"]))
    for name, values in figures["seconds"].items():
        print(f"  {name:<{width}}  {statistics.median(values):8.3f}  [{min(values):.3f} - {max(values):.3f}]")
    print(
        f"image: {image['width']} x {image['height']} px ({image['oversample']} px per tile side), PNG "
        f"{image['png_bytes'] / 1e6:.2f} MB, {image['data_url_chars'] / 1e6:.2f} M characters as a data URL"
    )
    print(
        f"polygons: {polygons['json_chars'] / 1e6:.2f} M characters of JSON for {figures['geojson_tiles']:,} tiles, "
        f"{polygons['json_chars_extrapolated'] / 1e6:.0f} M extrapolated to {figures['n_tiles']:,}"
    )
    median = statistics.median(figures["seconds"][TOTAL_STEP])
    print(f"target: the image in < {TARGET_S:g} s: {median:.3f} s {'OK' if median < TARGET_S else 'MISSED'}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1), encoding="utf-8")
    return 0

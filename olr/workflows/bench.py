"""Benchmarks (CLI `bench prepare|prepare-scenes|classifier|siamese|backends|maps|map-open|pages`), each against a
baseline or target in the same run.

`bench prepare` generates (once, cached in the work folder) a large scene: a 4-band uint16
tiled, compressed GeoTIFF in EPSG:32636 at 10 m and a CORINE grid-code raster in
EPSG:3035 at 100 m, both written window by window. It then times, each in a fresh child
process, (a) a plain read of the image by the same windows `prepare` uses (the I/O floor)
and (b) `prepare_dataset` on it, and reports the ratio, the peak resident memory of the
preparing process and tiles per second. Targets: prepare <= 2x the read, peak < 1.5 GB.

`bench classifier` / `bench siamese` / `bench backends` are implemented in `olr.workflows.bench_training`,
`bench maps` in `olr.workflows.bench_maps`, `bench prepare-scenes` in `olr.workflows.bench_scenes`, `bench pages`
and `bench map-open` by the app's `ui.page_times` and `ui.map_open_times` (run as child processes); each is
imported only when it runs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from olr.data.prepare_options import PrepareOptions

BENCHMARKS = ("prepare", "prepare-scenes", "classifier", "siamese", "backends", "maps", "map-open", "pages")
#: the benchmarks the app's package runs (the library does not import Streamlit): name -> module
APP_BENCHMARKS = {"pages": "ui.page_times", "map-open": "ui.map_open_times"}
TARGET_RATIO = 2.0
TARGET_PEAK_MB = 1536.0
SCENE_VERSION = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("benchmark", choices=BENCHMARKS, help="which benchmark to run")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="options of that benchmark (see BENCHMARK --help)")


def add_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=12000, help="scene side in pixels (default 12000)")
    parser.add_argument(
        "--tile", type=int, default=PrepareOptions.tile, help=f"tile size in pixels (default {PrepareOptions.tile})"
    )
    parser.add_argument(
        "--workdir",
        default=None,
        help="folder for the generated scene (kept and reused) and the output; default: a temp folder",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="timed rounds of (read, prepare); the fastest of each is compared (default 1)",
    )


def bench_command(args: argparse.Namespace) -> int:
    prog = f"python -m olr bench {args.benchmark}"
    if args.benchmark in APP_BENCHMARKS:
        return bench_in_app(APP_BENCHMARKS[args.benchmark], args.options)
    parser = argparse.ArgumentParser(prog=prog)
    if args.benchmark == "prepare":
        parser.description = "time prepare_dataset against a plain windowed read"
        add_prepare_arguments(parser)
        return bench_prepare(parser.parse_args(args.options))
    if args.benchmark == "prepare-scenes":
        from olr.workflows import bench_scenes

        bench_scenes.add_arguments(parser)
        return bench_scenes.run(parser.parse_args(args.options), make_scene)
    if args.benchmark == "maps":
        from olr.workflows import bench_maps

        bench_maps.add_arguments(parser)
        return bench_maps.run(parser.parse_args(args.options))
    from olr.workflows import bench_training

    getattr(bench_training, f"add_{args.benchmark}_arguments")(parser)
    return int(getattr(bench_training, f"bench_{args.benchmark}")(parser.parse_args(args.options)) or 0)


def bench_in_app(module: str, options: list[str]) -> int:
    """A benchmark of the app's package (`ui.page_times`: each page's render time through Streamlit's AppTest;
    `ui.map_open_times`: a large map opened in a browser) by `python -m MODULE` in a child process (the
    library does not import Streamlit; the pages' package sits beside it in the repository)."""
    import subprocess
    import sys

    from olr.errors import OLRError
    from olr.workspace import REPO_ROOT

    if not (REPO_ROOT / Path(*module.split("."))).with_suffix(".py").is_file():
        raise OLRError(
            "This benchmark needs the app's files (ui/, pages/) beside the olr package; run it from a "
            "checkout of OLR Studio."
        )
    # its lines pass through this process's stdout (so `--help` and redirections see them as this command's)
    with subprocess.Popen(
        [sys.executable, "-m", module, *options], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    ) as child:
        for line in child.stdout:
            print(line, end="", flush=True)
    return child.returncode


# --------------------------------------------------------------------------- the scene


def make_scene(workdir: Path, size: int, window: int = 1024) -> tuple[Path, Path]:
    """Write (or reuse) `image_{size}.tif` (size x size x 4 uint16, EPSG:32636, 10 m) and
    `labels_{size}.tif` (CORINE grid codes, EPSG:3035, 100 m) in `workdir`.

    Both are written by windows of `window` rows, so memory stays small at any size. The
    image follows the land cover (a spectrum per class) plus texture noise, so it
    compresses like real imagery rather than like noise or flat fields.
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.transform import from_origin
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window

    from olr.data import label_schemes

    workdir.mkdir(parents=True, exist_ok=True)
    image, labels = workdir / f"image_{size}.tif", workdir / f"labels_{size}.tif"
    stamp = workdir / f"scene_{size}.json"
    cached = stamp.exists() and json.loads(stamp.read_text()).get("version") == SCENE_VERSION
    if cached and image.exists() and labels.exists():
        return image, labels
    rng = np.random.default_rng(0)
    res, label_res = 10.0, 100.0
    image_transform = from_origin(500_000.0, 3_900_000.0, res, res)
    bounds = (500_000.0, 3_900_000.0 - size * res, 500_000.0 + size * res, 3_900_000.0)
    left, bottom, right, top = transform_bounds("EPSG:32636", "EPSG:3035", *bounds, densify_pts=51)
    left, top = np.floor(left / label_res) * label_res - 500, np.ceil(top / label_res) * label_res + 500
    lw, lh = int((right - left) / label_res) + 11, int((top - bottom) / label_res) + 11
    label_transform = from_origin(left, top, label_res, label_res)
    # Land cover like CORINE's (minimum mapping unit 25 ha = 5 x 5 cells): patches of
    # 8 x 8 cells with wandering borders, classes weighted unevenly, a strip of NODATA (48)
    # and a band of unclassified (49) cells.
    grid_codes = np.array([c.grid_code for c in label_schemes.legend()], dtype=np.uint8)
    weights = rng.gamma(0.5, 1.0, len(grid_codes))
    weights /= weights.sum()
    patch = 8
    coarse = rng.choice(grid_codes, size=(lh // patch + 4, lw // patch + 4), p=weights)
    cover = np.repeat(np.repeat(coarse, patch, 0), patch, 1)
    walk = lambda n: np.clip(np.cumsum(rng.integers(-1, 2, n)), -patch, patch) + patch  # noqa: E731
    rows = (np.arange(lh)[:, None] + walk(lw)[None, :]) % cover.shape[0]
    cols = (np.arange(lw)[None, :] + walk(lh)[:, None]) % cover.shape[1]
    cover = cover[rows, cols]
    cover[: lh // 20] = 48
    cover[lh // 2 : lh // 2 + 3, : lw // 3] = 49
    profile = dict(driver="GTiff", tiled=True, blockxsize=512, blockysize=512, compress="deflate", predictor=2)
    tmp_labels = labels.with_suffix(".tmp.tif")
    with rasterio.open(
        tmp_labels,
        "w",
        width=lw,
        height=lh,
        count=1,
        dtype="uint8",
        crs="EPSG:3035",
        transform=label_transform,
        nodata=48,
        **profile,
    ) as dst:
        dst.write(cover, 1)
    spectra = np.random.default_rng(1).uniform(200, 4000, (256, 4)).astype(np.float32)
    tmp_image = image.with_suffix(".tmp.tif")
    with (
        rasterio.open(tmp_labels) as lab,
        WarpedVRT(
            lab, crs="EPSG:32636", transform=image_transform, width=size, height=size, resampling=Resampling.nearest
        ) as vrt,
        rasterio.open(
            tmp_image,
            "w",
            width=size,
            height=size,
            count=4,
            dtype="uint16",
            crs="EPSG:32636",
            transform=image_transform,
            **profile,
        ) as dst,
    ):
        for r0 in range(0, size, window):
            h = min(window, size - r0)
            win = Window(0, r0, size, h)
            classes = vrt.read(1, window=win)
            noise = rng.integers(-60, 61, size=(h, size, 4), dtype=np.int16).astype(np.float32)
            pixels = spectra[classes] + noise
            dst.write(np.clip(pixels, 1, 65535).astype(np.uint16).transpose(2, 0, 1), window=win)
            print(f"generating scene: {r0 + h}/{size} rows", flush=True)
    tmp_labels.replace(labels)
    tmp_image.replace(image)
    stamp.write_text(json.dumps({"version": SCENE_VERSION, "size": size}))
    return image, labels


# --------------------------------------------------------------------------- the children


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (VmHWM: ru_maxrss would also count the
    parent's memory at fork time on Linux, which survives exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child_read(image: str, tile: int) -> dict:
    """The I/O floor: read the whole image by the windows `prepare` uses, nothing else."""
    import rasterio

    from olr.data import rasters
    from olr.data.tile_reader import READ_ENV, TileGrid

    start, cpu = time.perf_counter(), time.process_time()
    with rasterio.Env(**READ_ENV), rasters.open_image(image) as src:
        bands = rasters.image_bands(src)
        dtype = np.dtype(src.dtypes[0])
        grid = TileGrid(src.height, src.width, tile, tile)
        buffers: dict = {}
        for r0, r1, c0, c1 in grid.windows(src.block_shapes[0], len(bands) * dtype.itemsize):
            window = grid.pixel_window(r0, r1, c0, c1)
            shape = (int(window.height), int(window.width), len(bands))
            buf = buffers.setdefault(shape, np.empty(shape, dtype=dtype))
            src.read(bands, window=window, out=buf.transpose(2, 0, 1))
    return {
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _child_prepare(image: str, labels: str, out: str, tile: int) -> dict:
    from olr.data.dataset import load_dataset
    from olr.data.prepare import prepare_dataset

    start, cpu = time.perf_counter(), time.process_time()
    prepare_dataset(image, labels, out, tile=tile, label_encoding="grid", overwrite=True)  # make_scene's codes
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    ds = load_dataset(out)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "tiles": ds.n_tiles,
        "grid_tiles": ds.meta["tile_grid"]["tiles"],
    }


def _in_child(fn, *args) -> dict:
    """Run fn(*args) in a fresh spawned process (own memory accounting, cold GDAL cache)."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


def bench_prepare(args: argparse.Namespace) -> int:
    from olr.errors import OLRError

    if args.size < args.tile:
        raise OLRError(f"The scene size {args.size} is smaller than the tile {args.tile}; use a larger --size.")
    if args.repeat < 1:
        raise OLRError(f"--repeat {args.repeat} must be at least 1.")
    if args.workdir:
        workdir = Path(args.workdir)
        cleanup = None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="olr_bench_")
        workdir = Path(cleanup.name)
    try:
        image, labels = _in_child(make_scene, workdir, args.size)  # keeps this process small
        out = workdir / "prepared"
        # Warm the OS page cache the same way for both timings: one untimed read first.
        _in_child(_child_read, str(image), args.tile)
        reads, preps = [], []
        for _ in range(args.repeat):  # interleaved, so load from elsewhere hits both alike
            reads.append(_in_child(_child_read, str(image), args.tile))
            preps.append(_in_child(_child_prepare, str(image), str(labels), str(out), args.tile))
        children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    finally:
        if cleanup is not None:
            cleanup.cleanup()
    read = min(r["seconds"] for r in reads)
    prep = min(p["seconds"] for p in preps)
    peak = max(p["peak_rss_mb"] for p in preps)
    ratio = prep / read
    grid_tiles, kept = preps[0]["grid_tiles"], preps[0]["tiles"]
    gb = args.size * args.size * 4 * 2 / 1e9
    runs = lambda rs: ", ".join(f"{r['seconds']:.3f}" for r in rs)  # noqa: E731
    print(
        f"scene: {args.size} x {args.size} px x 4 bands uint16 ({gb:.2f} GB raw), tile {args.tile}, "
        f"{grid_tiles} grid tiles, {kept} kept; {args.repeat} round(s), fastest of each compared"
    )
    print(f"read (I/O floor):   {read:8.3f} s   [{runs(reads)}]")
    print(f"prepare:            {prep:8.3f} s   [{runs(preps)}]")
    verdict = lambda ok: "OK" if ok else "MISSED"  # noqa: E731
    print(f"ratio prepare/read: {ratio:8.2f}     (target <= {TARGET_RATIO:g}) {verdict(ratio <= TARGET_RATIO)}")
    print(
        f"peak RSS prepare:   {peak:8.0f} MB  (target < {TARGET_PEAK_MB:g}) {verdict(peak < TARGET_PEAK_MB)}; "
        f"read alone {max(r['peak_rss_mb'] for r in reads):.0f} MB; ru_maxrss over children {children_peak:.0f} MB"
    )
    cpu_ratio = min(p["cpu_seconds"] for p in preps) / min(r["cpu_seconds"] for r in reads)
    print(f"cpu time ratio:     {cpu_ratio:8.2f}     (all threads; what the ratio tends to when no core is free)")
    print(f"tiles/s:            {grid_tiles / prep:8.0f}")
    return 0

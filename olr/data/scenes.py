"""Datasets of several scenes: the scene list, each scene tiled by a Dask worker, the parts merged into one dataset.

A scene is one image raster with its label map (`SceneSource`). `read_scene_list` takes a list file
(CSV lines `image,labels[,name]`) or a folder whose files pair by name (`FOLDER_RULE`).
`prepare_scenes` tiles each scene as its own task on a Dask distributed cluster — a
`distributed.LocalCluster` of `workers` processes with one thread and `worker_memory` each (Dask's
nanny restarts a worker that grows past it), or an existing cluster's scheduler — and merges:

- every worker writes its scene's part (`prepare.tile_pass`: kept tiles, per-tile numbers, band sums,
  preview) into its own attempt folder under `PARTS` inside the one staged dataset folder; a task
  retried elsewhere writes a fresh attempt folder, and only the attempt whose result arrived is read;
- the parent prunes labels over all scenes, splits (blocks within each scene, or whole scenes:
  `PrepareOptions.scene_split`), copies the surviving tiles into one `images.npy`, scene after scene,
  and writes one tile table with a `scene` column, `meta["scenes"]` (name, rows [start, stop) of
  the scene's tiles, tile and split counts) and per scene `scenes/NAME/meta.json` (its grid, CRS,
  sources) with its `preview.png`; the dataset's own `preview.png` is a lon/lat mosaic of them.

The staged folder's rename stays the only step that makes the dataset visible: when a scene fails, or
a worker dies (twice: Dask retries a task once on another worker, `ALLOWED_FAILURES`), the error names
the scene and the staged folder goes with every part in it. With `scheduler`, the workers must see the
output folder at the same path (one machine, or a shared file system).

Training reads the merged dataset like any other: one tile array, one tile table, one split.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from olr import atomic, workspace
from olr.data import legends, prepare, prepare_estimate, splits
from olr.data.dataset import SCENES_FOLDER, write_dataset
from olr.data.prepare_options import PrepareOptions
from olr.data.rasters import VECTOR_SUFFIXES
from olr.data.tile_writer import NODATA_FILL, BandStats, concatenate_tiles, mosaic_previews
from olr.errors import OLRError

#: Memory each local Dask worker may use; its nanny restarts a worker past 95 % of it. One scene's
#: preparation streams by windows and peaks well under this (`bench prepare`: < 1.5 GB for a 12,000 px scene).
DEFAULT_WORKER_MEMORY = "2GiB"
#: How often a scene's task may lose its worker before the preparation fails: once retried on another worker.
ALLOWED_FAILURES = 1
#: Dask settings of a local cluster: the retries above, and a worker is given a scene only when its thread is
#: free (saturation 1.0), so a worker that dies takes down only the scene it runs, never one queued behind it,
#: and one scene at a time stays within its memory.
CLUSTER_CONFIG = {
    "distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
    "distributed.scheduler.worker-saturation": 1.0,
}
#: The folder inside the staged dataset folder where the workers write their scenes' parts.
PARTS = ".scene_parts"
IMAGE_SUFFIXES = (".tif", ".tiff")
LABELS_STEM, IMAGE_STEM = "_labels", "_image"
FOLDER_RULE = (
    "an image NAME.tif (or NAME_image.tif) pairs with the labels NAME_labels.tif, NAME_labels.gpkg or "
    "NAME_labels.shp beside it, and the scene is called NAME"
)
LIST_RULE = "one scene per line: image,labels or image,labels,name (paths relative to the list file)"


@dataclass(frozen=True)
class SceneSource:
    """One scene: an image raster and its land-cover labels, and the scene's name (a folder name)."""

    name: str
    image: Path
    labels: Path


# --------------------------------------------------------------------------- the scene list


def read_scene_list(path: str | os.PathLike) -> list[SceneSource]:
    """The scenes of a list file (`LIST_RULE`; a header line `image,labels[,name]` and `#` comments are
    skipped) or of a folder (`FOLDER_RULE`); OLRError in one sentence for a list or folder that is not one."""
    path = Path(path)
    if path.is_dir():
        scenes = scenes_in_folder(path)
    elif path.is_file():
        scenes = scenes_in_list_file(path)
    else:
        raise OLRError(
            f"There is no scene list or scene folder at {path}; give a file with {LIST_RULE}, or a folder where "
            f"{FOLDER_RULE}."
        )
    return check_scenes(scenes, str(path))


def scenes_in_list_file(path: Path) -> list[SceneSource]:
    """The scenes of a CSV list file, in its order; names default to the image's stem (`_image` dropped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise OLRError(f"The scene list {path} could not be read ({e}); give a text file with {LIST_RULE}.") from None
    scenes = []
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        fields = [f.strip() for f in row]
        if not any(fields) or fields[0].startswith("#"):
            continue
        if [f.lower() for f in fields] in (["image", "labels"], ["image", "labels", "name"]):
            continue
        if len(fields) not in (2, 3) or not all(fields):
            raise OLRError(
                f"Line {number} of the scene list {path} holds {len(fields)} field(s) ({','.join(row)}); "
                f"give {LIST_RULE}."
            )
        image, labels = (path.parent / f for f in fields[:2])
        scenes.append(SceneSource(fields[2] if len(fields) == 3 else _scene_name(image), image, labels))
    return scenes


def scenes_in_folder(folder: Path) -> list[SceneSource]:
    """The scenes of a folder whose files pair by `FOLDER_RULE`, by name; other files are ignored."""
    images: dict[str, list[Path]] = {}
    labels: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        suffix = p.suffix.lower()
        if p.stem.endswith(LABELS_STEM) and suffix in (*IMAGE_SUFFIXES, *VECTOR_SUFFIXES):
            labels.setdefault(p.stem[: -len(LABELS_STEM)], []).append(p)
        elif suffix in IMAGE_SUFFIXES:
            images.setdefault(_scene_name(p), []).append(p)
    for kind, files in (("images", images), ("label files", labels)):
        twice = next((found for found in files.values() if len(found) > 1), None)
        if twice:
            raise OLRError(
                f"The scene folder {folder} holds two {kind} of one scene ({', '.join(p.name for p in twice)}); "
                "keep one of them."
            )
    problems = [f"the image {images[n][0].name} has no labels ({n}_labels.tif, .gpkg or .shp)" for n in images]
    problems = [p for n, p in zip(images, problems) if n not in labels]
    problems += [f"the labels {labels[n][0].name} have no image ({n}.tif)" for n in labels if n not in images]
    if problems:
        shown = problems[:5] + ([f"{len(problems) - 5} more"] if len(problems) > 5 else [])
        raise OLRError(
            f"In the scene folder {folder}, {' and '.join(shown)}; add the missing file or remove the other, "
            f"as {FOLDER_RULE}."
        )
    if not images:
        raise OLRError(f"The scene folder {folder} holds no scene; put its files there so that {FOLDER_RULE}.")
    return [SceneSource(name, images[name][0], labels[name][0]) for name in sorted(images)]


def _scene_name(image: Path) -> str:
    stem = image.stem
    return stem[: -len(IMAGE_STEM)] if stem.endswith(IMAGE_STEM) and len(stem) > len(IMAGE_STEM) else stem


def check_scenes(scenes: list[SceneSource], where: str) -> list[SceneSource]:
    """`scenes` if there is one and their names are allowed folder names, each used once; else OLRError."""
    if not scenes:
        raise OLRError(f"The scene list {where} names no scene; give {LIST_RULE}.")
    seen: set[str] = set()
    for scene in scenes:
        workspace.check_name(scene.name, "scene name")
        if scene.name in seen:
            raise OLRError(f"The scene name {scene.name!r} is used twice in {where}; give each scene its own name.")
        seen.add(scene.name)
    return list(scenes)


# --------------------------------------------------------------------------- preparing


def prepare_scenes(
    scenes: list[SceneSource],
    out: str | os.PathLike,
    options: PrepareOptions | None = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    worker_memory: str = DEFAULT_WORKER_MEMORY,
    progress: prepare.Progress | None = None,
    **settings,
) -> Path:
    """Prepare `scenes` in parallel into the one dataset folder `out`; returns `out`.

    Each scene is tiled as in `prepare.prepare_dataset` (same options: `options` with `settings` replacing
    some fields) by a task of a Dask cluster: a local one of `workers` processes (default: one per scene,
    at most one per CPU) with one thread and `worker_memory` (a Dask size such as "2GiB") each, or the
    cluster whose scheduler listens at `scheduler` ("tcp://host:8786"). `progress(done, total, message)`
    is told of each scene done. Raises OLRError naming the scene for bad input or a worker that died;
    nothing is left behind on failure.
    """
    opts = dataclasses.replace(options or PrepareOptions(), **settings)
    scenes = check_scenes(list(scenes), "the scenes given")
    workspace.require_writable("prepare a dataset")
    legend = None if opts.legend is None else legends.read_legend(opts.legend)
    scheme = legends.scheme_for(opts.scheme, legend)
    opts = opts.check()
    if opts.scene_split == "scenes":
        splits.require_scenes_for_splits(len(scenes), opts.split_fractions)
    workers = _check_workers(workers, scheduler, worker_memory, len(scenes))
    out = Path(out)
    if out.exists() and not opts.overwrite:
        raise OLRError(f"{out} already exists; choose another name or pass --overwrite to replace it.")
    _require_room(scenes, opts, out)
    parameters = {
        "scenes": [{"name": s.name, "image": str(s.image), "labels": str(s.labels)} for s in scenes],
        "out": str(out),
        **opts.parameters(),
        "workers": workers,
        "scheduler": scheduler,
        "worker_memory": worker_memory,
    }
    progress = progress or (lambda done, total, message: None)
    with atomic.staged_folder(out, opts.overwrite) as folder:
        (folder / PARTS).mkdir()
        with _client(workers, scheduler, worker_memory) as client:
            parts = _tile_scenes(client, scenes, folder / PARTS, opts, progress)
        progress(len(scenes), len(scenes), f"merging {len(scenes)} scenes into one dataset")
        _merge(folder, scenes, parts, scheme, opts, legend, parameters)
    return out


def _check_workers(workers: int | None, scheduler: str | None, worker_memory: str, n_scenes: int) -> int | None:
    """The number of local workers (None with a scheduler: its cluster has its own); OLRError for bad values."""
    from dask.utils import parse_bytes

    try:
        if parse_bytes(worker_memory) <= 0:
            raise ValueError
    except (TypeError, ValueError):
        raise OLRError(f"The worker memory {worker_memory!r} is not a size; give one such as 2GiB or 1500MB.") from None
    if scheduler:
        return None
    if workers is None:
        return max(1, min(n_scenes, os.cpu_count() or 1))
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise OLRError(f"The number of workers {workers!r} is not valid; give a whole number of at least 1.")
    return int(workers)


def _require_room(scenes: list[SceneSource], opts: PrepareOptions, out: Path) -> None:
    """Open each scene's image header: OLRError naming the scene when the tile does not fit it or it cannot
    be opened, and when all scenes together could exceed the free disk or `OLR_MAX_DATASET_GB`."""
    total = None
    for scene in scenes:
        with _naming(scene), contextlib.ExitStack() as stack:
            estimate = prepare_estimate.estimate_for(prepare.open_image(stack, [scene.image], scene.labels, opts), opts)
        total = (
            estimate
            if total is None
            else dataclasses.replace(total, tiles=total.tiles + estimate.tiles, bytes=total.bytes + estimate.bytes)
        )
    prepare_estimate.require_room(total, out)


@contextlib.contextmanager
def _naming(scene: SceneSource) -> Iterator[None]:
    """Turn an OLRError about `scene` into one that names the scene first."""
    try:
        yield
    except OLRError as e:
        raise _scene_error(scene, e) from None


def _scene_error(scene: SceneSource, error: BaseException) -> OLRError:
    text = str(error)
    lowered = text[:1].lower() + text[1:] if text[1:2].islower() else text
    return OLRError(f"In scene {scene.name!r}, {lowered}")


@contextlib.contextmanager
def _client(workers: int | None, scheduler: str | None, worker_memory: str):
    """A Dask client of a local cluster (`workers` processes, one thread and `worker_memory` each) or of the
    cluster at `scheduler`; closed, with the local cluster's workers, on leaving."""
    import dask
    import distributed

    config = CLUSTER_CONFIG
    with dask.config.set(config), contextlib.ExitStack() as stack:
        if scheduler:
            try:
                client = stack.enter_context(distributed.Client(scheduler, timeout="20s"))
            except (OSError, TimeoutError) as e:
                raise OLRError(
                    f"The Dask scheduler at {scheduler} could not be reached ({e}); check the address, or leave "
                    "--scheduler out to prepare on a local cluster."
                ) from None
        else:
            cluster = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    memory_limit=worker_memory,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.CRITICAL,  # a dead worker is reported as this preparation's error
                )
            )
            client = stack.enter_context(distributed.Client(cluster))
        yield client


def _tile_scenes(client, scenes: list[SceneSource], parts: Path, opts: PrepareOptions, progress) -> list[dict]:
    """Each scene's part (`tile_scene_part`'s result), in the order of `scenes`; the first failure raised,
    naming its scene, once the other tasks are cancelled."""
    import distributed

    run = secrets.token_hex(4)  # keys apart from an earlier preparation's on a long-lived cluster
    futures = {
        client.submit(tile_scene_part, k, scene, str(parts), opts, key=f"prepare-scene-{run}-{k}", pure=False): k
        for k, scene in enumerate(scenes)
    }
    results: dict[int, dict] = {}
    try:
        for future in distributed.as_completed(futures):
            k = futures[future]
            try:
                results[k] = future.result()
            except BaseException as e:
                raise _task_error(scenes[k], e) from None
            progress(len(results), len(scenes), f"scene {scenes[k].name}: {results[k]['tiles']} tiles kept")
    finally:
        client.cancel(list(futures))
    return [results[k] for k in range(len(scenes))]


def _task_error(scene: SceneSource, error: BaseException) -> BaseException:
    """What a failed scene task raises here: OLRError naming the scene for bad input or a dead worker; the
    error itself otherwise (a full disk is still told as one by the staged folder), noting the scene."""
    from distributed import KilledWorker
    from distributed.comm import CommClosedError

    if isinstance(error, OLRError):
        return _scene_error(scene, error)
    if isinstance(error, (KilledWorker, CommClosedError)):
        return OLRError(
            f"The worker preparing scene {scene.name!r} died (killed, or past its memory limit), also when "
            "Dask tried the scene again on another worker, so nothing was kept; check the scene, or give the "
            "workers more memory with --worker-memory."
        )
    error.add_note(f"while preparing scene {scene.name!r} ({scene.image})")
    return error


def tile_scene_part(index: int, scene: SceneSource, parts: str, opts: PrepareOptions) -> dict:
    """The task of one scene, run by a Dask worker: tile it into a fresh folder under `parts` and return
    what the merge needs besides the files there (small: a few numbers and names).

    Writes images.npy (the kept tiles, not yet split), tiles.parquet (`prepare.tile_columns`),
    code_fractions.npy (n, C) float32, band_sums.npy (`BandStats.table()`) and preview.png."""
    folder = Path(parts) / f"{index}.{secrets.token_hex(4)}"
    folder.mkdir()  # no parents: once the staged folder is gone, a late attempt writes nothing
    legend = None if opts.legend is None else legends.read_legend(opts.legend)
    scheme = legends.scheme_for(opts.scheme, legend)
    with contextlib.ExitStack() as stack:
        src = prepare.open_image(stack, [scene.image], scene.labels, opts)
        label_source = prepare.open_label_source(stack, scene.labels, src, opts, legend)
        digests = prepare.hash_sources(stack, [scene.image], scene.labels, opts.legend if legend else None)
        tiling = prepare.tile_pass(src, label_source, folder, scheme, opts, lambda done, total, message: None)
        try:
            n = tiling.writer.close()
        except BaseException:
            tiling.writer.abort()
            raise
        tiling.require_tiles(n, src)
        kept = tiling.kept.arrays()
        pd.DataFrame(prepare.tile_columns(kept, src.transform, src.crs, opts)).to_parquet(folder / "tiles.parquet")
        np.save(folder / "code_fractions.npy", kept["code_fractions"])
        np.save(folder / "band_sums.npy", tiling.stats.table())
        return {
            "folder": str(folder),
            "tiles": n,
            "dropped": tiling.dropped,
            "shift": None if tiling.stats.shift is None else tiling.stats.shift.tolist(),
            "row_step": tiling.stats.row_step,
            "grid": prepare.grid_meta(src, tiling.grid, opts),
            "epsg": src.crs.to_epsg(),
            "band_names": tiling.names,
            "dtype": tiling.dtype.name,
            "nodata": src.nodata,
            "nodata_rule": tiling.mask.describe(),
            "scaling": [list(s) for s in tiling.scaling],
            "rgb": tiling.preview.rgb_json(),
            "preview": tiling.preview.write(folder / "preview.png"),
            "sources": prepare.source_meta(digests, label_source),
            "label_encoding": label_source.encoding,
        }


# --------------------------------------------------------------------------- merging


def _merge(
    folder: Path, scenes: list[SceneSource], parts: list[dict], scheme, opts: PrepareOptions, legend, parameters
) -> None:
    """Merge the scenes' parts into the dataset in `folder`: split, tiles, table, per-scene meta and previews."""
    _require_same_bands(scenes, parts)
    folders = [Path(p["folder"]) for p in parts]
    tables = [pd.read_parquet(f / "tiles.parquet") for f in folders]
    scene = np.concatenate([np.full(len(t), k, dtype=np.int64) for k, t in enumerate(tables)])
    columns = {c: np.concatenate([t[c].to_numpy() for t in tables]) for c in tables[0].columns}
    code_fractions = np.concatenate([np.load(f / "code_fractions.npy") for f in folders])
    dropped = {k: sum(p["dropped"].get(k, 0) for p in parts) for k in parts[0]["dropped"]}
    kept = {"tile_row": columns["tile_row"], "tile_col": columns["tile_col"], "code_fractions": code_fractions}
    selection = prepare.Selection.of(kept, scheme.code_matrix(scheme.classes), opts, dropped, scene)
    keep_by_scene = [selection.tiles[scene == k] for k in range(len(scenes))]
    concatenate_tiles([(f / "images.npy", keep) for f, keep in zip(folders, keep_by_scene)], folder / "images.npy")
    names = np.asarray([s.name for s in scenes], dtype=object)
    table = prepare.tile_table(columns, selection, {"scene": names[scene[selection.tiles]]})
    epsgs = {p["epsg"] for p in parts}
    shared_crs = len({p["grid"]["crs"]["wkt"] for p in parts}) == 1
    if not shared_crs:
        table.insert(
            table.columns.get_loc("scene") + 1, "epsg", np.asarray([parts[k]["epsg"] for k in scene])[selection.tiles]
        )
    stats = BandStats.merged([(np.load(f / "band_sums.npy"), p["shift"]) for f, p in zip(folders, parts)])
    band_json, statistics_split = prepare.band_statistics_json(stats, parts[0]["band_names"], selection)
    scene_meta = _write_scene_folders(folder, scenes, parts, table)
    codes, code_fractions_kept = selection.present_codes(scheme.classes)
    first = parts[0]
    meta = prepare.labels_and_split_meta(scheme, opts, selection, codes, dropped)
    meta["split"]["scene_split"] = opts.scene_split
    meta |= {
        "name": Path(parameters["out"]).name,  # `folder` is the staged one
        **_shared_grid_meta(parts, shared_crs, epsgs, opts),
        "bands": [dict(b, scale=s, offset=o) for b, (s, o) in zip(band_json, first["scaling"], strict=True)],
        "band_statistics_split": statistics_split,
        "dtype": first["dtype"],
        "nodata": first["nodata"],
        "nodata_fill": NODATA_FILL,
        "finite": True,  # as for one scene: NaN and +-inf are nodata, and kept tiles have nodata pixels filled
        "rgb": first["rgb"],
        "preview": mosaic_previews(
            [(Path(m["folder"]) / m["preview"]["file"], m["preview"]["bounds_lonlat"]) for m in scene_meta],
            folder / "preview.png",
        ),
        "scenes": [{k: m[k] for k in ("name", "rows", "n_tiles", "split_counts", "epsg")} for m in scene_meta],
        "sources": {f"{s.name}/{key}": v for s, p in zip(scenes, parts) for key, v in p["sources"].items()},
        "label_encoding": _one_or_each([p["label_encoding"] for p in parts], scenes),
        **({"legend": legend.to_json()} if legend else {}),
        "parameters": parameters,
    }
    shutil.rmtree(folder / PARTS)  # before the rename, which is the one step that shows the dataset
    write_dataset(
        folder,
        images=None,
        fractions=selection.fractions(),
        tiles=table,
        meta=meta,
        min_fraction=opts.min_fraction,
        code_fractions=code_fractions_kept,
    )


def _require_same_bands(scenes: list[SceneSource], parts: list[dict]) -> None:
    """OLRError unless every scene has the first scene's bands (names, in order), dtype and scaling."""
    first = parts[0]
    for scene, part in zip(scenes[1:], parts[1:]):
        for what, key, fix in (
            ("bands", "band_names", "choose the same bands in the same order with --bands"),
            ("pixel type", "dtype", "convert the images to one pixel type"),
            ("band scaling", "scaling", "give one scaling with --scale and --offset"),
        ):
            if part[key] != first[key]:
                raise OLRError(
                    f"Scene {scene.name!r} has other {what} ({part[key]}) than scene {scenes[0].name!r} "
                    f"({first[key]}); {fix}, so that one dataset holds one kind of tile."
                )


def _shared_grid_meta(parts: list[dict], shared_crs: bool, epsgs: set, opts: PrepareOptions) -> dict:
    """The grid keys of meta.json that all scenes share: tile and stride, the CRS (or EPSG:4326 with each
    tile's EPSG code in the tile table when the scenes lie in several); no transform, each scene has its own."""
    from rasterio.crs import CRS

    grid = {"tile": opts.tile, "stride": opts.stride_px}
    grid["tile_grid"] = {"tiles": sum(p["grid"]["tile_grid"]["tiles"] for p in parts)}
    if len({tuple(p["grid"]["resolution"]) for p in parts}) == 1:
        grid["resolution"] = parts[0]["grid"]["resolution"]
    if shared_crs:
        grid["crs"] = parts[0]["grid"]["crs"]
        return grid
    if None in epsgs:
        raise OLRError(
            "The scenes lie in several coordinate reference systems and one of them has no EPSG code, so their "
            "tiles could not be placed on one map; reproject that scene's image to an EPSG CRS."
        )
    grid["crs"] = {
        "epsg": 4326,
        "wkt": CRS.from_epsg(4326).to_wkt(),
        "note": "each scene keeps its own CRS (tiles.parquet: epsg, x_min..y_max in it); "
        "EPSG:4326 is the CRS all tiles share (lon_min..lat_max)",
        "tile_epsgs": sorted(int(e) for e in epsgs),
    }
    return grid


def _one_or_each(values: list, scenes: list[SceneSource]):
    """The value all scenes share, or {scene: value}."""
    return values[0] if len(set(map(str, values))) == 1 else {s.name: v for s, v in zip(scenes, values)}


def _write_scene_folders(folder: Path, scenes: list[SceneSource], parts: list[dict], table: pd.DataFrame) -> list:
    """Write scenes/NAME/meta.json and preview.png per scene; returns their meta (with "folder")."""
    written = []
    start = 0
    counts = table["scene"].value_counts()
    for scene, part in zip(scenes, parts):
        stop = start + int(counts.get(scene.name, 0))  # the merge keeps each scene's tiles together, in order
        target = folder / SCENES_FOLDER / scene.name
        target.mkdir(parents=True)
        os.replace(Path(part["folder"]) / part["preview"]["file"], target / "preview.png")
        split = table["split"].to_numpy()[start:stop]
        meta = {
            "scene": scene.name,
            **part["grid"],
            "epsg": part["epsg"],
            "nodata": part["nodata"],
            "rows": [start, stop],
            "n_tiles": stop - start,
            "split_counts": splits.split_counts(split),
            "dropped": part["dropped"],
            "preview": {"file": "preview.png", "bounds_lonlat": part["preview"]["bounds_lonlat"]},
            "sources": part["sources"],
            "label_encoding": part["label_encoding"],
            "image_nodata": part["nodata_rule"],
        }
        atomic.write_json(target / "meta.json", meta)
        written.append({"name": scene.name, "folder": str(target), **meta})
        start = stop
    return written


# --------------------------------------------------------------------------- CLI


def cli_progress(stream=sys.stderr) -> prepare.Progress:
    """A progress callback printing one line per scene done."""

    def report(done: int, total: int, message: str) -> None:
        print(f"{message} ({done}/{total} scenes)", file=stream, flush=True)

    return report

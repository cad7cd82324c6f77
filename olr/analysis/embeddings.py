"""Export a Siamese run's (N, L, k) label embeddings and find nearest tiles (CLI `embed`).

`export_embeddings` writes `<run>/embeddings/<dataset>[.<split>].npy`: a float16 array
(N, L, k) in .npy format, so `np.load(path, mmap_mode="r")` opens it without reading it.
Row r is the tile `rows[r]` of the dataset; the sidecar `<same name>.index.npz` holds rows
(N,) int64, tile_ids (N,), label_names (L,) and the dataset name. Tiles are embedded in
chunks streamed into an open memory map (memory bounded, never the whole float32 array);
the file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from olr import atomic
from olr.analysis import inference, run_data
from olr.data.dataset import load_dataset
from olr.errors import OLRError
from olr.runs.store import RunLayout


def _export_name(dataset_name: str, split: str | None) -> str:
    return dataset_name if split is None else f"{dataset_name}.{split}"


def index_path(path: str | os.PathLike) -> Path:
    """The sidecar `.index.npz` of an embeddings `.npy` file."""
    path = Path(path)
    return path.with_name(path.name[: -len(".npy")] + ".index.npz")


def export_embeddings(
    run, dataset=None, out=None, split: str | None = None, batch_size: int = 256, chunk: int = 2048
) -> Path:
    """Embed every tile (or one split's tiles) of `dataset` with a Siamese run; returns the .npy path.

    `dataset`: an opened dataset or a name/folder (default: the run's dataset). `out`: the
    .npy path (default `<run>/embeddings/<dataset>[.<split>].npy`).
    """
    run = run_data.as_run(run)
    if run.config.get("kind") != "siamese":
        raise OLRError(f"The run {run.id} is a {run.config.get('kind')} run; embeddings come from a Siamese run.")
    run_data.require_finished(run)
    if dataset is None:
        dataset = run_data.run_dataset(run)
    elif isinstance(dataset, (str, os.PathLike)):
        dataset = load_dataset(dataset)
    if tuple(dataset.tile_shape) != tuple(run.config.get("tile_shape") or dataset.tile_shape):
        raise OLRError(
            f"The dataset {dataset.name} has {tuple(dataset.tile_shape)} tiles but run {run.id} was trained on "
            f"{tuple(run.config['tile_shape'])}; embed a dataset prepared with the same tile size and bands."
        )
    rows = dataset.split_indices(split) if split else np.arange(dataset.n_tiles)
    if len(rows) == 0:
        raise OLRError(f"The dataset {dataset.name} has no {split} tiles; choose another split.")
    out = Path(out) if out else RunLayout(run.path).embeddings / f"{_export_name(dataset.name, split)}.npy"
    if out.suffix != ".npy":
        raise OLRError(f"The output {out} must end in .npy; give a name like embeddings.npy.")
    out.parent.mkdir(parents=True, exist_ok=True)
    model = run_data.best_model(run)

    tmp = atomic.temp_sibling(out, ".npy")
    try:
        array = None
        for start in range(0, len(rows), chunk):
            part = inference.label_embeddings(model, dataset, rows[start : start + chunk], batch_size=batch_size)
            if array is None:
                array = open_memmap(tmp, mode="w+", dtype=np.float16, shape=(len(rows), *part.shape[1:]))
            array[start : start + len(part)] = part.astype(np.float16)
        array.flush()
        del array
        buf = io.BytesIO()
        np.savez(
            buf,
            rows=rows.astype(np.int64),
            tile_ids=dataset.tiles["tile_id"].to_numpy()[rows],
            label_names=np.array([d["name"] for d in run.config["labels"]], dtype=str),
            dataset=np.array(dataset.name),
        )
        atomic.write_bytes(index_path(out), buf.getvalue())  # sidecar first: the .npy appears last
        atomic.replace_file_from(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def load_embeddings(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """(N, L, k) float16 memory map and its index {"rows", "tile_ids", "label_names", "dataset"}."""
    path = Path(path)
    if not path.exists() or not index_path(path).exists():
        raise OLRError(f"There are no exported embeddings at {path}; export them first (python -m olr embed RUN).")
    with np.load(index_path(path), allow_pickle=False) as z:
        index = {k: z[k] for k in z.files}
    return np.load(path, mmap_mode="r"), index


def nearest_tiles(embeddings, query_index: int, label: int | None = None, k: int = 10, chunk: int = 65536):
    """The k rows most cosine-similar to row `query_index`, by one label's embedding or all.

    embeddings: (N, L, k) array (a memory map is read in chunks); label: a label column, or
    None to compare the concatenated (L*k) vectors. Returns (positions (k,), similarities (k,)),
    most similar first, the query itself left out; positions index `embeddings` (the export's
    index["rows"][positions] are the dataset rows). A zero vector has similarity 0.
    """
    n = embeddings.shape[0]
    if not 0 <= int(query_index) < n:
        raise OLRError(f"Tile row {query_index} is outside the embeddings (0..{n - 1}); pick another tile.")
    if label is not None and not 0 <= int(label) < embeddings.shape[1]:
        raise OLRError(f"Label index {label} is outside 0..{embeddings.shape[1] - 1}; pick another label.")

    def vectors(a):
        a = np.asarray(a, dtype=np.float32)
        v = a[:, int(label), :] if label is not None else a.reshape(len(a), -1)
        norm = np.linalg.norm(v, axis=1, keepdims=True)
        return v / np.where(norm > 0, norm, 1.0)

    q = vectors(embeddings[int(query_index) : int(query_index) + 1])[0]
    sims = np.concatenate([vectors(embeddings[s : s + chunk]) @ q for s in range(0, n, chunk)])
    sims[int(query_index)] = -np.inf
    k = min(int(k), n - 1)
    top = np.argpartition(-sims, k - 1)[:k] if k > 0 else np.array([], dtype=int)
    top = top[np.argsort(-sims[top], kind="stable")]
    return top, sims[top]


# ------------------------------------------------------------------ CLI: python -m olr embed


def add_arguments(parser) -> None:
    parser.add_argument("run", help="Siamese run id (folder name under models/) or run folder")
    parser.add_argument("--dataset", help="dataset to embed (default: the run's dataset)")
    parser.add_argument("--split", choices=("train", "val", "test"), help="only the tiles of this split")
    parser.add_argument("--out", help="output .npy path (default: <run>/embeddings/<dataset>.npy)")
    parser.add_argument("--batch-size", type=int, default=256, help="tiles per batch (default 256)")


def embed_command(args) -> int:
    path = export_embeddings(args.run, dataset=args.dataset, out=args.out, split=args.split, batch_size=args.batch_size)
    emb, _ = load_embeddings(path)
    n, n_labels, k = emb.shape
    print(f"wrote {n} tiles x {n_labels} labels x {k} dims (float16, {path.stat().st_size / 1e6:.1f} MB) to {path}")
    return 0

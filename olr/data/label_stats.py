"""Label statistics of a dataset: frequencies, co-occurrence, phi, NPMI, P(j|i).

Everything comes from the (N, L) binary presence matrix Y (and the (N, L) area fractions F)
by matrix algebra in one pass: the co-occurrence counts C = YᵀY hold the label counts on
their diagonal, and every pairwise view is a function of C and N:

- phi_ij  = (N C_ij - C_ii C_jj) / sqrt(C_ii (N - C_ii) C_jj (N - C_jj)), the Pearson
  correlation of the binary columns i and j; a label present in no tile or in every tile has
  no variance, so its row and column are NaN;
- NPMI_ij = log(p_ij / (p_i p_j)) / -log(p_ij) with p = C / N; -1 for labels that never
  co-occur, 1 for labels that always do (the diagonal), NaN for a label never present;
- P(j|i)  = C_ij / C_ii (row i, column j); NaN rows for labels never present;
- fraction correlation: Pearson correlation of the area-fraction columns (NaN for constants).

These are the explorer's numbers and the ground truth that `olr.analysis.correlations` compares the
learned matrices against (one concept, one place). `dataset_stats` caches the result inside
the dataset folder (`stats.npz`, or `stats.<split>.npz`) keyed by a hash of the label arrays
and the split's tile indices, so it is cheap to call on every page render.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from olr import atomic, workspace
from olr.data.dataset import SPLITS, list_datasets, load_dataset
from olr.errors import OLRError

#: Bump when the statistics or their file layout change; old caches are then recomputed.
STATS_VERSION = 1


@dataclass
class LabelStats:
    """Label statistics of N tiles and L labels. Pairwise matrices are (L, L), row i, column j."""

    names: list[str]
    colors: list[str]
    n_tiles: int
    counts: np.ndarray  # (L,) int64, tiles where the label is present
    percent: np.ndarray  # (L,) float64, 100 * counts / n_tiles
    labels_per_tile: np.ndarray  # (L + 1,) int64, [k] = tiles with exactly k labels present
    cooc: np.ndarray  # (L, L) int64, C = YᵀY
    phi: np.ndarray  # (L, L) float64, NaN rows/columns for zero-variance labels
    npmi: np.ndarray  # (L, L) float64
    cond: np.ndarray  # (L, L) float64, P(column j | row i)
    fraction_corr: np.ndarray  # (L, L) float64, Pearson of the fraction columns

    def to_arrays(self) -> dict[str, np.ndarray]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["names"] = np.array(self.names, dtype=str)
        d["colors"] = np.array(self.colors, dtype=str)
        d["n_tiles"] = np.array(self.n_tiles)
        return d

    @staticmethod
    def from_arrays(d) -> LabelStats:
        kw = {f.name: np.asarray(d[f.name]) for f in fields(LabelStats)}
        kw["names"] = [str(s) for s in kw["names"]]
        kw["colors"] = [str(s) for s in kw["colors"]]
        kw["n_tiles"] = int(kw["n_tiles"])
        return LabelStats(**kw)

    def frequency_table(self):
        """pandas DataFrame: label, color, count, percent; sorted by count, most frequent first."""
        import pandas as pd

        df = pd.DataFrame({"label": self.names, "color": self.colors, "count": self.counts, "percent": self.percent})
        return df.sort_values("count", ascending=False, kind="stable").reset_index(drop=True)

    def top_pairs(self, k: int = 10, by: str = "cooc"):
        """The k label pairs (i < j) with the largest `by` value ("cooc", "phi", "npmi")."""
        import pandas as pd

        matrix = {"cooc": self.cooc, "phi": self.phi, "npmi": self.npmi}[by]
        i, j = np.triu_indices(len(self.names), 1)
        df = pd.DataFrame(
            {
                "label_i": [self.names[a] for a in i],
                "label_j": [self.names[b] for b in j],
                "cooc": self.cooc[i, j],
                "phi": self.phi[i, j],
                "npmi": self.npmi[i, j],
            }
        )
        order = np.argsort(-np.nan_to_num(matrix[i, j].astype(float), nan=-np.inf), kind="stable")
        return df.iloc[order[:k]].reset_index(drop=True)


def pearson_matrix(x: np.ndarray) -> np.ndarray:
    """(L, L) float64 Pearson correlation of the columns of `x` (n, L); NaN for constant columns."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return np.full((x.shape[1], x.shape[1]), np.nan)
    centred = x - x.mean(axis=0)
    ss = np.einsum("nl,nl->l", centred, centred)
    # A column is constant when its spread is at rounding-noise level relative to its values.
    scale = np.maximum(np.abs(x).max(axis=0), 1.0)
    constant = ss <= (1e-12 * scale) ** 2 * len(x)
    norm = np.sqrt(np.where(constant, 1.0, ss))
    corr = (centred.T @ centred) / np.outer(norm, norm)
    corr = np.clip(corr, -1.0, 1.0)
    corr[constant, :] = np.nan
    corr[:, constant] = np.nan
    return corr


def phi_from_cooc(cooc: np.ndarray, n: int) -> np.ndarray:
    """(L, L) phi coefficients from co-occurrence counts C (diagonal = label counts) and N tiles."""
    c = np.asarray(cooc, dtype=np.float64)
    counts = np.diag(c)
    var = counts * (n - counts)  # N² times the variance of each binary column
    with np.errstate(invalid="ignore", divide="ignore"):
        phi = (n * c - np.outer(counts, counts)) / np.sqrt(np.outer(var, var))
    none = var <= 0
    phi[none, :] = np.nan
    phi[:, none] = np.nan
    return np.clip(phi, -1.0, 1.0)


def npmi_from_cooc(cooc: np.ndarray, n: int) -> np.ndarray:
    """(L, L) normalised pointwise mutual information; -1 never together, 1 always, NaN absent."""
    c = np.asarray(cooc, dtype=np.float64)
    p = c / max(n, 1)
    pi = np.diag(p)
    with np.errstate(invalid="ignore", divide="ignore"):
        pmi = np.log(p / np.outer(pi, pi))
        npmi = pmi / -np.log(p)
    npmi[p == 0] = -1.0
    npmi[p >= 1] = 1.0  # both labels on every tile: complete co-occurrence
    absent = pi <= 0
    npmi[absent, :] = np.nan
    npmi[:, absent] = np.nan
    return np.clip(npmi, -1.0, 1.0)


def conditional_from_cooc(cooc: np.ndarray) -> np.ndarray:
    """(L, L) P(j | i) = C_ij / C_ii: share of the tiles with label i that also have label j."""
    c = np.asarray(cooc, dtype=np.float64)
    counts = np.diag(c)
    with np.errstate(invalid="ignore", divide="ignore"):
        cond = c / counts[:, None]
    cond[counts <= 0, :] = np.nan
    return cond


def label_stats(
    presence: np.ndarray,
    fractions: np.ndarray | None = None,
    names: list[str] | None = None,
    colors: list[str] | None = None,
) -> LabelStats:
    """Statistics of an (N, L) presence matrix (any 0/1 dtype) and optional (N, L) fractions."""
    y = np.asarray(presence).astype(bool)
    if y.ndim != 2:
        raise ValueError(f"presence must be (N, L), got shape {y.shape}")
    n, n_labels = y.shape
    yf = y.astype(np.float64)
    # One matrix product gives every pairwise count; the diagonal holds the label counts.
    cooc = np.rint(yf.T @ yf).astype(np.int64)
    counts = np.diag(cooc).copy()
    per_tile = np.bincount(y.sum(axis=1), minlength=n_labels + 1).astype(np.int64)
    frac_corr = pearson_matrix(fractions) if fractions is not None else np.full((n_labels, n_labels), np.nan)
    return LabelStats(
        names=list(names) if names is not None else [f"label {i}" for i in range(n_labels)],
        colors=list(colors) if colors is not None else ["#888888"] * n_labels,
        n_tiles=int(n),
        counts=counts,
        percent=100.0 * counts / max(n, 1),
        labels_per_tile=per_tile,
        cooc=cooc,
        phi=phi_from_cooc(cooc, n),
        npmi=npmi_from_cooc(cooc, n),
        cond=conditional_from_cooc(cooc),
        fraction_corr=frac_corr,
    )


def _cache_key(presence: np.ndarray, fractions: np.ndarray, rows: np.ndarray | None, names: list[str]) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(f"v{STATS_VERSION}|{presence.shape}|{fractions.shape}|{names}".encode())
    h.update(np.ascontiguousarray(presence).data)
    h.update(np.ascontiguousarray(fractions).data)
    if rows is not None:
        h.update(np.ascontiguousarray(rows, dtype=np.int64).data)
    return h.hexdigest()


def cache_path(dataset, split: str | None = None, labels=None) -> Path:
    """Where `dataset_stats` keeps its cache for `split` (None = all tiles) and label set."""
    name = "stats" if split is None else f"stats.{split}"
    if labels is not None:
        spec = repr([(lab.name, tuple(lab.codes)) for lab in labels]).encode()
        tag = hashlib.blake2b(spec, digest_size=4).hexdigest()
        name += f".labels-{tag}"
    return Path(dataset.path) / f"{name}.npz"


def dataset_stats(dataset, split: str | None = None, labels=None) -> LabelStats:
    """Label statistics of an opened `olr.data.dataset.Dataset` (all tiles, or one split), cached on disk.

    `labels`: another label set (list of `olr.data.dataset.label_schemes.Label`, e.g. a scheme's) regrouped from the
    per-code fractions; default the dataset's own labels. The cache is reused only when its
    key (a hash of presence, fractions, label names and the split's tile indices) matches, so
    a re-prepared dataset is recomputed. A dataset folder that cannot be written to just goes
    uncached.
    """
    rows = dataset.split_indices(split) if split is not None else None
    if labels is None:
        presence, fractions = dataset.presence, dataset.fractions
        names, colors = dataset.label_names, dataset.label_colors
    else:
        presence, fractions = dataset.presence_for(labels), dataset.fractions_for(labels)
        names, colors = [lab.name for lab in labels], [lab.color for lab in labels]
    key = _cache_key(presence, fractions, rows, names)
    path = cache_path(dataset, split, labels)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    return LabelStats.from_arrays(z)
        except (OSError, ValueError, KeyError):
            pass  # a damaged or old-format cache is simply recomputed
    if rows is not None:
        presence, fractions = presence[rows], fractions[rows]
    stats = label_stats(presence, fractions, names, colors)
    if workspace.is_readonly():
        return stats  # a read-only demo writes nothing, caches included
    buf = io.BytesIO()
    np.savez(buf, key=np.array(key), **stats.to_arrays())
    with contextlib.suppress(OSError):  # read-only dataset folder: serve uncached
        atomic.write_bytes(path, buf.getvalue())
    return stats


# ---------------------------------------------------------------- CLI: python -m olr datasets


def add_arguments(parser) -> None:
    parser.add_argument("name", nargs="?", help="dataset name (omit to list all datasets)")
    parser.add_argument("--split", choices=("train", "val", "test"), help="only the tiles of this split")
    parser.add_argument(
        "--scheme",
        help="regroup into another label scheme (level3/level2/level1/ben19/thesis_c3/thesis_c5 or a JSON file)",
    )
    parser.add_argument("--top", type=int, default=10, help="how many co-occurring pairs to print (default 10)")


def datasets_command(args) -> int:

    if not args.name:
        names = list_datasets()
        if not names:
            print("No datasets yet; create one with `python -m olr demo-data` or `python -m olr prepare`.")
            return 0
        print(f"{'dataset':<30} {'tiles':>8} {'labels':>7}  splits (train/val/test)")
        for name in names:
            try:
                ds = load_dataset(workspace.dataset_path(name))
            except OLRError as e:
                print(f"{name:<30} {'-':>8} {'-':>7}  unreadable: {e}")
                continue
            counts = "/".join(str(len(ds.split_indices(s))) for s in SPLITS)
            print(f"{name:<30} {ds.n_tiles:>8} {len(ds.label_names):>7}  {counts}")
        return 0
    ds = load_dataset(args.name)
    labels = None
    if args.scheme:
        labels = list(ds.scheme(args.scheme).labels)
    stats = dataset_stats(ds, args.split, labels)
    where = f"split {args.split}" if args.split else "all tiles"
    print(f"{ds.name}: {stats.n_tiles} tiles ({where}), {len(stats.names)} labels")
    print()
    print(f"{'label':<45} {'tiles':>8} {'%':>7}")
    for row in stats.frequency_table().itertuples():
        print(f"{row.label[:45]:<45} {row.count:>8} {row.percent:>7.2f}")
    print()
    hist = ", ".join(f"{k}: {c}" for k, c in enumerate(stats.labels_per_tile) if c)
    print(f"labels per tile: {hist}")
    print()
    print(f"top {args.top} co-occurring pairs:")
    print(f"{'label i':<35} {'label j':<35} {'tiles':>7} {'phi':>7} {'NPMI':>7}")
    for row in stats.top_pairs(args.top).itertuples():
        if row.cooc == 0:
            break
        print(f"{row.label_i[:35]:<35} {row.label_j[:35]:<35} {row.cooc:>7} {row.phi:>7.3f} {row.npmi:>7.3f}")
    return 0

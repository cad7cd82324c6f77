"""Training benchmarks (dispatched by `python -m olr bench classifier|siamese|backends`).

Both generate their own temporary tile array and time ways of doing the same work in one
process, interleaved (A, B, A, B, ...) so machine load hits them alike; the median, min and
max of the repetitions are reported.

- `bench classifier`: classifier training throughput (tiles/s) of `model.fit` on the
  memory-mapped tf.data pipeline (`olr.training.pipelines.tile_batches`, shuffled) next to `model.fit`
  on the same tiles held in memory as a float32 array. Target: ratio >= 0.95.
- `bench siamese`: pairs/s of Siamese training at the thesis's shapes (64x64x4 tiles, 20 labels,
  k = 32, 32 pairs a step, full width) along `siamese_paths`: the baseline is the thesis's loop
  (appendix B) with the thesis's network in float32 without XLA, as Keras 2 ran it: numpy random
  indices, a Python loop writing one occlusion rectangle into each image, two
  `classifier.predict_on_batch` calls, `siamese.train_on_batch`. The headline is the step as
  training runs it (`olr.training.models.SiameseTrainer` fed by `olr.training.pipelines.pair_batches`,
  occlusion and targets inside one compiled step; the default trunk, compute precision and XLA
  setting). Between them, rows that hold the network and then the precision fixed, so the ratio
  splits into what the step's mechanics, the arithmetic and the network each give. Target: the
  headline >= 3x the baseline.
- `bench backends`: the headline step of `bench siamese` on each Keras backend (TensorFlow, JAX), each in
  fresh processes alternating between the backends, and the ratio to TensorFlow's pairs/s. Each backend
  computes at the precision "auto" gives it (mixed bfloat16 on TensorFlow on a CPU with native bfloat16,
  float32 on JAX).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from olr.training import options
from olr.workflows import presets

CLASSIFIER_TARGET = 0.95
SIAMESE_TARGET = 3.0
#: The models benchmarked (presets/bench.json over the option defaults); flags override some.
CLASSIFIER = options.resolve(presets.load("bench")["classifier"], complete=False)
SIAMESE = options.resolve(presets.load("bench")["siamese"], complete=False)


def _tiles(folder: Path, n: int, side: int, bands: int, n_labels: int, seed: int = 0):
    """A memory-mapped (n, side, side, bands) uint8 array with blocky structure, labels (n, L)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (n, side // 4, side // 4, bands), dtype=np.uint8)
    images = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)
    np.save(folder / "images.npy", images)
    labels = (rng.random((n, n_labels)) < 0.3).astype(np.float32)
    bands_meta = [{"mean": float(images[..., b].mean()), "std": float(images[..., b].std())} for b in range(bands)]
    return np.load(folder / "images.npy", mmap_mode="r"), labels, bands_meta


def training_policy() -> str:
    """The dtype policy training computes with on this machine's CPU by default (`fit.compute_policy`)."""
    from olr.training import fit

    return fit.compute_policy(options.OPTIONS["precision"].default, on_gpu=False)


class Timed:
    """Wall time and this process's CPU time (all threads) of a block, per item."""

    def __init__(self, items: int):
        self.items = items

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.rate = self.items / (time.perf_counter() - self.wall)  # items per wall second
        self.cpu_ms = 1000 * (time.process_time() - self.cpu) / self.items  # CPU ms per item


def _report(
    title: str, unit: str, rows: list[tuple[str, list[Timed]]], target: float, headline: int | None = None
) -> int:
    """Print each row's median, min and max (the last row is the baseline) and the ratios to the baseline.

    Two figures: throughput in wall time (what a user waits for; noisy when other processes
    share the CPU) and CPU time per item of this process (the work done; stable under load).
    The target applies to the first `headline` rows (all but the baseline when None); the
    others are printed to show where a difference comes from.
    """

    def med(timings, attr):
        return statistics.median(getattr(t, attr) for t in timings)

    base_rate, base_cpu = med(rows[-1][1], "rate"), med(rows[-1][1], "cpu_ms")
    print(title)
    for name, timings in rows:
        rates = [t.rate for t in timings]
        print(
            f"  {name:<66} median {statistics.median(rates):7.1f} {unit} (min {min(rates):.1f}, max {max(rates):.1f}, "
            f"{len(rates)} runs); {med(timings, 'cpu_ms'):6.2f} CPU ms per item"
        )
    targeted = len(rows) - 1 if headline is None else headline
    for i, (name, timings) in enumerate(rows[:-1]):
        wall, cpu = med(timings, "rate") / base_rate, base_cpu / med(timings, "cpu_ms")
        verdict = f" (target >= {target}x: {'met' if wall >= target else 'NOT met'})" if i < targeted else ""
        print(f"  {name}: {wall:.2f}x the baseline's {unit}{verdict}; {cpu:.2f}x less CPU per item")
    return 0


# --- classifier ------------------------------------------------------------------------------


def add_classifier_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tiles", type=int, default=2048, help="number of tiles (default 2048)")
    parser.add_argument("--tile", type=int, default=32, help="tile side in pixels (default 32)")
    parser.add_argument("--bands", type=int, default=4)
    parser.add_argument("--labels", type=int, default=10)
    parser.add_argument(
        "--batch-size", type=int, default=CLASSIFIER["batch_size"], help=f"default {CLASSIFIER['batch_size']}"
    )
    parser.add_argument(
        "--width",
        type=float,
        default=CLASSIFIER["width"],
        help=f"resnet width multiplier (default {CLASSIFIER['width']})",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per path (default 3)")


def bench_classifier(args) -> int:
    import keras

    from olr.training import fit, models, pipelines

    with tempfile.TemporaryDirectory(prefix="olr-bench-classifier-") as tmp:
        images, labels, bands = _tiles(Path(tmp), args.tiles, args.tile, args.bands, args.labels)
        in_memory = np.asarray(images, dtype=np.float32)  # the baseline holds every tile in RAM
        n_used = (args.tiles // args.batch_size) * args.batch_size
        print(
            f"{args.tiles} tiles of {args.tile}x{args.tile}x{args.bands}, batch {args.batch_size}, "
            f"resnet width {args.width}, {args.labels} labels"
        )

        def make_model():
            keras.utils.set_random_seed(0)
            with fit.dtype_policy(training_policy()):
                model = models.resnet_classifier(
                    images.shape[1:], args.labels, bands, width=args.width, depth=CLASSIFIER["depth"]
                )
            model.compile(optimizer=keras.optimizers.Adam(CLASSIFIER["learning_rate"]), loss="binary_crossentropy")
            return model

        piped, plain = make_model(), make_model()
        pipeline = pipelines.tile_batches(
            images, np.arange(args.tiles), labels, batch_size=args.batch_size, shuffle=True, drop_remainder=True
        )

        def epoch_pipeline():
            with Timed(n_used) as t:
                piped.fit(pipeline, epochs=1, verbose=0, shuffle=False)
            return t

        def epoch_in_memory():
            with Timed(n_used) as t:
                plain.fit(
                    in_memory[:n_used], labels[:n_used], batch_size=args.batch_size, epochs=1, verbose=0, shuffle=True
                )
            return t

        epoch_pipeline(), epoch_in_memory()  # warm-up: tracing and compilation
        ours, base = [], []
        for _ in range(args.repeats):
            ours.append(epoch_pipeline())
            base.append(epoch_in_memory())
    return _report(
        "classifier training throughput",
        "tiles/s",
        [
            ("model.fit on the memory-mapped tf.data pipeline", ours),
            ("model.fit on in-memory float32 arrays (baseline)", base),
        ],
        CLASSIFIER_TARGET,
    )


# --- Siamese ---------------------------------------------------------------------------------


def add_siamese_arguments(parser: argparse.ArgumentParser) -> None:
    # the thesis's shapes (64x64 PlanetScope tiles of 4 bands, about 20 labels, k = 32, 32 pairs a batch)
    parser.add_argument("--tiles", type=int, default=1024)
    parser.add_argument("--tile", type=int, default=64, help="tile side in pixels (default 64)")
    parser.add_argument("--bands", type=int, default=4, help="default 4")
    parser.add_argument("--labels", type=int, default=20, help="default 20")
    parser.add_argument(
        "--embedding-dim", type=int, default=SIAMESE["embedding_dim"], help=f"default {SIAMESE['embedding_dim']}"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=SIAMESE["batch_size"],
        help=f"pairs per step (default {SIAMESE['batch_size']})",
    )
    parser.add_argument(
        "--width",
        type=float,
        default=SIAMESE["width"],
        help=f"width multiplier of every network (default {SIAMESE['width']})",
    )
    parser.add_argument("--steps", type=int, default=10, help="steps per timed repetition (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per path (default 5)")
    parser.add_argument(
        "--headline-only",
        action="store_true",
        help="time only the training step as olr trains (no baseline; `bench backends` runs this per backend)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write each path's rates (pairs/s) to FILE")
    parser.add_argument(
        "--occlusion",
        type=float,
        nargs=2,
        default=(SIAMESE["occlusion_min"], SIAMESE["occlusion_max"]),
        metavar=("MIN", "MAX"),
        help=f"default {SIAMESE['occlusion_min']} {SIAMESE['occlusion_max']}",
    )


@dataclass(frozen=True)
class SiamesePath:
    """One way of training the Siamese network that the benchmark times."""

    title: str
    family: str  # the network of classifier and embedder
    policy: str  # the Keras dtype policy the networks compute with
    jit: bool | str  # jit_compile as compiled ("auto": as training resolves it)
    thesis_loop: bool = False
    trunk_statistics: str | None = None  # the option `trunk_statistics` (None: its default)


def siamese_paths(policy: str) -> list[SiamesePath]:
    """The paths `bench siamese` times; the last one is the baseline, the first the headline.

    Baseline: the thesis's loop with the thesis's network (appendix B; float32 and no XLA, as Keras 2
    ran it). Headline: the step as `olr train --kind siamese` runs it with the defaults (the default
    trunk, the compute precision and XLA setting "auto" resolve to on this machine, the trunk keeping
    the classifier's batch-norm statistics). Between them: the same step with each batch's statistics
    (the earlier default); the fused step on the thesis's network, first in float32 (what the step's
    mechanics alone gain: same network, same arithmetic), then at the training precision; and the old
    default (the default trunk in float32 with XLA, each batch's statistics).
    """
    trunk = options.OPTIONS["model"].default  # the default classifier, whose family a Siamese trunk takes
    kept = options.OPTIONS["trunk_statistics"].default == "classifier"
    statistics = "the classifier's batch-norm statistics" if kept else "each batch's batch-norm statistics"
    paths = [SiamesePath(f"training step as olr trains ({trunk} trunk, {policy}, {statistics})", trunk, policy, "auto")]
    if kept:
        paths.append(
            SiamesePath("the same step with each batch's batch-norm statistics", trunk, policy, "auto", False, "batch")
        )
    return [
        *paths,
        SiamesePath("fused step, thesis network, float32, no XLA", "thesis", "float32", False),
        SiamesePath(f"fused step, thesis network, {policy}, no XLA", "thesis", policy, False),
        SiamesePath(f"fused step, {trunk} trunk, float32, XLA", trunk, "float32", True, trunk_statistics="batch"),
        SiamesePath("thesis loop, thesis network, float32 (baseline)", "thesis", "float32", False, thesis_loop=True),
    ]


def bench_siamese(args) -> int:
    import keras

    from olr.training import fit, loaders, models, pipelines

    bs, side = args.batch_size, args.tile
    policy = training_policy()
    paths = siamese_paths(policy)[:1] if args.headline_only else siamese_paths(policy)
    with tempfile.TemporaryDirectory(prefix="olr-bench-siamese-") as tmp:
        images, _, bands = _tiles(Path(tmp), args.tiles, side, args.bands, args.labels)
        data = np.asarray(images, dtype=np.float32)  # the thesis loop holds the data in RAM
        fill = np.array([b["mean"] for b in bands], dtype=np.float32)
        print(
            f"{args.tiles} tiles of {side}x{side}x{args.bands}, {bs} pairs per step, {args.labels} labels, "
            f"k={args.embedding_dim}, width {args.width:g}, occlusion {args.occlusion[0]}-{args.occlusion[1]} "
            f"of the side; compute precision 'auto' is {policy} on this CPU"
        )

        def build(path: SiamesePath):
            """(classifier, pair model compiled as the thesis's loop compiles it) of `path`'s network and policy."""
            with fit.dtype_policy(path.policy):
                keras.utils.set_random_seed(0)
                cfg = {"model": path.family, "width": args.width, "depth": SIAMESE["depth"], "dropout": 0.5}
                classifier = models.classifier({**cfg, "backbone_weights": None}, images.shape[1:], args.labels, bands)
                classifier.trainable = False
                keras.utils.set_random_seed(1)
                embedder = models.siamese_embedder(
                    images.shape[1:], args.labels, args.embedding_dim, bands, path.family, args.width, SIAMESE["depth"]
                )
                pair = models.siamese_pair_model(embedder)
                # RMSprop as the thesis's loop (appendix B) trains the pair model
                pair.compile(
                    optimizer=keras.optimizers.RMSprop(SIAMESE["learning_rate"]), loss="mse", jit_compile=False
                )
                if path.thesis_loop:
                    return classifier, pair
                siamese_cfg = {**SIAMESE, "trunk_statistics": path.trunk_statistics or SIAMESE["trunk_statistics"]}
                batch_statistics = fit.uses_batch_statistics(siamese_cfg, classifier, embedder)
                trainer = models.SiameseTrainer(pair, classifier, fill, batch_statistics=batch_statistics)
                trainer.compile(optimizer=pair.optimizer, loss="mse", jit_compile=path.jit)
                return classifier, trainer

        pairs = pipelines.pair_batches(
            images, np.arange(args.tiles), batch_size=bs, occlusion=tuple(args.occlusion), seed=0
        )
        lo, hi = loaders.side_range(side, *args.occlusion)
        rng = np.random.default_rng(0)

        def create_batch(classifier):
            """Appendix B's CreateBatch, with rectangles kept inside the tile and the same fill."""
            index = rng.choice(len(data), 2 * bs, replace=False)
            height = rng.integers(lo, hi + 1, 2 * bs)
            width = rng.integers(lo, hi + 1, 2 * bs)
            top = (rng.random(2 * bs) * (side - height + 1)).astype(int)
            left = (rng.random(2 * bs) * (side - width + 1)).astype(int)
            batch = data[index]
            for i in range(2 * bs):
                batch[i, top[i] : top[i] + height[i], left[i] : left[i] + width[i], :] = fill
            a, b = batch[:bs], batch[bs:]
            targets = classifier.predict_on_batch(a) * classifier.predict_on_batch(b)
            return a, b, targets

        def run(path, built, steps):
            classifier, model = built
            with Timed(steps * bs) as t:
                if path.thesis_loop:
                    for _ in range(steps):
                        a, b, targets = create_batch(classifier)
                        model.train_on_batch([a, b], targets)
                else:
                    model.fit(pairs, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
            return t

        built = {path: build(path) for path in paths}
        for path in paths:  # warm-up: tracing and compilation
            run(path, built[path], 2)
        results = {path: [] for path in paths}
        for _ in range(args.repeats):  # interleaved, so machine load hits every path alike
            for path in paths:
                results[path].append(run(path, built[path], args.steps))
    if args.json:
        rates = {path.title: [t.rate for t in timings] for path, timings in results.items()}
        Path(args.json).write_text(json.dumps({"backend": keras.backend.backend(), "policy": policy, "rates": rates}))
    if args.headline_only:
        for path, timings in results.items():
            rates = [t.rate for t in timings]
            print(f"  {path.title}: median {statistics.median(rates):.1f} pairs/s ({min(rates):.1f}-{max(rates):.1f})")
        return 0
    return _report(
        "Siamese training throughput",
        "pairs/s",
        [(path.title, timings) for path, timings in results.items()],
        SIAMESE_TARGET,
        headline=1,
    )


# --- backends ------------------------------------------------------------------------------------

#: the Keras backends `bench backends` compares, the first the reference of the ratio
BACKENDS = ("tensorflow", "jax")


def add_backends_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Siamese training throughput (the step as olr trains it, at the thesis's shapes) on each Keras backend, "
        "each in its own process, alternating, and the ratio to TensorFlow's"
    )
    add_siamese_arguments(parser)
    parser.set_defaults(repeats=3)


def bench_backends(args) -> int:
    """`bench siamese --headline-only` in a child process per backend and round (rounds alternate the backends,
    so machine load hits them alike); each child's median is one run; medians, min and max over the rounds."""
    passed = [
        *("--tiles", str(args.tiles), "--tile", str(args.tile), "--bands", str(args.bands)),
        *("--labels", str(args.labels), "--embedding-dim", str(args.embedding_dim)),
        *("--batch-size", str(args.batch_size), "--width", str(args.width), "--steps", str(args.steps)),
        *("--occlusion", *(str(v) for v in args.occlusion), "--repeats", "3", "--headline-only"),
    ]
    medians: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
    policies = {}
    with tempfile.TemporaryDirectory(prefix="olr-bench-backends-") as tmp:
        for round_ in range(args.repeats):
            for backend in BACKENDS:
                out = Path(tmp) / f"{backend}-{round_}.json"
                command = [sys.executable, "-m", "olr", "bench", "siamese", *passed, "--json", str(out)]
                proc = subprocess.run(
                    command, env={**os.environ, "KERAS_BACKEND": backend}, capture_output=True, text=True
                )
                if proc.returncode != 0:
                    print(f"{backend}: the benchmark failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
                    return 1
                record = json.loads(out.read_text())
                policies[backend] = record["policy"]
                medians[backend].append(statistics.median(next(iter(record["rates"].values()))))
    print(
        f"Siamese training step as olr trains it, per Keras backend ({args.tile}x{args.tile}x{args.bands} tiles, "
        f"{args.labels} labels, k={args.embedding_dim}, {args.batch_size} pairs per step; {args.repeats} rounds, "
        "each the median of 3 timed repetitions in a fresh process)"
    )
    for backend in BACKENDS:
        rates = medians[backend]
        print(
            f"  {backend:<11} ({policies[backend]}): median {statistics.median(rates):.1f} pairs/s "
            f"(min {min(rates):.1f}, max {max(rates):.1f})"
        )
    reference = statistics.median(medians[BACKENDS[0]])
    for backend in BACKENDS[1:]:
        ratios = [rate / ref for rate, ref in zip(medians[backend], medians[BACKENDS[0]])]
        print(
            f"  {backend} / {BACKENDS[0]}: {statistics.median(medians[backend]) / reference:.2f}x "
            f"(per round {min(ratios):.2f}-{max(ratios):.2f}x)"
        )
    return 0

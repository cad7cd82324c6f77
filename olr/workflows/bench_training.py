"""Training benchmarks (dispatched by `python -m olr bench classifier|siamese`).

Both generate their own temporary tile array and time two ways of doing the same work in
one process, interleaved (A, B, A, B, ...) so machine load hits both alike; the median
of the repetitions is reported.

- `bench classifier`: classifier training throughput (tiles/s) of `model.fit` on the
  memory-mapped tf.data pipeline (`olr.training.pipelines.tile_batches`, shuffled) next to `model.fit`
  on the same tiles held in memory as a float32 array. Target: ratio >= 0.9.
- `bench siamese`: pairs/s of the compiled Siamese step (`olr.training.models.SiameseTrainer` fed by
  `olr.training.pipelines.pair_batches`: occlusion and targets inside the step), XLA-compiled as
  training runs it on one device (jit_compile="auto") and without XLA, next to the
  thesis's loop (appendix B): numpy random indices, a Python loop writing one occlusion
  rectangle into each image, two `classifier.predict_on_batch` calls,
  `siamese.train_on_batch`. Same models, batch size, occlusion range and tile shape.
  Target: ratio >= 1.5. Only the fused step can be XLA-compiled end to end (occlusion,
  classifier, embedder and update in one program); the thesis loop cannot.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from olr.training import options
from olr.workflows import presets

CLASSIFIER_TARGET = 0.9
SIAMESE_TARGET = 1.5
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


def _report(title: str, unit: str, rows: list[tuple[str, list[Timed]]], target: float) -> int:
    """Print each row's medians (the last row is the baseline) and the ratios to the baseline.

    Two figures: throughput in wall time (what a user waits for; noisy when other processes
    share the CPU) and CPU time per item of this process (the work done; stable under load).
    """

    def med(timings, attr):
        return statistics.median(getattr(t, attr) for t in timings)

    base_rate, base_cpu = med(rows[-1][1], "rate"), med(rows[-1][1], "cpu_ms")
    print(title)
    for name, timings in rows:
        runs = ", ".join(f"{t.rate:.1f}" for t in timings)
        print(
            f"  {name:<58} {med(timings, 'rate'):8.1f} {unit} (runs {runs}); "
            f"{med(timings, 'cpu_ms'):6.2f} CPU ms per item"
        )
    for name, timings in rows[:-1]:
        wall, cpu = med(timings, "rate") / base_rate, base_cpu / med(timings, "cpu_ms")
        verdict = "met" if wall >= target else "NOT met"
        print(
            f"  {name}: {wall:.2f}x the baseline's {unit} (target >= {target}x: {verdict}); "
            f"{cpu:.2f}x less CPU per item"
        )
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

    from olr.training import models, pipelines

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
    parser.add_argument("--tiles", type=int, default=1024)
    parser.add_argument("--tile", type=int, default=32, help="tile side in pixels (default 32)")
    parser.add_argument("--bands", type=int, default=3)
    parser.add_argument("--labels", type=int, default=8)
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
        help=f"resnet width of classifier and trunk (default {SIAMESE['width']})",
    )
    parser.add_argument("--steps", type=int, default=50, help="steps per timed repetition (default 50)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--occlusion",
        type=float,
        nargs=2,
        default=(SIAMESE["occlusion_min"], SIAMESE["occlusion_max"]),
        metavar=("MIN", "MAX"),
        help=f"default {SIAMESE['occlusion_min']} {SIAMESE['occlusion_max']}",
    )


def bench_siamese(args) -> int:
    import keras

    from olr.training import models, pipelines

    bs, side = args.batch_size, args.tile
    with tempfile.TemporaryDirectory(prefix="olr-bench-siamese-") as tmp:
        images, _, bands = _tiles(Path(tmp), args.tiles, side, args.bands, args.labels)
        data = np.asarray(images, dtype=np.float32)  # the thesis loop holds the data in RAM
        fill = np.array([b["mean"] for b in bands], dtype=np.float32)
        print(
            f"{args.tiles} tiles of {side}x{side}x{args.bands}, {bs} pairs per step, {args.labels} labels, "
            f"k={args.embedding_dim}, occlusion {args.occlusion[0]}-{args.occlusion[1]} of the side"
        )
        keras.utils.set_random_seed(0)
        classifier = models.resnet_classifier(
            images.shape[1:], args.labels, bands, width=args.width, depth=SIAMESE["depth"]
        )
        classifier.trainable = False

        def make_pair():
            keras.utils.set_random_seed(1)
            embedder = models.siamese_embedder(
                images.shape[1:], args.labels, args.embedding_dim, bands, "resnet", args.width, SIAMESE["depth"]
            )
            pair = models.siamese_pair_model(embedder)
            # RMSprop as the thesis's loop (appendix B) trains the pair model
            pair.compile(optimizer=keras.optimizers.RMSprop(SIAMESE["learning_rate"]), loss="mse")
            return pair

        thesis_pair = make_pair()
        trainers = {}
        for name, jit in (("compiled step, XLA (training default)", True), ("compiled step, no XLA", False)):
            pair = make_pair()
            trainer = models.SiameseTrainer(pair, classifier, fill)
            trainer.compile(optimizer=pair.optimizer, loss="mse", jit_compile=jit)
            trainers[f"{name} (occlusion + targets inside)"] = trainer
        pairs = pipelines.pair_batches(
            images, np.arange(args.tiles), batch_size=bs, occlusion=tuple(args.occlusion), seed=0
        )
        lo, hi = pipelines._side_range(side, *args.occlusion)
        rng = np.random.default_rng(0)

        def create_batch():
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

        def run_compiled(trainer, steps):
            with Timed(steps * bs) as t:
                trainer.fit(pairs, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
            return t

        def run_thesis(steps):
            with Timed(steps * bs) as t:
                for _ in range(steps):
                    a, b, targets = create_batch()
                    thesis_pair.train_on_batch([a, b], targets)
            return t

        for trainer in trainers.values():  # warm-up: tracing and compilation
            run_compiled(trainer, 2)
        run_thesis(2)
        results = {name: [] for name in trainers}
        results["thesis loop (CreateBatch + predict_on_batch + train_on_batch)"] = []
        for _ in range(args.repeats):
            for name, trainer in trainers.items():
                results[name].append(run_compiled(trainer, args.steps))
            results["thesis loop (CreateBatch + predict_on_batch + train_on_batch)"].append(run_thesis(args.steps))
    return _report("Siamese training throughput", "pairs/s", list(results.items()), SIAMESE_TARGET)

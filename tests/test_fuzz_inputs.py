"""Fuzzing the input readers: corrupted, truncated and random files given to dataset preparation
(GeoTIFF images, CORINE rasters and GeoPackages) and to the thesis-format importer.

A bounded, seeded random loop (the seed is in every failure message): each case must end in a
dataset that loads, or in an OLRError of one sentence, within a time limit, leaving no folder
behind; any other exception, a crash or a hang fails the test.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

from olr.data.dataset import load_dataset
from olr.data.prepare import prepare_dataset
from olr.data.thesis_import import import_batches
from olr.errors import OLRError
from tests.fixtures.data import make_scene, write_batches, write_label_vector

SEED = 20261121
CASE_TIMEOUT_S = 30
RASTER_CASES = 160
BATCH_CASES = 120


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int, what: str):
    def on_alarm(signum, frame):
        raise Hang(f"{what} did not end within {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One corruption of a valid file's bytes, and its name for the failure message."""
    kind = rng.choice(
        ["truncate", "flip_header", "flip_anywhere", "zero_block", "random", "empty", "duplicate_tail", "text"]
    )
    if kind == "truncate":
        cut = rng.randrange(0, len(data))
        return data[:cut], f"truncated at {cut}/{len(data)}"
    if kind in ("flip_header", "flip_anywhere"):
        out = bytearray(data)
        span = min(len(out), 512) if kind == "flip_header" else len(out)
        flips = rng.randint(1, 24)
        for _ in range(flips):
            i = rng.randrange(span)
            out[i] = rng.randrange(256)
        return bytes(out), f"{kind} x{flips}"
    if kind == "zero_block":
        start = rng.randrange(len(data))
        length = rng.randint(1, 4096)
        return data[:start] + bytes(min(length, len(data) - start)) + data[
            start + length :
        ], f"zeroed {length} at {start}"
    if kind == "random":
        n = rng.choice([1, 8, 100, 4096, 40000])
        return rng.randbytes(n), f"{n} random bytes"
    if kind == "empty":
        return b"", "empty"
    if kind == "duplicate_tail":
        return data + data[-rng.randint(1, 2048) :], "extra bytes at the end"
    return b"this is not a raster\n" * rng.randint(1, 50), "plain text"


def assert_one_sentence(error: OLRError, why: str) -> None:
    text = str(error)
    assert text.strip() and "\n" not in text and "Traceback" not in text and len(text) < 600, (why, text)


def run_case(build, out: Path, why: str) -> str:
    """Run one case; return "ok" or "error", failing on anything else."""
    try:
        with time_limit(CASE_TIMEOUT_S, why):
            build()
    except OLRError as error:
        assert_one_sentence(error, why)
        assert not out.exists(), (why, "a failed case left its dataset folder")
        return "error"
    except Hang:
        pytest.fail(f"hang: {why}")
    except Exception as error:
        pytest.fail(f"{type(error).__name__} instead of a one-sentence error for {why}: {error}")
    ds = load_dataset(out)  # what was accepted must be a complete dataset
    assert ds.n_tiles > 0 and ds.images.shape[0] == ds.fractions.shape[0], why
    shutil.rmtree(out)
    return "ok"


@pytest.fixture(scope="module")
def valid_sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz_sources")
    scene = make_scene(folder, size=64)
    vector = write_label_vector(folder / "labels.gpkg", scene.codes, scene.label_transform)
    return {"image": scene.image, "labels_raster": scene.labels, "labels_vector": vector}


def test_preparation_survives_corrupted_rasters_and_vectors(valid_sources, tmp_path):
    rng = random.Random(SEED)
    outcomes = {"ok": 0, "error": 0}
    originals = {key: Path(path).read_bytes() for key, path in valid_sources.items()}
    for case in range(RASTER_CASES):
        target = rng.choices(["image", "labels_raster", "labels_vector"], weights=[10, 7, 3])[0]
        data, how = mutate(originals[target], rng)
        folder = tmp_path / f"case{case}"
        folder.mkdir()
        sources = {key: Path(path) for key, path in valid_sources.items()}
        corrupted = folder / sources[target].name
        corrupted.write_bytes(data)
        sources[target] = corrupted
        labels = sources["labels_vector"] if target == "labels_vector" else sources["labels_raster"]
        out = folder / "ds"
        why = f"case {case} (seed {SEED}): {target} {how}"
        outcomes[
            run_case(
                lambda sources=sources, labels=labels, out=out: prepare_dataset(
                    sources["image"], labels, out, tile=16, split_block=2
                ),
                out,
                why,
            )
        ] += 1
        shutil.rmtree(folder)
    # The loop really exercised both outcomes (some corruptions are harmless, most are not).
    assert outcomes["error"] >= RASTER_CASES // 3 and outcomes["ok"] >= 1, outcomes
    print(f"raster fuzz: {RASTER_CASES} cases, {outcomes}")


def test_thesis_import_survives_corrupted_batches(tmp_path):
    rng = random.Random(SEED + 1)
    valid = write_batches(tmp_path / "valid", sizes=(6, 6, 4), shape=(8, 8, 3), n_labels=5)
    names = [p.name for p in sorted(valid.iterdir())]
    outcomes = {"ok": 0, "error": 0}
    for case in range(BATCH_CASES):
        folder = tmp_path / f"case{case}"
        shutil.copytree(valid, folder)
        victims = rng.sample(names, rng.randint(1, 2))
        hows = []
        for name in victims:
            data, how = mutate((valid / name).read_bytes(), rng)
            (folder / name).write_bytes(data)
            hows.append(f"{name} {how}")
        if rng.random() < 0.15:  # structural faults on top: a missing batch, a stray pickle, odd values
            fault = rng.choice(["missing", "pickle", "values", "names"])
            if fault == "missing":
                (folder / rng.choice(names)).unlink(missing_ok=True)
            elif fault == "pickle":
                np.save(folder / "labels1.npy", np.array([{"a": 1}] * 6, dtype=object), allow_pickle=True)
            elif fault == "values":
                np.save(folder / "labels0.npy", np.full((6, 5), 2, dtype=np.int64))
            hows.append(fault)
        label_names = folder / "names.txt"
        label_names.write_bytes(
            b"a\nb\nc\nd\ne\n"
            if rng.random() < 0.7
            else rng.choice([b'["a", 1]', b"\xff\xfe\x00", b"a\nb\n", b"", b'["a", "b"'])
        )
        out = tmp_path / f"out{case}" / "ds"
        why = f"case {case} (seed {SEED + 1}): {'; '.join(hows)}"
        outcomes[
            run_case(
                lambda folder=folder, out=out, label_names=label_names: import_batches(
                    folder, out, label_names=label_names
                ),
                out,
                why,
            )
        ] += 1
        shutil.rmtree(folder)
    assert outcomes["error"] >= BATCH_CASES // 3 and outcomes["ok"] >= 1, outcomes
    print(f"thesis import fuzz: {BATCH_CASES} cases, {outcomes}")


def test_a_geopackage_that_crashes_gdal_gives_an_error_not_a_dead_process(valid_sources, tmp_path):
    # Found by the loop above: fiona/GDAL dies with a segmentation fault on this damaged file.
    damaged = Path(__file__).parent / "fixtures" / "files" / "damaged_clc.gpkg"
    out = tmp_path / "ds"
    with pytest.raises(OLRError) as info:
        prepare_dataset(valid_sources["image"], damaged, out, tile=16, split_block=2)
    assert_one_sentence(info.value, "damaged_clc.gpkg")
    assert "damaged_clc.gpkg" in str(info.value) and not out.exists()

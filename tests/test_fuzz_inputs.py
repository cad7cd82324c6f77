"""Fuzzing the input readers with generated hostile files: corrupted, truncated and random
rasters and GeoPackages given to dataset preparation, thesis-format batches, label mapping
JSON, training config JSON, and corrupted files of a finished run folder read the way the
pages read them.

Bounded, seeded random loops (raster, thesis, mapping, config, run): each case has its own
seed (`<loop>-<SEED>-<case>`), so one case is rerun alone with `OLR_FUZZ_CASE=<loop>:<case>`
(e.g. `OLR_FUZZ_CASE=run:17`); the run-folder cases reuse the session's trained runs. The
contract for every input: the reader succeeds (and what it accepted is usable), or it raises
an OLRError of one sentence, within a time limit; any other exception, a crash or a hang fails.
Each loop collects its outcomes and prints, per input kind, how many cases were accepted,
refused with a sentence, or failed (each failure with its case to rerun); the same report is
the assertion message when a case failed.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import random
import shutil
import signal
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from olr.analysis import compare, correlations, evaluation, pair_maps, run_data
from olr.data.dataset import load_dataset
from olr.data.label_schemes import ALL_CODES, THESIS_C3, THESIS_C5, get_scheme
from olr.data.prepare import prepare_dataset
from olr.data.thesis_import import import_batches
from olr.errors import OLRError
from olr.runs import store
from olr.runs.store import RunLayout
from olr.training import options
from tests.fixtures.data import make_scene, write_batches, write_label_vector

SEED = 20261121
CASE_TIMEOUT_S = 30  # one dataset preparation or import
READ_TIMEOUT_S = 10  # one reader call on one small file
RASTER_CASES = 160  # vectors are a small share: each is read in a child process
BATCH_CASES = 120
MAPPING_CASES = 500
CONFIG_CASES = 500
RUN_CASES = 400


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


def case_numbers(loop: str, count: int) -> list[int]:
    """The cases of `loop` to run: all, or the one named by OLR_FUZZ_CASE=<loop>:<case>."""
    only = os.environ.get("OLR_FUZZ_CASE")
    if not only:
        return list(range(count))
    name, _, number = only.partition(":")
    return [int(number)] if name == loop else []


def reproducing() -> bool:
    return bool(os.environ.get("OLR_FUZZ_CASE"))


def case_rng(loop: str, case: int) -> random.Random:
    return random.Random(f"{loop}-{SEED}-{case}")


def case_name(loop: str, case: int) -> str:
    return f"OLR_FUZZ_CASE={loop}:{case} (seed {loop}-{SEED}-{case})"


class Tally:
    """Outcomes of one loop per input kind: accepted, refused (OLRError, one sentence) or failed."""

    def __init__(self, loop: str):
        self.loop = loop
        self.counts: dict[str, Counter] = {}
        self.failures: dict[tuple[str, str], list[str]] = {}  # (kind, what happened) -> cases

    def add(self, kind: str, case: str, outcome: str, *details: str) -> None:
        """Count one input of `kind`; a failed one with what happened (one or more details) and its case."""
        self.counts.setdefault(kind, Counter())[outcome] += 1
        for detail in details if outcome == "failed" else ():
            self.failures.setdefault((kind, detail), []).append(case)

    def total(self, outcome: str | None = None) -> int:
        return sum(c[outcome] if outcome else sum(c.values()) for c in self.counts.values())

    def report(self) -> str:
        lines = [f"{self.loop} fuzz: {self.total()} inputs"]
        for kind, c in sorted(self.counts.items()):
            lines.append(
                f"  {kind}: {sum(c.values())} inputs, accepted {c['accepted']}, "
                f"refused with a sentence {c['refused']}, failed {c['failed']}"
            )
        for (kind, detail), cases in sorted(self.failures.items()):
            shown = "; ".join(cases[:3]) + (f"; and {len(cases) - 3} more" if len(cases) > 3 else "")
            lines.append(f"  FAILED {kind} x{len(cases)}: {detail} -- {shown}")
        return "\n".join(lines)

    def check(self) -> None:
        print(self.report())
        assert not self.failures, self.report()


def attempt(call, limit: int, what: str) -> tuple[str, str]:
    """Run `call`: ("accepted", ""), ("refused", "") for a one-sentence OLRError, or ("failed", what happened)."""
    try:
        with time_limit(limit, what):
            call()
    except OLRError as error:
        text = str(error)
        if text.strip() and "\n" not in text and "Traceback" not in text and len(text) < 600:
            return "refused", ""
        return "failed", f"OLRError that is not one sentence: {text[:200]!r}"
    except Hang:
        return "failed", f"hang (more than {limit} s)"
    except Exception as error:
        return "failed", f"{type(error).__name__}: {str(error)[:200]}"
    return "accepted", ""


# --- byte-wise corruption ------------------------------------------------------------------


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


# --- structural JSON corruption --------------------------------------------------------------


class Raw(str):
    """JSON text written as is: what json.dumps cannot write (5000-digit numbers, deep nesting)."""


class Dup(list):
    """A JSON object written from (key, value) pairs, so that a key can repeat."""


DEEP = 200_000

#: (name, factory) of values that a hostile or careless file holds where something else belongs
HOSTILE = (
    ("a 5000-digit integer", lambda: Raw("9" * 5000)),
    ("a 400-digit negative integer", lambda: Raw("-" + "9" * 400)),
    ("1e400", lambda: Raw("1e400")),
    ("-1e400", lambda: Raw("-1e400")),
    ("Infinity", lambda: math.inf),
    ("-Infinity", lambda: -math.inf),
    ("NaN", lambda: math.nan),
    ("2**63", lambda: 2**63),
    ("-2**63 - 1", lambda: -(2**63) - 1),
    ("10**30", lambda: 10**30),
    ("-1", lambda: -1),
    ("0", lambda: 0),
    ("-0.0", lambda: -0.0),
    ("0.5", lambda: 0.5),
    ("1e-320", lambda: 1e-320),
    ("true", lambda: True),
    ("false", lambda: False),
    ("null", lambda: None),
    ("an empty string", lambda: ""),
    ("a blank string", lambda: "  \t "),
    ("a string with a newline", lambda: "a\nb"),
    ("markdown and HTML", lambda: "**bold** [x](javascript:alert(1)) <img src=x onerror=alert(1)> `c`"),
    ("unicode", lambda: "Forêt 森林 🌲 \u202eevil"),
    ("a lone surrogate", lambda: "\ud800"),
    ("a NUL character", lambda: "a\x00b"),
    ("a 100,000-character string", lambda: "x" * 100_000),
    ("a path", lambda: "../../etc/passwd"),
    ("a numeric string", lambda: "111"),
    ("an empty list", lambda: []),
    ("an empty object", lambda: {}),
    ("nested lists", lambda: [[[1]]]),
    ("an object", lambda: {"a": {"b": [1, None]}}),
    ("a 10,000-element list", lambda: list(range(10_000))),
    ("a 200,000-level nested list", lambda: Raw("[" * DEEP + "]" * DEEP)),
    ("a 100,000-level nested object", lambda: Raw('{"a":' * (DEEP // 2) + "0" + "}" * (DEEP // 2))),
)


#: what a renamed key becomes: blank, markdown, HTML, unicode, a lone surrogate, a newline, very long
RENAMED_KEYS = ("", "   ", "**Urban** _fabric_", "<b>x</b>", "Forêt 森林", "\u202e", "\ud800", "a\nb", "x" * 5000)


def hostile(rng: random.Random):
    name, make = rng.choice(HOSTILE)
    return make(), name


def emit(value) -> str:
    """JSON text of `value` (Raw parts as they are, Dup objects with their repeated keys)."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Dup):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {emit(v)}" for k, v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {emit(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(emit(v) for v in value) + "]"
    return json.dumps(value)  # numbers (Infinity/NaN as Python writes them), strings, true/false/null


def node_paths(doc, path=()) -> list[tuple]:
    """Paths (keys and indices) of every node, containers of more than 64 items seen as leaves."""
    out = [path]
    if isinstance(doc, (Raw, Dup)) or not isinstance(doc, (dict, list)) or len(doc) > 64:
        return out
    items = doc.items() if isinstance(doc, dict) else enumerate(doc)
    for key, value in items:
        out += node_paths(value, (*path, key))
    return out


def get_at(doc, path):
    for key in path:
        doc = doc[key]
    return doc


def put_at(doc, path, value):
    if not path:
        return value
    get_at(doc, path[:-1])[path[-1]] = value
    return doc


def where(path: tuple) -> str:
    """A node's path for a failure message: "the document" or e.g. "['Urban', 1]"."""
    return str(list(path)) if path else "the document"


def retyped(value, rng: random.Random):
    """The same content as another JSON type."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return rng.choice([str(value), [value], {"value": value}])
    if isinstance(value, str):
        return rng.choice([len(value), [value], {value: value}])
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if isinstance(value, dict):
        return list(value.values()) if rng.random() < 0.5 else [[k, v] for k, v in value.items()]
    return "null"


def mutate_json(doc, rng: random.Random) -> tuple[object, str]:
    """One structural change of a parsed JSON document (changed in place where possible)."""
    paths = node_paths(doc)
    objects = [p for p in paths if type(get_at(doc, p)) is dict and get_at(doc, p)]
    containers = paths[1:]
    kind = rng.choice(["replace", "replace", "replace", "delete", "add_key", "duplicate_key", "rename_key", "retype"])
    kind = kind if rng.random() > 0.05 else "root"
    if (kind == "delete" and not containers) or (kind in ("add_key", "duplicate_key", "rename_key") and not objects):
        kind = "replace"
    if kind == "root":
        value, name = hostile(rng)
        return value, f"the whole document replaced by {name}"
    if kind == "replace":
        path = rng.choice(paths)
        value, name = hostile(rng)
        return put_at(doc, path, value), f"{where(path)} replaced by {name}"
    if kind == "retype":
        path = rng.choice(paths)
        return put_at(doc, path, retyped(get_at(doc, path), rng)), f"{where(path)} as another JSON type"
    if kind == "delete":
        path = rng.choice(containers)
        parent = get_at(doc, path[:-1])
        del parent[path[-1]]
        return doc, f"{where(path)} deleted"
    path = rng.choice(objects)
    obj = get_at(doc, path)
    if kind == "add_key":
        value, name = hostile(rng)
        key = rng.choice(["", " ", "unknown_key", "**md**", "名前", "\ud800", "9" * 50, *list(obj)[:1]])
        obj[key + ("_extra" if key in obj else "")] = value
        return doc, f"key {key[:20]!r} with {name} added to {where(path)}"
    key = rng.choice(list(obj))
    if kind == "duplicate_key":
        value, name = hostile(rng) if rng.random() < 0.7 else (copy.deepcopy(obj[key]), "the same value")
        pairs = list(obj.items())
        pairs.insert(rng.randrange(len(pairs) + 1), (key, value))
        return put_at(doc, path, Dup(pairs)), f"key {key[:20]!r} of {where(path)} repeated with {name}"
    new = rng.choice(RENAMED_KEYS)
    renamed = {(new if k == key else k): v for k, v in obj.items()}
    return put_at(doc, path, renamed), f"key {key[:20]!r} of {where(path)} renamed to {new[:20]!r}"


def json_case(doc, rng: random.Random) -> tuple[bytes, str]:
    """A corrupted JSON file made from the valid document `doc`: structural, byte-wise or encoding changes."""
    r = rng.random()
    if r < 0.65:
        doc, hows = copy.deepcopy(doc), []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            doc, how = mutate_json(doc, rng)
            hows.append(how)
        return emit(doc).encode("ascii"), "; ".join(hows)
    valid = json.dumps(doc, indent=rng.choice([None, 2]), ensure_ascii=False).encode("utf-8")
    if r < 0.9:
        return mutate(valid, rng)
    encoding = rng.choice(["utf-8 BOM", "utf-16", "latin-1", "NUL padded"])
    if encoding == "utf-8 BOM":
        return b"\xef\xbb\xbf" + valid, encoding
    if encoding == "utf-16":
        return valid.decode("utf-8").encode("utf-16"), encoding
    if encoding == "latin-1":
        return json.dumps({"Forêt": doc}, ensure_ascii=False).encode("latin-1", "replace"), encoding
    return valid + bytes(rng.randint(1, 64)), encoding


# --- dataset preparation and the thesis importer ---------------------------------------------


def run_case(build, out: Path, why: str) -> tuple[str, str]:
    """Run one preparation or import case; what was accepted must be a complete dataset."""
    outcome, detail = attempt(build, CASE_TIMEOUT_S, why)
    if outcome == "refused" and out.exists():
        return "failed", "a refused case left its dataset folder"
    if outcome == "accepted":
        try:
            ds = load_dataset(out)
            complete = ds.n_tiles > 0 and ds.images.shape[0] == ds.fractions.shape[0]
        except Exception as error:
            return "failed", f"accepted, but the dataset does not load: {type(error).__name__}: {error}"
        if not complete:
            return "failed", "accepted an empty or inconsistent dataset"
        shutil.rmtree(out)
    return outcome, detail


@pytest.fixture(scope="module")
def valid_sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz_sources")
    scene = make_scene(folder, size=64)
    vector = write_label_vector(folder / "labels.gpkg", scene.codes, scene.label_transform)
    return {"image": scene.image, "labels_raster": scene.labels, "labels_vector": vector}


def test_preparation_survives_corrupted_rasters_and_vectors(valid_sources, tmp_path):
    tally = Tally("raster")
    originals = {key: Path(path).read_bytes() for key, path in valid_sources.items()}
    for case in case_numbers("raster", RASTER_CASES):
        rng = case_rng("raster", case)
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
        why = f"{case_name('raster', case)}: {how}"
        outcome, detail = run_case(
            lambda sources=sources, labels=labels, out=out: prepare_dataset(
                sources["image"], labels, out, tile=16, split_block=2
            ),
            out,
            why,
        )
        tally.add(target, why, outcome, detail)
        shutil.rmtree(folder)
    tally.check()
    # The loop really exercised both outcomes (some corruptions are harmless, most are not).
    assert reproducing() or (tally.total("refused") >= RASTER_CASES // 3 and tally.total("accepted") >= 1), (
        tally.report()
    )


def test_thesis_import_survives_corrupted_batches(tmp_path):
    tally = Tally("thesis")
    valid = write_batches(tmp_path / "valid", sizes=(6, 6, 4), shape=(8, 8, 3), n_labels=5)
    names = [p.name for p in sorted(valid.iterdir())]
    for case in case_numbers("thesis", BATCH_CASES):
        rng = case_rng("thesis", case)
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
        why = f"{case_name('thesis', case)}: {'; '.join(hows)}"
        outcome, detail = run_case(
            lambda folder=folder, out=out, label_names=label_names: import_batches(
                folder, out, label_names=label_names
            ),
            out,
            why,
        )
        tally.add("thesis batches", why, outcome, detail)
        shutil.rmtree(folder)
    tally.check()
    assert reproducing() or (tally.total("refused") >= BATCH_CASES // 3 and tally.total("accepted") >= 1), (
        tally.report()
    )


def test_a_geopackage_that_crashes_gdal_gives_an_error_not_a_dead_process(valid_sources, tmp_path):
    # Found by the loop above: fiona/GDAL dies with a segmentation fault on this damaged file.
    damaged = Path(__file__).parent / "fixtures" / "files" / "damaged_clc.gpkg"
    out = tmp_path / "ds"
    with pytest.raises(OLRError) as info:
        prepare_dataset(valid_sources["image"], damaged, out, tile=16, split_block=2)
    text = str(info.value)
    assert text.strip() and "\n" not in text and len(text) < 600, text
    assert "damaged_clc.gpkg" in text and not out.exists()


# --- label mapping JSON ----------------------------------------------------------------------

MAPPING_BASES = (
    THESIS_C3,
    THESIS_C5,
    {lab.name: list(lab.codes) for lab in get_scheme("level2").labels},
    {"Urban": [111, 112], "Forest": [311, 312, 313], "Water": [511, 512, 523]},
)


def use_scheme(spec) -> None:
    """Resolve a scheme as preparation does; what was accepted must give a code matrix, storable JSON
    and label names that UTF-8 text can hold (per_label.csv, the pages)."""
    scheme = get_scheme(spec)
    assert scheme.code_matrix(ALL_CODES).shape == (len(ALL_CODES), len(scheme.labels))
    json.dumps(scheme.to_json(), allow_nan=False)
    names = [label.name for label in scheme.labels]
    try:
        "".join(names).encode("utf-8")
    except UnicodeEncodeError:
        raise AssertionError(f"accepted label names that UTF-8 text cannot hold: {ascii(names)[:200]}") from None


def test_label_mappings_survive_hostile_json(tmp_path):
    tally = Tally("label mapping")
    for case in case_numbers("mapping", MAPPING_CASES):
        rng = case_rng("mapping", case)
        data, how = json_case(rng.choice(MAPPING_BASES), rng)
        why = f"{case_name('mapping', case)}: {how}"
        path = tmp_path / f"mapping{case}.json"
        path.write_bytes(data)
        tally.add("mapping file", why, *attempt(lambda path=path: use_scheme(path), READ_TIMEOUT_S, why))
        # The Datasets page parses the text box itself and hands over whatever JSON it holds.
        try:
            parsed = json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError):
            pass
        else:
            tally.add("mapping object", why, *attempt(lambda parsed=parsed: use_scheme(parsed), READ_TIMEOUT_S, why))
        path.unlink()
    tally.check()
    assert reproducing() or tally.total("refused") >= MAPPING_CASES // 3, tally.report()


# --- training config JSON --------------------------------------------------------------------


def config_bases() -> list[dict]:
    full = {**options.defaults("classifier"), "dataset": "tiny"}
    return [
        full,
        {**options.defaults("siamese"), "classifier_run": "cls"},
        {
            "kind": "classifier",
            "dataset": "tiny",
            "epochs": 2,
            "batch_size": 16,
            "learning_rate": 0.01,
            "seed": 7,
            "scheme": {"Urban": [111, 112], "Forest": [311, 312, 313]},
        },
        # a previous run's config.json, derived keys included (they are dropped when read back)
        {**full, "labels": [{"name": "Urban", "codes": [111, 112], "color": "#e6004d"}], "tile_shape": [16, 16, 3]},
    ]


def option_value(opt: options.Option, rng: random.Random) -> tuple[object, str]:
    """A value just outside an option's range, a huge or negative number, or another hostile value."""
    if opt.type in ("int", "float") and rng.random() < 0.7:
        candidates = [-1, -(2**31), 2**63, 10**30, 0.5, 1e308]
        if opt.min is not None:
            candidates += [opt.min - 1, opt.min - 1e-9, opt.min]
        if opt.max is not None:
            candidates += [opt.max + 1, opt.max * 10**6, opt.max + 1e-9]
        value = rng.choice(candidates)
        return value, repr(value)
    return hostile(rng)


def use_config(path: Path) -> None:
    """Read and resolve a config file as `python -m olr train --config` does; what was accepted must be storable."""
    cfg = options.resolve(options.load_file(path))
    try:
        json.dumps(cfg, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise AssertionError(f"accepted a config that config.json cannot hold ({error})") from None


def test_training_configs_survive_hostile_json(tmp_path):
    tally = Tally("training config")
    bases = config_bases()
    for base in bases:  # the generator starts from configs that are valid
        options.resolve(base)
    for case in case_numbers("config", CONFIG_CASES):
        rng = case_rng("config", case)
        base = copy.deepcopy(rng.choice(bases))
        if rng.random() < 0.4:
            key = rng.choice(list(options.options_for(base.get("kind", "classifier"))))
            value, name = option_value(options.OPTIONS[key], rng)
            base[key] = value
            data, how = emit(base).encode("ascii"), f"{key}={name}"
        else:
            data, how = json_case(base, rng)
        why = f"{case_name('config', case)}: {how}"
        path = tmp_path / f"config{case}.json"
        path.write_bytes(data)
        tally.add("config file", why, *attempt(lambda path=path: use_config(path), READ_TIMEOUT_S, why))
        path.unlink()
    tally.check()
    assert reproducing() or tally.total("refused") >= CONFIG_CASES // 3, tally.report()


# --- run folders -----------------------------------------------------------------------------

#: the files of a finished run, and how often each is corrupted: the pages read the first ones
#: (directly or through the library); per_label.csv and thresholds.json are for people and scripts
RUN_FILES = {
    RunLayout.CONFIG: 3,
    RunLayout.STATUS: 3,
    RunLayout.METRICS: 3,
    RunLayout.TRAIN_STATE: 3,
    f"{RunLayout.EVALUATION}/{RunLayout.SUMMARY}": 3,
    f"{RunLayout.EVALUATION}/{RunLayout.TEST_PREDICTIONS}": 3,
    f"{RunLayout.CORRELATIONS}/{RunLayout.MATRICES}": 3,
    f"{RunLayout.CORRELATIONS}/{RunLayout.AGREEMENT}": 3,
    f"{RunLayout.EVALUATION}/{RunLayout.PER_LABEL}": 1,
    f"{RunLayout.EVALUATION}/{RunLayout.THRESHOLDS}": 1,
}


NPZ_CHANGES = (
    *("drop", "nan", "inf", "transpose", "flatten", "scalar", "empty", "shorter"),
    *("strings", "objects", "huge", "negative", "3d", "complex", "bool"),
)


def mutate_npz(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """An .npz archive with one array dropped, reshaped, retyped or filled with hostile values."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    key = rng.choice(sorted(arrays))
    a = arrays[key]
    n = a.shape[0] if a.ndim else 1
    kind = rng.choice(NPZ_CHANGES)
    if kind == "drop":
        del arrays[key]
    elif kind in ("nan", "inf"):
        arrays[key] = np.full(a.shape, np.nan if kind == "nan" else np.inf)
    elif kind == "transpose":
        arrays[key] = a.T if a.ndim > 1 else a[None]
    elif kind == "flatten":
        arrays[key] = a.reshape(-1)
    elif kind == "scalar":
        arrays[key] = np.array(7)
    elif kind == "empty":
        arrays[key] = a[:0] if a.ndim else np.array([])
    elif kind == "shorter":
        arrays[key] = a[: n // 2] if a.ndim else a
    elif kind == "strings":
        arrays[key] = np.array(["x"] * n)
    elif kind == "objects":
        arrays[key] = np.array([{"a": 1}] * n, dtype=object)
    elif kind == "huge":
        arrays[key] = np.full(a.shape, 2**40, dtype=np.int64)
    elif kind == "negative":
        arrays[key] = -np.ones(a.shape, dtype=np.int64) * 5
    elif kind == "3d":
        arrays[key] = np.repeat(np.asarray(a)[..., None], 2, axis=-1)
    elif kind == "complex":
        arrays[key] = np.ones(a.shape, dtype=np.complex64)
    else:
        arrays[key] = np.ones(a.shape, dtype=bool)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue(), f"{key} {kind}"


def mutate_metrics_log(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """metrics.jsonl with one line changed structurally, or hostile lines appended."""
    lines = data.decode("utf-8").splitlines()
    i = rng.randrange(len(lines))
    if rng.random() < 0.75:
        doc, how = mutate_json(json.loads(lines[i]), rng)
        lines[i] = emit(doc)
        return ("\n".join(lines) + "\n").encode("ascii"), f"line {i}: {how}"
    value, name = hostile(rng)
    return data + (emit(value) + "\n").encode("ascii"), f"a line of {name} appended"


def corrupt_run_file(name: str, data: bytes, rng: random.Random) -> tuple[bytes | None, str]:
    """The corrupted content of the run file `name` (None: the file is removed)."""
    r = rng.random()
    if r < 0.06:
        return None, "removed"
    if name.endswith(".npz") and r < 0.55:
        return mutate_npz(data, rng)
    if name.endswith(".jsonl") and r < 0.6:
        return mutate_metrics_log(data, rng)
    if name.endswith(".json"):
        return json_case(json.loads(data), rng)
    return mutate(data, rng)


def read_like_the_pages(models: Path, run_id: str) -> list[tuple[str, str, str]]:
    """Call the library readers the pages call on one run folder: (reader, outcome, detail) per call."""
    results, held = [], {}

    def step(reader: str, call) -> bool:
        outcome, detail = attempt(call, READ_TIMEOUT_S, reader)
        results.append((reader, outcome, detail))
        return outcome == "accepted"

    step("store.list_runs", lambda: held.update(everything=store.list_runs(models)))
    if not step("store.load_run", lambda: held.update(run=store.load_run(models / run_id))):
        return results
    run = held["run"]
    properties = ("kind", "dataset", "label_names", "started", "is_live", "train_state", "problem")
    step("Run properties", lambda: [getattr(run, name) for name in properties])
    step("run_data.check_results", lambda: run_data.check_results(run))
    step("store.read_metrics", lambda: store.read_metrics(run))
    step("store.epoch_metrics", lambda: store.epoch_metrics(run, "val"))
    step("store.tail_log", lambda: store.tail_log(run, 25))
    if "everything" in held:
        step("compare.compare_runs", lambda: compare.compare_runs(held["everything"]))
        step("compare.config_differences", lambda: compare.config_differences(held["everything"]))
    if step("evaluation.read_summary", lambda: held.update(summary=evaluation.read_summary(run))):
        summary = held["summary"]
        if run.kind == "classifier" and summary is not None:  # the Evaluate page's per-label thresholds
            step(
                "evaluation.metrics_at(summary thresholds)",
                lambda: evaluation.metrics_at(
                    run, np.asarray(summary["thresholds"]["per_label"], dtype=float), float(summary["beta"])
                ),
            )
    step("correlations.read_agreement", lambda: correlations.read_agreement(run))
    if step("evaluation.load_predictions", lambda: held.update(predictions=evaluation.load_predictions(run))):
        step("evaluation.metrics_at", lambda: evaluation.metrics_at(run, 0.5, 2.0))
        step(
            "evaluation.error_tiles",
            lambda: evaluation.error_tiles(run, 0, 0.5, "fp", n=None, predictions=held["predictions"]),
        )
    step("run_data.run_dataset", lambda: held.update(dataset=run_data.run_dataset(run)))
    matrices_read = step("correlations.load_matrices", lambda: held.update(matrices=correlations.load_matrices(run)))
    if matrices_read and "dataset" in held:  # the Correlations page's pair map of the first two labels
        step("pair_maps.pair_map", lambda: pair_maps_of(run, held["matrices"], held["dataset"]))
    return results


def pair_maps_of(run, matrices: dict, dataset) -> None:
    for source in pair_maps.sources_of(matrices):
        scores = pair_maps.pair_map(run, 0, 1, "product", source, matrices=matrices, dataset=dataset)
        pair_maps.pane_correlation(scores.ground_truth, scores.learned)


@pytest.fixture
def fuzz_workspace(trained_classifier_run, trained_siamese_run, tmp_path, monkeypatch) -> Path:
    """A workspace with copies of the two trained runs (without checkpoints) and their dataset."""
    home = tmp_path / "ws"
    shutil.copytree(trained_classifier_run.parent.parent / "data" / "tiny", home / "data" / "tiny")
    for run in (trained_classifier_run, trained_siamese_run):
        shutil.copytree(run, home / "models" / run.name, ignore=shutil.ignore_patterns("*.keras"))
    monkeypatch.setenv("OLR_HOME", str(home))
    return home


def test_run_folder_readers_survive_corrupted_files(fuzz_workspace):
    tally = Tally("run folder")
    models = fuzz_workspace / "models"
    runs = {p.name: p for p in sorted(models.iterdir())}
    untouched = {}  # reader -> outcome on the intact run (a Siamese run has no test predictions: refused)
    for run_id in runs:
        results = read_like_the_pages(models, run_id)
        assert all(outcome != "failed" for _, outcome, _ in results), (run_id, results)
        untouched[run_id] = {reader: outcome for reader, outcome, _ in results}
    for case in case_numbers("run", RUN_CASES):
        rng = case_rng("run", case)
        run_id = rng.choices(sorted(runs), weights=[2, 1])[0]  # "cls", "siam"
        present = [f for f in RUN_FILES if (runs[run_id] / f).is_file()]
        name = rng.choices(present, weights=[RUN_FILES[f] for f in present])[0]
        target = runs[run_id] / name
        original = target.read_bytes()
        data, how = corrupt_run_file(name, original, rng)
        why = f"{case_name('run', case)}: {run_id}/{name} {how}"
        try:
            if data is None:
                target.unlink()
            else:
                target.write_bytes(data)
            results = read_like_the_pages(models, run_id)
        finally:
            target.write_bytes(original)
        # refused: a reader that read the intact run now says what is wrong
        outcomes = {outcome for reader, outcome, _ in results if outcome != untouched[run_id].get(reader)}
        outcome = "failed" if "failed" in outcomes else "refused" if "refused" in outcomes else "accepted"
        failures = [f"{reader}: {detail}" for reader, result, detail in results if result == "failed"]
        tally.add(f"{run_id}/{name}", why, outcome, *failures)
    tally.check()

"""Side-by-side comparison of runs.

The results view (`results_table`, `best_marks`): one row per run with its test figures and their 95 %
intervals, the references they must beat, validation figures labelled as such and the run's duration,
and the best run of each column marked (ties and runs within the best's interval said so). Around it:
the settings that tell the runs apart in words (`settings_table`), those settings against a figure
(`parallel_coordinates`) and repeats of the same settings over seeds (`seed_groups`).

The full table (`compare_runs`, for export): every config key, the last epoch's metrics and every
agreement number; its agreement figures come from a run's validation correlations when they exist
(`python -m olr correlations RUN --split val`), else from its test record, and the "agreement split"
column says which."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from olr.analysis import correlations, evaluation
from olr.errors import OLRError
from olr.runs import annotations, store
from olr.runs.store import Run, RunLayout
from olr.training import options
from olr.training.options import DERIVED_KEYS, OPTIONS

#: config keys shown by `compare_runs` (when present in a run's config), in the schema's order;
#: kind and dataset have their own columns
KEY_CONFIG = tuple(key for key in OPTIONS if key not in ("kind", "dataset"))


def _last_values(df: pd.DataFrame, split: str) -> dict:
    if df.empty or "split" not in df:
        return {}
    rows = df[df["split"] == split]
    if "scope" in rows:
        rows = rows[rows["scope"] == "epoch"]
    if rows.empty:
        return {}
    last = rows.iloc[-1]
    skip = {"step", "epoch", "split", "time", "scope"}
    return {f"{split}_{k}": last[k] for k in rows.columns if k not in skip and pd.notna(last[k])}


#: the agreement figures `compare_runs` puts first (after the run's identity), from agreement.json
RESULT_COLUMNS = (
    "agreement split",
    "learned ρ",
    "learned ρ 95% low",
    "learned ρ 95% high",
    "label prior ρ",
    "classifier ρ",
    "untrained ρ",
    "verdict",
    "share > prior",
    "share > classifier",
)


#: the splits whose agreement a row shows, the first one computed wins: settings are compared on validation
AGREEMENT_SPLITS = ("val", "test")


def _results(data: dict, split: str) -> dict:
    """The `RESULT_COLUMNS` of one agreement.json: the learned view of the verdict (the Siamese
    self-score, or a classifier run's probability view) with its interval, the references and the
    verdict (`olr.analysis.correlations.VERDICT_RULE`), labelled with the `split` they were computed
    on. A file from before references and intervals gives what it has (its ρ), never a guess."""
    verdict = _dict(data.get("verdict"))
    view = verdict.get("view") or ("siamese_self" if "siamese_self" in data else "classifier_prob")
    learned = _dict(data.get(view))
    interval = _dict(learned.get("interval"))
    values = {
        "agreement split": split,
        "learned ρ": learned.get("spearman"),
        "learned ρ 95% low": interval.get("low"),
        "learned ρ 95% high": interval.get("high"),
        "label prior ρ": _dict(data.get("label_prior")).get("spearman"),
        "classifier ρ": _dict(data.get("classifier_prob")).get("spearman") if view != "classifier_prob" else None,
        "untrained ρ": _dict(_dict(data.get("untrained")).get(view)).get("spearman"),
        "verdict": verdict.get("text"),
        "share > prior": verdict.get("share_above_prior"),
        "share > classifier": verdict.get("share_above_classifier"),
    }
    return {k: v for k, v in values.items() if v is not None}


def _dict(x) -> dict:
    return x if isinstance(x, dict) else {}


def _agreement(run: Run) -> dict:
    """The result columns and every number of the run's agreement.json on the first split of
    `AGREEMENT_SPLITS` it has (a damaged file reads as none: the pages name it)."""
    data, split = {}, None
    for split in AGREEMENT_SPLITS:
        folder = correlations.figures_folder(run.path, split)
        data = store.read_json(folder / RunLayout.AGREEMENT) if folder is not None else {}
        if data:
            break
    out = _results(data, split) if data else {}
    for key, value in data.items():
        if key == "verdict":  # in the result columns already
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"agreement_{key}"] = value
        elif isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[f"agreement_{key}_{sub}"] = v
    return out


def _row(run: Run) -> dict:
    cfg = run.config
    ts = run.train_state
    row = {
        "id": run.id,
        "kind": run.kind,
        "state": run.state,
        "dataset": run.dataset,
        "labels": len(cfg.get("labels", [])) or None,
    }
    agreement = _agreement(run)
    row.update({k: agreement.pop(k) for k in RESULT_COLUMNS if k in agreement})  # results before the config
    for key in KEY_CONFIG:
        if key in cfg:
            value = cfg[key]
            row[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
    row["epochs_done"] = ts.get("epoch")
    row["best_metric"] = ts.get("monitor")
    row["best_score"] = ts.get("best")
    metrics = store.read_metrics(run)
    row.update(_last_values(metrics, "train"))
    row.update(_last_values(metrics, "val"))
    row.update(agreement)
    return row


def compare_runs(runs: list[Run | str]) -> pd.DataFrame:
    """One row per run: id, kind, state, dataset, labels, the agreement results (`RESULT_COLUMNS`, on
    validation when computed there, else on test; "agreement split" says which), key config values,
    epochs done, best checkpoint score, the last epoch's train/val metrics, and every agreement number
    (`agreement_<view>_<key>`)."""
    return pd.DataFrame([_row(r if isinstance(r, Run) else store.load_run(r)) for r in runs])


def config_differences(runs: list[Run | str]) -> list[str]:
    """Config keys whose values differ between the given runs (a missing key counts as a value)."""
    configs = [(r if isinstance(r, Run) else store.load_run(r)).config for r in runs]
    keys = sorted({k for c in configs for k in c} - set(DERIVED_KEYS))
    missing = object()
    return [k for k in keys if len({json.dumps(c.get(k, missing), sort_keys=True, default=str) for c in configs}) > 1]


# ------------------------------------------------------------------ results first: which run is best


@dataclass(frozen=True)
class Figure:
    """One figure a run is ranked by: a column of `results_table`, named with its split."""

    key: str
    title: str
    higher_is_better: bool
    about: str


#: the figures of the results view, in column order: test figures first (what is reported),
#: then validation ones (labelled "val"), then the run's duration
FIGURES = (
    Figure("micro_f2", "test micro F2", True, "micro-averaged F2"),
    Figure("macro_f2", "test macro F2", True, "macro-averaged F2"),
    Figure("macro_ap", "test macro AP", True, "macro average precision (threshold-free)"),
    Figure("accuracy", "test accuracy", True, "binary accuracy (beside it the all-absent baseline)"),
    Figure("rho", "test ρ", True, "Spearman ρ of the run's learned view with the ground-truth phi"),
    Figure("val_rho", "val ρ", True, "the same ρ on the validation split (where computed)"),
    Figure("val_loss", "val loss", False, "validation loss of the last epoch"),
    Figure("duration_s", "duration", False, "training time from start to end, in seconds"),
)
FIGURE_BY_KEY = {f.key: f for f in FIGURES}

#: references a figure must beat: column -> (title, the figure it stands beside); not ranked
REFERENCES = {
    "baseline": ("all-absent baseline", "accuracy"),
    "label_prior_rho": ("label prior ρ", "rho"),
    "classifier_rho": ("classifier view ρ", "rho"),
    "untrained_rho": ("untrained ρ", "rho"),
}

#: the marks `best_marks` gives: the best value of a column (every tied run), and a run whose 95 %
#: interval overlaps a best run's (the two cannot be told apart on these tiles)
BEST, WITHIN = "best", "within interval"

#: the threshold mode of the classifier figures of `results_table` (as the study reports them)
HEADLINE_MODE = "per_label"


def finite_number(x) -> float | None:
    """`x` as a float when it is a finite int or float (not a bool), else None: a figure as read from JSON."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def _put(row: dict, key: str, value, band=None) -> None:
    """row[key] = value with its 95 % interval as row[key_low], row[key_high] (numbers only)."""
    if finite_number(value) is None:
        return
    row[key] = float(value)
    band = _dict(band)
    low, high = finite_number(band.get("low")), finite_number(band.get("high"))
    if low is not None and high is not None:
        row[f"{key}_low"], row[f"{key}_high"] = low, high


def _classifier_figures(row: dict, summary: dict) -> None:
    """The test figures of a classifier's evaluation summary at per-label thresholds tuned on validation."""
    test = evaluation.split_figures(summary, "test")
    mode = _dict(_dict(test.get("modes")).get(HEADLINE_MODE))
    bands = _dict(mode.get("intervals"))
    _put(row, "micro_f2", _dict(mode.get("micro")).get("f2"), bands.get("micro_f2"))
    _put(row, "macro_f2", _dict(mode.get("macro")).get("f2"), bands.get("macro_f2"))
    _put(row, "macro_ap", _dict(mode.get("macro")).get("ap"), test.get("macro_ap_interval"))
    _put(row, "accuracy", mode.get("binary_accuracy"), bands.get("accuracy"))
    _put(row, "baseline", mode.get("baseline_accuracy", test.get("baseline_accuracy")))
    if mode:
        tuned_on = mode.get("thresholds_from") or summary.get("tuned_on")
        name = mode.get("mode") or evaluation.MODE_NAMES[HEADLINE_MODE]
        row["thresholds"] = f"{name} on {evaluation.SPLIT_NAMES.get(tuned_on, tuned_on)}" if tuned_on else name


def _agreement_figures(row: dict, data: dict, split: str) -> None:
    """ρ of the run's learned view (the verdict's: the Siamese self-score, a classifier's probabilities)
    on `split` with its interval; on test also the references and the verdict."""
    verdict = _dict(data.get("verdict"))
    view = verdict.get("view") or ("siamese_self" if "siamese_self" in data else "classifier_prob")
    learned = _dict(data.get(view))
    key = "rho" if split == "test" else f"{split}_rho"
    _put(row, key, learned.get("spearman"), learned.get("interval"))
    if split != "test":
        return
    row["view"] = view
    _put(row, "label_prior_rho", _dict(data.get("label_prior")).get("spearman"))
    if view != "classifier_prob":
        _put(row, "classifier_rho", _dict(data.get("classifier_prob")).get("spearman"))
    _put(row, "untrained_rho", _dict(_dict(data.get("untrained")).get(view)).get("spearman"))
    if verdict.get("text"):
        row["verdict"] = verdict["text"]


def _duration(run: Run) -> float | None:
    """Seconds from the start to the end of a run that ended (None while it runs or when unknown)."""
    start, end = finite_number(run.status.get("started")), finite_number(run.status.get("ended"))
    if run.is_live or start is None or end is None or end < start:
        return None
    return end - start


def _results_row(run: Run, title: str) -> dict:
    row = {"id": run.id, "run": title, "kind": run.kind, "state": run.state, "dataset": run.dataset}
    problems = []
    try:
        summary = evaluation.read_summary(run) if run.kind == "classifier" else None
        if summary:
            _classifier_figures(row, summary)
    except OLRError as e:  # a damaged result file or a changed dataset: the row says why it is blank
        problems.append(str(e))
    for split in correlations.computed_splits(run.path):
        try:
            data = correlations.read_agreement(run, split)
        except OLRError as e:
            if str(e) not in problems:  # a changed dataset is said once
                problems.append(str(e))
            continue
        if data:
            _agreement_figures(row, data, split)
    last_val = store.epoch_metrics(run, "val")
    if not last_val.empty:
        _put(row, "val_loss", last_val["loss"].iloc[-1])
    _put(row, "duration_s", _duration(run))
    row["problem"] = " ".join(problems) or None
    return row


def results_table(runs: list[Run | str]) -> pd.DataFrame:
    """The results view: one row per run (index: run id) with its id, title ("run"), kind, state and
    dataset, each of `FIGURES` that the run has (key; key_low, key_high: its 95 % block-bootstrap
    interval where the figure has one), the references (`REFERENCES`), the threshold mode of the
    classifier figures ("thresholds"), the learned "view" and "verdict" of ρ, and "problem": the
    sentence saying why a result could not be read (else None). Test figures come from the
    evaluation summary and the correlations' agreement.json; "val ρ" from validation correlations."""
    runs = [r if isinstance(r, Run) else store.load_run(r) for r in runs]
    titles = annotations.run_titles(runs)
    table = pd.DataFrame([_results_row(r, titles[r.id]) for r in runs])
    return table.set_index(pd.Index([r.id for r in runs], name=None)) if len(table) else table


def shown_figures(table: pd.DataFrame) -> list[Figure]:
    """The figures at least one run of `table` has, in `FIGURES` order."""
    return [f for f in FIGURES if f.key in table and table[f.key].notna().any()]


def _overlaps(table: pd.DataFrame, key: str, a, b) -> bool:
    lows, highs = table.get(f"{key}_low"), table.get(f"{key}_high")
    if lows is None or highs is None:
        return False
    bounds = [finite_number(x) for x in (lows[a], highs[a], lows[b], highs[b])]
    if None in bounds:
        return False
    low_a, high_a, low_b, high_b = bounds
    return low_a <= high_b and low_b <= high_a


def best_marks(table: pd.DataFrame) -> pd.DataFrame:
    """For each figure column of `results_table` with values for two runs or more: `BEST` for the run(s)
    with the best value (higher or lower as `Figure.higher_is_better` says; ties all marked), `WITHIN`
    for a run whose 95 % interval overlaps a best run's, else ""."""
    figures = shown_figures(table)
    marks = pd.DataFrame("", index=table.index, columns=[f.key for f in figures], dtype=object)
    for f in figures:
        values = pd.to_numeric(table[f.key], errors="coerce").dropna()
        if len(values) < 2:
            continue
        best = values.max() if f.higher_is_better else values.min()
        winners = values.index[np.isclose(values.to_numpy(), best, rtol=1e-12, atol=0)]
        marks.loc[winners, f.key] = BEST
        for other in values.index.difference(winners):
            if any(_overlaps(table, f.key, other, w) for w in winners):
                marks.loc[other, f.key] = WITHIN
    return marks


# ------------------------------------------------------------------ teachers and their Siamese networks


def teacher_text(config: dict) -> str:
    """What a classifier run's model is, in words: its family's title, the file of a registered model,
    the members of an ensemble."""
    model = config.get("model")
    teacher = _dict(config.get("teacher"))
    if model == options.REGISTERED:
        return f"{options.TEACHER_TITLES[model]} ({teacher.get('file') or 'file unknown'})"
    if model == options.ENSEMBLE:
        members = teacher.get("members") or []
        return f"{options.TEACHER_TITLES[model]} ({len(members)} runs)"
    return options.MODEL_TITLES.get(model, str(model or "unknown"))


#: the teacher table's figure columns: key -> title (each with key_low / key_high where it has an interval)
TEACHER_FIGURES = {
    "val_macro_ap": "val macro AP",
    "macro_ap": "test macro AP",
    "macro_f2": "test macro F2",
    "val_rho": "Siamese val ρ",
    "rho": "Siamese test ρ",
    "label_prior_rho": "label prior ρ",
    "classifier_rho": "classifier view ρ",
}


def _copy_figure(row: dict, source: pd.Series, key: str) -> None:
    """row[key] and its interval bounds (key_low, key_high) as `source`, a `results_table` row, holds them."""
    for part in ("", "_low", "_high"):
        row[key + part] = source.get(key + part)


def teacher_table(runs: list[Run | str], table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The thesis-style comparison of teachers: one row per classifier run of `runs` and Siamese run of `runs`
    trained against it (a classifier without one gets a row of its own): the teacher's kind (`teacher_text`), its
    validation and test macro AP and test macro F2 with intervals, the Siamese run's validation and test ρ with
    intervals, the references on test and the verdict, and both runs' training times. `table`: the runs'
    `results_table` when the caller has it."""
    runs = [r if isinstance(r, Run) else store.load_run(r) for r in runs]
    table = results_table(runs) if table is None else table
    rows = []
    for teacher in (r for r in runs if r.kind == "classifier"):
        own = table.loc[teacher.id] if teacher.id in table.index else pd.Series(dtype=object)
        base = {"teacher": own.get("run", teacher.id), "teacher id": teacher.id, "model": teacher_text(teacher.config)}
        for key in ("macro_ap", "macro_f2"):
            _copy_figure(base, own, key)
        base["teacher time"] = own.get("duration_s")
        try:
            summary = evaluation.read_summary(teacher)
        except OLRError:  # said in the results table's problem column
            summary = None
        val = evaluation.split_figures(summary, "val") if summary else None
        if val:
            mode = _dict(_dict(val.get("modes")).get(HEADLINE_MODE))
            _put(base, "val_macro_ap", _dict(mode.get("macro")).get("ap"), val.get("macro_ap_interval"))
        students = [r for r in runs if r.kind == "siamese" and r.config.get("classifier_run") == teacher.id]
        for student in students or [None]:
            row = dict(base)
            if student is not None:
                theirs = table.loc[student.id] if student.id in table.index else pd.Series(dtype=object)
                row.update({"siamese": theirs.get("run", student.id), "siamese id": student.id})
                for key in ("val_rho", "rho"):
                    _copy_figure(row, theirs, key)
                for key in ("label_prior_rho", "classifier_rho", "verdict"):
                    row[key] = theirs.get(key)
                row["siamese time"] = theirs.get("duration_s")
            rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ settings in words


def setting_title(key: str) -> str:
    """A config key as people read it: the Train page's label without its "(blank: ...)" aside."""
    option = OPTIONS.get(key)
    return option.label.split(" (")[0] if option else key.replace("_", " ")


def setting_text(key: str, value) -> str:
    """A config value in words: a choice's title ("bce" -> "Binary cross-entropy"), "yes"/"no",
    "blank" for an option left to the recipe, a classifier run by its title."""
    if value is None:
        return "blank"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if key == "classifier_run" and isinstance(value, str):
        try:
            return annotations.run_title(store.load_run(value))
        except OLRError:  # a deleted classifier: its id is all there is
            return value
    return OPTIONS[key].title(value) if key in OPTIONS else str(value)


def setting_rows(run: Run) -> pd.DataFrame:
    """One run's settings as (setting, value) in the Train page's order and words: from config.json, or the
    launcher's request for a run that failed before writing one. The one table of a run's settings that
    every page shows (Evaluate, a failed run's details)."""
    settings = options.upgrade(run.config) if run.config else run.request
    rows = [
        {"setting": setting_title(key), "value": setting_text(key, settings[key])}
        for key, option in OPTIONS.items()
        if run.kind in option.kinds and key in settings
    ]
    return pd.DataFrame(rows, columns=["setting", "value"])


_ABSENT = object()


def setting_differences(runs: list[Run | str]) -> list[str]:
    """The settings that tell the runs apart, in the Train page's order: config keys (`NOT_SETTINGS`
    aside, but the seed) with two or more values among the runs that have them; an option one kind
    of run lacks is no difference by itself (the kind is)."""
    configs = [(r if isinstance(r, Run) else store.load_run(r)).config for r in runs]
    keys = {k for c in configs for k in c} - set(DERIVED_KEYS)
    differ = [k for k in keys if len({json.dumps(c[k], sort_keys=True, default=str) for c in configs if k in c}) > 1]
    order = {k: i for i, k in enumerate(OPTIONS)}
    return sorted(differ, key=lambda k: (order.get(k, len(order)), k))


def settings_table(runs: list[Run | str], keys: list[str] | None = None) -> pd.DataFrame:
    """One row per run (index: run id; "run": its title) and one column per config key of `keys`
    (default: `setting_differences`), titled by `setting_title`, each value in words (`setting_text`;
    "" where the run's kind has no such option)."""
    runs = [r if isinstance(r, Run) else store.load_run(r) for r in runs]
    keys = setting_differences(runs) if keys is None else keys
    titles = annotations.run_titles(runs)
    rows = []
    for r in runs:
        row = {"run": titles[r.id]}
        for key in keys:
            value = r.config.get(key, _ABSENT)
            row[setting_title(key)] = "" if value is _ABSENT else setting_text(key, value)
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index([r.id for r in runs]), columns=["run", *map(setting_title, keys)])


# ------------------------------------------------------------------ settings against a figure


def _axis_positions(values: list, texts: list[str]) -> tuple[list[float], list[tuple[float, str]]]:
    """Positions in [0, 1] of one axis's values and its (position, text) ticks: numbers spread linearly
    (logarithmically when they span two decades or more), anything else (words, a blank, an option
    the run's kind lacks) as evenly spaced categories in the order of their words."""
    if all(finite_number(v) is not None for v in values):
        xs = np.array(values, dtype=float)
        if xs.min() > 0 and xs.max() / xs.min() >= 100:
            xs = np.log10(xs)
        span = xs.max() - xs.min()
        positions = [float(p) for p in ((xs - xs.min()) / span if span > 0 else np.full(len(xs), 0.5))]
    else:
        categories = sorted(set(texts))
        step = 1 / (len(categories) - 1) if len(categories) > 1 else 0.0
        where = {c: (i * step if len(categories) > 1 else 0.5) for i, c in enumerate(categories)}
        positions = [where[t] for t in texts]
    return positions, sorted(dict(zip(positions, texts)).items())


def parallel_coordinates(runs: list[Run | str], figure: str, table: pd.DataFrame | None = None):
    """The settings that differ between the runs that have `figure` (a `FIGURES` key), as
    `setting_differences` finds them, folded into long form for a parallel-coordinates chart: (lines, ticks).

    lines: one row per run and axis: run (title), id, axis (the setting's title; the figure's title on
    the last axis), order (of the axis), position (0..1 along the axis), value (in words), figure (the
    run's value of the figure, to colour its line). ticks: axis, order, position, text: what each
    axis's positions mean. Both are empty when fewer than two runs have the figure or no setting differs."""
    runs = [r if isinstance(r, Run) else store.load_run(r) for r in runs]
    table = results_table(runs) if table is None else table
    have = [r for r in runs if r.id in table.index and finite_number(table.loc[r.id].get(figure)) is not None]
    keys = setting_differences(have) if len(have) > 1 else []
    line_columns = ["run", "id", "axis", "order", "position", "value", "figure"]
    tick_columns = ["axis", "order", "position", "text"]
    if not keys:
        return pd.DataFrame(columns=line_columns), pd.DataFrame(columns=tick_columns)
    scores = [float(table.loc[r.id, figure]) for r in have]
    axes = []
    for key in keys:
        values = [r.config.get(key, _ABSENT) for r in have]
        texts = ["n/a" if v is _ABSENT else setting_text(key, v) for v in values]
        axes.append((setting_title(key), values, texts))
    axes.append((FIGURE_BY_KEY[figure].title, scores, [f"{s:.4g}" for s in scores]))
    titles = annotations.run_titles(have)
    lines, ticks = [], []
    for n, (axis, values, texts) in enumerate(axes):
        positions, axis_ticks = _axis_positions(values, texts)
        lines += [
            {"run": titles[r.id], "id": r.id, "axis": axis, "order": n, "position": p, "value": t, "figure": s}
            for r, p, t, s in zip(have, positions, texts, scores)
        ]
        ticks += [{"axis": axis, "order": n, "position": p, "text": t} for p, t in axis_ticks]
    return pd.DataFrame(lines, columns=line_columns), pd.DataFrame(ticks, columns=tick_columns)


# ------------------------------------------------------------------ repeats with other seeds

#: config keys that do not make two runs' settings different: the seed and what is written at start-up
NOT_SETTINGS = frozenset({"seed", *DERIVED_KEYS})


@dataclass(frozen=True)
class SeedGroup:
    """Finished runs whose settings are identical except the seed, and their figures' spread."""

    ids: tuple[str, ...]
    titles: tuple[str, ...]
    seeds: tuple
    #: figure key -> (mean, sample standard deviation or None for one value, number of runs with it)
    stats: dict[str, tuple[float, float | None, int]]


def settings_key(run: Run) -> str:
    """The run's settings without the seed (`NOT_SETTINGS`), as one comparable string."""
    kept = {k: v for k, v in run.config.items() if k not in NOT_SETTINGS}
    return json.dumps(kept, sort_keys=True, default=str)


def seed_groups(runs: list[Run | str], table: pd.DataFrame | None = None) -> list[SeedGroup]:
    """Groups of two or more finished (or stopped) runs with the same settings except the seed (members in
    the order of their seeds), in the order their first member comes in `runs`, each with the mean,
    sample standard deviation (n - 1) and count of every figure of `FIGURES` its members have."""
    runs = [r if isinstance(r, Run) else store.load_run(r) for r in runs]
    table = results_table(runs) if table is None else table
    titles = annotations.run_titles(runs)
    members: dict[str, list[Run]] = {}
    for r in runs:
        if r.config and r.state in store.USABLE_STATES:
            members.setdefault(settings_key(r), []).append(r)
    groups = []
    for group in (g for g in members.values() if len(g) > 1):
        group = sorted(
            group, key=lambda r: (finite_number(r.config.get("seed")) is None, finite_number(r.config.get("seed")) or 0)
        )
        stats = {}
        for f in FIGURES:
            if f.key not in table:
                continue
            values = pd.to_numeric(table.loc[[r.id for r in group], f.key], errors="coerce").dropna().to_numpy()
            if len(values):
                std = float(np.std(values, ddof=1)) if len(values) > 1 else None
                stats[f.key] = (float(np.mean(values)), std, len(values))
        groups.append(
            SeedGroup(
                ids=tuple(r.id for r in group),
                titles=tuple(titles[r.id] for r in group),
                seeds=tuple(r.config.get("seed") for r in group),
                stats=stats,
            )
        )
    return groups

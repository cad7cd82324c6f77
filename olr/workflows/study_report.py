"""The study report: one self-contained HTML file a supervisor reads without the app (`olr study`).

`write_report(study_dir)` renders the study folder's record (`RunLayout.study`, written by the
study workflow) into `RunLayout.report`, atomically. Everything beyond the record is read from
the run folders and the dataset folder through the readers that own them: the classifier's
evaluation (`olr.analysis.evaluation`), the Siamese run's test-split correlations
(`olr.analysis.correlations`), the pair map (`olr.analysis.pair_maps`), the dataset
(`olr.data.dataset`, `olr.data.summary`, `olr.data.label_stats`, `olr.data.composites`).

The file makes no request of its own: CSS is inline, images are PNG `data:` URIs (encoded by
rasterio's PNG driver, already a dependency), fonts are the reader's. Every user-given text
(dataset, label and run names) is HTML-escaped, and label colours are used only when they are
plain hex colours. A section whose inputs are missing (a failed run, figures without an
interval) says "n/a" and why instead of stopping the report.

The record and both runs' resolved configs are embedded for repetition as
`<script type="application/json" id="olr-study">{"study": ..., "configs": {"classifier": ...,
"siamese": ...}}</script>`; `read_embedded(path)` reads them back (`olr study --from report.html`).
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import time
import warnings
from dataclasses import dataclass
from functools import cached_property
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd

from olr import atomic, workspace
from olr.analysis import correlations, evaluation, pair_maps, run_data
from olr.analysis.metrics import json_ready
from olr.data import composites, label_stats, summary
from olr.data.dataset import SPLITS, load_dataset
from olr.errors import OLRError
from olr.runs import store
from olr.runs.store import RunLayout
from olr.runs.studies import seconds, stages

#: the id of the embedded record's `<script type="application/json">` element
EMBED_ID = "olr-study"
#: the command that repeats a study from its report
REPEAT_COMMAND = "olr study --from report.html"
#: longest side (px) of the scene images drawn from the tiles; the preview is shrunk to it too
SCENE_SIDE = 720
#: the box (px) the scene image and each pair-map panel are shown in, scaled to fit (pixelated: tiles stay crisp)
SCENE_BOX_PX = 480
PANEL_BOX_PX = 360
#: matrices with at most this many labels print each value in its cell; larger ones colour only
MATRIX_VALUES_UP_TO = 20
#: tiles whose images are read at once while building a scene image (bounds memory)
TILE_CHUNK = 512
#: the Siamese view the study is judged by (`olr.workflows.study.collect_figures` reads it too)
SIAMESE_VIEW = "siamese_self"
#: the study's two runs as the report names them
KIND_NAMES = {"classifier": "classifier", "siamese": "Siamese"}
#: the threshold mode of the headline classifier figures (as `collect_figures`)
HEADLINE_MODE = "per_label"
#: viridis at eight stops: the pair map's sequential scale 0..1 (readable in grey, for colour-blind readers)
SEQUENTIAL = np.array(
    [
        (68, 1, 84),
        (70, 50, 127),
        (54, 92, 141),
        (39, 127, 142),
        (31, 161, 135),
        (74, 194, 109),
        (159, 218, 58),
        (253, 231, 37),
    ],
    dtype=np.float64,
)
#: the matrices' diverging scale −1..1: blue, white, red
DIVERGING = np.array([(33, 102, 172), (247, 247, 247), (178, 24, 43)], dtype=np.float64)
_HEX_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


# ------------------------------------------------------------------ the file


def write_report(study_dir) -> Path:
    """Render the study folder's record into its `report.html` (atomically); returns the path.

    The runs the record names are looked up beside the study folder (both live in `models/`)."""
    layout = RunLayout(study_dir)
    record = store.read_result_json(layout.study, layout.root.name, "run the study again (olr study)")
    if record is None:
        raise OLRError(f"The study folder {layout.root.name} has no {RunLayout.STUDY}; run the study again.")
    atomic.write_text(layout.report, render_report(record, models_dir=layout.root.parent))
    return layout.report


def render_report(record: dict, *, models_dir=None) -> str:
    """The report of a study record (study.json's content) as one HTML document.

    `models_dir`: where the record's runs are (default the workspace's `models/`)."""
    study = _Study(record, Path(models_dir) if models_dir is not None else workspace.models_dir())
    body = "\n".join(
        _section(study, title, build)
        for title, build in (
            (None, _title),
            ("Dataset", _dataset_section),
            ("Classifier on the test split", _classifier_section),
            ("Label correlations", _correlations_section),
            ("Map of a label pair", _pair_map_section),
            ("Configuration and repetition", _configuration_section),
        )
    )
    name = html.escape(str(record.get("id") or "study"))
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        # No request may leave the file, even one a crafted text tried to add.
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">"
        f"<title>OLR study {name}</title><style>{CSS}</style></head>\n<body>\n{body}\n"
        f"{_embedded(study)}\n</body></html>\n"
    )


def read_embedded(path) -> dict:
    """{"study": record, "configs": {"classifier": config, "siamese": config}} from a report.html
    that `write_report` wrote (OLRError when the file is not such a report)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise OLRError(
            f"The report {path.name} could not be read ({type(error).__name__}); give the report.html of a study."
        ) from None
    finder = _EmbedFinder()
    finder.feed(text)
    finder.close()
    try:
        data = json.loads(finder.content) if finder.content is not None else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("study"), dict):
        raise OLRError(
            f"The file {path.name} is not an OLR study report (it holds no readable embedded study); "
            "give the report.html a study wrote."
        )
    configs = data.get("configs")
    data["configs"] = {k: v for k, v in configs.items() if isinstance(v, dict)} if isinstance(configs, dict) else {}
    return data


class _EmbedFinder(HTMLParser):
    """The text of the first `<script id=EMBED_ID>` element (None when there is none)."""

    def __init__(self):
        super().__init__(convert_charrefs=False)
        self.content: str | None = None
        self._inside = False

    def handle_starttag(self, tag, attrs):
        if tag == "script" and self.content is None and dict(attrs).get("id") == EMBED_ID:
            self._inside, self.content = True, ""

    def handle_endtag(self, tag):
        if tag == "script":
            self._inside = False

    def handle_data(self, data):
        if self._inside:
            self.content += data


def _embedded(study: _Study) -> str:
    configs = {kind: study.config(kind) for kind in ("classifier", "siamese")}
    data = json_ready({"study": study.record, "configs": {k: v for k, v in configs.items() if v is not None}})
    # "<" only occurs inside JSON strings, where \u003c means the same: no "</script>" can end the element early.
    text = json.dumps(data, ensure_ascii=False, default=str).replace("<", "\\u003c")
    return f'<script type="application/json" id="{EMBED_ID}">{text}</script>'


# ------------------------------------------------------------------ what the sections read


@dataclass
class _Study:
    """The record and, loaded on first use, the runs and the dataset it names.

    A reader that fails raises OLRError with a sentence; the section showing it says "n/a" and why."""

    record: dict
    models_dir: Path

    def run_id(self, kind: str) -> str:
        runs = self.record.get("runs") if isinstance(self.record.get("runs"), dict) else {}
        run_id = runs.get(kind)
        if isinstance(run_id, str) and run_id:
            return run_id
        why = self._stage_sentence(kind) or "the record names none"
        raise OLRError(f"The study has no {KIND_NAMES[kind]} run: {why}.")

    def _stage_sentence(self, kind: str) -> str:
        """Why the stage of `kind` left no result ("its Siamese stage failed (...)"), or "" when it says nothing."""
        stage = next((s for s in stages(self.record) if s.get("name") == kind), {})
        state = stage.get("state")
        if state == "failed":
            error = self.record.get("error")
            because = f" ({error.strip().rstrip('.')})" if isinstance(error, str) and error.strip() else ""
            return f"its {KIND_NAMES[kind]} stage failed{because}"
        if state in ("pending", "running", "skipped"):
            return f"its {KIND_NAMES[kind]} stage is {state}"
        return ""

    def _because(self, kind: str) -> str:
        why = self._stage_sentence(kind)
        return f" ({why})" if why else ""

    def run(self, kind: str) -> store.Run:
        run_id = self.run_id(kind)
        path = self.models_dir / run_id
        if not RunLayout(path).config.is_file():
            raise OLRError(f"The {KIND_NAMES[kind]} run {run_id} is gone{self._because(kind)}.")
        run = store.load_run(path)
        if run.problem:
            raise OLRError(run.problem)
        return run

    def config(self, kind: str) -> dict | None:
        try:
            return self.run(kind).config
        except OLRError:
            return None

    @cached_property
    def summary(self) -> dict:
        run = self.run("classifier")
        found = evaluation.read_summary(run)
        if found is None:
            raise OLRError(
                f"The classifier run {run.id} was not evaluated{self._because('classifier')}; evaluate it with "
                f"python -m olr evaluate {run.id}."
            )
        return found

    @cached_property
    def per_label(self) -> pd.DataFrame:
        run = self.run("classifier")
        path = RunLayout(run.path).per_label
        if not path.is_file():
            raise OLRError(f"The classifier run {run.id} has no {RunLayout.PER_LABEL} (it was not evaluated).")
        try:  # a label named "NA" or "null" stays a name
            return pd.read_csv(path, dtype={"label": str, "codes": str}, keep_default_na=False, na_values=[""])
        except (OSError, ValueError) as error:
            remedy = f"evaluate the run again (python -m olr evaluate {run.id})"
            raise store.damaged_result(
                path, run.id, f"is not a readable table ({type(error).__name__})", remedy
            ) from None

    @cached_property
    def agreement(self) -> dict:
        run = self.run("siamese")
        found = correlations.read_agreement(run, "test")
        if found is None:
            raise OLRError(
                f"The Siamese run {run.id} has no correlations on the test split; compute them with "
                f"{correlations.compute_command(run.id)}."
            )
        return found

    @cached_property
    def matrices(self) -> dict:
        return correlations.load_matrices(self.run("siamese"), "test")

    @cached_property
    def dataset(self):
        """The dataset of the classifier run (checked against its checksum), else the record's by name."""
        try:
            run = self.run("classifier")
        except OLRError:
            name = self.record.get("dataset")
            if not isinstance(name, str) or not name:
                raise OLRError("The study names no dataset and has no classifier run to find it by.") from None
            return load_dataset(self.models_dir.parent / "data" / workspace.check_name(name, "dataset name"))
        return run_data.run_dataset(run)

    @cached_property
    def scene(self) -> dict:
        """The tiles drawn at their places (`_tile_mosaic`), built once for the sections that show it."""
        return _tile_mosaic(self.dataset)


def _section(study: _Study, title: str | None, build) -> str:
    """One section; when what it shows cannot be read, "n/a" with the reason instead."""
    try:
        content = build(study)
    except OLRError as error:
        content = _na(str(error))
    # A report written after hours of training must not be lost to one unreadable file: any other
    # failure of a section is said in its place too, by its type and message.
    except Exception as error:
        content = _na(f"this part could not be drawn ({type(error).__name__}: {error})")
    if title is None:
        return f"<header>{content}</header>"
    return f"<section><h2>{html.escape(title)}</h2>\n{content}\n</section>"


# ------------------------------------------------------------------ 1. title and verdict


def _title(study: _Study) -> str:
    record = study.record
    dataset = html.escape(str(record.get("dataset") or "an unnamed dataset"))
    started = seconds(record.get("started"))
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)) if started is not None else "n/a"
    quick = record.get("quick")
    mode = "quick" if quick is True else "full" if quick is False else "n/a"
    facts = [
        ("dataset", f"<b>{dataset}</b>"),
        ("started", date),
        ("study", "quick (small models, few epochs)" if quick else mode),
        ("duration", _duration(record)),
    ]
    if record.get("state") != "running":  # the study writes its report as its last stage, still running then
        facts.append(("state", html.escape(str(record.get("state") or "n/a"))))
    items = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
    return (
        f"<h1>OLR study {html.escape(str(record.get('id') or ''))}</h1>\n<dl class='facts'>{items}</dl>\n"
        f"<p class='verdict {_verdict_class(study)}'>{_verdict_sentence(study)}</p>\n"
        f"{_targets(record)}{_stages_table(record)}"
    )


def _duration(record: dict) -> str:
    """The study's minutes; while it runs (its report is its last stage), the minutes until now."""
    minutes = record.get("minutes")
    if isinstance(minutes, (int, float)) and not isinstance(minutes, bool):
        return f"{minutes:.1f} min"
    start, end = seconds(record.get("started")), seconds(record.get("ended"))
    if start is None:
        return "n/a (no start time recorded)"
    return f"{((end or time.time()) - start) / 60:.1f} min"


def _verdict(study: _Study) -> dict:
    figures = study.record.get("figures") if isinstance(study.record.get("figures"), dict) else {}
    verdict = figures.get("verdict") if isinstance(figures.get("verdict"), dict) else {}
    return verdict or (study.agreement.get("verdict") or {})


def _verdict_class(study: _Study) -> str:
    try:
        return {"beats": "good", "below": "bad"}.get(_verdict(study).get("outcome"), "open")
    except OLRError:
        return "open"


def _verdict_sentence(study: _Study) -> str:
    """The verdict in one sentence: the Siamese view's agreement against the label prior's."""
    record = study.record
    if record.get("state") == "failed":
        error = record.get("error")
        because = f" ({html.escape(error.strip().rstrip('.'))})" if isinstance(error, str) and error.strip() else ""
        return f"No verdict: the study failed{because}."
    try:
        verdict = _verdict(study)
        agreement = study.agreement
    except OLRError as error:
        return f"No verdict: {html.escape(str(error))}"
    if not verdict:
        return "No verdict: the Siamese run's correlations were computed before verdicts existed."
    view = str(verdict.get("view") or SIAMESE_VIEW)
    learned = agreement.get(view) or {}
    prior = agreement.get("label_prior") or {}
    paired = correlations.minus_prior_text(verdict)
    return (
        f"The Siamese network's learned label correlations ({html.escape(_view_name(view))}) "
        f"<b>{html.escape(str(verdict.get('text') or 'have no verdict'))}</b>: agreement with the ground truth "
        f"{_rho(learned)} against the label prior's {_rho(prior)}"
        + (f"; {html.escape(paired)}" if paired else "")
        + " (test split, Spearman ρ, 95 % interval)."
    )


def _targets(record: dict) -> str:
    checks, targets = record.get("checks"), record.get("targets")
    if not isinstance(checks, dict) or not checks:
        return ""
    targets = targets if isinstance(targets, dict) else {}
    items = []
    for name, ok in checks.items():
        goal = f" ≥ {targets[name]}" if isinstance(targets.get(name), (int, float)) else ""
        mark = "met" if ok else "not met"
        items.append(f"<li class='{'good' if ok else 'bad'}'>{html.escape(name.replace('_', ' '))}{goal}: {mark}</li>")
    return f"<p class='small'>Checks:</p><ul class='checks'>{''.join(items)}</ul>\n"


def _stages_table(record: dict) -> str:
    rows = []
    for s in stages(record):
        start, end = seconds(s.get("started")), seconds(s.get("ended"))
        took = f"{(end - start) / 60:.1f} min" if start is not None and end is not None else ""
        state = "this report" if s.get("name") == "report" and s.get("state") == "running" else s.get("state")
        title = s.get("title") or s.get("name") or ""
        rows.append(
            [html.escape(str(title)), html.escape(str(state or "")), took, html.escape(str(s.get("run") or ""))]
        )
    return _table(["stage", "state", "took", "run"], rows) if rows else ""


# ------------------------------------------------------------------ 2. dataset


def _dataset_section(study: _Study) -> str:
    ds = study.dataset
    h, w, b = ds.tile_shape
    counts = summary.split_counts(ds)
    bands = ", ".join(html.escape(str(n)) for n in ds.band_names) or f"{b} unnamed"
    facts = [
        ("tiles", f"{ds.n_tiles:,}"),
        ("tile size", f"{h}×{w} px"),
        ("bands", f"{b}: {bands}"),
        ("splits", " · ".join(f"{s} {counts[s]:,}" for s in SPLITS)),
        ("labels", str(len(ds.label_names))),
    ]
    items = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
    note = summary.split_note(ds)
    thin = [text for text in ds.meta.get("warnings") or [] if isinstance(text, str)]
    warnings_html = (
        "<div class='warn'><b>Thin data.</b><ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in thin) + "</ul></div>"
        if thin
        else "<p class='small'>No thin-data warning at preparation.</p>"
    )
    return (
        f"<div class='side'><div>{_scene_figure(study)}</div><div><dl class='facts narrow'>{items}</dl>"
        f"<p class='small'>{html.escape(note)}</p>{warnings_html}</div></div>\n"
        f"<h3>Label frequencies</h3>\n{_frequency_table(study)}"
    )


def _scene_figure(study: _Study) -> str:
    """The preparation's preview (lon/lat) when the dataset has one, else the tiles drawn at their places."""
    ds = study.dataset
    preview = ds.meta.get("preview") or {}
    path = ds.path / str(preview.get("file") or "preview.png")
    if preview and path.is_file():
        uri, shape = _preview_uri(path)
        return _figure(uri, shape, SCENE_BOX_PX, "Scene preview (the image's RGB bands, lon/lat).")
    scene = study.scene
    if scene.get("rgb") is None:
        return _na(f"no scene image: {scene['reason']}")
    every = "" if scene["step"] == 1 else f", every {scene['step']}th pixel"
    return _figure(
        _png_uri(scene["rgb"]),
        scene["rgb"].shape[:2],
        SCENE_BOX_PX,
        f"The dataset's tiles at their places (RGB bands {html.escape(_band_text(ds))}{every}).",
    )


def _frequency_table(study: _Study) -> str:
    ds = study.dataset
    overall = label_stats.dataset_stats(ds)
    per_split = {s: label_stats.dataset_stats(ds, s) for s in SPLITS}
    try:
        used = {d.get("name") for d in study.run("classifier").config.get("labels", [])}
    except OLRError:
        used = None
    if used is not None and not used <= set(overall.names):
        used = None  # the runs regrouped the labels (another scheme): theirs are not these rows
    rows = []
    for k, name in enumerate(overall.names):
        pct = float(overall.percent[k])
        bar = f"<span class='bar' style='width:{min(pct, 100):.1f}%'></span>"
        cells = [
            f"{_swatch(overall.colors[k])}{html.escape(name)}",
            f"<div class='barcell'>{bar}<span>{int(overall.counts[k]):,} ({pct:.1f} %)</span></div>",
            *(f"{int(per_split[s].counts[k]):,}" for s in SPLITS),
        ]
        if used is not None:
            cells.append("yes" if name in used else "<span class='muted'>dropped</span>")
        rows.append(cells)
    header = ["label", "tiles with the label (all splits)", *SPLITS] + (["in the runs"] if used is not None else [])
    caption = (
        "A label counts as present on a tile when its area share reaches the dataset's minimum fraction "
        f"({float(ds.meta.get('min_fraction', 0.0)):g}). Labels dropped by the runs' recipe are too rare to learn."
    )
    return _table(header, rows, caption, cls="freq")


# ------------------------------------------------------------------ 3. classifier


def _classifier_section(study: _Study) -> str:
    report = study.summary
    modes = report.get("modes") or {}
    blocks = report.get("n_blocks")
    tuned_on = evaluation.SPLIT_NAMES.get(report.get("tuned_on"), report.get("tuned_on"))
    where = (
        f"Test split, {report.get('n_tiles', '?')} tiles"
        + (f" in {blocks} spatial blocks" if blocks is not None else " (no spatial blocks: no intervals)")
        + f"; thresholds tuned on the {html.escape(str(tuned_on))} split for F{float(report.get('beta', 2.0)):g}. "
        "Brackets: 95 % interval, spatial block bootstrap over the test split's blocks."
    )
    headline = modes.get(HEADLINE_MODE)
    cards = _classifier_cards(report, headline) if headline else _na("the evaluation has no per-label-tuned figures")
    rows = []
    for key in evaluation.MODES:
        mode = modes.get(key)
        if not isinstance(mode, dict):
            rows.append([evaluation.MODE_NAMES[key], *["n/a (not evaluated in this mode)"] * 5])
            continue
        band = mode.get("intervals") or {}
        rows.append(
            [
                evaluation.MODE_NAMES[key],
                _with_band(mode["micro"]["f2"], band.get("micro_f2")),
                _with_band(mode["macro"]["f2"], band.get("macro_f2")),
                _with_band((mode.get("samples") or {}).get("f2"), band.get("samples_f2")),
                _with_band(mode.get("binary_accuracy"), band.get("accuracy")),
                "yes" if mode.get("beats_baseline") else "<b>no</b>",
            ]
        )
    modes_table = _table(
        ["threshold mode", "micro F2", "macro F2", "sample F2", "accuracy", "beats all-absent baseline"],
        rows,
        f"All three threshold modes on the test split. All-absent baseline accuracy (every label predicted "
        f"absent): {_num(report.get('baseline_accuracy'))}. Macro means leave out labels without test positives.",
    )
    notes = [
        *report.get("interval_warnings", []),
        *(_diagnostic_text(d) for d in report.get("diagnostics", [])),
    ]
    notes_html = "".join(f"<li>{html.escape(str(n))}</li>" for n in notes if n)
    return (
        f"<p class='small'>{where}</p>\n{cards}\n{modes_table}\n"
        + (f"<div class='warn'><b>Warnings and diagnostics.</b><ul>{notes_html}</ul></div>\n" if notes_html else "")
        + f"<h3>Per label (per-label-tuned thresholds, test split)</h3>\n{_per_label_table(study)}"
    )


def _diagnostic_text(finding: dict) -> str:
    """A diagnostic's message, led by the threshold mode it concerns."""
    mode = evaluation.MODE_NAMES.get(finding.get("mode"))
    return f"{mode} thresholds: {finding.get('message')}" if mode else str(finding.get("message") or "")


def _classifier_cards(report: dict, mode: dict) -> str:
    band = mode.get("intervals") or {}
    mode_name = evaluation.MODE_NAMES[HEADLINE_MODE]
    cards = [
        ("micro F2", _with_band(mode["micro"]["f2"], band.get("micro_f2")), f"{mode_name} thresholds"),
        ("macro F2", _with_band(mode["macro"]["f2"], band.get("macro_f2")), f"{mode_name} thresholds"),
        ("macro AP", _with_band(mode["macro"].get("ap"), report.get("macro_ap_interval")), "no threshold"),
        ("accuracy", _with_band(mode.get("binary_accuracy"), band.get("accuracy")), f"{mode_name} thresholds"),
        ("all-absent baseline", _num(report.get("baseline_accuracy")), "every label predicted absent"),
    ]
    return "<div class='cards'>" + "".join(_card(t, v, f"{how} · test split") for t, v, how in cards) + "</div>"


def _per_label_table(study: _Study) -> str:
    table = study.per_label
    columns = [
        ("label", "label"),
        (f"precision_{HEADLINE_MODE}", "precision"),
        (f"recall_{HEADLINE_MODE}", "recall"),
        (f"f1_{HEADLINE_MODE}", "F1"),
        (f"f2_{HEADLINE_MODE}", "F2"),
        ("ap", "AP"),
        ("support", "support"),
        (f"threshold_{HEADLINE_MODE}", "threshold"),
    ]
    present = [(c, t) for c, t in columns if c in table.columns]
    if len(present) < len(columns):
        missing = ", ".join(c for c, _ in columns if c not in table.columns)
        return _na(f"the per-label table lacks {missing} (evaluate the classifier run again)")
    rows = [
        [html.escape(str(row["label"]))] + [_num(row[c], digits=0 if c == "support" else 3) for c, _ in present[1:]]
        for _, row in table.iterrows()
    ]
    return _table(
        [t for _, t in present],
        rows,
        "Support: test tiles with the label. AP (average precision) needs no threshold. "
        "A label without test positives has no recall, F-scores or AP (n/a).",
        cls="numbers",
    )


# ------------------------------------------------------------------ 4. correlations


def _correlations_section(study: _Study) -> str:
    agreement, mats = study.agreement, study.matrices
    names = [str(n) for n in mats["label_names"]]
    info = agreement.get("info") or {}
    table = correlations.agreement_table(agreement)
    rows = [
        [
            f"<b>{html.escape(_view_name(r.figure))}</b>"
            if r.figure == SIAMESE_VIEW
            else html.escape(_view_name(r.figure)),
            html.escape(str(r.what)),
            _with_band(r.spearman, {"low": r.low, "high": r.high}),
            _num(r.p, digits=4),
            _num(r.n_pairs, digits=0),
        ]
        for r in table.itertuples()
    ]
    figures = _table(
        ["figure", "what it is", "ρ [95 % interval]", "p", "label pairs"],
        rows,
        f"Agreement with the ground-truth phi on {info.get('n_tiles', '?')} test tiles"
        + (f" in {info['n_blocks']} spatial blocks" if info.get("n_blocks") is not None else "")
        + ": Spearman ρ over the label pairs, 95 % block-bootstrap interval, p from a one-sided label-relabelling "
        "test. The Siamese view must beat the references: the label prior (the training split's own phi, no image), "
        "the classifier's probabilities (its teacher) and an untrained network of the same architecture.",
    )
    few = info.get("few_blocks")
    matrices = "".join(
        f"<div>{_matrix_table(np.asarray(mats[key], dtype=float), names, title)}</div>"
        if key in mats
        else f"<div>{_na(f'the run has no {key} matrix')}</div>"
        for key, title in (
            ("gt_phi", "Ground truth: phi of the test tiles"),
            (SIAMESE_VIEW, "Siamese (learned): self-score correlation"),
        )
    )
    return (
        f"<p class='verdict {_verdict_class(study)}'>{_verdict_sentence(study)}</p>\n"
        f"<p class='small'>{html.escape(correlations.VERDICT_RULE)}</p>\n{figures}\n"
        + (f"<div class='warn'>{html.escape(str(few))}</div>\n" if few else "")
        + f"<div class='matrices'>{matrices}</div>\n{_matrix_legend(names)}"
    )


def _matrix_table(matrix: np.ndarray, names: list[str], title: str) -> str:
    """A coloured label × label table: rows named and numbered, columns by number (legible at any size)."""
    show_values = len(names) <= MATRIX_VALUES_UP_TO
    head = "".join(f"<th title='{html.escape(n, quote=True)}'>{k + 1}</th>" for k, n in enumerate(names))
    rows = []
    for i, name in enumerate(names):
        cells = []
        for j, other in enumerate(names):
            v = matrix[i, j]
            text = "–" if not math.isfinite(v) else f"{v:.2f}"
            tip = html.escape(f"{name} × {other}: {text}", quote=True)
            ink = "#fff" if math.isfinite(v) and abs(v) > 0.6 else "#222"
            cells.append(
                f"<td style='background:{_diverging(v)};color:{ink}' title='{tip}'>{text if show_values else ''}</td>"
            )
        rows.append(f"<tr><th class='name'>{i + 1}. {html.escape(name)}</th>{''.join(cells)}</tr>")
    size = "" if show_values else " compact"
    return (
        f"<table class='matrix{size}'><caption>{html.escape(title)}</caption>"
        f"<thead><tr><th></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _matrix_legend(names: list[str]) -> str:
    stops = ", ".join(_diverging(v) for v in np.linspace(-1, 1, 9))
    return (
        "<div class='legend'><span>−1</span><span class='ramp' style='background:linear-gradient(to right, "
        f"{stops})'></span><span>+1</span></div><p class='small'>Both matrices are label × label in the same order "
        "on the same −1…1 scale (columns numbered as the rows). Red: the two labels go together; blue: they exclude "
        "each other; grey “–”: undefined (a label never or always present on these tiles)."
        + ("" if len(names) <= MATRIX_VALUES_UP_TO else " Hover a cell for its value.")
        + "</p>"
    )


# ------------------------------------------------------------------ 5. pair map


def _pair_map_section(study: _Study) -> str:
    mats, ds, run = study.matrices, study.dataset, study.run("siamese")
    names = [str(n) for n in mats["label_names"]]
    pair = pair_maps.informative_pair(mats)
    if pair is None:
        return _na("no two labels occur together on the test tiles, so no pair has anything to map")
    i, j = pair
    scene = study.scene
    if scene.get("rgb") is None:
        return _na(f"no map: {scene['reason']}")
    source = "siamese" if "siamese" in pair_maps.sources_of(mats) else "classifier"
    scores = pair_maps.pair_map(run, i, j, "product", source, matrices=mats, dataset=ds)
    context = _dimmed_outside(scene, scores.rows)
    truth, truth_top = _score_image(scene, scores.rows, scores.ground_truth)
    learned, learned_top = _score_image(scene, scores.rows, scores.learned)
    r, n = pair_maps.pane_correlation(scores.ground_truth, scores.learned)
    a, b = html.escape(names[i]), html.escape(names[j])
    learned_title = "Siamese pair score ŝᵢ·ŝⱼ" if source == "siamese" else "classifier pᵢ·pⱼ"
    area = _around(scene, scores.rows)
    shape = context[area].shape[:2]
    panels = "".join(
        _figure(_png_uri(image[area]), shape, PANEL_BOX_PX, caption)
        for image, caption in (
            (context, "The scene: the mapped test tiles bright, the others faded."),
            (truth, f"Ground truth: area shares F({a})·F({b}), 0 … {truth_top:.2f}."),
            (learned, f"{html.escape(learned_title[:1].upper() + learned_title[1:])}, 0 … {learned_top:.2f}."),
        )
    )
    cooc, phi = int(mats["gt_cooc"][i, j]), float(mats["gt_phi"][i, j])
    return (
        f"<p><b>{a}</b> with <b>{b}</b>: together on {cooc} of {len(scores.rows)} test tiles, ground-truth "
        f"phi {_num(phi)} ({pair_maps.INFORMATIVE_PAIR_RULE}).</p>\n"
        f"<div class='panels'>{panels}</div>\n"
        f"<div class='legend'><span>0</span><span class='ramp' style='background:linear-gradient(to right, "
        f"{', '.join(_hex(c) for c in SEQUENTIAL)})'></span><span>the map's largest score</span></div>\n"
        f"<p class='small'>Each test tile is coloured by its score, each map from 0 to its largest score (given "
        "under it), since the question is where the pair lies, not how high each score runs; light grey: a tile "
        "of another split. "
        f"Middle: the ground truth, the product of the two labels' area shares on the tile; right: the "
        f"{html.escape(learned_title)}"
        + (
            ", each label's self-score scaled to 0…1 by its 99th percentile over these tiles"
            if source == "siamese"
            else ""
        )
        + ". Where the two maps light up together, the network placed the pair where it is. "
        + (f"Across these {n} tiles the two maps correlate with Pearson r = {r:.3f}." if r is not None else "")
        + "</p>"
    )


# ------------------------------------------------------------------ 6. configuration


def _configuration_section(study: _Study) -> str:
    record = study.record
    parts = []
    for kind in ("classifier", "siamese"):
        try:
            run = study.run(kind)
        except OLRError as error:
            parts.append(f"<div><h3>{KIND_NAMES[kind].capitalize()} run</h3>{_na(str(error))}</div>")
            continue
        cfg = dict(run.config)
        recipe = cfg.get("recipe") if isinstance(cfg.get("recipe"), dict) else None
        decided = (recipe or {}).get("decided") or {}
        why = (recipe or {}).get("why") or {}
        recipe_html = (
            _table(
                ["option", "decided", "why"],
                [
                    [html.escape(str(k)), html.escape(json.dumps(decided.get(k))), html.escape(str(why.get(k, "")))]
                    for k in decided
                ],
                "What the training recipe decided for this dataset (options left blank).",
            )
            if decided
            else "<p class='small'>The recipe decided nothing for this run (every option was given).</p>"
        )
        asked = (record.get("settings") or {}).get(kind) if isinstance(record.get("settings"), dict) else None
        asked_html = (
            "<p class='small'>Asked for by the study: "
            f"<code>{html.escape(json.dumps(asked, ensure_ascii=False))}</code></p>"
            if asked
            else ""
        )
        parts.append(
            f"<div><h3>{KIND_NAMES[kind].capitalize()} run {html.escape(run.id)}</h3>{asked_html}{recipe_html}"
            f"<p class='small'>Its resolved config.json:</p><pre>"
            f"{html.escape(json.dumps(json_ready(cfg), indent=2, ensure_ascii=False, default=str))}</pre></div>"
        )
    versions = record.get("versions") if isinstance(record.get("versions"), dict) else {}
    versions_html = (
        " · ".join(f"{html.escape(str(k))} {html.escape(str(v))}" for k, v in versions.items()) or "n/a (not recorded)"
    )
    checksum = record.get("dataset_checksum")
    return (
        f"<div class='configs'>{''.join(parts)}</div>"
        + f"\n<h3>Software and data</h3><p>Versions: {versions_html}.</p>"
        + f"<p>Dataset checksum: <code>{html.escape(str(checksum)) if checksum else 'n/a (not recorded)'}</code></p>"
        + f"<p class='repeat'>Repeat: <code>{REPEAT_COMMAND}</code> (this file holds the record and both "
        "configs).</p>"
    )


# ------------------------------------------------------------------ images


def _tile_mosaic(dataset) -> dict:
    """{"rgb": (H, W, 3) uint8, "step", "rows", "cols", "cell"}: the tiles' RGB composites at their places
    (`row_off`, `col_off` in image pixels, every `step`-th pixel so the longest side is at most SCENE_SIDE);
    {"rgb": None, "reason": sentence} when the tiles have no common grid (imported patches)."""
    tiles = dataset.tiles
    rows = tiles["row_off"].to_numpy(dtype=np.int64)
    cols = tiles["col_off"].to_numpy(dtype=np.int64)
    h, w, _ = dataset.tile_shape
    if not len(rows) or rows.min() < 0 or cols.min() < 0:
        return {"rgb": None, "reason": "the dataset's tiles have no places on an image (imported without them)"}
    if len(np.unique(rows * (cols.max() + 1) + cols)) < len(rows):
        return {"rgb": None, "reason": "the dataset's tiles share places (each was imported as a patch of its own)"}
    height, width = int(rows.max()) + h, int(cols.max()) + w
    step = max(1, math.ceil(max(height, width) / SCENE_SIDE))
    cell_h, cell_w = math.ceil(h / step), math.ceil(w / step)
    out = np.full((math.ceil(height / step), math.ceil(width / step), 3), 255, dtype=np.uint8)
    bands = composites.dataset_rgb_bands(dataset)
    limits = composites.dataset_stretch_limits(dataset, bands)
    top, left = rows // step, cols // step
    for start in range(0, dataset.n_tiles, TILE_CHUNK):
        chunk = np.arange(start, min(start + TILE_CHUNK, dataset.n_tiles))
        rgb = composites.rgb_composite(np.asarray(dataset.images[chunk, ::step, ::step, :]), bands, limits)
        for k, row in enumerate(chunk):
            t, lft = top[row], left[row]
            out[t : t + cell_h, lft : lft + cell_w] = rgb[k, : out.shape[0] - t, : out.shape[1] - lft]
    return {"rgb": out, "step": step, "top": top, "left": left, "cell": (cell_h, cell_w)}


def _dimmed_outside(scene: dict, rows) -> np.ndarray:
    """The scene with every tile not in `rows` faded towards white."""
    keep = np.zeros(scene["rgb"].shape[:2], dtype=bool)
    for cells in _cells(scene, rows):
        keep[cells] = True
    faded = (scene["rgb"].astype(np.float32) * 0.3 + 255 * 0.7).astype(np.uint8)
    return np.where(keep[..., None], scene["rgb"], faded)


def _score_image(scene: dict, rows, values) -> tuple[np.ndarray, float]:
    """(image, top): every tile light grey, the tiles `rows` coloured by `values` (>= 0) on the sequential
    scale from 0 to `top`, their largest finite value (1 when none is positive)."""
    out = np.full_like(scene["rgb"], 255)
    for cells in _cells(scene, range(len(scene["top"]))):
        out[cells] = 226
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    for cells, colour in zip(_cells(scene, rows), _sequential(values / top)):
        out[cells] = colour
    return out, top


def _around(scene: dict, rows) -> tuple[slice, slice]:
    """The part of the scene image holding the tiles `rows`, with one tile of their surroundings."""
    cell_h, cell_w = scene["cell"]
    top, left = scene["top"][rows], scene["left"][rows]
    height, width = scene["rgb"].shape[:2]
    return (
        slice(max(0, int(top.min()) - cell_h), min(height, int(top.max()) + 2 * cell_h)),
        slice(max(0, int(left.min()) - cell_w), min(width, int(left.max()) + 2 * cell_w)),
    )


def _cells(scene: dict, rows):
    """The (row slice, column slice) of each tile of `rows` in the scene image."""
    cell_h, cell_w = scene["cell"]
    for row in rows:
        t, left = int(scene["top"][row]), int(scene["left"][row])
        yield slice(t, t + cell_h), slice(left, left + cell_w)


def _sequential(values: np.ndarray) -> np.ndarray:
    """(n, 3) uint8 colours of `values` in 0..1 on `SEQUENTIAL` (NaN: grey)."""
    x = np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0) * (len(SEQUENTIAL) - 1)
    lo = np.floor(x).astype(int).clip(0, len(SEQUENTIAL) - 2)
    frac = (x - lo)[:, None]
    colours = SEQUENTIAL[lo] * (1 - frac) + SEQUENTIAL[lo + 1] * frac
    colours[~np.isfinite(values)] = 160
    return np.rint(colours).astype(np.uint8)


def _preview_uri(path: Path) -> tuple[str, tuple[int, int]]:
    """The dataset's preview PNG shrunk to SCENE_SIDE, re-encoded; (data URI, (height, width))."""
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a PNG has no georeference; rasterio warns about it
        with rasterio.open(path) as src:
            scale = max(1.0, max(src.height, src.width) / SCENE_SIDE)
            shape = (src.count, max(1, round(src.height / scale)), max(1, round(src.width / scale)))
            pixels = src.read(out_shape=shape)
    return _png_uri(np.moveaxis(pixels, 0, -1)), shape[1:]


def _png_uri(image: np.ndarray) -> str:
    """A `data:image/png;base64,...` URI of an (H, W, 3 or 4) uint8 image, written by rasterio's PNG driver."""
    from rasterio.io import MemoryFile

    height, width, count = image.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not georeferenced, on purpose
        with MemoryFile() as memory:
            with memory.open(driver="PNG", width=width, height=height, count=count, dtype="uint8", zlevel=9) as dst:
                dst.write(np.moveaxis(np.ascontiguousarray(image, dtype=np.uint8), -1, 0))
            data = memory.read()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure(uri: str, shape: tuple[int, int], box: int, caption: str) -> str:
    """An image of `shape` (height, width) scaled to fit a `box` px square, with its caption below."""
    height, width = shape
    shown = max(1, round(width * box / max(height, width, 1)))
    return (
        f"<figure style='width:{shown}px;max-width:100%'><img src='{uri}' alt='' style='width:100%'>"
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _band_text(dataset) -> str:
    names = dataset.band_names
    return ", ".join(names[i] if i < len(names) else f"band {i + 1}" for i in composites.dataset_rgb_bands(dataset))


# ------------------------------------------------------------------ small HTML parts


def _na(reason: str) -> str:
    reason = reason.strip().rstrip(".")
    return f"<p class='na'>n/a — {html.escape(reason[:1].upper() + reason[1:])}.</p>"


def _table(header: list[str], rows: list[list[str]], caption: str = "", cls: str = "") -> str:
    """A table of already-escaped cells."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    note = f"<p class='small'>{caption}</p>" if caption else ""
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


def _card(title: str, value: str, note: str) -> str:
    return (
        f"<div class='card'><div class='small'>{title}</div><div class='value'>{value}</div>"
        f"<div class='small'>{note}</div></div>"
    )


def _number(x) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _num(x, digits: int = 3) -> str:
    value = _number(x)
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if digits == 0 else f"{value:.{digits}f}"


def _with_band(x, band) -> str:
    """ "0.812 [0.701, 0.893]", or the value with "(no interval)", or "n/a"."""
    value = _number(x)
    if value is None:
        return "n/a"
    band = band if isinstance(band, dict) else {}
    low, high = _number(band.get("low")), _number(band.get("high"))
    if low is None or high is None:
        return f"{value:.3f} <span class='muted'>(no interval)</span>"
    return f"{value:.3f} <span class='muted'>[{low:.3f}, {high:.3f}]</span>"


def _rho(entry: dict) -> str:
    text = _with_band(entry.get("spearman"), entry.get("interval"))
    if text == "n/a":
        return "ρ n/a"
    p = _number((entry.get("permutation") or {}).get("p"))
    return f"ρ = {text}" + (f", p = {p:.3g}" if p is not None else "")


def _view_name(figure: str) -> str:
    return {
        "siamese_self": "Siamese self-score",
        "siamese_rsa": "Siamese RSA",
        "classifier_prob": "classifier view",
        "label_prior": "label prior",
        "untrained siamese_self": "untrained network (self-score)",
        "untrained siamese_rsa": "untrained network (RSA)",
        "siamese_self_vs_classifier": "Siamese vs classifier",
    }.get(figure, figure)


def _swatch(colour: str) -> str:
    return f"<span class='swatch' style='background:{_safe_colour(colour)}'></span>"


def _safe_colour(colour) -> str:
    """A label's colour when it is plain hex (it comes from a user's legend), else grey."""
    return colour if isinstance(colour, str) and _HEX_COLOUR.match(colour) else "#888888"


def _hex(rgb) -> str:
    return "#" + "".join(f"{round(float(c)):02x}" for c in rgb)


def _diverging(v: float) -> str:
    if not math.isfinite(v):
        return "#d9d9d9"
    t = (min(max(v, -1.0), 1.0) + 1) / 2 * (len(DIVERGING) - 1)
    k = min(int(t), len(DIVERGING) - 2)
    return _hex(DIVERGING[k] * (1 - (t - k)) + DIVERGING[k + 1] * (t - k))


CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: #1d232b; background: #fff; max-width: 1180px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 26px; margin: 0 0 10px; } h2 { font-size: 20px; margin: 34px 0 10px; border-bottom: 2px solid #dde3ea;
  padding-bottom: 4px; break-after: avoid; } h3 { font-size: 15px; margin: 20px 0 6px; break-after: avoid; }
.facts { display: flex; flex-wrap: wrap; gap: 6px 26px; margin: 0 0 12px; }
.facts div { min-width: 120px; } .facts dt { font-size: 12px; color: #5b6673; } .facts dd { margin: 0; }
.facts.narrow { display: grid; grid-template-columns: 1fr; gap: 4px; }
.verdict { font-size: 16px; padding: 10px 14px; border-radius: 6px; border-left: 6px solid #8a96a3;
  background: #f2f4f7; }
.verdict.good { border-color: #2e7d32; background: #edf7ee; } .verdict.bad { border-color: #c62828;
  background: #fdeeee; } .verdict.open { border-color: #b7791f; background: #fdf6e7; }
.small { font-size: 12px; color: #5b6673; margin: 4px 0; } .muted { color: #6b7682; }
.na { color: #8a4b00; background: #fff6e5; padding: 6px 10px; border-radius: 4px; }
.warn { background: #fff6e5; border-left: 4px solid #e0a800; padding: 6px 12px; margin: 8px 0; font-size: 13px; }
.warn ul { margin: 4px 0 0 18px; padding: 0; }
ul.checks { display: flex; flex-wrap: wrap; gap: 4px 18px; list-style: none; padding: 0; margin: 0 0 8px;
  font-size: 13px; } ul.checks .good::before { content: "✓ "; color: #2e7d32; }
ul.checks .bad::before { content: "✗ "; color: #c62828; }
table { border-collapse: collapse; margin: 6px 0; font-size: 13px; }
th, td { border: 1px solid #dde3ea; padding: 3px 8px; text-align: left; vertical-align: top; }
thead th { background: #f2f4f7; font-weight: 600; }
table.numbers td:not(:first-child) { text-align: right; font-variant-numeric: tabular-nums; }
table.freq td:nth-child(n+3) { text-align: right; }
.barcell { position: relative; min-width: 220px; } .barcell .bar { position: absolute; left: 0; top: 2px;
  bottom: 2px; background: #cfe0f3; } .barcell span:last-child { position: relative; }
.swatch { display: inline-block; width: 11px; height: 11px; margin-right: 6px; border: 1px solid #0003;
  vertical-align: -1px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0; }
.card { border: 1px solid #dde3ea; border-radius: 6px; padding: 8px 12px; min-width: 190px; break-inside: avoid; }
.card .value { font-size: 17px; font-weight: 600; }
.side { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.side > div:last-child { flex: 1; min-width: 300px; }
figure { margin: 0; break-inside: avoid; } figcaption { font-size: 12px; color: #5b6673; }
figure img { image-rendering: pixelated; border: 1px solid #dde3ea; display: block; }
.panels { display: flex; flex-wrap: wrap; gap: 14px; }
.matrices { display: flex; flex-wrap: wrap; gap: 22px; align-items: flex-start; }
table.matrix { font-size: 11px; break-inside: avoid; } table.matrix caption { font-weight: 600; text-align: left;
  padding-bottom: 4px; font-size: 13px; }
table.matrix td { width: 38px; height: 26px; text-align: center; padding: 0 2px; border: 1px solid #fff;
  font-variant-numeric: tabular-nums; }
table.matrix.compact td { width: 14px; height: 14px; } table.matrix thead th { text-align: center;
  background: none; border: none; } table.matrix th.name { background: none; border: none; white-space: nowrap;
  font-weight: normal; text-align: right; }
.legend { display: flex; align-items: center; gap: 8px; font-size: 12px; margin: 8px 0 2px; }
.legend .ramp { display: inline-block; width: 220px; height: 12px; border: 1px solid #aaa; }
pre { background: #f6f8fa; padding: 10px; font-size: 12px; overflow-x: auto; white-space: pre-wrap; }
code { background: #f2f4f7; padding: 1px 4px; border-radius: 3px; }
.repeat { font-size: 15px; margin-top: 16px; }
.configs { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 18px; }
@media print { body { max-width: none; padding: 0; font-size: 12px; }
  h2 { break-before: auto; } section { break-inside: auto; } }
"""

"""Evaluate: a classifier run's validation and test figures per threshold mode, with intervals,
the all-absent baseline and diagnostics; per-label metrics at any threshold; example tiles; and
predictions of any run on a new scene."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from olr import workspace
from olr.analysis import evaluation, metrics
from olr.data import summary as tile_summary
from olr.runs import annotations, store
from ui import charts, downloads, loaders, predict_panel, results, runs_panel, tiles
from ui.entry import ensure_entrypoint
from ui.text import plain

ensure_entrypoint()
st.title("Evaluate")
st.caption(
    "Validation and test figures of a classifier run. Every figure names its threshold mode: configured (the run's "
    "threshold), uniform-tuned or per-label-tuned (tuned on the validation split only), and carries a 95 % interval "
    "from a spatial block bootstrap. Accuracy stands beside the all-absent baseline: with rare labels, predicting "
    "every label absent already scores high, so F2 and average precision are the numbers to judge by."
)
#: how the figure table names the stored interval figures
FIGURE_COLUMNS = {"micro_f2": "micro F2", "macro_f2": "macro F2", "samples_f2": "sample F2", "accuracy": "accuracy"}


def siamese_summary(run) -> None:
    st.info(
        "A Siamese run is judged by how well its learned label correlations agree with the ground truth: "
        "see the Correlations & map page.",
        icon=":material/hub:",
    )
    summary = evaluation.read_summary(run) or {}
    cols = st.columns(3)
    cols[0].metric("Final training loss (MSE)", _fmt(summary.get("final_train_loss")), border=True)
    cols[1].metric("Final validation loss (MSE)", _fmt(summary.get("final_val_loss")), border=True)
    from olr.analysis import correlations

    agreement = correlations.read_agreement(run) or summary.get("agreement") or {}
    best = agreement.get("siamese_self")
    cols[2].metric(
        "Agreement with ground truth (Spearman ρ)", _fmt(best.get("spearman") if best else None), border=True
    )
    st.page_link("pages/correlations.py", label="Open Correlations & map", icon=":material/hub:")


def _fmt(x, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "–"
    return f"{x:.1%}" if pct else f"{x:.3f}"


def _band(x, band: dict | None, pct: bool = False) -> str:
    """ "0.812 (0.701–0.893)": a stored figure with its interval, or the figure alone."""
    if not band or band.get("low") is None:
        return _fmt(x, pct)
    return f"{_fmt(x, pct)} ({_fmt(band['low'], pct)}–{_fmt(band['high'], pct)})"


def figures_table(summary: dict, report: dict) -> None:
    """The stored headline figures of one split: one row per threshold mode, intervals in brackets."""
    rows = []
    for key in evaluation.MODES:
        mode = report["modes"][key]
        t = summary["thresholds"][key]
        values = {"micro_f2": mode["micro"]["f2"], "macro_f2": mode["macro"]["f2"], "samples_f2": mode["samples"]["f2"]}
        values["accuracy"] = mode["binary_accuracy"]
        row = {
            "threshold mode": evaluation.MODE_NAMES[key],
            "thresholds": "per label" if isinstance(t, list) else f"{t:.3f}",
            "tuned on": mode.get("thresholds_from", ""),
        }
        for fig, column in FIGURE_COLUMNS.items():
            row[column] = _band(values[fig], mode.get("intervals", {}).get(fig), pct=fig == "accuracy")
        row["subset accuracy"] = _fmt(mode.get("subset_accuracy"), pct=True)
        row["beats baseline"] = "yes" if mode["beats_baseline"] else "NO"
        rows.append(row)
    st.table(pd.DataFrame(rows).set_index("threshold mode"))
    configured = report["modes"]["configured"]
    blocks = report.get("n_blocks")
    st.caption(
        f"Threshold-free: macro AP {_band(configured['macro']['ap'], report.get('macro_ap_interval'))}, macro AUROC "
        f"{_fmt(configured['macro'].get('auroc'))}. "
        f"All-absent baseline accuracy {_fmt(report['baseline_accuracy'], True)}. "
        + (
            f"Brackets: 95 % interval, spatial block bootstrap over the split's {blocks} blocks. "
            if blocks is not None
            else ""
        )
        + "Sample F2 is the Planet/Kaggle metric (F2 per tile, averaged over tiles with a label); accuracy is "
        "1 − Hamming loss; subset accuracy counts tiles with every label right. Macro means leave out labels "
        "without positives on this split (listed in the warnings)."
    )


def diagnostics(summary: dict, report: dict) -> None:
    found = report.get("diagnostics", []) + (summary.get("run_diagnostics", []) if report is not summary else [])
    if not found:
        return
    flagged = any(d.get("code") == "accuracy_not_above_baseline" for d in found)
    with st.expander(f"Diagnostics ({len(found)})", expanded=flagged):
        for key in (*evaluation.MODES, None):
            for d in (d for d in found if d.get("mode") == key):
                where = f"**{evaluation.MODE_NAMES[key]}** · " if key else ""
                st.markdown(f"- {where}{plain(d.get('message'))}")


def headline(m: metrics.MultilabelMetrics, bands: dict) -> None:
    """Cards at the explored thresholds; `bands`: the stored intervals when they are a reported mode.

    Each card is as wide as its figure and the row wraps, so no figure is cut off in a narrow window."""
    row = st.container(horizontal=True)
    row.metric(
        "Binary accuracy",
        _fmt(m.accuracy, True),
        border=True,
        width="content",
        delta=f"{(m.accuracy - m.baseline_accuracy) * 100:+.1f} pts",
        delta_color="normal" if m.beats_baseline else "inverse",
        help="Share of correct (tile, label) decisions; the delta is against the all-absent baseline.",
    )
    row.metric(
        "All-absent baseline",
        _fmt(m.baseline_accuracy, True),
        border=True,
        width="content",
        help="Accuracy of a model that predicts every label absent on these tiles.",
    )

    def card(label, value, fig, help_text):
        band = bands.get(fig)
        delta = f"{_fmt(band['low'])}–{_fmt(band['high'])}" if band and band.get("low") is not None else None
        row.metric(
            label,
            _fmt(value),
            delta=delta,
            delta_color="off",
            delta_arrow="off",
            delta_description="95 % interval" if delta else None,
            border=True,
            width="content",
            help=help_text,
        )

    card("Micro F1", m.micro["f1"], None, "F1 over all (tile, label) decisions pooled.")
    card("Micro F2", m.micro["f2"], "micro_f2", "Recall-weighted F-score (beta 2), as in the Planet report.")
    card("Macro F2", m.macro["f2"], "macro_f2", "Mean over labels with positives.")
    card("Sample F2", m.samples["f2"], "samples_f2", "F2 per tile averaged over tiles (the Kaggle metric).")
    card("Macro AP", m.macro["ap"], "macro_ap", "Average precision: threshold-free ranking quality.")


#: per-label columns: (header, help), shown right after the label so they stay in view
SCORE_COLUMNS = {
    "precision": ("P", "Precision TP / (TP + FP); 0 for a label never predicted."),
    "recall": ("R", "Recall TP / (TP + FN)."),
    "f1": ("F1", "F1 score."),
    "f2": ("F2", "F2 score (recall weighted, beta 2)."),
    "ap": ("AP", "Average precision (threshold-free)."),
    "auroc": ("AUROC", "Area under the ROC curve (threshold-free)."),
}


#: the confusion counts, after the scores (TN, large and least telling with rare labels, last)
COUNT_COLUMNS = ("tp", "fp", "fn", "tn")
#: pixel widths: the label, the scores and TP/FP/FN fit the main area of a 1280 px window (about 800 px)
LABEL_WIDTH, SCORE_WIDTH, COUNT_WIDTH = 150, 50, 46


def per_label_table(m: metrics.MultilabelMetrics) -> None:
    df = m.table()
    df["frequency"] = df["frequency"] * 100  # shown as a whole percentage, the narrowest readable form
    number = st.column_config.NumberColumn
    scores = {c: number(h, help=t, format="%.2f", width=SCORE_WIDTH) for c, (h, t) in SCORE_COLUMNS.items()}
    counts = {c: number(c.upper(), format="%d", width=COUNT_WIDTH) for c in COUNT_COLUMNS}
    st.dataframe(
        df,
        hide_index=True,
        column_order=["label", *SCORE_COLUMNS, "support", "frequency", "threshold", *COUNT_COLUMNS],
        column_config={
            "label": st.column_config.TextColumn("label", width=LABEL_WIDTH, pinned=True),
            "support": number("pos.", help="Tiles with the label on this split.", format="%d", width=COUNT_WIDTH),
            "frequency": number(
                "freq.", help="Share of the split's tiles with the label.", format="%.0f%%", width=COUNT_WIDTH
            ),
            "threshold": number("thr.", help="Decision threshold of the label.", format="%.2f", width=COUNT_WIDTH),
            **counts,
            **scores,
        },
    )


def examples(run, thresholds, split: str) -> None:
    pred = evaluation.split_predictions(loaders.predictions(run), split)
    names = [str(s) for s in pred["label_names"]]
    support = pred["y_true"].sum(axis=0)
    default = names[int(np.argmax(support))] if len(names) else None
    label = st.selectbox("Label", names, index=names.index(default) if default else 0, key="eval.example_label")
    j = names.index(label)
    t = float(np.broadcast_to(np.asarray(thresholds, dtype=float), (len(names),))[j])
    kinds = {"True positives": "tp", "False positives": "fp", "False negatives": "fn"}
    groups = {title: evaluation.error_tiles(run, j, t, kind, n=None, predictions=pred) for title, kind in kinds.items()}
    truth = dict(zip(pred["indices"].tolist(), pred["y_true"], strict=True))
    ds = loaders.run_dataset(run)
    tabs = st.tabs([f"{k} ({len(rows)})" for k, (rows, _) in groups.items()])
    colors = dict(zip(ds.label_names, ds.label_colors))
    for tab, (kind, (idx, probs)) in zip(tabs, groups.items()):
        with tab:
            if len(idx) == 0:
                st.caption(f"No {kind.lower()} for {plain(label)} at threshold {t:.2f}.")
                continue
            st.caption(
                {
                    "True positives": "Most confident correct detections first.",
                    "False positives": "Most confident false alarms first: what the model mistakes for the label.",
                    "False negatives": "Most confidently missed first: "
                    "where the label is but the model does not see it.",
                }[kind]
            )
            idx, probs = idx[:12], probs[:12]
            thumbs = tiles.thumbnails(ds, idx)
            chips = [
                [(names[k], colors.get(names[k], "#888888"), None) for k in np.flatnonzero(truth[int(i)])][:5]
                for i in idx
            ]
            names_of = tile_summary.dataset_tile_names(ds, idx)
            captions = [f"{name} · p = {pr:.2f}" for name, pr in zip(names_of, probs, strict=True)]
            tiles.gallery(thumbs, captions, chips)


def offer_evaluation(run) -> None:
    """A run without an evaluation (stopped, or finished before evaluating): say so and evaluate it from here."""
    why = (
        "was stopped before its last epoch, so it was not evaluated"
        if run.state == store.RunState.STOPPED
        else "has not been evaluated yet"
    )
    st.info(
        f"This run {why}. Its best checkpoint can be evaluated on the validation and test splits now "
        f"(the same as `python -m olr evaluate {run.id}`).",
        icon=":material/info:",
    )
    if workspace.is_readonly():
        st.caption("This is a read-only demo: runs cannot be evaluated here.")
        return
    if st.button("Evaluate this run", type="primary", icon=":material/fact_check:", key="eval.evaluate_run"):
        results.evaluate(run)


run = results.selected_run("Evaluate")
if run is not None:
    st.subheader(annotations.run_title(run))
    st.caption(f"Run `{run.id}` · {run.kind} · {run.state}")
    results.settings(run)
    runs_panel.show_flags(run)  # e.g. a best checkpoint that does not beat the all-absent baseline on validation
    if run.kind == "siamese":
        siamese_summary(run)
        predict_panel.section(run)
        st.stop()
    summary = evaluation.read_summary(run)
    if summary is None:
        offer_evaluation(run)
        predict_panel.section(run)
        st.stop()
    beta = float(summary.get("beta", 2.0))
    tuned_on = evaluation.SPLIT_NAMES.get(summary.get("tuned_on"), summary.get("tuned_on"))
    splits = [s for s in evaluation.EVALUATION_SPLITS if evaluation.split_figures(summary, s) is not None]
    split = st.radio(
        "Split",
        splits,
        index=splits.index("test"),
        format_func=lambda s: {"val": "Validation (tuning figures)", "test": "Test (reported once)"}[s],
        horizontal=True,
        key="eval.split",
    )
    report = evaluation.split_figures(summary, split)
    blocks = report.get("n_blocks")
    st.caption(
        f"{report.get('n_tiles', '?')} {evaluation.SPLIT_NAMES[split]} tiles"
        + (f" in {blocks} spatial blocks" if blocks is not None else "")
        + f" of `{summary.get('dataset')}`, {len(summary.get('labels', []))} labels; "
        f"thresholds tuned on the {tuned_on} split for F{beta:g}."
    )
    if report.get("tuned_here"):
        st.info(
            "The tuned thresholds were fitted to these validation tiles, so their figures here are optimistic; the "
            "test split reports them on tiles they were not tuned on.",
            icon=":material/info:",
        )
    for w in report.get("interval_warnings", []):
        st.warning(w, icon=":material/warning:")
    if "modes" in report and "samples" in report["modes"]["configured"]:
        figures_table(summary, report)
    else:
        st.info(f"Evaluate the run again (`python -m olr evaluate {run.id}`) for intervals and sample F2.")
    diagnostics(summary, report)
    downloads.run_button(run, split)

    st.subheader("Explore thresholds")
    c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
    per_label = c1.toggle(
        "Use per-label optimum thresholds",
        key="eval.per_label",
        help=f"Each label's threshold maximises F{beta:g} on the {tuned_on} split.",
    )
    configured = float(summary["thresholds"].get("configured", 0.5))
    uniform = c2.slider(
        "Decision threshold (all labels)",
        0.01,
        0.99,
        configured,
        0.01,
        key="eval.threshold",
        disabled=per_label,
        help=f"Configured {configured:g}; best uniform on {tuned_on}: {summary['thresholds'].get('uniform', 0.5):.2f}.",
    )
    thresholds = np.asarray(summary["thresholds"]["per_label"], dtype=float) if per_label else uniform
    mode = "per_label" if per_label else "configured" if uniform == configured else None
    m = (
        loaders.metrics_at(run, thresholds, beta)
        if split == "test"
        else evaluation.metrics_at(run, thresholds, beta, split)
    )
    stored = report.get("modes", {}).get(mode, {}).get("intervals", {}) if mode else {}
    st.caption(
        f"Thresholds: **{evaluation.MODE_NAMES[mode]}** on the {evaluation.SPLIT_NAMES[split]} split."
        if mode
        else f"Thresholds: a uniform {uniform:.2f} chosen here, not a reported mode (no interval)."
    )
    headline(m, {**stored, "macro_ap": report.get("macro_ap_interval")})
    for w in m.warnings:
        st.warning(plain(w), icon=":material/warning:")
    st.subheader("Per label")
    st.caption(
        "Sortable: click a column header. Labels without positives on this split have undefined recall, F-scores, "
        "AP and AUROC (empty cells), and are left out of the macro means."
    )
    per_label_table(m)
    df = m.table()
    colors = dict(zip(run.label_names, [d.get("color", "#888888") for d in run.config.get("labels", [])]))
    st.caption("F2 per label at the current thresholds (recall weighted over precision), in CORINE colours.")
    st.altair_chart(charts.per_label_bars(df.fillna({"f2": 0.0}), "f2", colors), width="stretch")
    st.subheader("Example tiles")
    examples(run, thresholds, split)
    predict_panel.section(run)

"""Evaluate: per-label test metrics of a classifier run, thresholds, baseline, example tiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from olr.analysis import evaluation, metrics
from olr.data import composites
from ui import charts, loaders, results, tiles
from ui.entry import ensure_entrypoint
from ui.text import plain

ensure_entrypoint()
st.title("Evaluate")
st.caption(
    "Test-split metrics of a classifier run, recomputed from its stored predictions for any threshold (no model is "
    "run here). Accuracy is shown beside the all-absent baseline: with rare labels, predicting every label absent "
    "already scores high, so F2 and average precision are the numbers to judge by."
)


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


def headline(m: metrics.MultilabelMetrics) -> None:
    cols = st.columns([1.25, 1.25, 1, 1, 1, 1])
    cols[0].metric(
        "Binary accuracy",
        _fmt(m.accuracy, True),
        border=True,
        delta=f"{(m.accuracy - m.baseline_accuracy) * 100:+.1f} pts",
        delta_color="normal" if m.beats_baseline else "inverse",
        help="Share of correct (tile, label) decisions; the delta is against the all-absent baseline.",
    )
    cols[1].metric(
        "All-absent baseline",
        _fmt(m.baseline_accuracy, True),
        border=True,
        help="Accuracy of a model that predicts every label absent on these tiles.",
    )
    cols[2].metric("Micro F1", _fmt(m.micro["f1"]), border=True)
    cols[3].metric(
        "Micro F2", _fmt(m.micro["f2"]), border=True, help="Recall-weighted F-score (beta 2), as in the Planet report."
    )
    cols[4].metric("Macro F2", _fmt(m.macro["f2"]), border=True, help="Mean over labels with positives.")
    cols[5].metric(
        "Macro AP", _fmt(m.macro["ap"]), border=True, help="Average precision: threshold-free ranking quality."
    )


def per_label_table(m: metrics.MultilabelMetrics) -> pd.DataFrame:
    df = m.table()
    order = [
        "label",
        "support",
        "frequency",
        "threshold",
        "tp",
        "fp",
        "fn",
        "tn",
        "precision",
        "recall",
        "f1",
        "f2",
        "ap",
    ]
    df = df[[c for c in order if c in df] + [c for c in df if c not in order]]
    score = st.column_config.ProgressColumn
    st.dataframe(
        df,
        hide_index=True,
        column_config={
            "label": st.column_config.TextColumn("label", width="large"),
            "support": st.column_config.NumberColumn("positives", help="Test tiles with the label."),
            "frequency": st.column_config.NumberColumn("frequency", format="percent"),
            "threshold": st.column_config.NumberColumn("threshold", format="%.2f"),
            "tp": "TP",
            "fp": "FP",
            "fn": "FN",
            "tn": "TN",
            **{
                c: score(c if c != "ap" else "AP", min_value=0.0, max_value=1.0, format="%.3f")
                for c in ("precision", "recall", "f1", "f2", "ap")
            },
        },
    )


def examples(run, m: metrics.MultilabelMetrics, thresholds) -> None:
    pred = loaders.predictions(run)
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
    bands = composites.default_rgb_bands(ds.band_names or [f"band {i + 1}" for i in range(ds.tile_shape[2])])
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
            images = composites.images_at(ds, idx)
            limits = composites.stretch_limits(images, bands)
            thumbs = composites.rgb_composite(
                images, bands, limits, upscale=composites.thumbnail_upscale(ds.tile_shape[0])
            )
            chips = [
                [(names[k], colors.get(names[k], "#888888"), None) for k in np.flatnonzero(truth[int(i)])][:5]
                for i in idx
            ]
            captions = [f"tile row {int(i)} · p = {pr:.2f}" for i, pr in zip(idx, probs, strict=True)]
            tiles.gallery(thumbs, captions, chips)


run = results.selected_run("Evaluate")
if run is not None:
    if run.kind == "siamese":
        siamese_summary(run)
        st.stop()
    summary = evaluation.read_summary(run)
    if summary is None:
        st.info(
            f"Run {run.id} has not been evaluated yet. Evaluate it with `python -m olr evaluate {run.id}` "
            "(finished runs are evaluated automatically).",
            icon=":material/info:",
        )
        st.stop()
    beta = float(summary.get("beta", 2.0))
    st.subheader(f"{run.id}")
    st.caption(
        f"{summary.get('n_tiles', '?')} test tiles of `{summary.get('dataset')}`, "
        f"{len(summary.get('labels', []))} labels; "
        f"thresholds tuned on the {summary.get('tuned_on')} split for F{beta:g}."
    )
    c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
    per_label = c1.toggle(
        "Use per-label optimum thresholds",
        key="eval.per_label",
        help=f"Each label's threshold maximises F{beta:g} on the {summary.get('tuned_on')} split.",
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
        help=f"Configured {configured:g}; "
        f"best uniform on {summary.get('tuned_on')}: {summary['thresholds'].get('uniform', 0.5):.2f}.",
    )
    thresholds = np.asarray(summary["thresholds"]["per_label"], dtype=float) if per_label else uniform
    m = loaders.metrics_at(run, thresholds, beta)
    headline(m)
    for w in m.warnings:
        st.warning(w, icon=":material/warning:")
    diagnostics = summary.get("diagnostics") or []
    if diagnostics:
        with st.expander(f"Diagnostics from the evaluation ({len(diagnostics)})", expanded=not m.beats_baseline):
            for d in diagnostics:
                st.markdown(f"- {plain(d.get('message'))}")
    st.subheader("Per label")
    st.caption("Sortable: click a column header. Labels without test positives have undefined recall and F-scores.")
    per_label_table(m)
    df = m.table()
    colors = dict(zip(run.label_names, [d.get("color", "#888888") for d in run.config.get("labels", [])]))
    st.caption("F2 per label at the current thresholds (recall weighted over precision), in CORINE colours.")
    st.altair_chart(charts.per_label_bars(df.fillna({"f2": 0.0}), "f2", colors), width="stretch")
    st.subheader("Example tiles")
    examples(run, m, thresholds)

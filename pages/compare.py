"""Compare: every run in one table, config differences highlighted, overlaid curves, CSV export."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from olr.analysis import compare, correlations
from olr.runs import store
from olr.workflows import sweep
from ui import charts, loaders, runs_panel, state
from ui.entry import ensure_entrypoint

ensure_entrypoint()
st.title("Compare")
st.caption(
    "All runs of the workspace side by side: dataset, model, the options that differ between the runs you selected "
    "(highlighted), final training and validation metrics, and the agreement of learned label correlations with "
    "the ground truth beside the references it must beat."
)

HIGHLIGHT = "background-color: #fff3c4"
SELECTED = "font-weight: 600"


def comparison_table(everything: list, selected_ids: list[str]) -> pd.DataFrame:
    df = compare.compare_runs(everything)
    differing = (
        compare.config_differences([r for r in everything if r.id in selected_ids]) if len(selected_ids) > 1 else []
    )
    shown_diff = [c for c in differing if c in df.columns]
    first = ["id", "kind", "state", "dataset", "labels"]
    results = [c for c in compare.RESULT_COLUMNS if c in df.columns]
    metric_cols = [c for c in df.columns if c.startswith(("train_", "val_", "agreement_", "best_", "epochs_done"))]
    config_cols = [c for c in df.columns if c not in first + results + metric_cols]
    config_cols = [c for c in shown_diff if c in config_cols] + [c for c in config_cols if c not in shown_diff]
    df = df[[c for c in first if c in df] + results + config_cols + metric_cols]

    def style_row(row: pd.Series) -> list[str]:
        chosen = row["id"] in selected_ids
        return [
            ";".join(
                s
                for s in ((HIGHLIGHT if chosen and c in shown_diff else ""), (SELECTED if chosen and c == "id" else ""))
                if s
            )
            for c in row.index
        ]

    # Missing values (an option a run kind does not have) show as blanks, numbers with 4 significant digits.
    df = df.astype(object).where(df.notna(), None)
    styler = df.style.apply(style_row, axis=1).format(
        lambda v: "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))
    )
    st.dataframe(styler, hide_index=True, column_config={"id": st.column_config.TextColumn("run", pinned=True)})
    if shown_diff:
        st.caption(
            f"Highlighted for the {len(selected_ids)} selected runs: "
            f"options that differ between them — {', '.join(shown_diff)}."
        )
    elif len(selected_ids) > 1:
        st.caption("The selected runs share every option shown.")
    else:
        st.caption("Select two or more runs in the sidebar to highlight the options that differ between them.")
    if results:
        st.caption(
            "Results first: the learned view's agreement ρ with the ground-truth phi (the Siamese self-score; a "
            "classifier run's probability view) on the split named (validation where a run has validation "
            "correlations, else its test record), its 95 % block-bootstrap interval, the references "
            "(label prior, classifier, untrained network), the verdict and the shares of paired resamples in which "
            f"the learned view is above the references. {correlations.VERDICT_RULE} Compare settings on validation "
            "figures (`python -m olr correlations RUN --split val` computes them); test figures are for reporting."
        )
    return df


def overlay(selected: list) -> None:
    frames = []
    for run in selected:
        df, skipped = loaders.run_metrics(run)
        if df.empty or "split" not in df:
            continue
        if "scope" in df:
            df = df[df["scope"] == "epoch"]
        frames.append(df.assign(run=run.id))
        if skipped:
            st.caption(f"{run.id}: {skipped} unreadable metrics line(s) skipped.")
    if not frames:
        st.info("The selected runs have no epoch metrics yet.")
        return
    data = pd.concat(frames, ignore_index=True)
    metrics = sorted(
        (
            c
            for c in data.columns
            if c not in {"step", "epoch", "time", "split", "scope", "run"} and pd.api.types.is_numeric_dtype(data[c])
        ),
        key=lambda m: (m != "loss", m),
    )
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    metric = c1.selectbox("Metric", metrics, key="compare.metric")
    log_scale = c2.toggle("Log scale", key="compare.log")
    st.altair_chart(
        charts.curves_chart(data, metric=metric, x="epoch", log_scale=log_scale, smoothing=0.0), width="stretch"
    )
    st.caption(
        "Per-epoch values; solid lines training, dashed validation. Runs of different kinds log different metrics."
    )


def sweep_section() -> None:
    """A sweep (e.g. `python -m olr sweep --preset thesis`) as one table like the thesis's tables 3-6."""
    sweeps = sweep.list_sweeps()
    if not sweeps:
        return
    st.subheader("Sweeps")
    chosen = st.selectbox("Sweep", sweeps, key="compare.sweep")
    table = sweep.sweep_table(chosen)
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            c: st.column_config.NumberColumn(c, format="%.3f")
            for c in table.columns
            if pd.api.types.is_float_dtype(table[c])
        },
    )
    st.caption(
        "One row per configuration: validation accuracy and macro AP at the first and the best epoch (the thesis's "
        "start / final accuracy), TP/TN/FP/FN totals on the test split at the run's threshold, the all-absent "
        "baseline accuracy, micro F2 with tuned thresholds, and the Siamese agreement ρ with the ground-truth phi."
    )
    st.download_button(
        "Download the sweep table as CSV",
        table.to_csv(index=False).encode("utf-8"),
        file_name=f"{chosen}.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
        key="compare.sweep_csv",
    )


everything = [r for r in store.list_runs() if not r.is_study]  # a study's runs are compared, not the study
if not everything:
    runs_panel.offer_demo_pipeline("Compare")
    st.stop()
selected_ids = [i for i in state.runs() if i in {r.id for r in everything}]
table = comparison_table(everything, selected_ids)
for damaged in (r for r in everything if r.problem):
    st.warning(damaged.problem, icon=":material/warning:")
st.download_button(
    "Download the table as CSV",
    table.to_csv(index=False).encode("utf-8"),
    file_name="olr-runs.csv",
    mime="text/csv",
    icon=":material/download:",
    on_click="ignore",
)
st.subheader("Curves")
if selected_ids:
    overlay([r for r in everything if r.id in selected_ids])
else:
    st.info("Select runs in the sidebar to overlay their curves.", icon=":material/info:")
sweep_section()

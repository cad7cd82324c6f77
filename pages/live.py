"""Live: loss and metric curves of one or more runs, refreshing while they train."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from olr.runs import annotations, progress, store
from olr.runs.store import RunLayout
from ui import charts, loaders, runs_panel, state
from ui.entry import ensure_entrypoint
from ui.guard import guarded
from ui.text import plain

REFRESH_S = 2.0
NOT_METRICS = {"step", "epoch", "time", "split", "scope"}

ensure_entrypoint()
st.title("Live")
st.caption(
    f"Training curves read from each run's `{RunLayout.METRICS}`. While a selected run is active the chart refreshes "
    "itself every few seconds (only the chart, not the page). Solid lines: training; dashed: validation."
)


def legend_names(runs: list) -> dict[str, str]:
    """Run id -> how the chart's legend and cards name it: its title (`annotations.run_title`), with the end of
    its id added where two titles are the same, so the legend always tells the runs apart."""
    titles = {run.id: annotations.run_title(run) for run in runs}
    shared = {t for t in titles.values() if list(titles.values()).count(t) > 1}
    return {i: f"{t} ({i[-6:]})" if t in shared else t for i, t in titles.items()}


def long_frame(selected: list, x: str) -> tuple[pd.DataFrame, list[str], dict[str, int]]:
    """All selected runs' metric rows, with `run` (its legend name), `id` and elapsed-seconds columns."""
    frames, skipped = [], {}
    names = legend_names(selected)
    for run in selected:
        df, bad = loaders.run_metrics(run)
        if bad:
            skipped[run.id] = bad
        if df.empty or "split" not in df:
            continue
        df = df.copy()
        df["run"], df["id"] = names[run.id], run.id
        if "time" in df:
            df["seconds"] = df["time"] - df["time"].min()
        if "scope" in df:
            # Per epoch: the epoch summaries. Per step/time: training's running means per step,
            # validation's epoch-end points (the epoch summary of training would duplicate a step),
            # unless a run logged no step lines at all: then its epoch summaries draw its training line.
            train_steps = ((df["split"] == "train") & (df["scope"] == "step")).any()
            per_step = (df["split"] != "train") | (df["scope"] != "epoch") | (not train_steps)
            keep = (df["scope"] == "epoch") if x == "epoch" else per_step
            df = df[keep]
        frames.append(df)
    if not frames:
        return pd.DataFrame(), [], skipped
    all_rows = pd.concat(frames, ignore_index=True)
    metrics = [
        c
        for c in all_rows.columns
        if c not in NOT_METRICS | {"run", "id", "seconds"} and pd.api.types.is_numeric_dtype(all_rows[c])
    ]
    return all_rows, metrics, skipped


everything = store.list_runs()
if not everything:
    runs_panel.offer_demo_pipeline("Live")
    st.stop()
chosen_ids = state.runs()
if not chosen_ids:
    st.info("Pick one or more runs in the sidebar to see their curves.", icon=":material/info:")
    st.stop()

by_id = {r.id: r for r in everything}
c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
x_axis = c2.selectbox(
    "X axis",
    ["step", "epoch", "seconds"],
    key="live.x",
    format_func={"step": "training step", "epoch": "epoch", "seconds": "seconds since start"}.get,
)
smoothing = c3.slider(
    "Smoothing (EMA)",
    0.0,
    0.95,
    0.6,
    0.05,
    key="live.smoothing",
    help="Weight of the past in an exponential moving average; 0 shows raw values.",
)
log_scale = c4.toggle("Log scale", value=False, key="live.log")
splits = c4.pills("Splits", ["train", "val"], selection_mode="multi", default=["train", "val"], key="live.splits")
_, metric_names, _ = long_frame([by_id[i] for i in chosen_ids if i in by_id], x_axis)
metric_names = sorted(metric_names, key=lambda m: (m != "loss", m))
if not metric_names:
    metric_names = ["loss"]
metric = c1.selectbox("Metric", metric_names, key="live.metric")
live_at_start = any(by_id[i].is_live for i in chosen_ids if i in by_id)


@st.fragment(run_every=REFRESH_S if live_at_start else None)
@guarded("The live chart")
def curves() -> None:
    fresh = {r.id: r for r in store.list_runs()}
    selected = [fresh[i] for i in chosen_ids if i in fresh]
    live = any(r.is_live for r in selected)
    if live != live_at_start:
        st.rerun()  # start or stop the refresh timer
    names = legend_names(selected)
    cards = st.columns(min(len(selected), 4) or 1)
    for col, run in zip(cards * 4, selected):
        df, _ = loaders.run_metrics(run)
        told = progress.describe(run)
        last = None
        if not df.empty and metric in df and "split" in df:
            val = df[(df["split"] == "val")][metric].dropna()
            train = df[(df["split"] == "train")][metric].dropna()
            last = (val.iloc[-1], "val") if len(val) else ((train.iloc[-1], "train") if len(train) else None)
        col.metric(
            names[run.id],
            f"{last[0]:.4g}" if last else "–",
            border=True,
            help=f"Run id {run.id} · {run.kind} on {run.dataset or '?'} · {run.state} · {told.text}",
            delta=f"{metric} ({last[1]}) · {run.state}" if last else run.state,
            delta_color="off",
            delta_arrow="off",
        )
        if run.is_live:
            runs_panel.progress_bar(run, told, col)
        elif told.failure:
            col.caption(f":material/error: {plain(told.failure)}")
    frame, _, skipped = long_frame(selected, x_axis)
    for run_id, bad in skipped.items():
        st.caption(
            f":material/warning: {plain(names.get(run_id, run_id))}: {bad} unreadable line(s) in {RunLayout.METRICS} "
            "were skipped; the rest is shown."
        )
    drawn = set() if frame.empty or metric not in frame else set(frame.dropna(subset=[metric])["id"])
    for run in selected:
        if run.is_live and run.id not in drawn:  # why its curve is not there yet: what its process is doing
            st.info(f"{plain(names[run.id])}: {progress.describe(run).doing}", icon=":material/hourglass_empty:")
    if frame.empty or metric not in frame:
        if not any(r.is_live for r in selected):
            st.info(f"The selected runs have logged no {metric!r} values yet.", icon=":material/hourglass_empty:")
    else:
        frame = frame[frame["split"].isin(splits or ["train", "val"])]
        if x_axis not in frame:
            st.info(f"The metrics have no {x_axis!r} column; pick another x axis.")
        else:
            st.altair_chart(
                charts.curves_chart(
                    frame, metric=metric, x=x_axis, log_scale=log_scale, smoothing=smoothing, detail="id"
                ),
                width="stretch",
            )
    if live:
        st.caption(f"Refreshing every {REFRESH_S:g} s · last update {time.strftime('%H:%M:%S')}")
    for run in selected:
        if run.problem:
            st.warning(run.problem, icon=":material/warning:")
        elif run.state in store.FAILED_STATES:
            runs_panel.describe_failure(run)
        runs_panel.show_flags(run)


curves()

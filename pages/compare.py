"""Compare: which run is best (test figures with intervals, best marked per column), the settings that
tell the runs apart, settings against a figure, repeats over seeds, overlaid curves, CSV export."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from olr.analysis import compare, correlations
from olr.runs import annotations, progress, store
from olr.workflows import sweep
from ui import charts, loaders, runs_panel, state
from ui.entry import ensure_entrypoint
from ui.text import plain

ensure_entrypoint()
st.title("Compare")
st.caption(
    "Which run is best: each run's test figures with their 95 % intervals, the best value of each column "
    "marked, the settings that tell the runs apart, the settings against a figure, repeats of the same settings "
    "over seeds, and the curves of the runs selected in the sidebar."
)

#: how `compare.best_marks` reads in a cell, and the colour of the cell
MARK_TEXT = {compare.BEST: "★", compare.WITHIN: "≈"}
MARK_COLOUR = {compare.BEST: "background-color: #d7f0d2", compare.WITHIN: "background-color: #eef7ea"}
#: figures shown as signed correlations
SIGNED = {"rho", "val_rho", "label_prior_rho", "classifier_rho", "untrained_rho"}


def number_text(key: str, value, low=None, high=None) -> str:
    """A figure as the table shows it: 0.877 [0.824, 0.990]; ρ signed; a duration as m:ss."""
    if value is None or pd.isna(value):
        return ""
    if key == "duration_s":
        return progress.duration_text(value)
    if key == "val_loss":
        return f"{value:.4g}"
    fmt = "{:+.3f}" if key in SIGNED else "{:.3f}"
    text = fmt.format(value)
    if low is not None and high is not None and not (pd.isna(low) or pd.isna(high)):
        text += f" [{fmt.format(low)}, {fmt.format(high)}]"
    return text


def spread_text(key: str, std: float) -> str:
    """A standard deviation in the unit of its figure (never signed)."""
    return progress.duration_text(std) if key == "duration_s" else f"{std:.3g}" if key == "val_loss" else f"{std:.3f}"


def results_view(table: pd.DataFrame, marks: pd.DataFrame, rank_by: str) -> tuple[pd.DataFrame, list[list[str]]]:
    """The results table as shown: run, each figure with its interval and mark, the references beside the
    figure they belong to, the state where a run did not finish, the id last; and each cell's style."""
    figures = compare.shown_figures(table)
    references = {
        f.key: [k for k, (_, of) in compare.REFERENCES.items() if of == f.key and k in table] for f in figures
    }
    ranked = table.assign(_key=pd.to_numeric(table.get(rank_by), errors="coerce"))
    ascending = not compare.FIGURE_BY_KEY[rank_by].higher_is_better if rank_by in compare.FIGURE_BY_KEY else False
    ranked = ranked.sort_values("_key", ascending=ascending, na_position="last", kind="stable")
    columns: dict[str, list] = {"run": [plain(t) for t in ranked["run"]]}
    styles: dict[str, list] = {"run": [""] * len(ranked)}
    for f in figures:
        cells, cell_styles = [], []
        for run_id, row in ranked.iterrows():
            mark = marks.loc[run_id, f.key] if f.key in marks else ""
            text = number_text(f.key, row.get(f.key), row.get(f"{f.key}_low"), row.get(f"{f.key}_high"))
            if text and mark == compare.BEST:  # the number in bold, its interval as it is
                head, _, tail = text.partition(" ")
                text = f"**{MARK_TEXT[mark]} {head}** {tail}".strip()
            elif text and mark:
                text = f"{MARK_TEXT[mark]} {text}"
            cells.append(text)
            cell_styles.append(MARK_COLOUR.get(mark, ""))
        columns[f.title], styles[f.title] = cells, cell_styles
        for ref in references[f.key]:
            columns[compare.REFERENCES[ref][0]] = [number_text(ref, v) for v in ranked[ref]]
            styles[compare.REFERENCES[ref][0]] = [""] * len(ranked)
    if (ranked["state"] != store.RunState.FINISHED).any():
        columns["state"] = list(ranked["state"])
        styles["state"] = [""] * len(ranked)
    columns["id"] = [plain(i) for i in ranked.index]
    styles["id"] = ["color: #666"] * len(ranked)
    shown = pd.DataFrame(columns)
    return shown, [list(row) for row in zip(*styles.values())]


def results_section(runs: list, table: pd.DataFrame) -> None:
    st.subheader("Results")
    figures = compare.shown_figures(table)
    if not figures:
        st.info("None of these runs has figures yet: evaluate a finished run first.", icon=":material/info:")
        return
    default = next((f for f in figures if f.key in ("macro_ap", "rho")), figures[0])
    rank_by = st.selectbox(
        "Rank by",
        [f.key for f in figures],
        index=[f.key for f in figures].index(default.key),
        format_func=lambda k: compare.FIGURE_BY_KEY[k].title,
        key="compare.rank_by",
        help="Rows from the best run down on this figure; runs without it last.",
    )
    marks = compare.best_marks(table)
    shown, styles = results_view(table, marks, rank_by)
    styler = shown.style.apply(lambda _: pd.DataFrame(styles, index=shown.index, columns=shown.columns), axis=None)
    st.table(styler, hide_index=True)
    modes = sorted({m for m in table.get("thresholds", pd.Series(dtype=object)).dropna()})
    legend = (
        "★ best in its column (lower is better for loss and duration, higher for the rest; tied runs all marked) · "
        "≈ within interval: its 95 % interval overlaps the best run's, so the two cannot be told apart on these "
        "tiles. Intervals: spatial block bootstrap over the split's blocks. "
    )
    about = "; ".join(f"**{f.title}**: {f.about}" for f in figures)
    split = (
        f"Test figures are on the test split, F2 and accuracy at {', '.join(modes)} thresholds; "
        if modes
        else "Test figures are on the test split; "
    )
    st.caption(
        legend + split + "ρ is the Siamese self-score's for a Siamese run and the probabilities' for a classifier, "
        "beside the references it must beat. Figures marked val are on the validation split (compare settings on "
        f"those; `python -m olr correlations RUN --split val` computes val ρ). {about}. {correlations.VERDICT_RULE}"
    )
    for run_id, problem in table["problem"].dropna().items():
        st.warning(f"{plain(table.loc[run_id, 'run'])}: {plain(problem)}", icon=":material/warning:")
    for run in runs:
        reason = progress.failure_reason(run)
        if reason:
            title = f"{plain(table.loc[run.id, 'run'])} ({plain(run.id)})"
            st.error(f"Run {title} failed: {plain(reason)}", icon=":material/error:")


def teachers_section(runs: list, table: pd.DataFrame) -> None:
    """Each teacher (trained family, registered model, ensemble) with its figures and the agreement of the
    Siamese networks trained against it: the thesis's comparison, one row per teacher and Siamese run."""
    teachers = compare.teacher_table(runs, table)
    if teachers.empty:
        return
    st.subheader("Teachers and their Siamese networks")
    shown = {
        "teacher": [plain(t) for t in teachers["teacher"]],
        "model": [plain(t) for t in teachers["model"]],
    }
    for key, title in compare.TEACHER_FIGURES.items():
        if key in teachers and teachers[key].notna().any():
            shown[title] = [
                number_text(key, row.get(key), row.get(f"{key}_low"), row.get(f"{key}_high"))
                for _, row in teachers.iterrows()
            ]
    if "siamese" in teachers:
        shown["Siamese run"] = [plain(t) if isinstance(t, str) else "" for t in teachers["siamese"]]
        verdicts = teachers["verdict"] if "verdict" in teachers else [None] * len(teachers)
        shown["verdict"] = [plain(t) if isinstance(t, str) else "" for t in verdicts]
    for key in ("teacher time", "siamese time"):
        if key in teachers:
            shown[key] = [number_text("duration_s", v) for v in teachers[key]]
    shown["id"] = [plain(i) for i in teachers["teacher id"]]
    st.table(pd.DataFrame(shown), hide_index=True)
    st.caption(
        "The Siamese network imitates its teacher, so the teacher is the ceiling of the method: a better teacher "
        "should give a Siamese view closer to the classifier view. Macro AP is threshold-free; F2 at per-label "
        "thresholds tuned on validation; ρ with the references on the test split; intervals: spatial block "
        "bootstrap. Register a model with `python -m olr register`, average runs with `python -m olr ensemble`."
    )


def settings_section(runs: list) -> None:
    st.subheader("Settings that differ")
    if len(runs) < 2:
        st.caption("Compare two runs or more to see the settings that tell them apart.")
        return
    settings = compare.settings_table(runs)
    if settings.shape[1] == 1:
        st.caption(f"The {len(runs)} runs share every setting.")
        return
    st.table(settings.map(plain), hide_index=True)  # names and values from run folders, shown as written
    st.caption(
        f"Only the {settings.shape[1] - 1} settings whose values differ between the runs, in words; "
        "blank: left to the recipe; an empty cell: an option this kind of run does not have."
    )


def parallel_section(runs: list, table: pd.DataFrame) -> None:
    figures = [f for f in compare.shown_figures(table) if table[f.key].notna().sum() > 1]
    if not figures or len(runs) < 2:
        return
    st.subheader("Settings against a figure")
    current = st.session_state.get("compare.rank_by")
    keys = [f.key for f in figures]
    figure = st.selectbox(
        "Figure",
        keys,
        index=keys.index(current) if current in keys else 0,
        format_func=lambda k: compare.FIGURE_BY_KEY[k].title,
        key="compare.parallel_figure",
    )
    lines, ticks = compare.parallel_coordinates(runs, figure, table)
    if lines.empty:
        st.caption("The runs with this figure share every setting.")
        return
    chosen = compare.FIGURE_BY_KEY[figure]
    st.altair_chart(
        charts.parallel_coordinates_chart(lines, ticks, chosen.title, higher_is_better=chosen.higher_is_better),
        width="stretch",
    )
    st.caption(
        f"One line per run with a {chosen.title}, through each setting that differs (every axis spans its own "
        f"values; numbers spread evenly, or over their logarithm when they span two decades) to the {chosen.title} "
        "on the last axis; the brighter the line, the better the run."
    )


def seed_section(runs: list, table: pd.DataFrame) -> None:
    groups = compare.seed_groups(runs, table)
    if not groups:
        return
    st.subheader("Repeats over seeds")
    figures = compare.shown_figures(table)
    rows = []
    for group in groups:
        row = {"runs": "; ".join(plain(t) for t in group.titles), "seeds": ", ".join(str(s) for s in group.seeds)}
        for f in figures:
            mean, std, n = group.stats.get(f.key, (None, None, 0))
            if mean is None:
                row[f.title] = ""
                continue
            spread = "" if std is None else f" ± {spread_text(f.key, std)}"
            row[f.title] = f"{number_text(f.key, mean)}{spread} (n={n})"
        rows.append(row)
    st.table(pd.DataFrame(rows), hide_index=True)
    st.caption(
        "Runs whose settings are identical except the seed, as one group: the mean of each figure ± its sample "
        "standard deviation over the group's runs (n of them). A spread as large as the differences between "
        "settings means those differences are noise."
    )


def overlay(selected: list) -> None:
    frames = []
    titles = annotations.run_titles(selected)
    for run in selected:
        df, skipped = loaders.run_metrics(run)
        if df.empty or "split" not in df:
            continue
        if "scope" in df:
            df = df[df["scope"] == "epoch"]
        frames.append(df.assign(run=titles[run.id], id=run.id))
        if skipped:
            st.caption(f"{plain(titles[run.id])}: {skipped} unreadable metrics line(s) skipped.")
    if not frames:
        st.info("The selected runs have no epoch metrics yet.")
        return
    data = pd.concat(frames, ignore_index=True)
    metrics = sorted(
        (
            c
            for c in data.columns
            if c not in {"step", "epoch", "time", "split", "scope", "run", "id"}
            and pd.api.types.is_numeric_dtype(data[c])
        ),
        key=lambda m: (m != "loss", m),
    )
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    metric = c1.selectbox("Metric", metrics, key="compare.metric")
    log_scale = c2.toggle("Log scale", key="compare.log")
    st.altair_chart(
        charts.curves_chart(data, metric=metric, x="epoch", log_scale=log_scale, smoothing=0.0, detail="id"),
        width="stretch",
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
for damaged in (r for r in everything if r.problem):
    st.warning(damaged.problem, icon=":material/warning:")
query = st.text_input(
    "Runs to compare",
    key="compare.query",
    placeholder="every run; type words of a name, tag, note, id, kind or dataset to narrow them down",
)
runs = [r for r in everything if annotations.run_matches(r, query)]
if not runs:
    st.info(f"No run matches {plain(query)!r}; clear the filter to compare every run.", icon=":material/search_off:")
else:
    st.caption(f"{len(runs)} of {len(everything)} runs compared.")
    table = compare.results_table(runs)
    results_section(runs, table)
    teachers_section(runs, table)
    settings_section(runs)
    parallel_section(runs, table)
    seed_section(runs, table)
    st.download_button(
        "Download the results as CSV",
        table.to_csv(index=False).encode("utf-8"),
        file_name="olr-results.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
    )
    st.download_button(
        "Download every column as CSV (all settings, last metrics, every agreement number)",
        compare.compare_runs(runs).to_csv(index=False).encode("utf-8"),
        file_name="olr-runs.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
    )
st.subheader("Curves")
selected_ids = set(state.runs())
if selected_ids & {r.id for r in everything}:
    overlay([r for r in everything if r.id in selected_ids])
else:
    st.info("Select runs in the sidebar to overlay their curves.", icon=":material/info:")
sweep_section()

"""Altair chart builders for the pages: label frequencies, heatmaps, curves, scatters.

Builders take plain arrays/DataFrames and return an `alt.Chart`, so they can be checked
without a running app. CORINE classes keep their official colours; signed matrices use
one diverging scale fixed at -1..1 so two matrices side by side are comparable.

Every chart takes the width of its container (show it with `st.altair_chart(chart, width="stretch")`):
no builder fixes a width in pixels, axis labels are limited to `LABEL_LIMIT` px (the full name is in
the tooltip) and legends sit below the plot, so a chart fits a column of a 1280 px window.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

SIGNED_SCHEME = "redblue"  # reversed below: red = positive, blue = negative
#: the most px a label name takes beside a bar or a matrix row (longer names end in "…")
LABEL_LIMIT = 170
#: the most px a matrix column name takes under it (slanted)
COLUMN_LABEL_LIMIT = 120
#: height of a matrix (px) when there are many labels; fewer labels get taller rows, up to MAX_ROW_PX
MATRIX_PX = 480
MIN_ROW_PX, MAX_ROW_PX = 10, 48
MATRIX_VIEWS = {
    "counts": "Co-occurrence counts (tiles with both labels)",
    "phi": "Phi coefficient (correlation of presence)",
    "npmi": "Normalised PMI",
    "cond": "P(column | row)",
}


def label_frequency_chart(freq: pd.DataFrame, title: str = "") -> alt.Chart:
    """Horizontal bars, most frequent label on top, in CORINE colours. `freq`: label, color, count, percent."""
    freq = freq.copy()
    freq["share"] = freq["percent"].map(lambda p: f"{p:.1f}%")
    order = list(freq.sort_values("count", ascending=False)["label"])
    base = alt.Chart(freq, title=title or alt.Undefined).encode(
        y=alt.Y("label:N", sort=order, title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT, labelOverlap=False)),
        x=alt.X("count:Q", title="tiles with the label"),
        tooltip=[
            alt.Tooltip("label:N", title="label"),
            alt.Tooltip("count:Q", title="tiles"),
            alt.Tooltip("share:N", title="share of tiles"),
        ],
    )
    bars = base.mark_bar(stroke="#666", strokeWidth=0.8).encode(
        color=alt.Color("label:N", scale=alt.Scale(domain=list(freq["label"]), range=list(freq["color"])), legend=None)
    )
    text = base.mark_text(align="left", dx=3, fontSize=11, color="#333").encode(text="share:N")
    return (bars + text).properties(width="container", height=alt.Step(20))


def labels_per_tile_chart(labels_per_tile: np.ndarray) -> alt.Chart:
    """Bars: how many tiles carry exactly k labels."""
    counts = np.asarray(labels_per_tile)
    last = int(np.flatnonzero(counts).max()) if counts.any() else 0
    df = pd.DataFrame({"labels on the tile": np.arange(last + 1), "tiles": counts[: last + 1]})
    return (
        alt.Chart(df)
        .mark_bar(color="#4c78a8")
        .encode(
            x=alt.X("labels on the tile:O", title="labels on the tile", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("tiles:Q", title="tiles"),
            tooltip=["labels on the tile", "tiles"],
        )
        .properties(width="container", height=260)
    )


def matrix_frame(
    matrix: np.ndarray, names: list[str], value: str = "value", extra: dict[str, np.ndarray] | None = None
) -> pd.DataFrame:
    """Long form of an (L, L) matrix: row, column, value (+ extra matrices as columns)."""
    n = len(names)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    df = pd.DataFrame(
        {
            "row": np.asarray(names)[i.ravel()],
            "column": np.asarray(names)[j.ravel()],
            value: np.asarray(matrix, dtype=float).ravel(),
        }
    )
    for key, m in (extra or {}).items():
        df[key] = np.asarray(m).ravel()
    return df


def heatmap(
    matrix: np.ndarray,
    names: list[str],
    *,
    title: str,
    signed: bool,
    domain: tuple[float, float] | None = None,
    value_title: str = "value",
    extra: dict[str, np.ndarray] | None = None,
    size: int | None = None,
) -> alt.Chart:
    """A label x label heatmap in a fixed label order, with a colour legend below it and tooltips.

    The matrix takes the width of its container (cells as wide as the column allows after the row
    names); `size` is a row's height in px (default: `row_height(len(names))`). `signed` uses the
    diverging scale over `domain` (default -1..1); otherwise a sequential scale. NaN cells (labels
    without variance) are drawn grey.
    """
    df = matrix_frame(matrix, names, "value", extra)
    df["missing"] = df["value"].isna()
    step = size or row_height(len(names))
    if signed:
        scale = alt.Scale(scheme=SIGNED_SCHEME, domain=list(domain or (-1.0, 1.0)), reverse=True, clamp=True)
    else:
        scale = alt.Scale(scheme="blues", domain=list(domain) if domain else alt.Undefined, clamp=True)
    tooltip = [
        alt.Tooltip("row:N", title="row label"),
        alt.Tooltip("column:N", title="column label"),
        alt.Tooltip("value:Q", title=value_title, format=".3f"),
    ]
    tooltip += [alt.Tooltip(f"{k}:Q", format=".3~f") for k in (extra or {})]
    font = 10 if step < 16 else 11
    base = alt.Chart(df, title=title).encode(
        x=alt.X(
            "column:N",
            sort=list(names),
            title=None,
            axis=alt.Axis(labelLimit=COLUMN_LABEL_LIMIT, labelFontSize=font, labelAngle=-50, labelOverlap=False),
        ),
        y=alt.Y(
            "row:N",
            sort=list(names),
            title=None,
            axis=alt.Axis(labelLimit=LABEL_LIMIT, labelFontSize=font, labelOverlap=False),
        ),
        tooltip=tooltip,
    )
    cells = base.mark_rect().encode(
        color=alt.Color(
            "value:Q",
            scale=scale,
            title=value_title,
            legend=alt.Legend(orient="bottom", direction="horizontal", gradientLength=200),
        )
    )
    missing = base.transform_filter("isValid(datum.value) == false || isNaN(datum.value)").mark_rect(color="#d9d9d9")
    # The width follows the container; a row height (a step), not a total, so the axis labels never squeeze the rows.
    return (missing + cells).properties(width="container", height=alt.Step(step))


def row_height(n_labels: int) -> int:
    """Height (px) of a matrix row: about MATRIX_PX for the whole matrix, between MIN_ROW_PX and MAX_ROW_PX."""
    return int(min(MAX_ROW_PX, max(MIN_ROW_PX, MATRIX_PX // max(n_labels, 1))))


def ema(values: pd.Series, alpha: float) -> pd.Series:
    """Exponential moving average with weight `alpha` on the past (0 = no smoothing)."""
    if alpha <= 0:
        return values
    return values.ewm(alpha=1.0 - alpha, adjust=False).mean()


def curves_chart(
    df: pd.DataFrame,
    *,
    metric: str,
    x: str,
    log_scale: bool,
    smoothing: float,
    color_by: str = "run",
    detail: str | None = None,
) -> alt.Chart:
    """Lines of `metric` against `x` for each run and split (solid train, dashed validation).

    `df` columns: run, split, x, metric (and `detail`, a column shown in the tooltips, e.g. the run id).
    Smoothing is an EMA per run and split; the raw values stay visible as a faint line under the smoothed one.
    """
    extra = [detail] if detail else []
    df = df[[color_by, *extra, "split", x, metric]].dropna(subset=[metric]).sort_values([color_by, "split", x])
    if log_scale:
        df = df[df[metric] > 0]
    # Dense series (per-step logs) are smoothed; a handful of per-epoch points are drawn as they are.
    df["smoothed"] = df.groupby([color_by, "split"], group_keys=False)[metric].apply(
        lambda s: ema(s, smoothing) if len(s) > 10 else s
    )
    y_scale = alt.Scale(type="log") if log_scale else alt.Scale(zero=False)
    integer_x = x in ("step", "epoch")
    base = alt.Chart(df).encode(
        x=alt.X(f"{x}:Q", title=x, axis=alt.Axis(format="d", tickMinStep=1) if integer_x else alt.Undefined),
        color=alt.Color(
            f"{color_by}:N",
            title=color_by,
            scale=alt.Scale(scheme="tableau10"),
            legend=alt.Legend(labelLimit=360, orient="bottom", columns=2),
        ),
        strokeDash=alt.StrokeDash(
            "split:N",
            title="split",
            scale=alt.Scale(domain=["train", "val"], range=[[1, 0], [5, 3]]),
            legend=alt.Legend(orient="bottom"),
        ),
    )
    smooth = base.mark_line(strokeWidth=2).encode(
        y=alt.Y("smoothed:Q", title=metric, scale=y_scale),
        tooltip=[
            color_by,
            *extra,
            "split",
            alt.Tooltip(f"{x}:Q"),
            alt.Tooltip(f"{metric}:Q", format=".4f"),
            alt.Tooltip("smoothed:Q", format=".4f"),
        ],
    )
    # Validation is logged once per epoch: mark its points, so a first single value is visible too.
    val_points = (
        base.transform_filter(alt.datum.split == "val")
        .mark_point(filled=True, size=30)
        .encode(
            y=alt.Y("smoothed:Q", scale=y_scale),
            tooltip=[color_by, *extra, "split", alt.Tooltip(f"{x}:Q"), alt.Tooltip(f"{metric}:Q", format=".4f")],
        )
    )
    layers = [smooth, val_points]
    if smoothing > 0:
        layers.insert(0, base.mark_line(strokeWidth=1, opacity=0.25).encode(y=alt.Y(f"{metric}:Q", scale=y_scale)))
    return alt.layer(*layers).properties(width="container", height=320).interactive(bind_y=False)


def pair_scatter(df: pd.DataFrame, *, x: str, y: str, x_title: str, y_title: str, title: str) -> alt.Chart:
    """Scatter of label pairs (one point per pair i<j), with a y = x reference line. `df`: pair, x, y."""
    points = (
        alt.Chart(df, title=title)
        .mark_circle(size=55, opacity=0.75, color="#4c78a8")
        .encode(
            x=alt.X(f"{x}:Q", title=x_title, scale=alt.Scale(domain=[-1, 1])),
            y=alt.Y(f"{y}:Q", title=y_title, scale=alt.Scale(zero=False)),
            tooltip=[
                alt.Tooltip("pair:N"),
                alt.Tooltip(f"{x}:Q", format=".3f", title=x_title),
                alt.Tooltip(f"{y}:Q", format=".3f", title=y_title),
            ],
        )
    )
    fit = points.transform_regression(x, y).mark_line(color="#e45756", strokeDash=[4, 3])
    return (points + fit).properties(width="container", height=360)


def per_label_bars(df: pd.DataFrame, metric: str, colors: dict[str, str]) -> alt.Chart:
    """One bar per label for `metric` (e.g. F1), in CORINE colours, sorted."""
    order = list(df.sort_values(metric, ascending=False)["label"])
    return (
        alt.Chart(df)
        .mark_bar(stroke="#666", strokeWidth=0.8)
        .encode(
            y=alt.Y("label:N", sort=order, title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT, labelOverlap=False)),
            x=alt.X(f"{metric}:Q", title=metric, scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("label:N", scale=alt.Scale(domain=list(colors), range=list(colors.values())), legend=None),
            tooltip=["label", alt.Tooltip(f"{metric}:Q", format=".3f")],
        )
        .properties(width="container", height=alt.Step(20))
    )


def parallel_coordinates_chart(
    lines: pd.DataFrame, ticks: pd.DataFrame, figure_title: str, *, higher_is_better: bool = True
) -> alt.LayerChart:
    """Parallel coordinates from `olr.analysis.compare.parallel_coordinates`: one vertical axis per setting
    that differs (normalised to its own range, its values written beside it) and the figure last, one
    line per run coloured by the figure (the better end of the scale the brighter). No fixed width:
    the page sizes it to its column."""
    order = list(dict.fromkeys(lines.sort_values("order")["axis"]))
    x = alt.X("axis:N", sort=order, title=None, axis=alt.Axis(orient="top", labelAngle=0, labelLimit=140))
    y = alt.Y("position:Q", axis=None, scale=alt.Scale(domain=[-0.06, 1.06]))
    color = alt.Color(
        "figure:Q",
        title=figure_title,
        scale=alt.Scale(scheme="viridis", reverse=not higher_is_better),
        legend=alt.Legend(orient="bottom"),
    )
    tooltip = [
        alt.Tooltip("run:N", title="run"),
        alt.Tooltip("id:N", title="id"),
        alt.Tooltip("axis:N", title="setting"),
        alt.Tooltip("value:N", title="value"),
        alt.Tooltip("figure:Q", title=figure_title, format=".4g"),
    ]
    axes = alt.Chart(ticks).mark_rule(color="#c8c8c8").encode(x=x)
    runs = alt.Chart(lines).encode(x=x, y=y, color=color, detail="id:N", order="order:Q", tooltip=tooltip)
    words = (
        alt.Chart(ticks)
        .mark_text(align="left", dx=5, fontSize=11, color="#333", limit=130)
        .encode(x=x, y=y, text="text:N")
    )
    drawn = runs.mark_line(strokeWidth=2.5, opacity=0.85) + runs.mark_circle(size=55, opacity=1)
    return alt.layer(axes, drawn, words).properties(height=340)


def embedding_scatter(
    df: pd.DataFrame, *, colour_title: str, x_title: str, y_title: str, picked: int | None = None
) -> alt.Chart:
    """Tiles at their 2-D embedding coordinates (`olr.analysis.embedding_map.embedding_map`), coloured by
    `fraction` (0..1, viridis) and clickable: the point selection "tile" holds the clicked tile's `position`.
    `picked`: the position of a tile to ring in red."""
    pick = alt.selection_point(name="tile", fields=["position"], on="click", clear=False)
    points = (
        alt.Chart(df)
        .mark_circle(size=28, opacity=0.8)
        .encode(
            x=alt.X("x:Q", title=x_title, scale=alt.Scale(zero=False)),
            y=alt.Y("y:Q", title=y_title, scale=alt.Scale(zero=False)),
            color=alt.Color(
                "fraction:Q",
                title=colour_title,
                scale=alt.Scale(scheme="viridis", domain=[0, 1]),
                legend=alt.Legend(orient="bottom", format=".0%", labelLimit=LABEL_LIMIT),
            ),
            tooltip=[
                alt.Tooltip("tile:N", title="tile"),
                alt.Tooltip("fraction:Q", format=".1%", title=colour_title),
                alt.Tooltip("labels:N", title="labels"),
            ],
        )
        .add_params(pick)
    )
    layers = [points]
    if picked is not None:
        ring = df[df["position"] == picked]
        layers.append(
            alt.Chart(ring)
            .mark_point(size=220, color="#e45756", strokeWidth=2.5, filled=False)
            .encode(x="x:Q", y="y:Q")
        )
    return alt.layer(*layers).properties(width="container", height=420)

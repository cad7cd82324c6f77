"""Correlations & map: learned label correlations against the ground truth, and where they live on the map."""

from __future__ import annotations

import numpy as np
import streamlit as st

from olr.analysis import correlations, pair_maps
from olr.data import summary
from ui import charts, loaders, maps, results
from ui.entry import ensure_entrypoint
from ui.text import plain, plain_list

ensure_entrypoint()
st.title("Correlations & map")
st.caption(
    "Does the network's picture of which labels go together match the ground truth? Each matrix below is label × "
    "label in the same order and on the same −1…1 colour scale; agreement is the rank correlation of their entries."
)

VIEW_TITLES = {
    "siamese_self": "Siamese: self-score correlation",
    "siamese_rsa": "Siamese: representational (RSA)",
    "classifier_prob": "Classifier: probability correlation",
}
SHORT = {"siamese_self": "Siamese self-score", "siamese_rsa": "Siamese RSA", "classifier_prob": "Classifier"}
GT_TITLES = {
    "gt_phi": "Ground truth: phi (presence)",
    "gt_fraction_corr": "Ground truth: area-fraction correlation",
    "gt_npmi": "Ground truth: NPMI",
}


def recipe() -> None:
    with st.expander("How these matrices are computed", icon=":material/help:"):
        st.markdown(
            """
The original OLR paper does not publish its recipe; this is ours, on the test tiles.

- **Ground truth (phi)**: Pearson correlation of the 0/1 presence columns of two labels: +1 they always occur
  together, −1 never, 0 independently.
- **Siamese self-score**: the network gives each label *i* an embedding eᵢ(x) and was trained so that
  eᵢ(a)·eᵢ(b) imitates the classifier's pᵢ(a′)·pᵢ(b′) on occluded copies. On the whole tile, the self-score
  sᵢ(x) = ‖eᵢ(x)‖² therefore stands in for "label *i* is here". The matrix correlates sᵢ and sⱼ across tiles:
  labels whose self-scores rise together are labels the network learned to see together.
- **Siamese RSA**: for a sample of tiles, which tiles label *i* considers alike (eᵢ(a)·eᵢ(b)) compared with
  which tiles label *j* considers alike.
- **Classifier**: correlation of the classifier's probabilities — what the Siamese network was taught to imitate.
- **Agreement**: Spearman ρ (and Pearson r) between the entries above the diagonal of a learned matrix and of the
  ground-truth phi matrix. 1 = same ordering of label pairs; 0 = unrelated. Labels without variance (never or
  always present in these tiles) have no correlation and are left out.
"""
        )


def agreement_cards(agreement: dict) -> None:
    views = {v: agreement[v] for v in VIEW_TITLES if isinstance(agreement.get(v), dict)}
    cols = st.columns(max(len(views), 1) + (1 if "siamese_self_vs_classifier" in agreement else 0))
    for col, (view, a) in zip(cols, views.items()):
        col.metric(
            f"{SHORT.get(view, view)} · ρ",
            _fmt(a.get("spearman")),
            border=True,
            delta=f"Pearson r {_fmt(a.get('pearson'))} · {a.get('n_pairs', 0)} pairs",
            delta_color="off",
            delta_arrow="off",
            help=f"{VIEW_TITLES.get(view, view)}: Spearman ρ of its agreement with the ground-truth phi matrix.",
        )
        untrained = (agreement.get("untrained") or {}).get(view)
        if untrained:
            col.caption(
                f"Untrained network of the same architecture: ρ = {_fmt(untrained.get('spearman'))} (chance level)."
            )
    if "siamese_self_vs_classifier" in agreement:
        a = agreement["siamese_self_vs_classifier"]
        cols[-1].metric(
            "Siamese vs classifier · ρ",
            _fmt(a.get("spearman")),
            border=True,
            delta=f"Pearson r {_fmt(a.get('pearson'))}",
            delta_color="off",
            delta_arrow="off",
            help="How closely the Siamese network imitates its teacher, independent of the ground truth.",
        )
    excluded = sorted({lab for a in views.values() for lab in (a.get("excluded") or [])})
    if excluded:
        st.caption(
            f"Left out (no variance in these {agreement.get('info', {}).get('n_tiles', '?')} tiles): "
            f"{plain_list(excluded)}."
        )


def _fmt(x) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def matrices_section(mats: dict, names: list[str], agreement: dict) -> str:
    learned = [v for v in VIEW_TITLES if v in mats]
    c1, c2 = st.columns(2)
    gt_key = c1.selectbox("Ground truth", [k for k in GT_TITLES if k in mats], format_func=GT_TITLES.get, key="corr.gt")
    view = c2.selectbox("Learned", learned, format_func=VIEW_TITLES.get, key="corr.view")
    gt = np.asarray(mats[gt_key], dtype=float)
    lm = np.asarray(mats[view], dtype=float)
    n = len(names)
    cell = int(min(28, max(8, 320 // max(n, 1))))
    left, right = st.columns(2)
    left.altair_chart(
        charts.heatmap(gt, names, title=GT_TITLES[gt_key], signed=True, value_title="correlation", size=cell),
        width="content",
    )
    right.altair_chart(
        charts.heatmap(lm, names, title=VIEW_TITLES[view], signed=True, value_title="correlation", size=cell),
        width="content",
    )
    left, right = st.columns(2)
    with left:
        st.altair_chart(
            charts.heatmap(
                lm - gt,
                names,
                title="Difference: learned − ground truth",
                signed=True,
                domain=(-2.0, 2.0),
                value_title="difference",
                size=cell,
            ),
            width="content",
        )
        st.caption(
            "Red: the network links the two labels more than the ground truth does; blue: less. Grey: undefined."
        )
    with right:
        pairs = pair_maps.label_pairs(gt, lm, names)
        a = agreement.get(view, {}) if gt_key == "gt_phi" else {}
        title = f"Label pairs: ρ = {_fmt(a.get('spearman'))}, r = {_fmt(a.get('pearson'))}" if a else "Label pairs"
        if len(pairs):
            st.altair_chart(
                charts.pair_scatter(
                    pairs, x="gt", y="learned", x_title=GT_TITLES[gt_key], y_title=VIEW_TITLES[view], title=title
                ),
                width="stretch",
            )
            st.caption(
                "One point per label pair (i < j); the dashed line is a least-squares fit. Agreement is computed "
                "against phi; for other ground-truth views the scatter is for reading only."
            )
        else:
            st.info("No label pair has a defined correlation in both matrices.")
    return view


def pair_map(run, mats: dict, names: list[str]) -> None:
    st.subheader("Map of a label pair")
    ds = loaders.run_dataset(run)
    if not summary.has_coordinates(ds):
        st.info(f"The dataset {ds.name} has no tile coordinates, so there is no map of it.")
        return
    titles = {"siamese": "Siamese pair score ŝᵢ·ŝⱼ", "classifier": "Classifier pᵢ·pⱼ"}
    sources = {s: titles[s] for s in pair_maps.sources_of(mats)}
    c1, c2, c3, c4 = st.columns([3, 3, 2, 2])
    label_i = c1.selectbox("Label i", names, index=0, key="corr.map_i")
    label_j = c2.selectbox("Label j", names, index=min(1, len(names) - 1), key="corr.map_j")
    truth = c3.selectbox(
        "Ground truth as",
        ["product", "both"],
        key="corr.map_truth",
        format_func={"product": "area-fraction product", "both": "both present (0/1)"}.get,
    )
    source = c4.selectbox("Learned", list(sources), format_func=sources.get, key="corr.map_source")
    basemap = st.toggle("OpenStreetMap basemap (needs internet)", value=False, key="corr.map_osm")
    scores = pair_maps.pair_map(run, label_i, label_j, truth, source, matrices=mats, dataset=ds)
    table = ds.tiles.iloc[scores.rows]
    text = maps.labels_text(scores.fractions, names, float(ds.meta.get("min_fraction", 0.0)))
    preview = ds.meta.get("preview") or {}
    dm = maps.dual_map(
        table,
        scores.ground_truth,
        scores.learned,
        text,
        left_title=f"Ground truth ({'both present' if truth == 'both' else 'fraction product'})",
        right_title=sources[source],
        left_range=(0.0, 1.0),
        right_range=(0.0, 1.0),
        bounds=maps.tiles_bounds(table),
        preview_png=ds.path / preview.get("file", "preview.png") if preview else None,
        preview_bounds=preview.get("bounds_lonlat"),
        basemap=basemap,
    )
    st.caption(
        f"Test tiles, **{plain(label_i)}** with **{plain(label_j)}**. "
        "Left: the ground truth; right: the network's score for the pair, "
        "both 0…1. The panes move together; hover a tile for both values, click it for its labels. "
        + (
            "ŝ is each label's self-score scaled to 0…1 by its 99th percentile over these tiles."
            if source == "siamese"
            else ""
        )
    )
    maps.show(dm, key=f"corr.map.{run.id}", height=520)
    r, n_tiles = pair_maps.pane_correlation(scores.ground_truth, scores.learned)
    if r is not None:
        st.caption(f"Across these {n_tiles} tiles the two panes correlate with Pearson r = {r:.3f}.")


run = results.selected_run("Correlations & map")
if run is not None:
    recipe()
    agreement = correlations.read_agreement(run)
    if agreement is None:
        st.info(
            f"Run {run.id} has no correlation matrices yet; compute them with `python -m olr correlations {run.id}` "
            "(finished runs get them automatically).",
            icon=":material/info:",
        )
        st.stop()
    mats = loaders.matrices(run)
    names = [str(s) for s in mats["label_names"]]
    st.subheader(f"{run.id}")
    info = agreement.get("info") or {}
    st.caption(
        f"{run.kind} run · {info.get('n_tiles', '?')} {info.get('split', 'test')} tiles · {len(names)} labels"
        + (f" · classifier {info.get('classifier_run')}" if run.kind == "siamese" else "")
    )
    if run.kind != "siamese":
        st.caption(
            "A classifier run has only its probability correlation; "
            "pick a Siamese run in the sidebar for the OLR views."
        )
    agreement_cards(agreement)
    matrices_section(mats, names, agreement)
    pair_map(run, mats, names)

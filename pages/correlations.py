"""Correlations & map: learned label correlations against the ground truth, and where they live on the map."""

from __future__ import annotations

import numpy as np
import streamlit as st

from olr.analysis import correlations, embedding_map, evaluation, intervals, pair_maps
from olr.data import summary
from olr.runs import annotations
from ui import charts, downloads, loaders, maps, results, tiles
from ui.entry import ensure_entrypoint
from ui.guard import guarded
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
REFERENCE_TITLES = {"label_prior": "Label prior: phi of the training split"}
SHORT = {"siamese_self": "Siamese self-score", "siamese_rsa": "Siamese RSA", "classifier_prob": "Classifier"}
GT_TITLES = {
    "gt_phi": "Ground truth: phi (presence)",
    "gt_fraction_corr": "Ground truth: area-fraction correlation",
    "gt_npmi": "Ground truth: NPMI",
}


def recipe() -> None:
    with st.expander("How these matrices are computed", icon=":material/help:"):
        st.markdown(
            f"""
The original OLR paper does not publish its recipe; this is ours, on the tiles of one split (validation to tune and
compare settings on, test to report once per run).

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
- **References** every learned view must beat: the **label prior** (the phi of the *training* split's own labels,
  which needs no image at all), the **classifier's** probability correlation (the Siamese network's teacher) and
  an **untrained network** of the same architecture (image statistics alone).
- **Intervals**: 95 % spatial block bootstrap: the split's spatial blocks are drawn with replacement
  {intervals.N_RESAMPLES} times (by default) and every ρ recomputed on the same draws. **p**: one-sided permutation
  test relabelling the learned matrix's labels.
"""
        )
        st.markdown(f"**Verdict rule.** {correlations.VERDICT_RULE}")


def agreement_cards(agreement: dict) -> None:
    views = {v: agreement[v] for v in VIEW_TITLES if isinstance(agreement.get(v), dict)}
    prior = agreement.get("label_prior") if isinstance(agreement.get("label_prior"), dict) else None
    extra = ["siamese_self_vs_classifier"] if "siamese_self_vs_classifier" in agreement else []
    cols = st.columns(max(len(views), 1) + (1 if prior else 0) + len(extra))
    for col, (view, a) in zip(cols, views.items()):
        col.metric(
            f"{SHORT.get(view, view)} · ρ",
            _fmt(a.get("spearman")),
            border=True,
            delta=_band(a),
            delta_color="off",
            delta_arrow="off",
            help=f"{VIEW_TITLES.get(view, view)}: Spearman ρ of its agreement with the ground-truth phi matrix.",
        )
        untrained = (agreement.get("untrained") or {}).get(view)
        if untrained:
            col.caption(f"Untrained network of the same architecture: ρ = {_fmt(untrained.get('spearman'))}.")
    if prior:
        cols[len(views)].metric(
            "Label prior · ρ",
            _fmt(prior.get("spearman")),
            border=True,
            delta=_band(prior),
            delta_color="off",
            delta_arrow="off",
            help="The phi of the training split's own labels against this split's phi: a reference that sees no "
            "image. A learned view that does not beat it has learned nothing beyond which labels usually co-occur.",
        )
    if extra:
        a = agreement["siamese_self_vs_classifier"]
        cols[-1].metric(
            "Siamese vs classifier · ρ",
            _fmt(a.get("spearman")),
            border=True,
            delta=_band(a),
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


def _band(a: dict) -> str:
    """The interval and p of an agreement entry; Pearson r for entries computed before intervals existed."""
    interval = a.get("interval") or {}
    p = (a.get("permutation") or {}).get("p")
    if interval.get("low") is None:
        return f"Pearson r {_fmt(a.get('pearson'))} · {a.get('n_pairs', 0)} pairs"
    return f"95 % [{_fmt(interval['low'])}, {_fmt(interval['high'])}]" + (f" · p = {p:.3g}" if p is not None else "")


def verdict_section(agreement: dict) -> None:
    """The verdict against the label prior, the paired shares, and the table of figures and references."""
    info = agreement.get("info") or {}
    if info.get("few_blocks"):
        st.warning(plain(info["few_blocks"]), icon=":material/warning:")
    v = agreement.get("verdict")
    if not v:
        command = correlations.compute_command(info.get("run", "RUN"), info.get("split", "test"))
        st.info(
            "These figures were computed before references, intervals and verdicts existed; compute them again "
            f"(`{command}`) to see them.",
            icon=":material/info:",
        )
        return
    view = SHORT.get(v["view"], v["view"])
    shares = []
    if v.get("share_above_prior") is not None:
        shares.append(f"above the label prior in {v['share_above_prior']:.1%}")
    if v.get("share_above_classifier") is not None:
        shares.append(f"above the classifier view in {v['share_above_classifier']:.1%}")
    text = f"**{view} {v['text']}**" + (f" — {' and '.join(shares)} of the paired resamples." if shares else ".")
    paired = correlations.minus_prior_text(v)
    if paired:
        text += f" {paired[:1].upper()}{paired[1:]}."
    show = {"beats": st.success, "below": st.error}.get(v["outcome"], st.warning)
    show(text, icon=":material/gavel:")
    st.caption(correlations.VERDICT_RULE)
    table = correlations.agreement_table(agreement)
    # widths that fit the main column of a 1280 px window (the long "what" text is whole in its tooltip)
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "figure": st.column_config.TextColumn("figure", width=150),
            "what": st.column_config.TextColumn("what", width=220),
            "spearman": st.column_config.NumberColumn("ρ (Spearman)", format="%.3f", width=70),
            "low": st.column_config.NumberColumn("95 % low", format="%.3f", width=65),
            "high": st.column_config.NumberColumn("95 % high", format="%.3f", width=65),
            "p": st.column_config.NumberColumn("p (perm.)", format="%.4f", width=65, help="permutation test"),
            "pearson": st.column_config.NumberColumn("Pearson r", format="%.3f", width=65),
            "n_pairs": st.column_config.NumberColumn("pairs", width=55, help="label pairs"),
        },
    )
    n_blocks = info.get("n_blocks")
    st.caption(
        f"Intervals: {n_blocks if n_blocks is not None else 'no'} spatial blocks of the {_split_word(info)} split, "
        f"{_resamples(agreement)} block-bootstrap resamples shared by every figure. The label prior uses "
        f"{info.get('n_prior_tiles', '?')} training tiles."
    )


def _resamples(agreement: dict) -> str:
    entry = agreement.get("siamese_self") or agreement.get("classifier_prob") or {}
    return str((entry.get("interval") or {}).get("n_resamples", "?"))


def _split_word(info: dict) -> str:
    return correlations.split_word(info.get("split", "test"))


def _fmt(x) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def matrices_section(mats: dict, names: list[str], agreement: dict) -> str:
    titles = {**VIEW_TITLES, **REFERENCE_TITLES}
    learned = [v for v in titles if v in mats]
    c1, c2 = st.columns(2)
    gt_key = c1.selectbox("Ground truth", [k for k in GT_TITLES if k in mats], format_func=GT_TITLES.get, key="corr.gt")
    view = c2.selectbox("Learned or reference", learned, format_func=titles.get, key="corr.view")
    gt = np.asarray(mats[gt_key], dtype=float)
    lm = np.asarray(mats[view], dtype=float)
    left, right = st.columns(2)
    left.altair_chart(
        charts.heatmap(gt, names, title=GT_TITLES[gt_key], signed=True, value_title="correlation"), width="stretch"
    )
    right.altair_chart(
        charts.heatmap(lm, names, title=titles[view], signed=True, value_title="correlation"), width="stretch"
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
            ),
            width="stretch",
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
                    pairs, x="gt", y="learned", x_title=GT_TITLES[gt_key], y_title=titles[view], title=title
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


TRUTH_TITLES = {"product": "area-fraction product", "both": "both present (0/1)"}
SOURCE_TITLES = {"siamese": "Siamese pair score ŝᵢ·ŝⱼ", "classifier": "Classifier pᵢ·pⱼ"}


@st.fragment
@guarded("The pair map")
def pair_map(run, mats: dict, names: list[str], split: str) -> None:
    """The pair picker, the map and the clicked tile: a fragment, so a new pair or a click reruns only this part."""
    st.subheader("Map of a label pair")
    ds = loaders.run_dataset(run)
    if not summary.has_coordinates(ds):
        st.info(f"The dataset {ds.name} has no tile coordinates, so there is no map of it.")
        return
    sources = {s: SOURCE_TITLES[s] for s in pair_maps.sources_of(mats)}
    first = pair_maps.informative_pair(mats) or (0, min(1, len(names) - 1))
    c1, c2, c3, c4 = st.columns([3, 3, 2, 2])
    # keys per run: another run's labels start again from its own most informative pair
    label_i = c1.selectbox("Label i", names, index=first[0], key=f"corr.map_i.{run.id}")
    label_j = c2.selectbox("Label j", names, index=first[1], key=f"corr.map_j.{run.id}")
    truth = c3.selectbox("Ground truth as", list(TRUTH_TITLES), key="corr.map_truth", format_func=TRUTH_TITLES.get)
    source = c4.selectbox("Learned", list(sources), format_func=sources.get, key="corr.map_source")
    basemap = st.toggle("OpenStreetMap basemap (needs internet)", value=False, key="corr.map_osm")
    scores = pair_maps.pair_map(run, label_i, label_j, truth, source, matrices=mats, dataset=ds)
    where = maps.dataset_tiles(ds)
    left_range = pair_maps.colour_range(scores.ground_truth)
    right_range = pair_maps.colour_range(scores.learned)
    preview = ds.meta.get("preview") or {}
    dm = maps.dual_map(
        maps.tile_layer(where, scores.rows, maps.value_rgba(scores.ground_truth, left_range)),
        maps.tile_layer(where, scores.rows, maps.value_rgba(scores.learned, right_range)),
        left_title=f"Ground truth ({'both present' if truth == 'both' else 'fraction product'})",
        right_title=sources[source],
        left_range=left_range,
        right_range=right_range,
        bounds=where.bounds(scores.rows),
        preview_png=ds.path / preview.get("file", "preview.png") if preview else None,
        preview_bounds=preview.get("bounds_lonlat"),
        basemap=basemap,
    )
    st.caption(
        f"{split.capitalize()} tiles, **{plain(label_i)}** with **{plain(label_j)}**. "
        "Left: the ground truth; right: the network's score for the pair, each pane coloured from 0 to its "
        "largest score (the question is where the pair lies, not how high its scores run). The panes move "
        "together; click a tile in either pane to see it and both values below the map (the tiles are one "
        "image, so hovering shows nothing). "
        + (
            "ŝ is each label's self-score scaled to 0…1 by its 99th percentile over these tiles. "
            if source == "siamese"
            else ""
        )
        + f"The map opens on the most informative pair: {pair_maps.INFORMATIVE_PAIR_RULE}."
    )
    clicked = maps.tile_at(where, maps.show(dm, key=f"corr.map.{run.id}", height=520, clicks=True), scores.rows)
    r, n_tiles = pair_maps.pane_correlation(scores.ground_truth, scores.learned)
    if r is not None:
        st.caption(f"Across these {n_tiles} tiles the two panes correlate with Pearson r = {r:.3f}.")
    opened = f"corr.map_tile.{run.id}"
    if clicked is not None:  # a dataset row, as the embedding explorer's pick
        st.session_state[opened] = clicked
    at = np.flatnonzero(scores.rows == st.session_state.get(opened, -1))  # empty on another split's tiles
    if not len(at):
        st.caption("Click a tile on the map to see it here with its labels.")
        return
    k = int(at[0])
    row = int(scores.rows[k])
    colors = [lab.color for lab in evaluation.run_labels(run)]
    chips = summary.tile_labels(scores.fractions[[k]], scores.presence[[k]], names, colors)
    name = summary.dataset_tile_names(ds, [row])[0]
    caption = (
        f"{name} · {ds.tiles['split'].iloc[row]} · ground truth {scores.ground_truth[k]:.3f} · "
        f"{'ŝᵢ·ŝⱼ' if source == 'siamese' else 'pᵢ·pⱼ'} {scores.learned[k]:.3f}"
    )
    st.caption("The tile last clicked on the map, with its labels and their shares of its area:")
    tiles.gallery(tiles.thumbnails(ds, [row]), [caption], chips, columns=4)


#: the split choice: validation figures are the ones to tune on, test figures are reported once per run
SPLIT_TITLES = {
    "val": "Validation (tuning figures)",
    "test": "Test (reported once)",
    "train": "Training (the tiles it learned from)",
}


def split_choice(run) -> tuple[str, list[str]]:
    """The split the page shows (test by default) and the splits the run has correlations on."""
    computed = correlations.computed_splits(run.path)
    choices = ["val", "test"] + (["train"] if "train" in computed else [])
    split = st.radio(
        "Split",
        choices,
        index=choices.index("test"),
        format_func=SPLIT_TITLES.get,
        horizontal=True,
        key="corr.split",
        help="Each split's correlations are kept apart: computing validation figures never replaces the test record.",
    )
    return split, computed


def missing_split(run, split: str, computed: list[str]) -> None:
    """Says that the run has no correlations on `split` and how to compute them."""
    others = [correlations.split_word(s) for s in computed if s != split]
    st.info(
        f"Run {run.id} has no correlations on the {correlations.split_word(split)} split yet; compute them with "
        f"`{correlations.compute_command(run.id, split)}`"
        + (" (finished runs get the test split automatically)." if split == "test" else ".")
        + (f" Computed so far: {plain_list(others)}." if others else ""),
        icon=":material/info:",
    )


def agreement_view(run) -> None:
    """The split choice, the agreement figures, the matrices and the pair map of the run."""
    recipe()
    split, computed = split_choice(run)
    if split not in computed:
        missing_split(run, split, computed)
        return
    agreement = correlations.read_agreement(run, split)
    if agreement is None:
        missing_split(run, split, computed)
        return
    mats = loaders.matrices(run, split)
    names = [str(s) for s in mats["label_names"]]
    st.subheader(annotations.run_title(run))
    info = agreement.get("info") or {}
    st.caption(
        f"{run.kind} run `{run.id}` · {info.get('n_tiles', '?')} {correlations.split_word(split)} tiles"
        + (f" in {info['n_blocks']} spatial blocks" if info.get("n_blocks") is not None else "")
        + f" · {len(names)} labels"
        + (f" · classifier {plain(info.get('classifier_run'))}" if run.kind == "siamese" else "")
    )
    if split == "test":
        st.caption(
            "Test figures: report them once per run; compare and tune settings on validation"
            + ("." if "val" in computed else f" (not computed yet: `{correlations.compute_command(run.id, 'val')}`).")
        )
    elif split == "val" and "test" not in computed:
        st.caption(
            "Validation figures, the ones to tune on. The test record is not computed yet: "
            f"`{correlations.compute_command(run.id, 'test')}`."
        )
    if run.kind != "siamese":
        st.caption(
            "A classifier run has only its probability correlation; "
            "pick a Siamese run in the sidebar for the OLR views."
        )
    agreement_cards(agreement)
    verdict_section(agreement)
    downloads.run_button(run, split)
    matrices_section(mats, names, agreement)
    pair_map(run, mats, names, correlations.split_word(split))


#: the tabs of a Siamese run; the explorer runs only while its tab is open
AGREEMENT_TAB, EXPLORER_TAB = "Agreement & map", "Embedding explorer"
#: the embedding choice meaning every label's embedding, concatenated
ALL_LABELS = -1


def _pick(chart_key: str, pick_key: str, map_key: str, rows) -> None:
    """A click on the scatter picks that tile (and opens it below the pair map, when that split shows it)."""
    chosen = (st.session_state[chart_key]["selection"].get("tile") or [{}])[0].get("position")
    if chosen is not None:
        st.session_state[pick_key] = int(chosen)
        _picked(pick_key, map_key, rows)


def _picked(pick_key: str, map_key: str, rows) -> None:
    st.session_state[map_key] = int(rows[st.session_state[pick_key]])


@st.fragment
@guarded("The embedding explorer")
def embedding_explorer(run) -> None:
    """The 2-D map of a Siamese run's tile embeddings, a picked tile and its nearest tiles (a fragment)."""
    st.caption(
        "Each point is a tile, placed by the first two principal axes (PCA) of the run's embeddings eᵢ of one "
        "label, or of all labels' embeddings side by side; tiles the network sees alike lie close together. Pick "
        "a tile (click it, or choose it below) to list the tiles whose embedding points the same way (cosine "
        "similarity): retrieval by what one label's embedding learned."
    )
    split = st.radio(
        "Tiles of",
        list(SPLIT_TITLES),
        format_func=lambda s: correlations.split_word(s).capitalize(),
        horizontal=True,
        key="corr.emb_split",
        help="Validation by default: the split to look around in while tuning.",
    )
    with st.spinner("Embedding the tiles…"):
        data = loaders.split_embeddings(run, split)
    names = data.label_names
    c1, c2 = st.columns(2)
    chosen = c1.selectbox(
        "Embedding",
        [ALL_LABELS, *range(len(names))],
        format_func=lambda i: "All labels (concatenated)" if i == ALL_LABELS else names[i],
        key=f"corr.emb_label.{run.id}",
    )
    label = None if chosen == ALL_LABELS else int(chosen)
    colour = label
    if label is None:
        colour = c2.selectbox(
            "Colour by",
            range(len(names)),
            index=None,
            format_func=names.__getitem__,
            placeholder="the label present in most of these tiles",
            key=f"corr.emb_colour.{run.id}",
        )
    frame = loaders.embedding_map_frame(run, split, label, colour)
    shares = frame.attrs["shares"]
    pick_key, chart_key = f"corr.emb_tile.{run.id}.{split}", f"corr.emb_chart.{run.id}.{split}"
    map_key = f"corr.map_tile.{run.id}"  # the pair map's opened tile
    if st.session_state.get(pick_key) not in range(len(frame)):
        st.session_state[pick_key] = 0
    picked = int(st.session_state[pick_key])
    colour_name = frame.attrs["colour"]
    st.altair_chart(
        charts.embedding_scatter(
            frame,
            colour_title=f"{colour_name} (area share)",
            x_title=f"axis 1 ({shares[0]:.0%} of the variance)",
            y_title=f"axis 2 ({shares[1]:.0%} of the variance)",
            picked=picked,
        ),
        width="stretch",
        key=chart_key,
        on_select=lambda: _pick(chart_key, pick_key, map_key, data.rows),
        selection_mode="tile",
    )
    source = (
        f"read from the run's export `embeddings/{data.source.name}`"
        if data.source is not None
        else "computed now with the run's best checkpoint and kept in memory, not saved (`python -m olr embed "
        f"{run.id} --split {split}` saves them, so later starts read them)"
    )
    ds = loaders.run_dataset(run)
    linked = (
        " The pair map (first tab) opens the picked tile below it when it shows that split's tiles."
        if summary.has_coordinates(ds)
        else ""
    )
    st.caption(
        f"{len(frame)} {correlations.split_word(split)} tiles, coloured by the area share of **{plain(colour_name)}**; "
        f"the red ring is the picked tile. Embeddings {source}.{linked}"
    )
    tile_names = frame["tile"].tolist()
    st.selectbox(
        "Tile",
        range(len(frame)),
        format_func=tile_names.__getitem__,
        key=pick_key,
        on_change=_picked,
        args=(pick_key, map_key, data.rows),
        help="Or click a point of the scatter above.",
    )
    table = loaders.nearest_tiles(run, split, picked, label)
    by = "all labels' embeddings" if label is None else f"the embedding of {plain(names[label])}"
    st.markdown(f"**Nearest tiles to {tile_names[picked]}** by {by}")
    st.dataframe(
        table.drop(columns=["position", "row"]),
        hide_index=True,
        width="stretch",
        column_config={
            "rank": st.column_config.NumberColumn("rank", width=45),
            "tile": st.column_config.TextColumn("tile", width=170),
            "similarity": st.column_config.NumberColumn("cosine similarity", format="%.3f", width=90),
            "fraction": st.column_config.NumberColumn(
                f"{names[label] if label is not None else ''} share", format="percent", width=80
            ),
            "present": st.column_config.CheckboxColumn("present", width=60),
            "labels": st.column_config.TextColumn("labels of that tile"),
        },
    )
    shown = [picked, *table["position"].tolist()]
    captions = [f"picked: {tile_names[picked]}"] + [
        f"{r}. {t} · {s:.3f}" for r, t, s in zip(table["rank"], table["tile"], table["similarity"], strict=True)
    ]
    st.caption("The picked tile and its nearest tiles (rank, tile, cosine similarity), with their labels:")
    rows = data.rows[shown]
    tiles.gallery(tiles.thumbnails(ds, rows), captions, embedding_map.tile_chips(data, ds, shown), columns=6)


run = results.selected_run("Correlations & map")
if run is not None and run.kind == "siamese":
    agreement_tab, explorer_tab = st.tabs([AGREEMENT_TAB, EXPLORER_TAB], key="corr.tab", on_change="rerun")
    if agreement_tab.open:
        with agreement_tab:
            agreement_view(run)
    if explorer_tab.open:
        with explorer_tab:
            embedding_explorer(run)
elif run is not None:
    agreement_view(run)

"""Datasets: prepare from rasters, import the thesis batch format, list, and explore one dataset."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import streamlit as st

from olr import workspace
from olr.analysis import tile_images
from olr.data import composites, label_schemes, legends, prepare_options, summary, uploads
from olr.data.dataset import SPLITS, Dataset, list_datasets, load_dataset
from olr.data.demo_scene import DEMO_DATASET
from olr.data.prepare_options import PrepareOptions
from olr.errors import OLRError
from olr.runs import annotations
from ui import annotate, charts, downloads, loaders, maps, state, tiles
from ui.entry import ensure_entrypoint
from ui.guard import guarded
from ui.progress import ProgressBar
from ui.text import plain

ensure_entrypoint()
st.title("Datasets")
st.caption(
    "A dataset is a folder of image tiles with per-tile CORINE label area fractions, a spatial "
    "train/val/test split and a preview of the scene. Prepare one from your rasters, import the "
    "thesis's batch format, then explore its labels, tiles and map."
)


# ------------------------------------------------------------------------------ list


def dataset_table() -> None:
    rows = loaders.dataset_summaries()
    if not rows:
        st.info(
            "No datasets in this workspace yet. Prepare one from an image raster and a CORINE map below, "
            "or import a folder in the thesis batch format. The synthetic demo dataset is created "
            "automatically when the app starts with an empty workspace.",
            icon=":material/info:",
        )
        return
    df = (
        pd.DataFrame(rows).drop(columns=["problem"])
        if all(r.get("problem") is None for r in rows)
        else pd.DataFrame(rows)
    )
    df = df.astype(object).where(df.notna(), "–")
    st.dataframe(
        df,
        hide_index=True,
        column_config={
            "name": st.column_config.TextColumn("name", width="medium"),
            "tiles": st.column_config.NumberColumn("tiles", format="%d"),
            "splits": st.column_config.TextColumn("splits (train / val / test)"),
            "created": st.column_config.TextColumn("created (UTC)"),
        },
    )


# ------------------------------------------------------------------------------ prepare


SCHEME_CHOICES = [*list(label_schemes.SCHEME_NAMES), "custom"]
#: The preparation options drawn as number inputs, in their order (the rest have their own inputs below).
NUMBER_OPTIONS = prepare_options.number_fields()
#: The image options typed as text (bands, band-file grid, nodata, reflectance scaling, preview bands).
IMAGE_TEXT_OPTIONS = ("bands", "grid", "image_nodata", "scale", "offset", "rgb")
#: The label options typed as text: a legend for a map that is not CORINE (a path in the data folder).
LABEL_TEXT_OPTIONS = ("legend", "label_field", "label_nodata")


def _server_images(text: str):
    """The typed image: one raster, or several band files separated by ";" (stacked onto one grid)."""
    parts = [t.strip() for t in (text or "").split(";") if t.strip()]
    paths = [uploads.server_path(t, "image raster") for t in parts] or [uploads.server_path(text, "image raster")]
    return paths[0] if len(paths) == 1 else paths


def _label_options(texts: dict) -> dict:
    """The typed label options; a legend is a file inside the workspace data folder, like the rasters."""
    values = {option: prepare_options.text_value(option, text) for option, text in texts.items()}
    if values.get("legend") is not None:  # typed on the server; an uploaded one comes with the uploads
        values["legend"] = uploads.server_path(values["legend"], "legend file")
    return values


def _scheme_title(name: str) -> str:
    return label_schemes.SCHEME_TITLES.get(name, "Custom mapping (JSON)")


def _number_value(f, value):
    """The input's value as the field takes it (0 for a field whose default is None: None)."""
    if prepare_options.value_type(f) is float:
        return float(value)
    return None if f.default is None and int(value) == 0 else int(value)


def _number_input(f, column):
    """A number input for a PrepareOptions field, labelled and ranged by its spec; stride 0 stands for None."""
    spec = f.metadata["spec"]
    if prepare_options.value_type(f) is float:
        return column.number_input(
            spec.label,
            spec.min,
            spec.max,
            f.default,
            step=spec.step,
            format="%.2f",
            key=f"prep.{f.name}",
            help=spec.help,
        )
    low = 0 if f.default is None else spec.min  # 0: the field's default rule (stride: the tile size)
    return column.number_input(
        spec.label, low, spec.page_max, f.default or 0, step=spec.step or 1, key=f"prep.{f.name}", help=spec.help
    )


def _upload_inputs():
    """The uploaders (outside the form, so the files used show as soon as they are uploaded): the image or its
    band files, the labels, and the legend of a map that is not CORINE."""
    c1, c2, c3 = st.columns(3)
    image_files = c1.file_uploader(
        "Image raster, or its band files (GeoTIFF)",
        type=list(uploads.RASTER_TYPES),
        accept_multiple_files=True,
        key="prep.image_upload",
        max_upload_size=uploads.max_upload_mb(),
        help="One GeoTIFF with all bands, or one file per band (e.g. Sentinel-2's at 10, 20 and 60 m), stacked "
        "onto one grid in the order uploaded.",
    )
    if len(image_files or []) > 1:
        c1.caption(f"Band files stacked in this order: {', '.join(f.name for f in image_files)}")
    label_files = c2.file_uploader(
        "Labels (GeoTIFF, GeoPackage, or a shapefile with its sidecars)",
        type=list(uploads.LABEL_TYPES),
        accept_multiple_files=True,
        key="prep.labels_upload",
        max_upload_size=uploads.max_upload_mb(),
        help="A CORINE map, or any land-cover map with its legend beside.",
    )
    used = uploads.LabelUpload.of(label_files)
    if used.used is not None:
        replaced = f" (replaces {', '.join(used.replaced)}, which will not be used)" if used.replaced else ""
        c2.caption(f"Labels used: **{used.used.name}**{replaced}")
    legend_file = c3.file_uploader(
        "Legend (CSV or JSON; none = CORINE codes)",
        type=list(uploads.LEGEND_TYPES),
        key="prep.legend_upload",
        max_upload_size=uploads.MAX_LEGEND_MB,
        help=prepare_options.spec("legend").help,
    )
    return image_files, label_files, legend_file


def _server_inputs():
    """The two path inputs and the files found in the data folder."""
    rasters_found = uploads.candidate_files((".tif", ".tiff", ".gpkg", ".shp"))
    c1, c2 = st.columns(2)
    image_path = c1.text_input(
        "Image raster",
        key="prep.image",
        placeholder="uploads/scene.tif",
        help="GeoTIFF, any CRS, 1..N bands; or several band files separated by ; (e.g. Sentinel-2's at 10, 20 and "
        "60 m), stacked onto one grid. Relative to the workspace data folder.",
    )
    label_path = c2.text_input(
        "CORINE labels",
        key="prep.labels",
        placeholder="uploads/clc.tif",
        help="CORINE raster (grid codes 1..44 or CLC codes 111..523) or vector (GeoPackage/Shapefile with Code_18).",
    )
    if rasters_found:
        st.caption(
            "Files found in the data folder: "
            + ", ".join(f"`{f}`" for f in rasters_found[:12])
            + (" …" if len(rasters_found) > 12 else "")
        )
    return image_path, label_path


def _scheme_value(scheme: str, mapping: str):
    if scheme != "custom":
        return scheme
    try:
        return json.loads(mapping or "")
    except json.JSONDecodeError as e:
        raise OLRError(
            f'The custom mapping is not valid JSON ({e.msg}); write it like {{"Urban": [111, 112]}}.'
        ) from None


def _show_estimate(source: str, image_path: str, name: str, opts: PrepareOptions) -> None:
    """The size of the dataset these inputs would make, and whether it fits, before anything is written."""
    from olr.data import prepare_estimate

    if source != "On the server":
        st.info(
            "The size of an uploaded scene is checked when you press Prepare: a dataset larger than the free "
            "disk or the size limit is refused before anything is written.",
            icon=":material/straighten:",
        )
        return
    estimate = prepare_estimate.estimate_dataset(_server_images(image_path), opts)
    st.info(f"This preparation would write {estimate.describe()} (at most).", icon=":material/straighten:")
    prepare_estimate.require_room(estimate, workspace.data_dir() / ((name or "").strip() or "new"))


@guarded("Preparing the dataset")
def prepare_form() -> None:
    source = st.radio(
        "Where are the rasters?",
        ["On the server", "Upload"],
        horizontal=True,
        key="prep.source",
        captions=[f"Paths inside {workspace.data_dir()}", f"At most {uploads.max_upload_mb()} MB in all"],
    )
    image_path = label_path = image_files = label_files = legend_file = None
    if source == "Upload":
        image_files, label_files, legend_file = _upload_inputs()
    with st.form("prepare", border=True):
        if source == "On the server":
            image_path, label_path = _server_inputs()
        c1, c2, c3 = st.columns(3)
        name = c1.text_input(
            "Dataset name", key="prep.name", placeholder="my-scene", help="Letters, digits, '.', '_' or '-'."
        )
        scheme = c2.selectbox(
            prepare_options.spec("scheme").label,
            SCHEME_CHOICES,
            format_func=_scheme_title,
            key="prep.scheme",
            help=prepare_options.spec("scheme").help,
        )
        encoding_spec = prepare_options.spec("label_encoding")
        encoding = c3.selectbox(
            encoding_spec.label,
            list(encoding_spec.choices),
            key="prep.encoding",
            format_func=encoding_spec.titles.get,
            help=encoding_spec.help,
        )
        mapping = st.text_area(
            "Custom mapping (only for the custom scheme)",
            key="prep.mapping",
            placeholder='{"Urban": [111, 112, 121], "Forest": [311, 312, 313]}',
            height=80,
        )
        numbers = {}
        for n, f in enumerate(NUMBER_OPTIONS):
            if n % 4 == 0:
                columns = st.columns(4)
            numbers[f.name] = _number_input(f, columns[n % 4])
        image_texts = {}
        for n, option in enumerate(IMAGE_TEXT_OPTIONS):
            if n % 3 == 0:
                columns = st.columns(3)
            option_spec = prepare_options.spec(option)
            image_texts[option] = columns[n % 3].text_input(
                option_spec.label, key=f"prep.{option}", help=option_spec.help
            )
        label_texts = {}
        # uploaded, the legend has its uploader beside the labels'
        label_options = [o for o in LABEL_TEXT_OPTIONS if source == "On the server" or o != "legend"]
        for column, option in zip(st.columns(len(label_options)), label_options, strict=True):
            option_spec = prepare_options.spec(option)
            label_texts[option] = column.text_input(option_spec.label, key=f"prep.{option}", help=option_spec.help)
        c1, c2, c3, c4 = st.columns(4)
        fractions_spec = prepare_options.spec("split_fractions")
        fractions = [
            column.number_input(
                f"{part} share",
                0.0,
                1.0,
                default,
                step=fractions_spec.step,
                format="%.2f",
                key=f"prep.f_{key}",
                help=fractions_spec.help,
            )
            for column, part, key, default in zip(
                (c1, c2, c3),
                ("Train", "Validation", "Test"),
                ("train", "val", "test"),
                PrepareOptions.split_fractions,
                strict=True,
            )
        ]
        overwrite = c4.checkbox(
            prepare_options.spec("overwrite").label, key="prep.overwrite", help=prepare_options.spec("overwrite").help
        )
        b1, b2 = st.columns(2)
        estimate = b1.form_submit_button("Estimate the size", icon=":material/straighten:")
        submitted = b2.form_submit_button("Prepare dataset", type="primary", icon=":material/grid_on:")

    if not (submitted or estimate):
        return
    opts = PrepareOptions(
        **{f.name: _number_value(f, numbers[f.name]) for f in NUMBER_OPTIONS},
        **{option: prepare_options.text_value(option, text) for option, text in image_texts.items()},
        **_label_options(label_texts),
        scheme=_scheme_value(scheme, mapping),
        split_fractions=tuple(float(x) for x in fractions),
        label_encoding=encoding,
        overwrite=bool(overwrite),
    )
    if estimate:
        _show_estimate(source, image_path, name, opts)
        return
    workspace.require_writable("prepare a dataset")
    out = workspace.dataset_path((name or "").strip())
    if source == "On the server":
        path = _prepare(_server_images(image_path), uploads.server_path(label_path, "label file"), out, opts)
    else:
        with uploads.saved_uploads(image_files, label_files, out.name, legend_file) as saved:
            path = _prepare(saved.image, saved.labels, out, dataclasses.replace(opts, legend=saved.legend))
    ds = load_dataset(path)
    state.choose_dataset(ds.name)
    state.flash(
        "success",
        f"Prepared dataset **{ds.name}**: {ds.n_tiles} tiles of {ds.tile_shape[0]}×{ds.tile_shape[1]} px, "
        f"{len(ds.label_names)} labels. It is selected in the sidebar.",
    )
    st.rerun()


def _prepare(image, labels, out, opts: PrepareOptions):
    from olr.data.prepare import prepare_dataset

    bar = ProgressBar("Preparing", unit="tiles")
    path = prepare_dataset(image, labels, out, opts, progress=bar.update)
    bar.done()
    return path


@guarded("Importing the batches")
def import_form() -> None:
    st.caption(
        "A folder holding `0.npy, 1.npy, …` (n, h, w, b images) and `labels0.npy, labels1.npy, …` (n, L binary), "
        "as the thesis stored its batches. The tiles carry no coordinates, so there is no map for them."
    )
    with st.form("import", border=True):
        c1, c2 = st.columns(2)
        folder = c1.text_input(
            "Batch folder",
            key="imp.folder",
            placeholder="uploads/thesis-batches",
            help=f"A folder inside {workspace.data_dir()}.",
        )
        name = c2.text_input("Dataset name", key="imp.name", placeholder="thesis-import")
        names_text = st.text_area("Label names (optional, one per line, in column order)", key="imp.names", height=100)
        c1, c2, c3, c4, c5 = st.columns(5)
        split_block = c1.number_input(
            "Split block (tiles, 0 = one per batch)",
            0,
            100000,
            0,
            key="imp.split_block",
            help="Consecutive tiles of a batch are neighbours; blocks keep them in one split.",
        )
        f_train = c2.number_input("Train share", 0.0, 1.0, 0.7, step=0.05, format="%.2f", key="imp.f_train")
        f_val = c3.number_input("Validation share", 0.0, 1.0, 0.15, step=0.05, format="%.2f", key="imp.f_val")
        f_test = c4.number_input("Test share", 0.0, 1.0, 0.15, step=0.05, format="%.2f", key="imp.f_test")
        seed = c5.number_input("Split seed", 0, 2**31 - 1, 0, key="imp.seed")
        overwrite = st.checkbox("Replace a dataset of that name", key="imp.overwrite")
        submitted = st.form_submit_button("Import", type="primary", icon=":material/upload_file:")
    if not submitted:
        return
    workspace.require_writable("import a dataset")
    source = uploads.server_path(folder, "batch folder")
    out = workspace.dataset_path((name or "").strip())
    label_names = [n.strip() for n in (names_text or "").replace(",", "\n").splitlines() if n.strip()] or None
    from olr.data.thesis_import import import_batches

    bar = ProgressBar("Importing", unit="batches")
    path = import_batches(
        source,
        out,
        label_names=label_names,
        split_block=int(split_block) or None,
        split_fractions=(float(f_train), float(f_val), float(f_test)),
        seed=int(seed),
        overwrite=bool(overwrite),
        progress=bar.update,
    )
    bar.done()
    ds = load_dataset(path)
    state.choose_dataset(ds.name)
    state.flash("success", f"Imported **{ds.name}**: {ds.n_tiles} tiles, {len(ds.label_names)} labels.")
    st.rerun()


# ------------------------------------------------------------------------------ explorer


def header_metrics(ds: Dataset) -> None:
    h, w, b = ds.tile_shape
    counts = summary.split_counts(ds)
    percent = summary.split_percent(ds)
    row = st.container(horizontal=True)  # cards as wide as their figures, wrapping in a narrow window
    row.metric("Tiles", f"{ds.n_tiles:,}", border=True, width="content")
    row.metric("Labels", len(ds.label_names), border=True, width="content")
    row.metric("Tile size", f"{h}×{w} px", border=True, width="content")
    row.metric("Bands", b, help=", ".join(ds.band_names) or None, border=True, width="content")
    shares = " / ".join(f"{percent[s]:.0f}" for s in SPLITS)
    row.metric(
        "Train / val / test",
        f"{shares} %",
        border=True,
        width="content",
        help=" / ".join(f"{counts[s]:,} {s}" for s in SPLITS) + " tiles. " + plain(summary.split_note(ds)),
    )
    for sentence in ds.meta.get("warnings", []):  # thin data, said at preparation (olr.data.thin_data)
        st.warning(plain(sentence), icon=":material/warning:")


def labels_view(ds: Dataset) -> None:
    c1, c2 = st.columns(2)
    prepared = (ds.meta.get("scheme") or {}).get("name") or "as prepared"
    options = ["(as prepared)"] + (
        [s for s in legends.scheme_names(ds.legend) if s != prepared] if ds.code_fractions is not None else []
    )
    scheme = c1.selectbox(
        "Label scheme",
        options,
        key="ds.scheme",
        format_func=lambda s: (
            f"As prepared: {label_schemes.SCHEME_TITLES.get(prepared, prepared)}"
            if s == "(as prepared)"
            else label_schemes.SCHEME_TITLES[s]
        ),
        help="Regroups the stored per-code fractions into another scheme, without preparing again."
        if ds.code_fractions is not None
        else "This dataset has no per-code fractions (imported), so only its own labels exist.",
    )
    split = c2.selectbox(
        "Tiles", ["all", *SPLITS], key="ds.split", format_func=lambda s: "all tiles" if s == "all" else f"{s} split"
    )
    c1.caption(f"Label values read as {legends.encoding_text(ds.meta)}.")
    labels = None if scheme == "(as prepared)" else list(ds.scheme(scheme).labels)
    stats = loaders.dataset_stats(ds.name, None if split == "all" else split, labels)
    if stats.n_tiles == 0:
        st.info("No tiles in this split.")
        return

    left, right = st.columns([3, 2])
    with left:
        st.subheader("Label frequency")
        st.caption(
            f"Tiles in which each label covers at least {ds.meta.get('min_fraction', 0):.0%} of the labelled area "
            f"({stats.n_tiles:,} tiles). Colours are the official CORINE colours."
        )
        freq = stats.frequency_table()
        hide_absent = st.toggle("Hide labels that never occur", value=True, key="ds.hide_absent")
        if hide_absent:
            freq = freq[freq["count"] > 0]
        st.altair_chart(charts.label_frequency_chart(freq), width="stretch")
    with right:
        st.subheader("Labels per tile")
        st.caption(
            "How many labels a tile carries. Multi-label tiles are what makes co-occurrence and correlation meaningful."
        )
        st.altair_chart(charts.labels_per_tile_chart(stats.labels_per_tile), width="stretch")
        st.metric("Mean labels per tile", f"{summary.mean_labels_per_tile(stats):.2f}", border=True)

    st.subheader("Co-occurrence")
    view = st.segmented_control(
        "View",
        list(charts.MATRIX_VIEWS),
        format_func=lambda v: charts.MATRIX_VIEWS[v],
        default="phi",
        key="ds.matrix_view",
        required=True,
    )
    st.caption(
        {
            "counts": "Number of tiles in which both labels are present; the diagonal is each label's own count.",
            "phi": "Pearson correlation of the two labels' presence columns: "
            "+1 always together, −1 never together, 0 independent. "
            "Grey: a label without variance (never or always present).",
            "npmi": "Normalised pointwise mutual information: "
            "how much more often the labels co-occur than if independent "
            "(−1 never together, 0 independent, +1 always together).",
            "cond": "Share of the tiles with the row label that also have the column label, "
            "P(column | row). Not symmetric.",
        }[view]
    )
    order = summary.present_labels(stats)
    names = [stats.names[i] for i in order]
    matrix = getattr(stats, view)[np.ix_(order, order)]
    extra = {"tiles with both": stats.cooc[np.ix_(order, order)]}
    matrix_column, _ = st.columns([3, 1])  # a matrix as wide as the whole page would have flat, wide cells
    matrix_column.altair_chart(
        charts.heatmap(
            matrix,
            names,
            title=charts.MATRIX_VIEWS[view],
            signed=view in ("phi", "npmi"),
            domain=(0, 1) if view == "cond" else None,
            value_title=view,
            extra=extra,
        ),
        width="stretch",
    )
    with st.expander("Most co-occurring label pairs"):
        st.dataframe(
            stats.top_pairs(15, by="phi" if view in ("phi", "npmi") else "cooc"),
            hide_index=True,
            column_config={
                "phi": st.column_config.NumberColumn(format="%.3f"),
                "npmi": st.column_config.NumberColumn(format="%.3f"),
            },
        )


def tiles_view(ds: Dataset) -> None:
    names = ds.label_names
    c1, c2, c3, c4 = st.columns([3, 2, 3, 2])
    label = c1.selectbox("Tiles with label", ["(any)", *names], key="ds.gallery_label")
    split = c2.selectbox("Split", ["all", *SPLITS], key="ds.gallery_split")
    bands = ds.band_names or [f"band {i + 1}" for i in range(ds.tile_shape[2])]
    default = composites.dataset_rgb_bands(ds)
    rgb = c3.multiselect(
        "Bands as R, G, B",
        bands,
        default=[bands[i] for i in default][: min(3, len(bands))],
        max_selections=3,
        key="ds.gallery_bands",
        help="Pick three bands (or one for grey).",
    )
    count = c4.select_slider("Tiles shown", [12, 24, 36, 48], value=24, key="ds.gallery_count")
    idx = summary.tiles_with(ds, split, None if label == "(any)" else label)
    if len(idx) == 0:
        st.info("No tile matches this filter.")
        return
    if not rgb:
        st.info("Pick at least one band to draw.")
        return
    band_idx = [bands.index(b) for b in rgb]
    band_idx = (band_idx * 3)[:3] if len(band_idx) < 3 else band_idx
    if st.button("Show other tiles", icon=":material/shuffle:", key="ds.gallery_shuffle"):
        st.session_state["ds.gallery_seed"] = st.session_state.get("ds.gallery_seed", 0) + 1
    pick = summary.sample_rows(idx, count, seed=st.session_state.get("ds.gallery_seed", 0))
    thumbs = tiles.thumbnails(ds, pick, band_idx)
    chips = summary.tile_labels(ds.fractions[pick], ds.presence[pick], names, ds.label_colors)
    split_of = ds.tiles["split"].to_numpy()
    captions = [f"{name} · {split_of[k]}" for name, k in zip(summary.dataset_tile_names(ds, pick), pick, strict=True)]
    st.caption(
        f"{len(pick)} of {len(idx):,} matching tiles; each composite is stretched between the 2nd and 98th percentile "
        "of the dataset's pixel values per band. Chips: labels present, with their share of the labelled area."
    )
    tiles.gallery(thumbs, captions, chips)


#: The map's choice of every scene of a dataset of several.
ALL_SCENES = "all scenes"


@st.fragment
def map_view(ds: Dataset) -> None:
    """The tile map and the tile last clicked on it: a fragment, so a click reruns only this part."""
    if not summary.has_coordinates(ds):
        st.info("This dataset has no tile coordinates (imported from the batch format), so it has no map.")
        return
    whole = ds
    if ds.scene_names:  # a scene on its own grid over its own preview; all scenes over their mosaic
        scene = st.selectbox("Scene", [ALL_SCENES, *ds.scene_names], key=f"ds.map_scene.{ds.name}")
        ds = ds if scene == ALL_SCENES else ds.scene(scene)
    names = ds.label_names
    c1, c2, c3 = st.columns([3, 2, 2])
    default_label = summary.most_frequent_label(ds)
    label = c1.selectbox(
        "Colour tiles by the area fraction of",
        names,
        index=names.index(default_label) if default_label else 0,
        key="ds.map_label",
    )
    split = c2.selectbox("Tiles", ["all", *SPLITS], key="ds.map_split")
    basemap = c3.toggle(
        "OpenStreetMap basemap",
        value=False,
        key="ds.map_osm",
        help="Needs internet access; the preview and grid work without.",
    )
    where = maps.dataset_tiles(ds)
    rows = summary.tiles_with(ds, split)
    if not len(rows):
        st.info(f"The dataset has no {split} tiles to draw.")
        return
    if not where.on_grid and len(rows) > maps.MAX_POLYGONS:
        rows = summary.sample_rows(rows, maps.MAX_POLYGONS)
        st.caption(
            f"The tiles are drawn one polygon each ({plain(where.places.note)}): "
            f"showing a random {maps.MAX_POLYGONS:,} of them to keep the map responsive."
        )
    j = names.index(label)
    values = np.asarray(ds.fractions[:, j])[rows]
    preview = ds.meta.get("preview") or {}
    m = maps.fraction_map(
        maps.tile_layer(where, rows, tile_images.fraction_rgba(values)),
        title=f"{label} (area fraction)",
        bounds=where.bounds(rows),
        preview_png=ds.path / preview.get("file", "preview.png") if preview else None,
        preview_bounds=preview.get("bounds_lonlat"),
        basemap=basemap,
    )
    st.caption(
        f"Each tile over the scene preview is coloured by the share of its labelled area that is "
        f"**{plain(label)}** (transparent where it is 0). Click a tile for its values and labels (the tiles are "
        "one image, so hovering shows nothing)."
    )
    clicked = maps.tile_at(
        where, maps.show(m, key=f"ds.map.{whole.name}" + ("" if ds is whole else f".{ds.name}"), clicks=True), rows
    )
    # a scene's rows are its own; its tile_id column holds their rows in the whole dataset, where the tile is shown
    in_whole = ds.tiles["tile_id"].to_numpy() if ds is not whole else np.arange(whole.n_tiles)
    opened = f"ds.map_tile.{whole.name}"
    if clicked is not None:
        st.session_state[opened] = int(in_whole[clicked])
    clicked_tile(whole, st.session_state.get(opened), in_whole[rows], label)


def clicked_tile(ds: Dataset, row: int | None, rows: np.ndarray, label: str) -> None:
    """The tile last clicked on the map (dataset row `row`), while the map shows it (`rows`)."""
    if row is None or not np.any(rows == row):
        st.caption("Click a tile on the map to see it here with its labels.")
        return
    j = ds.label_names.index(label)
    chips = summary.tile_labels(ds.fractions[[row]], ds.presence[[row]], ds.label_names, ds.label_colors)
    caption = (
        f"{summary.dataset_tile_names(ds, [row])[0]} · {ds.tiles['split'].iloc[row]} · "
        f"{label} {float(ds.fractions[row, j]) * 100:.1f}%"
    )
    st.caption("The tile last clicked on the map, with its labels and their shares of its area:")
    tiles.gallery(tiles.thumbnails(ds, [row]), [caption], chips, columns=4)


def explorer(name: str | None) -> None:
    if not name:
        return
    st.divider()
    ds = loaders.dataset(name)
    title = annotations.dataset_title(name)
    st.header(f"Explorer · {plain(title)}" + (f" ({plain(name)})" if title != name else ""))
    annotate.dataset_about(name)
    if name == DEMO_DATASET:
        st.caption(
            "Synthetic demo scene: the land cover and the image are generated, with planted spatial structure; "
            "no real satellite or CORINE data."
        )
    header_metrics(ds)
    downloads.dataset_button(ds)
    view = st.segmented_control(
        "Show",
        ["Labels", "Tiles", "Map"],
        default="Labels",
        key="ds.view",
        required=True,
        format_func={"Labels": "Label statistics", "Tiles": "Sample tiles", "Map": "Map"}.get,
    )
    {"Labels": labels_view, "Tiles": tiles_view, "Map": map_view}[view or "Labels"](ds)


dataset_table()
if not workspace.is_readonly():
    with st.expander("Add a dataset", expanded=not list_datasets(), icon=":material/add_circle:"):
        tab_prepare, tab_import = st.tabs(["Prepare from rasters", "Import thesis batches"])
        with tab_prepare:
            prepare_form()
        with tab_import:
            import_form()
explorer(state.dataset())

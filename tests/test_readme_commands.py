"""The README's "Your own data" commands, run exactly as written on small files of the same kinds.

Each command is read from the README (so the README cannot drift from what works); only its
file arguments are replaced by generated files, and `--tile 16` is added because those files
are a few hundred pixels wide.
"""

from __future__ import annotations

import shlex

import numpy as np

from olr import cli, workspace
from olr.data.dataset import load_dataset
from tests.fixtures.data import make_scene, write_label_vector
from tests.test_images import write_labels, write_s2_band_files
from tests.test_legends import write_legend, write_scene

README = workspace.REPO_ROOT / "README.md"
SECTION = "## Your own data"
#: the flags whose values are files (replaced by the test's own files)
FILE_FLAGS = ("--image", "--labels", "--legend")


def readme_commands() -> list[list[str]]:
    """The `olr ...` commands of the README's "Your own data" section, as argument lists."""
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f'the README has no "{SECTION}" section'
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in section.split("```bash")[1:]:
        body = block.split("```", 1)[0].replace("\\\n", " ")
        commands += [shlex.split(line) for line in body.splitlines() if line.strip().startswith("olr ")]
    return commands


def readme_command(out: str, **files) -> list[str]:
    """The README command writing `data/<out>`, its file arguments replaced: `files` maps
    "image" / "labels" / "legend" to the path(s) to use; returns the arguments after `olr`."""
    matches = [c for c in readme_commands() if f"data/{out}" in c]
    assert len(matches) == 1, f"the README should have exactly one command writing data/{out}"
    argv, result, i = matches[0][1:], [], 0
    while i < len(argv):
        token = argv[i]
        result.append(token)
        i += 1
        if token in FILE_FLAGS:
            while i < len(argv) and not argv[i].startswith("--"):
                i += 1  # the README's example file names
            given = files[token.removeprefix("--")]
            result += [str(p) for p in (given if isinstance(given, list) else [given])]
    return [*result, "--tile", "16"]


def test_the_readme_lists_three_worked_preparations():
    outs = {c[c.index("--out") + 1] for c in readme_commands() if c[1] == "prepare"}
    assert outs == {"data/planet", "data/s2-scene", "data/landuse"}


def test_planetscope_like_image_with_a_corine_raster(tmp_path):
    scene = make_scene(tmp_path / "scene", size=64, seed=8, image_nodata=0, nodata_rows=3)
    assert cli.main(readme_command("planet", image=scene.image, labels=scene.labels)) == 0
    ds = load_dataset(workspace.dataset_path("planet"))
    assert ds.meta["rgb"]["positions"] == [2, 1, 0] and ds.meta["rgb"]["by"] == "--rgb"
    assert ds.meta["label_encoding"] == "grid" and ds.meta["finite"] is True
    assert all(b["scale"] == 0.0001 for b in ds.meta["bands"])
    assert ds.n_tiles > 0 and ds.meta["dropped"]["nodata"] > 0  # the zero rows are nodata, as declared


def test_sentinel2_band_files_with_a_corine_vector(tmp_path):
    bands = write_s2_band_files(tmp_path / "bands")
    _, codes, transform = write_labels(tmp_path)
    vector = write_label_vector(tmp_path / "clc.gpkg", codes, transform)
    assert cli.main(readme_command("s2-scene", image=bands, labels=vector)) == 0
    ds = load_dataset(workspace.dataset_path("s2-scene"))
    assert [b["name"] for b in ds.meta["bands"]] == ["B04", "B03", "B02", "B05"]
    assert ds.meta["rgb"]["bands"] == ["B04", "B03", "B02"] and ds.meta["sources"]["labels"]["kind"] == "vector"
    assert all(b["scale"] == 0.0001 and b["offset"] == -0.1 for b in ds.meta["bands"])
    assert ds.meta["resolution"] == [10.0, 10.0]  # the finest band file's grid


def test_any_land_cover_map_with_a_legend(tmp_path):
    image, labels = write_scene(tmp_path / "scene")
    legend = write_legend(tmp_path / "landuse_legend.csv")
    assert cli.main(readme_command("landuse", image=image, labels=labels, legend=legend)) == 0
    ds = load_dataset(workspace.dataset_path("landuse"))
    assert ds.meta["label_encoding"] == "legend"
    with open(legend, encoding="utf-8") as f:
        names = {line.split(",")[1] for line in f.read().splitlines()[1:]}
    assert set(ds.label_names) <= names and len(ds.label_names) >= 3
    assert np.allclose(np.asarray(ds.fractions).sum(1), 1.0, atol=1e-5)  # every labelled pixel has a class

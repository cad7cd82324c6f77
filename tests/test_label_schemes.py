"""CORINE nomenclature and label schemes (olr.data.label_schemes)."""

import json
import re

import numpy as np
import pytest

from olr.data import label_schemes
from olr.errors import OLRError


def test_legend_has_the_44_classes_with_unique_codes():
    legend = label_schemes.legend()
    assert len(legend) == 44
    assert sorted(c.grid_code for c in legend) == list(range(1, 45))
    assert [c.code for c in legend] == sorted({c.code for c in legend})
    assert legend[0].code == 111 and legend[-1].code == 523
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c.color) for c in legend)
    # Level names nest: one level-1 name per first digit, one level-2 name per first two digits.
    for digits, level in ((1, "level1"), (2, "level2")):
        names = {}
        for c in legend:
            names.setdefault(str(c.code)[:digits], set()).add(getattr(c, level))
        assert all(len(v) == 1 for v in names.values())
    assert (
        label_schemes.by_code()[211].level3 == "Non-irrigated arable land"
        and label_schemes.by_code()[523].grid_code == 44
    )


def test_grid_code_lookup():
    lut = label_schemes.grid_to_code_lut()
    assert lut.shape == (256,)
    for c in label_schemes.legend():
        assert lut[c.grid_code] == c.code and label_schemes.code_to_grid(c.code) == c.grid_code
    assert all(lut[v] == 0 for v in label_schemes.GRID_NODATA_VALUES)
    assert (lut[45:] == 0).all()


@pytest.mark.parametrize(
    "name,n_labels,n_dropped",
    [
        ("level3", 44, 0),
        ("level2", 15, 0),
        ("level1", 5, 0),
        ("ben19", 19, 12),
        ("thesis_c3", 7, 0),
        ("thesis_c5", 5, 0),
    ],
)
def test_builtin_schemes_map_every_code_once(name, n_labels, n_dropped):
    s = label_schemes.get_scheme(name)
    assert s.name == name and len(s.labels) == n_labels and len(s.dropped_codes) == n_dropped
    codes = [c for lab in s.labels for c in lab.codes]
    assert len(codes) == len(set(codes)) == 44 - n_dropped
    assert set(codes) | set(s.dropped_codes) == set(label_schemes.ALL_CODES)
    assert len({lab.name for lab in s.labels}) == n_labels
    m = s.code_matrix(label_schemes.ALL_CODES)
    assert m.shape == (44, n_labels) and m.dtype == np.float32
    assert np.array_equal(m.sum(1), [0.0 if c in s.dropped_codes else 1.0 for c in label_schemes.ALL_CODES])


def test_level_schemes_follow_the_legend_columns():
    by_code = label_schemes.by_code()
    for name, level in (("level1", "level1"), ("level2", "level2"), ("level3", "level3")):
        for lab in label_schemes.get_scheme(name).labels:
            assert {getattr(by_code[c], level) for c in lab.codes} == {lab.name}
            assert lab.color == by_code[min(lab.codes)].color


def test_ben19_follows_the_bigearthnet_index_and_drops_its_twelve_codes():
    s = label_schemes.get_scheme("ben19")
    by_code = label_schemes.by_code()
    assert [by_code[lab.codes[0]].ben19_index for lab in s.labels] == list(range(19))
    assert set(s.dropped_codes) == {122, 123, 124, 131, 132, 133, 141, 142, 332, 334, 335, 423}
    assert s.labels[0].name == "Urban fabric" and s.labels[0].codes == (111, 112)


def test_thesis_divisions_nest():
    c3, c5 = label_schemes.get_scheme("thesis_c3"), label_schemes.get_scheme("thesis_c5")
    c5_of = {c: lab.name for lab in c5.labels for c in lab.codes}
    for lab in c3.labels:  # every C3 label lies inside one C5 label
        assert len({c5_of[c] for c in lab.codes}) == 1


def test_code_matrix_is_by_code_not_by_position():
    s = label_schemes.get_scheme("level1")
    codes = [523, 111, 211, 999]
    m = s.code_matrix(codes)
    names = [lab.name for lab in s.labels]
    assert m[0, names.index("Water bodies")] == 1 and m[1, names.index("Artificial surfaces")] == 1
    assert m[2, names.index("Agricultural areas")] == 1 and m[3].sum() == 0
    fractions = np.array([[0.5, 0.25, 0.25, 0.0]], dtype=np.float32) @ m
    assert fractions[0, names.index("Water bodies")] == 0.5


def test_user_mappings_from_dict_and_json(tmp_path):
    s = label_schemes.get_scheme({"Built": ["112", 111], "Water": [523, 511]})
    assert s.name == "custom" and [lab.codes for lab in s.labels] == [(111, 112), (511, 523)]
    assert s.labels[0].color == label_schemes.by_code()[111].color
    assert 211 in s.dropped_codes and len(s.dropped_codes) == 40
    path = tmp_path / "coast.json"
    path.write_text(json.dumps({"Sea": [523], "Beach": [331]}))
    j = label_schemes.get_scheme(str(path))
    assert j.name == "coast" and j.mapping == {"Sea": [523], "Beach": [331]}
    assert label_schemes.get_scheme(path).labels == j.labels
    assert label_schemes.Label.from_json(j.labels[1].to_json()) == j.labels[1]
    assert j.to_json()["mapping"] == {"Sea": [523], "Beach": [331]}


@pytest.mark.parametrize(
    "mapping,message",
    [
        ({"Urban": [111, 999]}, "unknown CLC code 999"),
        ({"Urban": [1, 2]}, "unknown CLC code 1"),  # grid codes are not CLC codes
        ({"Urban": [111.7]}, "unknown CLC code 111.7"),
        ({"Urban": [True]}, "unknown CLC code True"),
        ({"Urban": [111], "Town": [111]}, "mapped to both 'Urban' and 'Town'"),
        ({"Urban": 111}, "needs a non-empty list"),
        ({"Urban": []}, "needs a non-empty list"),
        ({}, "must be a JSON object"),
    ],
)
def test_bad_user_mappings(mapping, message):
    with pytest.raises(OLRError, match=re.escape(message)):
        label_schemes.get_scheme(mapping)


def test_bad_scheme_names_and_files(tmp_path):
    with pytest.raises(OLRError, match="Unknown label scheme 'level4'"):
        label_schemes.get_scheme("level4")
    with pytest.raises(OLRError, match="does not exist"):
        label_schemes.get_scheme(str(tmp_path / "none.json"))
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(OLRError, match="not valid JSON"):
        label_schemes.get_scheme(str(tmp_path / "bad.json"))
    (tmp_path / "list.json").write_text("[111, 112]")
    with pytest.raises(OLRError, match="must be a JSON object"):
        label_schemes.get_scheme(str(tmp_path / "list.json"))


def test_prune_mask():
    presence = np.array([[1, 0, 1], [1, 0, 0], [1, 1, 0]], dtype=np.uint8)
    assert label_schemes.prune_mask(presence, 2).tolist() == [True, False, False]
    assert label_schemes.prune_mask(presence, 1).tolist() == [True, True, True]
    assert label_schemes.prune_mask(presence, 0).tolist() == [True, True, True]
    assert label_schemes.prune_mask(np.zeros((0, 3)), 1).tolist() == [False, False, False]

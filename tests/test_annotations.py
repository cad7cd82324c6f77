"""Names, notes and tags of runs and datasets (olr.runs.annotations), deleting them (olr.runs.manage), their
command line (annotate, delete, runs --search) and the Train form's settings from a run (ui.annotate).

Run and dataset folders are written by hand: these tests need their files, not trained models.
"""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from olr import atomic, cli, workspace
from olr.errors import OLRError
from olr.runs import annotations, manage, store
from olr.training import options

STARTED = time.mktime((2025, 12, 2, 14, 2, 0, 0, 0, -1))


def make_run(run_id: str, status: dict | None = None, **config) -> store.Run:
    folder = workspace.models_dir() / run_id
    folder.mkdir(parents=True)
    config = {"kind": "classifier", "dataset": "tiny", "model": "resnet", "loss": "bce", **config}
    atomic.write_json(folder / "config.json", config)
    atomic.write_json(
        folder / "status.json", status or {"state": "finished", "started": STARTED, "ended": STARTED + 60}
    )
    return store.load_run(run_id)


def live_status() -> dict:
    now = time.time()
    return {"state": "running", "pid": os.getpid(), "host": socket.gethostname(), "started": now, "heartbeat": now}


def make_dataset(name: str) -> os.PathLike:
    folder = workspace.dataset_path(name)
    folder.mkdir(parents=True)
    atomic.write_json(folder / "meta.json", {"name": name})
    return folder


# ------------------------------------------------------------------ annotations


def test_words_round_trip_and_change_only_what_is_given():
    run = make_run("r1")
    written = annotations.write(run.path, name="  Baseline  ", notes="first try\nsecond line", tags="a, b ,a,, c")
    assert written == annotations.Annotations("Baseline", "first try\nsecond line", ("a", "b", "c"))
    assert annotations.read(run.path) == written
    annotations.write(run.path, tags=["b"])  # name and notes stay
    assert annotations.read(run.path) == annotations.Annotations("Baseline", "first try\nsecond line", ("b",))
    annotations.write(run.path, name="")
    assert annotations.run_title(run) == "resnet · bce · tiny · " + annotations._clock(STARTED)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"name": "x" * (annotations.MAX_NAME + 1)}, "keep it to"),
        ({"name": "two\nlines"}, "one line"),
        ({"notes": "n" * (annotations.MAX_NOTES + 1)}, "keep them to"),
        ({"tags": [f"t{i}" for i in range(annotations.MAX_TAGS + 1)]}, "tags"),
        ({"tags": "short, " + "y" * (annotations.MAX_TAG + 1)}, "shorten it"),
    ],
)
def test_bad_words_are_refused_with_a_sentence_and_change_nothing(fields, says):
    run = make_run("r1")
    annotations.write(run.path, name="kept")
    before = (run.path / annotations.FILE).read_bytes()
    with pytest.raises(OLRError, match=says):
        annotations.write(run.path, **fields)
    assert (run.path / annotations.FILE).read_bytes() == before


def test_read_only_mode_refuses_words_and_the_damaged_file_loses_only_the_words(monkeypatch):
    run = make_run("r1")
    (run.path / annotations.FILE).write_text('{"name": ["not text"], "tags": "nope", "notes": "kept"')  # torn
    assert annotations.read(run.path) == annotations.Annotations()
    (run.path / annotations.FILE).write_text('{"name": 3, "tags": ["ok", 4], "notes": "kept"}')
    assert annotations.read(run.path) == annotations.Annotations("", "kept", ("ok",))
    assert store.load_run("r1").state == "finished"  # the run itself reads as before
    monkeypatch.setenv("OLR_READONLY", "1")
    with pytest.raises(OLRError, match="read-only"):
        annotations.write(run.path, name="new")
    assert annotations.read(run.path).name == ""


def test_search_over_words_id_kind_and_dataset_and_the_tag_filter():
    make_dataset("tiny")
    first = make_run("20251202-140200-classifier-aaaaaa")
    second = make_run("20251202-140200-classifier-bbbbbb", loss="focal")
    siamese = make_run("20251202-141000-siamese-cccccc", kind="siamese", classifier_run=first.id, trunk="resnet")
    annotations.write(first.path, name="Thesis baseline", notes="the one in chapter 4", tags="thesis, Final")
    runs = [first, second, siamese]

    def found(query, tags=()):
        return [r.id for r in runs if annotations.run_matches(r, query, tags)]

    assert found("baseline THESIS") == [first.id]  # every word, any order, no case
    assert found("chapter") == [first.id]  # notes
    assert found("focal") == [second.id]  # the default name holds the loss
    assert found("siamese tiny") == [siamese.id]  # kind and dataset
    assert found("bbbbbb") == [second.id]  # the id
    assert found("", ["final"]) == [first.id]  # a tag, without case
    assert found("focal", ["final"]) == []
    assert found("") == [r.id for r in runs]
    annotations.write(workspace.dataset_path("tiny"), name="Tiny scene", tags="toy")
    assert annotations.dataset_title("tiny") == "Tiny scene"
    assert annotations.dataset_matches("tiny", "scene") and not annotations.dataset_matches("tiny", "forest")
    assert annotations.dataset_matches("tiny", "", ["TOY"]) and not annotations.dataset_matches("tiny", "", ["x"])
    assert annotations.tags_in_use([r.path for r in runs] + [workspace.dataset_path("tiny")]) == [
        "Final",
        "thesis",
        "toy",
    ]


def test_a_run_that_says_nothing_of_itself_is_named_by_its_id_and_a_queued_one_by_its_request():
    silent = workspace.run_path("20251202-140200-run-abcdef")
    silent.mkdir(parents=True)
    atomic.write_json(silent / "status.json", {"state": "failed", "error": "boom"})
    assert annotations.default_run_name(store.load_run(silent.name)) == silent.name
    queued = workspace.run_path("q")
    queued.mkdir()
    atomic.write_json(queued / "launch_config.json", {"kind": "classifier", "dataset": "tiny", "loss": "focal"})
    atomic.write_json(queued / "status.json", {"state": "failed", "started": STARTED})
    assert annotations.default_run_name(store.load_run("q")) == "classifier · focal · tiny · " + annotations._clock(
        STARTED
    )


def test_titles_tell_runs_with_the_same_default_name_apart():
    one = make_run("20251202-140200-classifier-aaaaaa")
    two = make_run("20251202-140201-classifier-bbbbbb")
    named = make_run("20251202-140202-classifier-cccccc")
    annotations.write(named.path, name="Mine")
    titles = annotations.run_titles([one, two, named])
    assert titles[named.id] == "Mine"
    assert titles[one.id].endswith(" · aaaaaa") and titles[two.id].endswith(" · bbbbbb")
    assert titles[one.id].removesuffix(" · aaaaaa") == annotations.default_run_name(one)
    assert len(set(titles.values())) == 3


# ------------------------------------------------------------------ deleting


def test_deleting_a_run_moves_it_out_of_sight_first_and_leaves_nothing():
    run = make_run("r1")
    (run.path / "best.keras").write_bytes(b"x" * 1000)
    deletion = manage.run_deletion("r1")
    assert deletion.warning is None and "“resnet · bce · tiny" in deletion.question
    manage.delete(deletion)
    assert not run.path.exists() and store.list_runs() == []
    assert list((workspace.models_dir() / manage.TRASH).iterdir()) == []
    with pytest.raises(OLRError, match="There is no run"):
        manage.run_deletion("r1")


def test_a_deletion_killed_while_removing_stays_hidden_and_the_next_one_clears_it(monkeypatch):
    make_run("r1")
    make_run("r2")
    with monkeypatch.context() as patch:
        patch.setattr(manage.shutil, "rmtree", lambda path, **kw: None)  # killed before removing anything
        manage.delete(manage.run_deletion("r1"))
    trash = workspace.models_dir() / manage.TRASH
    assert [p.name.split(".")[0] for p in trash.iterdir()] == ["r1"]  # whole, out of sight
    assert [r.id for r in store.list_runs()] == ["r2"]
    manage.delete(manage.run_deletion("r2"))
    assert list(trash.iterdir()) == []


def test_refusals_live_run_read_only_and_a_classifier_with_siamese_runs(monkeypatch):
    classifier = make_run("cls")
    siamese = make_run("siam", kind="siamese", classifier_run="cls")
    make_run("live", status=live_status())
    with pytest.raises(OLRError, match="stop it first"):
        manage.run_deletion("live")
    deletion = manage.run_deletion("cls")
    assert deletion.dependents == ("siam",) and "siam" in deletion.warning and "Siamese" in deletion.warning
    with pytest.raises(OLRError, match="Not deleted: 1 Siamese run"):
        manage.delete(deletion)
    assert classifier.path.is_dir()
    # a Siamese run that went live against it meanwhile: refused even when confirmed
    atomic.write_json(siamese.path / "status.json", live_status())
    with pytest.raises(OLRError, match="live run"):
        manage.delete(deletion, even_if_used=True)
    atomic.write_json(siamese.path / "status.json", {"state": "finished", "started": STARTED})
    monkeypatch.setenv("OLR_READONLY", "1")
    with pytest.raises(OLRError, match="read-only"):
        manage.delete(deletion, even_if_used=True)
    monkeypatch.delenv("OLR_READONLY")
    manage.delete(deletion, even_if_used=True)
    assert not classifier.path.exists() and siamese.path.is_dir()  # its Siamese run stays


def test_deleting_a_dataset_names_the_runs_trained_on_it():
    folder = make_dataset("tiny")
    make_dataset("other")
    make_run("a")
    make_run("b", dataset="other")
    deletion = manage.dataset_deletion("tiny")
    assert deletion.dependents == ("a",) and "keep their results" in deletion.warning
    with pytest.raises(OLRError, match="Not deleted"):
        manage.delete(deletion)
    manage.delete(deletion, even_if_used=True)
    assert not folder.exists() and workspace.dataset_path("other").is_dir()
    assert store.load_run("a").state == "finished"
    with pytest.raises(OLRError, match="There is no dataset"):
        manage.dataset_deletion("tiny")


# ------------------------------------------------------------------ command line


def test_cli_annotate_search_and_delete(capsys, monkeypatch):
    make_dataset("tiny")
    make_run("cls")
    make_run("siam", kind="siamese", classifier_run="cls")
    assert cli.main(["annotate", "cls", "--name", "Baseline", "--tags", "thesis, best", "--notes", "seed 0"]) == 0
    assert "name:  Baseline" in capsys.readouterr().out
    assert cli.main(["annotate", "tiny", "--name", "Tiny scene"]) == 0  # no run has that id: the dataset
    assert annotations.dataset_title("tiny") == "Tiny scene"
    assert cli.main(["annotate", "nothing", "--name", "x"]) == 2
    assert "There is no run or dataset 'nothing'" in capsys.readouterr().err

    capsys.readouterr()
    assert cli.main(["runs", "--search", "baseline"]) == 0
    out = capsys.readouterr().out
    assert "cls" in out and "siam " not in out and "#thesis  #best" in out
    assert cli.main(["runs", "--json", "--tag", "best"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["id"], r["title"], r["tags"]) for r in rows] == [("cls", "Baseline", ["thesis", "best"])]

    assert cli.main(["delete", "siam"]) == 2  # not at a terminal (pytest's stdin): --yes needed
    assert "add --yes" in capsys.readouterr().err
    assert cli.main(["delete", "cls", "--yes"]) == 2  # its Siamese run is named
    assert "siam" in capsys.readouterr().err and store.load_run("cls")
    assert cli.main(["delete", "--dataset", "tiny", "--yes"]) == 2
    assert "trained on this dataset" in capsys.readouterr().err
    monkeypatch.setenv("OLR_READONLY", "1")
    assert cli.main(["delete", "siam", "--yes"]) == 2
    assert cli.main(["annotate", "cls", "--name", "changed"]) == 2
    assert capsys.readouterr().err.count("read-only demo") == 2
    assert annotations.read(workspace.run_path("cls")).name == "Baseline"
    monkeypatch.delenv("OLR_READONLY")
    assert cli.main(["delete", "cls", "--yes", "--even-if-used"]) == 0
    assert "Deleted the classifier run “Baseline” (cls)" in capsys.readouterr().out
    assert [r.id for r in store.list_runs()] == ["siam"]


# ------------------------------------------------------------------ a new run from a run's settings


def test_new_run_settings_repeat_the_run_and_leave_what_the_recipe_decided_blank():
    from ui.annotate import settings_for_new_run

    make_run("cls")
    resolved = options.resolve({"dataset": "tiny", "loss": "focal", "seed": 3, "epochs": None, "batch_size": None})
    config = {
        **resolved,
        "epochs": 12,
        "batch_size": 16,
        "labels": [{"name": "Forest", "codes": [311]}],
        "run_id": "siam",
        "recipe": {"decided": {"epochs": 12, "batch_size": 16}},
    }
    folder = workspace.run_path("r1")
    folder.mkdir(parents=True)
    atomic.write_json(folder / "config.json", config)
    settings = settings_for_new_run(store.load_run("r1"))
    assert settings["kind"] == "classifier" and settings["dataset"] == "tiny"
    assert (settings["loss"], settings["seed"]) == ("focal", 3)
    assert settings["epochs"] is None and settings["batch_size"] is None  # decided again by the recipe
    assert not set(settings) & set(options.DERIVED_KEYS)
    assert options.resolve(settings)["loss"] == "focal"  # the Train form's launch accepts them

    siamese = make_run("siam", kind="siamese", classifier_run="cls", trunk=None, embedding_dim=8)
    settings = settings_for_new_run(siamese)
    assert settings["kind"] == "siamese" and settings["classifier_run"] == "cls" and settings["embedding_dim"] == 8

    queued = workspace.run_path("queued")  # failed before its process wrote a config: the launcher's request
    queued.mkdir()
    atomic.write_json(queued / "launch_config.json", {"kind": "classifier", "dataset": "tiny", "seed": 5})
    settings = settings_for_new_run(store.load_run("queued"))
    assert settings == {"kind": "classifier", "dataset": "tiny", "seed": 5}

"""The training recipe: blank options decided from the dataset, written into the run's config.

The decisions are checked on split sizes of real kinds of data (the demo scene, a 150-tile scene,
a 500,000-tile dataset, 120 px BigEarthNet patches), and a planned run's config holds what the
recipe decided. That a run trains exactly the epochs it decided (stretched past a pass of a small
split) is checked on the real runs of tests/test_study.py.
"""

import math

import pytest

from olr.training import options, plan, recipe

DEMO = {"n_train": 2184, "n_val": 492, "tile_shape": (64, 64, 4)}  # the demo scene's splits


def decided(kind: str, **split) -> dict:
    cfg = options.resolve({"kind": kind}, complete=False)
    return recipe.decide(cfg, **split)["decided"]


def test_the_defaults_give_the_demo_its_tuned_settings():
    # The demo study was tuned at 24 classifier epochs of batch 64 pruning labels in < 20 tiles and
    # 14 Siamese epochs of 2184 pairs in batches of 32: the defaults must reproduce it on the demo.
    cls = decided("classifier", **DEMO)
    assert cls["batch_size"] == 64 and cls["epoch_steps"] == 2184 // 64 and cls["epochs"] == 24
    assert cls["prune_below"] == round(0.01 * 2184) and cls["max_val_tiles"] == 0
    assert "early_stopping_patience" not in cls  # a quarter of 24 epochs is under the default 8
    sia = decided("siamese", **DEMO)
    assert sia["batch_size"] == 32 and sia["epochs"] == 14 and "pairs_per_epoch" not in sia
    assert "prune_below" not in sia


def test_a_small_scene_gets_smaller_batches_and_more_epochs_with_more_patience():
    d = decided("classifier", n_train=150, n_val=40, tile_shape=(64, 64, 4))
    assert d["batch_size"] == 16  # 150 // 64 = 2 steps a pass would be too few to learn from
    assert d["epochs"] * d["epoch_steps"] >= options.defaults("classifier")["train_steps"]
    # a pass of 9 steps is stretched to 20 per epoch, so validation does not outweigh training
    assert d["epoch_steps"] == recipe.MIN_EPOCH_STEPS > 150 // 16 and d["epochs"] == 40
    assert d["early_stopping_patience"] == math.ceil(d["epochs"] / 4) > 8
    assert d["prune_below"] == 2


def test_a_handful_of_tiles_trains_few_long_epochs_not_hundreds_of_one_step():
    # 3 BigEarthNet patches of 120 px: without stretching, 200 epochs of 1 step, each validated
    cls = decided("classifier", n_train=3, n_val=2, tile_shape=(120, 120, 12))
    assert cls["batch_size"] == 3 and cls["epoch_steps"] == recipe.MIN_EPOCH_STEPS
    sia = decided("siamese", n_train=3, n_val=2, tile_shape=(120, 120, 12))
    assert sia["batch_size"] == 8  # pairs are drawn at random: a batch may hold more than the split
    assert sia["pairs_per_epoch"] == recipe.MIN_EPOCH_STEPS * 8
    assert sia["epochs"] == math.ceil(options.defaults("siamese")["train_steps"] / recipe.MIN_EPOCH_STEPS)


def test_a_large_dataset_trains_its_budget_not_its_size():
    d = decided("classifier", n_train=500_000, n_val=100_000, tile_shape=(64, 64, 4))
    budget = options.defaults("classifier")["train_steps"]
    assert d["epochs"] == recipe.MIN_EPOCHS and d["epoch_steps"] * d["epochs"] == budget
    assert d["max_val_tiles"] == recipe.VAL_TILE_CAP and d["prune_below"] == recipe.PRUNE_MAX
    s = decided("siamese", n_train=500_000, n_val=100_000, tile_shape=(64, 64, 4))
    assert s["pairs_per_epoch"] == (options.defaults("siamese")["train_steps"] // recipe.MIN_EPOCHS) * 32


def test_larger_tiles_get_smaller_batches():
    assert decided("classifier", n_train=5000, n_val=500, tile_shape=(120, 120, 12))["batch_size"] == 16
    assert decided("classifier", n_train=5000, n_val=500, tile_shape=(32, 32, 4))["batch_size"] == 64


def test_options_given_are_never_decided():
    cfg = options.resolve({"epochs": 3, "batch_size": 7, "prune_below": 0, "max_val_tiles": 5}, complete=False)
    assert recipe.decide(cfg, **DEMO) == {"decided": {}, "why": {}}


def test_every_decision_says_why():
    cfg = options.resolve({}, complete=False)
    rec = recipe.decide(cfg, n_train=150, n_val=40, tile_shape=(64, 64, 4))
    lines = recipe.describe(rec)
    for key in ("batch_size", "epochs", "prune_below", "max_val_tiles", "early_stopping_patience"):
        assert any(line.startswith(f"recipe: {key} {rec['decided'][key]} (") for line in lines), lines


def test_a_planned_run_holds_the_recipe_in_its_config(training_workspace, monkeypatch):
    monkeypatch.setenv("OLR_HOME", str(training_workspace))
    p = plan.prepare({"dataset": "tiny"})
    ds = p.dataset
    n_train = len(ds.split_indices("train"))
    assert p.cfg["recipe"]["decided"]["batch_size"] == p.cfg["batch_size"] == 8  # 115 tiles: 14 steps a pass
    assert n_train // 8 < p.cfg["epoch_steps"] == recipe.MIN_EPOCH_STEPS and p.cfg["epochs"] == 800 // 20
    assert any(note.startswith("recipe: epochs") for note in p.notes)


@pytest.mark.parametrize("key", ["epochs", "batch_size", "prune_below", "max_val_tiles"])
def test_blank_is_the_default_and_the_page_says_what_blank_means(key):
    opt = options.OPTIONS[key]
    assert opt.default is None and opt.nullable and "blank" in opt.label

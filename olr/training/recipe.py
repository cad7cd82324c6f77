"""The training recipe: what a run's blank options become for its dataset.

The tuned settings (the demo study's) are the option schema's defaults (`olr.training.options`);
the few that must follow the data are blank there and decided here when a run is planned,
from the training split's size and the tile shape, so the same defaults suit a 150-tile scene
and a 500,000-tile dataset:

- `batch_size`: 64 tiles (Siamese 32 pairs) of 64x64 px; halved for larger tiles so a batch's
  activations stay about the same size, and (classifier) halved while a pass over the training
  split would take fewer than 8 steps (down to 8).
- `epochs`: the step budget `train_steps` spread over at least `MIN_EPOCHS` epochs. An epoch is
  one pass over the training split (Siamese: `pairs_per_epoch` random pairs, one per training
  tile by default), cut to `train_steps / MIN_EPOCHS` steps when a pass is longer and stretched
  to `MIN_EPOCH_STEPS` when it is shorter, so neither a large split trains for days nor a small
  one spends its time validating; the tiles repeat across the cut in a fresh order.
  Early-stopping patience grows to a quarter of the epochs.
- `max_val_tiles`: all validation tiles up to `VAL_TILE_CAP` (a fixed random subset above),
  so each epoch's validation costs at most that much.
- `prune_below` (classifier): labels in fewer than 1 % of the training tiles (at least 1, at
  most 50) are dropped, as the demo's 20 of 2,184.

Every decision is written into the run's config: the values into the options themselves (so
the run reads, resumes and repeats with concrete numbers) and `config["recipe"]` =
{"decided": {key: value}, "why": {key: sentence}}, shown in the console and on the pages.
No TensorFlow here.
"""

from __future__ import annotations

import math

from olr.errors import OLRError

MIN_EPOCHS = 8
REFERENCE_BATCH = {"classifier": 64, "siamese": 32}
REFERENCE_TILE_PIXELS = 64 * 64
MIN_BATCH = 8
MIN_STEPS_PER_PASS = 8
MIN_EPOCH_STEPS = 20
VAL_TILE_CAP = 4096
PRUNE_SHARE, PRUNE_MIN, PRUNE_MAX = 0.01, 1, 50
PATIENCE_SHARE = 0.25


def _batch_size(kind: str, n_train: int, tile_shape) -> tuple[int, str]:
    batch = REFERENCE_BATCH[kind]
    pixels = int(tile_shape[0]) * int(tile_shape[1])
    size = f"{tile_shape[0]}x{tile_shape[1]} px"
    while batch > MIN_BATCH and batch * pixels > REFERENCE_BATCH[kind] * REFERENCE_TILE_PIXELS:
        batch //= 2
    what = "pairs" if kind == "siamese" else "tiles"
    if batch == REFERENCE_BATCH[kind]:
        reasons = [f"{batch} {what} of {size}, as tuned on 64x64 px tiles"]
    else:
        reasons = [f"{batch} {what} of {size}: {REFERENCE_BATCH[kind]} of 64x64 px, fewer for larger tiles"]
    if kind == "classifier":  # Siamese pairs are drawn at random, so a batch may be larger than the split
        sized = batch
        while batch > MIN_BATCH and n_train // batch < MIN_STEPS_PER_PASS:
            batch //= 2
        batch = max(1, min(batch, n_train))
        if batch != sized:
            reasons.append(f"{batch} so a pass over the {n_train} training tiles takes {MIN_STEPS_PER_PASS}+ steps")
    return batch, "; ".join(reasons)


def decide(cfg: dict, *, n_train: int, n_val: int, tile_shape) -> dict:
    """The recipe for a resolved config `cfg` on a split of `n_train` training and `n_val` validation
    tiles of `tile_shape`: {"decided": {key: value}, "why": {key: sentence}}.

    Only blank (None) options are decided; `epoch_steps` (the classifier's steps per epoch, a derived
    key) is decided with the epochs. Apply with `apply`."""
    kind = cfg["kind"]
    if kind not in REFERENCE_BATCH:
        raise OLRError(f"There is no training recipe for runs of kind {kind!r}; use classifier or siamese.")
    decided, why = {}, {}
    if cfg.get("max_val_tiles") is None:
        decided["max_val_tiles"] = 0 if n_val <= VAL_TILE_CAP else VAL_TILE_CAP
        why["max_val_tiles"] = (
            f"all {n_val} validation tiles"
            if n_val <= VAL_TILE_CAP
            else f"a fixed random {VAL_TILE_CAP} of the {n_val} validation tiles, so validation stays cheap"
        )
    if kind == "classifier" and cfg.get("prune_below") is None:
        decided["prune_below"] = max(PRUNE_MIN, min(PRUNE_MAX, round(PRUNE_SHARE * n_train)))
        why["prune_below"] = (
            f"labels in fewer than {decided['prune_below']} of the {n_train} training tiles "
            f"({PRUNE_SHARE:.0%}, between {PRUNE_MIN} and {PRUNE_MAX}) are dropped"
        )
    batch = cfg.get("batch_size")
    if batch is None:
        batch, why["batch_size"] = _batch_size(kind, n_train, tile_shape)
        decided["batch_size"] = batch
    if cfg.get("epochs") is None:
        decided.update(_epochs(cfg, kind, n_train, batch, why))
    return {"decided": decided, "why": why}


def _epochs(cfg: dict, kind: str, n_train: int, batch: int, why: dict) -> dict:
    """Epochs (and their length, and patience) that spend the step budget `train_steps`."""
    budget = int(cfg["train_steps"])
    # a classifier's epoch is a pass over its tiles; a Siamese epoch is pairs_per_epoch random pairs
    n_pass = n_train if kind == "classifier" else (cfg.get("pairs_per_epoch") or n_train)
    pass_steps = max(1, n_pass // batch)
    epoch_steps = min(max(pass_steps, MIN_EPOCH_STEPS), max(1, budget // MIN_EPOCHS))
    epochs = math.ceil(budget / epoch_steps)
    decided = {"epochs": epochs}
    what = "tiles" if kind == "classifier" else "pairs"
    if epoch_steps == pass_steps:
        length = f"{epoch_steps} steps, one pass over {n_pass} {what}"
    elif epoch_steps < pass_steps:
        length = f"{epoch_steps} steps, {epoch_steps * batch} of the {n_pass} {what} in a fresh order each time"
    else:  # a small split: several passes per epoch, so validation does not outweigh training
        length = f"{epoch_steps} steps, {epoch_steps * batch / n_pass:.1f} passes over {n_pass} {what}"
    why["epochs"] = f"{epochs} epochs of {length}: the budget of {budget} steps"
    if kind == "classifier":
        decided["epoch_steps"] = epoch_steps
    elif epoch_steps != pass_steps:
        decided["pairs_per_epoch"] = epoch_steps * batch
        why["pairs_per_epoch"] = f"{epoch_steps} steps of {batch} pairs per epoch"
    patience = int(cfg.get("early_stopping_patience") or 0)
    if patience and math.ceil(PATIENCE_SHARE * epochs) > patience:
        decided["early_stopping_patience"] = math.ceil(PATIENCE_SHARE * epochs)
        why["early_stopping_patience"] = (
            f"{decided['early_stopping_patience']} epochs without improvement "
            f"({PATIENCE_SHARE:.0%} of the {epochs} epochs, more than the {patience} asked)"
        )
    return decided


def apply(cfg: dict, recipe: dict) -> dict:
    """`cfg` with the recipe's decisions and the recipe itself (`config["recipe"]`)."""
    return {**cfg, **recipe["decided"], "recipe": recipe}


def describe(recipe: dict) -> list[str]:
    """The recipe's decisions as console lines ("recipe: batch_size 64 (64 tiles of 64x64 px)")."""
    decided, why = recipe.get("decided", {}), recipe.get("why", {})
    return [f"recipe: {key} {decided[key]} ({reason})" for key, reason in why.items() if key in decided]

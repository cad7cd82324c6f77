"""The Keras callback of a training run: metrics lines, progress, validation, best/last
checkpoints, train_state.json, early stopping and the stop flag.

Imported by `olr.training.fit` when training starts (this module imports Keras).
"""

from __future__ import annotations

import time

import keras
import numpy as np

from olr import atomic
from olr.runs import store
from olr.runs.store import RunLayout
from olr.training.checkpoints import save_atomic
from olr.training.console import log
from olr.training.plan import Plan


def _clean(values: dict) -> dict:
    out = {}
    for k, v in (values or {}).items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        out[k] = f if np.isfinite(f) else None
    return out


class RunCallback(keras.callbacks.Callback):
    """Metrics lines, progress, validation, best/last checkpoints, early stopping, stop flag."""

    def __init__(self, plan: Plan, save_model, val_data, status, stop):
        super().__init__()
        cfg = plan.cfg
        self.files = RunLayout(plan.run_dir)
        self.save_model = save_model
        self.val_data = val_data
        self.status = status
        self.stop = stop
        self.epochs = cfg["epochs"]
        self.monitor = cfg["checkpoint_metric"]
        self.minimize = self.monitor.endswith("loss")
        self.patience = cfg["early_stopping_patience"]
        self.log_every = cfg["log_every_steps"]
        self.state = {
            "epoch": 0,
            "step": 0,
            "best": None,
            "best_epoch": None,
            "wait": 0,
            "monitor": self.monitor,
            **(plan.train_state or {}),
        }
        if self.state.get("early_stopped"):  # resumed after early stopping: the user wants more epochs
            self.state.update(early_stopped=False, wait=0)
        self.epoch = self.state["epoch"]
        self.metrics_log = store.MetricsLog(plan.run_dir)

    def write(self, split: str, values: dict, scope: str) -> None:
        line = {
            "step": self.state["step"],
            "epoch": self.epoch + 1,
            "split": split,
            "time": time.time(),
            "scope": scope,
        }
        line.update(_clean(values))
        self.metrics_log.append(line)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.status.progress(epoch=epoch + 1, step=self.state["step"])

    def on_train_batch_end(self, batch, logs=None):
        self.state["step"] += 1
        self.status.progress(epoch=self.epoch + 1, step=self.state["step"])
        if self.state["step"] % self.log_every == 0:
            values = _clean(logs)
            self.write("train", values, "step")
            log(
                f"epoch {self.epoch + 1} step {self.state['step']}: "
                + " ".join(f"{k} {v:.4f}" for k, v in values.items() if v is not None)
            )
        if self.stop.requested:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if self.stop.requested:
            log(f"{self.stop.signal_name}: stopping in epoch {epoch + 1} after step {self.state['step']}")
            save_atomic(self.save_model, self.files.last)
            self._write_state()
            return
        val = _clean(self.model.evaluate(self.val_data, verbose=0, return_dict=True))
        self.write("train", logs, "epoch")
        self.write("val", val, "epoch")
        logs.update({f"val_{k}": v for k, v in val.items()})
        improved = self._checkpoint(epoch, logs.get(self.monitor))
        if self.patience and self.state["wait"] >= self.patience:
            self.state["early_stopped"] = True
            self.model.stop_training = True
        self._write_state()
        shown = " ".join(f"{k} {v:.4f}" for k, v in _clean(logs).items() if v is not None)
        log(f"epoch {epoch + 1}/{self.epochs} done: {shown}{'  * best' if improved else ''}")
        if self.state.get("early_stopped"):
            log(
                f"early stopping: {self.monitor} did not improve for {self.patience} epochs "
                f"(best {self.state['best']} at epoch {self.state['best_epoch']})"
            )

    def _checkpoint(self, epoch: int, score) -> bool:
        """best.keras when `score` improved, last.keras always; returns whether it improved."""
        best = self.state["best"]
        improved = score is not None and (best is None or (score < best if self.minimize else score > best))
        if improved:
            save_atomic(self.save_model, self.files.best)
            self.state.update(best=score, best_epoch=epoch + 1, wait=0)
        else:
            self.state["wait"] += 1
        self.state["epoch"] = epoch + 1
        save_atomic(self.save_model, self.files.last)
        return improved

    def _write_state(self):
        atomic.write_json(self.files.train_state, {**self.state, "time": time.time()})
        self.status.update(epoch=self.state["epoch"], step=self.state["step"])

    def on_train_end(self, logs=None):
        self.metrics_log.close()

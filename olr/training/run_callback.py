"""The Keras callback of a training run: metrics lines, progress, validation, best/last
checkpoints, train_state.json, early stopping, the stop flag, and two health checks:

- a loss (training, after every step; validation, after every epoch) that is NaN or infinite
  stops the run at once with an OLRError naming the first epoch and step where it happened
  (the run ends "failed"; last.keras stays the last finite epoch's);
- progress in status.json (`olr.runs.progress`): the phase (compiling until the first step ends, then
  training, validating, saving), the step within the epoch, the throughput over the last steps and how
  long the last epoch's end took (validation and checkpoints); the console's metrics lines carry the
  same progress line, with the time left;
- metrics lines every `log_every_steps` steps, and at least `MIN_LOGS_PER_EPOCH` per epoch whatever that
  option says, so a short run draws its training curve on the Live page's per-step axis too;
- at the end of a classifier run, the best checkpoint's validation binary accuracy (at the
  configured threshold) is compared with the all-absent baseline on the same tiles and labels
  (`config.json["val_all_absent_accuracy"]`); a checkpoint that does not beat it is flagged in
  status.json["flags"] (kind `olr.runs.store.BELOW_BASELINE`) and the console. The run still finishes.

Imported by `olr.training.fit` when training starts (this module imports Keras).
"""

from __future__ import annotations

import math
import time

import keras
import numpy as np

from olr import atomic
from olr.errors import OLRError
from olr.runs import store
from olr.runs.progress import Phase, Throughput, progress_line
from olr.runs.store import RunLayout
from olr.training.checkpoints import save_atomic
from olr.training.console import log
from olr.training.plan import Plan

#: an epoch logs at least this many training points, so a short run's curve shows (see the module docstring)
MIN_LOGS_PER_EPOCH = 4


def diverged_sentence(loss_name: str, value: float, epoch: int, step: int, learning_rate: float) -> str:
    """The one sentence a run whose loss stopped being a finite number fails with."""
    if loss_name == "loss":
        what, where = "training loss", f"at epoch {epoch}, step {step}"
    else:
        what, where = "validation loss", f"at the end of epoch {epoch} (step {step})"
    shown = "NaN" if np.isnan(value) else "infinite"
    return (
        f"The {what} became {shown} {where}, so the run stopped; "
        f"lower the learning rate (it was {learning_rate:g}) or check the dataset for extreme pixel values, "
        "then start a new run."
    )


def below_baseline_flag(best: dict, baseline: float, n_decisions: int, monitor: str, threshold: float) -> dict | None:
    """The `store.BELOW_BASELINE` flag when the best checkpoint's validation accuracy does not beat `baseline`.

    `best`: {"epoch", "binary_accuracy"} of the best checkpoint; `n_decisions`: validation tiles x labels
    (half a decision of slack absorbs float32 rounding: accuracies are counts over `n_decisions`).
    """
    accuracy = best.get("binary_accuracy")
    if accuracy is None or baseline is None or accuracy > baseline + 0.5 / max(n_decisions, 1):
        return None
    return {
        "kind": store.BELOW_BASELINE,
        "message": (
            f"The best checkpoint (epoch {best['epoch']}, chosen by {monitor}) has a validation accuracy of "
            f"{accuracy:.4f} at threshold {threshold:g}, which does not beat the {baseline:.4f} of predicting "
            "every label absent; train longer or with another learning rate, or choose the checkpoint by "
            "val_binary_accuracy."
        ),
    }


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

    def __init__(
        self,
        plan: Plan,
        save_model,
        validate,
        status,
        stop,
        *,
        epoch_steps: int,
        batch_size: int,
        val_samples: int,
        any_process=bool,
    ):
        """`validate()`: the validation metrics of the model as it is now ({"loss": ..., <metric>: ...});
        `epoch_steps`: training steps per epoch; `batch_size`: tiles (pairs) per step, all replicas together;
        `val_samples`: the tiles (pairs) one validation reads; `any_process(flag)`: whether any process
        training the run has `flag` (`olr.training.devices.Devices.any_process`): a stop request is agreed
        after every step, so all processes stop at the same one."""
        super().__init__()
        cfg = plan.cfg
        self.cfg = cfg
        self.files = RunLayout(plan.run_dir)
        self.save_model = save_model
        self.validate = validate
        self.status = status
        self.stop = stop
        self.epochs = cfg["epochs"]
        self.monitor = cfg["checkpoint_metric"]
        self.minimize = self.monitor.endswith("loss")
        self.patience = cfg["early_stopping_patience"]
        self.log_every = min(cfg["log_every_steps"], math.ceil(epoch_steps / MIN_LOGS_PER_EPOCH))
        self.throughput = Throughput(batch_size)
        self.trained_a_step = False  # in this process: until then the first step is compiling
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
        self.state["monitor"] = self.monitor  # an old run's state may name it as it was once called
        self.epoch = self.state["epoch"]
        self.any_process = any_process
        self.metrics_log = store.MetricsLog(plan.run_dir)
        status.progress(
            epochs=self.epochs,
            epoch_steps=epoch_steps,
            val_samples=val_samples,
            sample_unit="tiles" if cfg.get("kind") == "classifier" else "pairs",
        )

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
        self.throughput.restart()
        self.status.progress(epoch=epoch + 1, step=self.state["step"], epoch_step=0)
        if self.trained_a_step:
            self.status.phase(Phase.TRAINING)

    def _stop_if_diverged(self, values: dict) -> None:
        """OLRError (the run fails) when a loss in `values` ("loss", "val_loss") is NaN or infinite."""
        for name, value in values.items():
            if name.endswith("loss") and value is not None and not np.isfinite(float(value)):
                sentence = diverged_sentence(
                    name, float(value), self.epoch + 1, self.state["step"], self.cfg["learning_rate"]
                )
                log(sentence)
                raise OLRError(sentence)

    def on_train_batch_end(self, batch, logs=None):
        self.state["step"] += 1
        self.throughput.step()
        self.status.progress(
            epoch=self.epoch + 1,
            step=self.state["step"],
            epoch_step=batch + 1,
            steps_per_s=self.throughput.steps_per_s,
            samples_per_s=self.throughput.samples_per_s,
        )
        if not self.trained_a_step:
            self.trained_a_step = True
            self.status.phase(Phase.TRAINING)
        # the running mean over the epoch turns NaN/inf at the first step whose loss does (losses are >= 0)
        self._stop_if_diverged({"loss": (logs or {}).get("loss")})
        if self.state["step"] % self.log_every == 0:
            values = _clean(logs)
            self.write("train", values, "step")
            log(
                f"{progress_line(self.status.snapshot(), self.epochs)}: "
                + " ".join(f"{k} {v:.4f}" for k, v in values.items() if v is not None)
            )
        if self.any_process(self.stop.requested):
            self.stop.requested = True
            self.stop.signal_name = self.stop.signal_name or "a stop request to another process"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if self.stop.requested:
            log(f"{self.stop.signal_name}: stopping in epoch {epoch + 1} after step {self.state['step']}")
            save_atomic(self.save_model, self.files.last)
            self._write_state()
            return
        started = time.monotonic()
        self.status.phase(Phase.VALIDATING)
        raw_val = self.validate()
        self.status.phase(Phase.SAVING)
        self._stop_if_diverged({"val_loss": raw_val.get("loss")})
        val = _clean(raw_val)
        self.write("train", logs, "epoch")
        self.write("val", val, "epoch")
        logs.update({f"val_{k}": v for k, v in val.items()})
        improved = self._checkpoint(epoch, logs.get(self.monitor))
        if improved:
            self.state["best_val_binary_accuracy"] = val.get("binary_accuracy")
        if self.patience and self.state["wait"] >= self.patience:
            self.state["early_stopped"] = True
            self.model.stop_training = True
        self._write_state()
        self.status.progress(epoch_end_s=time.monotonic() - started)  # validation and checkpoints: for the time left
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
        self._flag_below_baseline()

    def _flag_below_baseline(self) -> None:
        """Flag (status.json, console) a classifier's best checkpoint that does not beat the all-absent baseline."""
        if self.cfg.get("kind") != "classifier" or self.state.get("best_epoch") is None:
            return
        best = {"epoch": self.state["best_epoch"], "binary_accuracy": self.state.get("best_val_binary_accuracy")}
        n_decisions = int(self.cfg.get("n_val") or 0) * len(self.cfg.get("labels", []))
        flag = below_baseline_flag(
            best, self.cfg.get("val_all_absent_accuracy"), n_decisions, self.monitor, self.cfg["threshold"]
        )
        if flag is not None:
            log(f"WARNING: {flag['message']}")
            self.status.progress(flags=[flag])

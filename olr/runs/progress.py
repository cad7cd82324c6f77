"""How far a run has got, in the words people read: the one place that turns a run's status into
its progress line, its fraction done, its estimated time left and, for a failed run, its reason.

The training process records measurements in status.json (written by `olr.training.lifecycle`'s
StatusFile, at most every heartbeat, phases at once):

- `phase`: what the process is doing now (`Phase`);
- `epoch` (1-based, the epoch under way or the last one completed), `epoch_step` and `epoch_steps`
  (the step within the epoch and the steps per epoch), `epochs` (how many the run trains);
- `steps_per_s`, `samples_per_s` and `sample_unit` ("tiles" or "pairs"): the training throughput
  over the last steps of the epoch under way (`Throughput`);
- `epoch_end_s`: how long the last epoch's end took (validation and checkpoints), `val_samples`: how many
  tiles or pairs a validation reads.

`describe(run)` reads them (the run list, the Live page, `olr runs`), `progress_line(status)` does
the same for the training process's own console. No TensorFlow, no Streamlit here.

A run is read through its own attributes (`state`, `status`, `config`, `console_tail`); its states are the
store's (`olr.runs.store.RunState`).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from olr.runs.store import FAILED_STATES, RunState


class Phase(StrEnum):
    """status.json["phase"]: what a live run's process is doing."""

    WAITING = "waiting for the device"
    STARTING = "starting"  # importing TensorFlow and setting up the device
    LOADING = "loading data"
    BUILDING = "building the model"
    COMPILING = "compiling"
    TRAINING = "training"
    VALIDATING = "validating"
    SAVING = "saving"
    EVALUATING = "evaluating"  # after training: the test split's evaluation and correlations


#: why a live run shows no new metrics now, in words (the Live page says it instead of a bare "waiting")
PHASE_SENTENCES = {
    Phase.WAITING: "waiting for the device: another run is training on it",
    Phase.STARTING: "starting TensorFlow and the device…",
    Phase.LOADING: "loading the data…",
    Phase.BUILDING: "building the model…",
    Phase.COMPILING: "compiling the model (the first steps take longer)…",
    Phase.TRAINING: "training…",
    Phase.VALIDATING: "validating…",
    Phase.SAVING: "saving the checkpoint…",
    Phase.EVALUATING: "evaluating on the test split…",
}
#: a queued run whose process has not said what it does yet: it is reading its options and dataset
STARTING_SENTENCE = "starting the training process (reading the options and the dataset)…"
#: forward passes only: a validation sample costs about this share of a training sample
VALIDATION_COST = 1 / 3
#: the steps the throughput is measured over
THROUGHPUT_WINDOW = 20


def duration_text(seconds: float) -> str:
    """A duration as m:ss, or h:mm:ss from an hour on."""
    h, rest = divmod(max(0, int(seconds)), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and value > 0
    return float(value) if ok else None


def _count(value: float) -> str:
    """8.1, 52, 1,234: about two significant figures below 100."""
    return f"{value:.2g}" if value < 10 else f"{value:,.0f}"


def seconds_left(status: dict, epochs: int | None) -> float | None:
    """Seconds until the last epoch ends at the current rate (validations included), or None when unknown.

    The steps left in this epoch and in every later one at `steps_per_s`, plus one epoch end (validation and
    checkpoints) per epoch not yet validated, each as long as the last one (before the first: the validation
    samples at `VALIDATION_COST` of the training throughput). Early stopping may end the run sooner.
    """
    rate, epoch_steps = _number(status.get("steps_per_s")), _int(status.get("epoch_steps"))
    epoch, epoch_step = _int(status.get("epoch")) or 0, _int(status.get("epoch_step")) or 0
    if not rate or not epoch_steps or not epochs or status.get("phase") == Phase.EVALUATING:
        return None
    steps = max(0, (epochs - epoch) * epoch_steps + (epoch_steps - epoch_step))
    epoch_ends = max(0, epochs - epoch) + (status.get("phase") in (Phase.TRAINING, Phase.COMPILING, Phase.VALIDATING))
    epoch_end_s = _number(status.get("epoch_end_s"))
    if epoch_end_s is None:
        samples, per_s = _int(status.get("val_samples")), _number(status.get("samples_per_s"))
        epoch_end_s = samples * VALIDATION_COST / per_s if samples and per_s else 0.0
    return steps / rate + epoch_ends * epoch_end_s


def fraction_done(status: dict, epochs: int | None) -> float | None:
    """The share of all training steps done (0..1), or None when the steps per epoch are not known yet."""
    epoch_steps = _int(status.get("epoch_steps"))
    epoch, epoch_step = _int(status.get("epoch")) or 0, _int(status.get("epoch_step")) or 0
    if not epoch_steps or not epochs:
        return None
    done = max(0, epoch - 1) * epoch_steps + min(epoch_step, epoch_steps)
    return min(1.0, done / (epochs * epoch_steps))


def progress_line(status: dict, epochs: int | None) -> str:
    """ "epoch 3/10 · step 45/120 · 8.1 steps/s (520 tiles/s) · about 2:10 left" (the parts known so far)."""
    epoch, step = _int(status.get("epoch")), _int(status.get("step"))
    epoch_step, epoch_steps = _int(status.get("epoch_step")), _int(status.get("epoch_steps"))
    if not epoch and not step:  # not trained yet: nothing to count
        return ""
    parts = []
    if epoch is not None:
        parts.append(f"epoch {epoch}" + (f"/{epochs}" if epochs else ""))
    if epoch_steps and epoch_step is not None:
        parts.append(f"step {epoch_step}/{epoch_steps}")
    elif step is not None:
        parts.append(f"step {step}")
    rate = _number(status.get("steps_per_s"))
    if rate:
        samples, unit = _number(status.get("samples_per_s")), status.get("sample_unit") or "samples"
        parts.append(f"{_count(rate)} steps/s" + (f" ({_count(samples)} {unit}/s)" if samples else ""))
    left = seconds_left(status, epochs)
    if left is not None:
        parts.append(f"about {duration_text(left)} left")
    return " · ".join(parts)


def failure_reason(run) -> str | None:
    """Why a failed or dead run ended, in one line: the last line of its error (a sentence, or a traceback's
    exception), else the last line of its console log; None for other runs."""
    if run.state not in FAILED_STATES:
        return None
    for text in (run.status.get("error"), "\n".join(run.console_tail(5))):
        lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
        if lines:
            return lines[-1].removeprefix("error: ")
    if run.state == RunState.DEAD:
        return "the process stopped reporting (it is gone or its heartbeat is stale) and left no log"
    return "the process ended without saying why and left no log"


@dataclass(frozen=True)
class RunProgress:
    """What the run list, the Live page and `olr runs` show about how far a run got."""

    #: "epoch 3/10 · step 45/120 · 8.1 steps/s (520 tiles/s) · about 2:10 left", or the phase before that
    text: str
    #: share of the training steps done (0..1), None before the process knows its steps per epoch
    fraction: float | None = None
    #: seconds left at the current rate (validations included), None when not known
    seconds_left: float | None = None
    #: what a live run's process is doing now, in words ("compiling the model…"); None for ended runs
    doing: str | None = None
    #: why a failed or dead run ended (one line)
    failure: str | None = None


def describe(run) -> RunProgress:
    """How far `run` (an `olr.runs.store.Run`) has got, in the words people read (see `RunProgress`)."""
    status = run.status
    epochs = _int(status.get("epochs")) or _int(run.config.get("epochs"))
    if run.state == RunState.QUEUED:
        doing = PHASE_SENTENCES[Phase.WAITING] if status.get("phase") == Phase.WAITING else STARTING_SENTENCE
        return RunProgress(text=doing, fraction=0.0 if epochs else None, doing=doing)
    line = progress_line(status, epochs)
    if run.state == RunState.RUNNING:
        phase = status.get("phase")
        doing = PHASE_SENTENCES.get(phase) if phase else "starting…"
        if phase not in (None, Phase.TRAINING):
            line = f"{line} · {doing}" if line else doing
        return RunProgress(
            text=line or "starting…",
            fraction=fraction_done(status, epochs),
            seconds_left=seconds_left(status, epochs),
            doing=doing,
        )
    ended = progress_line({k: status.get(k) for k in ("epoch", "step", "epoch_step", "epoch_steps")}, epochs)
    return RunProgress(
        text=ended or "never started training", fraction=fraction_done(status, epochs), failure=failure_reason(run)
    )


class Throughput:
    """Steps per second over the last `THROUGHPUT_WINDOW` steps of the epoch under way.

    Measured within an epoch only (`restart` at each epoch's start), so validation, checkpoints and the
    first step's compilation never count as training time; the last rate stays until two steps of the
    new epoch give a fresh one.
    """

    def __init__(self, batch_size: int, window: int = THROUGHPUT_WINDOW, clock=time.monotonic):
        self.batch_size = batch_size
        self._clock = clock
        self._times: deque[float] = deque(maxlen=window + 1)
        self.steps_per_s: float | None = None

    def restart(self) -> None:
        self._times.clear()

    def step(self) -> None:
        """One training step ended now."""
        self._times.append(self._clock())
        if len(self._times) >= 2 and self._times[-1] > self._times[0]:
            self.steps_per_s = (len(self._times) - 1) / (self._times[-1] - self._times[0])

    @property
    def samples_per_s(self) -> float | None:
        return None if self.steps_per_s is None else self.steps_per_s * self.batch_size

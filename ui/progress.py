"""A progress bar with counts for the library's `progress(done, total, message)` callbacks."""

from __future__ import annotations

import time

import streamlit as st


class ProgressBar:
    """`st.progress` showing "message: done/total unit (pct)"; updates at most ~10 times a second."""

    def __init__(self, title: str, unit: str = "", container=None):
        self.title = title
        self.unit = unit
        self._bar = (container or st).progress(0.0, text=f"{title}…")
        self._last = 0.0

    def update(self, done: int, total: int, message: str = "") -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        fraction = min(max(done / total, 0.0), 1.0) if total else 0.0
        unit = f" {self.unit}" if self.unit else ""
        self._bar.progress(fraction, text=f"{message or self.title}: {done:,}/{total:,}{unit} ({fraction:.0%})")

    def done(self) -> None:
        self._bar.empty()

"""Turning exceptions into messages: the app never shows a Python traceback.

An `OLRError` is the user's to fix, so its sentence is shown as is. Anything else is a
bug in OLR Studio: a short sentence, with the details folded away in an expander for a
bug report; in a read-only demo the sentence alone, and no server path in any message.
Streamlit's own control flow (`st.rerun`, `st.stop`) derives from
BaseException and passes through untouched.
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable

import streamlit as st

from olr import workspace
from olr.errors import OLRError


def public_text(text: str) -> str:
    """`text` with the workspace's server path replaced by "the workspace" in read-only mode.

    A read-only demo is shown to visitors: where it lives on the server is none of theirs.
    """
    if not workspace.is_readonly():
        return text
    for root in {str(workspace.home()), str(workspace.home().resolve())}:
        text = text.replace(root, "the workspace")
    return text


def show_exception(error: BaseException, what: str = "This page") -> None:
    """Render `error` as an error box (never `st.exception`).

    Read-only mode shows an unexpected error as one generic sentence: its details (a traceback,
    server paths) stay in the server log.
    """
    if isinstance(error, OLRError):
        st.error(public_text(str(error)), icon=":material/error:")
        return
    if workspace.is_readonly():
        logging.getLogger(__name__).error("%s failed", what, exc_info=error)
        st.error(
            f"{what} hit an unexpected problem and could not finish. Reload the page; if it happens again, "
            "tell whoever runs this demo.",
            icon=":material/bug_report:",
        )
        return
    st.error(
        f"{what} hit an unexpected problem ({type(error).__name__}) and could not finish. "
        "Reload the page; if it happens again, report it with the details below.",
        icon=":material/bug_report:",
    )
    with st.expander("Details for a bug report"):
        st.code("".join(traceback.format_exception(error)).strip(), language="text")


def guarded(what: str = "This page") -> Callable:
    """Decorator: run the function, showing any exception as a message instead of a traceback.

    Use on page bodies and on fragment functions (a fragment rerun runs outside the page body).
    """

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as error:
                show_exception(error, what)
                return None

        return wrapper

    return decorate

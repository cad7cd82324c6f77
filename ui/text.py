"""Text from files shown inside Markdown (captions, markdown, metric labels) as written.

Label names, run ids and messages come from datasets, mappings and run folders that anyone
may have written; Streamlit renders Markdown (links, emphasis, `:material/...:` icons,
`:red[...]` colours) in most text elements, so such text is escaped before it is embedded.
"""

from __future__ import annotations

import re

#: ASCII punctuation that CommonMark or Streamlit's own directives give a meaning
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=^&])")


def plain(text) -> str:
    """`text` escaped so Markdown shows it literally, on one line."""
    one_line = " ".join(str(text).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", one_line)


def plain_list(items) -> str:
    """Items joined with commas, each shown literally."""
    return ", ".join(plain(x) for x in items)

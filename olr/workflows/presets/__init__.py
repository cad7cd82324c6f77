"""Preset training settings of the workflows, as JSON files beside this module.

Each file maps an entry name to partial training options (`olr.training.options` names;
"kind": "siamese" in Siamese entries) holding only what differs from the schema defaults.
`load(name)` reads `<name>.json` and validates every entry with `options.resolve`.
"""

from __future__ import annotations

import json
from importlib import resources

from olr.errors import OLRError
from olr.training import options


def names() -> list[str]:
    """The preset files there are, without their .json suffix."""
    return sorted(p.name[: -len(".json")] for p in resources.files(__name__).iterdir() if p.name.endswith(".json"))


def load(name: str) -> dict[str, dict]:
    """The entries of the preset file `name`, each validated; OLRError with one sentence if one is not."""
    path = resources.files(__name__) / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OLRError(f"There is no preset file {name}.json; use one of {', '.join(names())}.") from None
    except json.JSONDecodeError as e:
        raise OLRError(f"The preset file {name}.json is not valid JSON ({e}); fix it.") from None
    if not isinstance(data, dict):
        raise OLRError(f"The preset file {name}.json must hold a JSON object of named settings.")
    return {entry: options.check_preset(settings, f"{name}.json:{entry}") for entry, settings in data.items()}

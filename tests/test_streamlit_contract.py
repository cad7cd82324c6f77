"""The one private Streamlit attribute the app relies on still exists and still means the same.

`ui/entry.py` switches off Streamlit's legacy `pages/` mode with
`PagesManager.uses_pages_directory` (Streamlit 1.67 has no public option for it: `st.navigation`
switches it off too, but only once it has run, which a deep link to a page never reaches).
When Streamlit renames or removes the attribute, these tests say so in one sentence instead
of the app silently losing its sidebar on deep links.
"""

from __future__ import annotations

import ast
import inspect
import re

import streamlit
from streamlit.testing.v1 import AppTest

from olr.workspace import REPO_ROOT

FLAG = "uses_pages_directory"
UPGRADE = (
    f"Streamlit {streamlit.__version__} changed PagesManager.{FLAG}, which ui/entry.py flips to keep deep links "
    "inside app.py's st.navigation; find its replacement in streamlit/runtime/pages_manager.py and "
    "streamlit/commands/navigation.py and update ui/entry.py."
)


def test_pages_manager_still_has_the_legacy_pages_flag():
    from streamlit.runtime import pages_manager

    assert hasattr(pages_manager.PagesManager, FLAG), UPGRADE
    assert "pages" in inspect.getsource(pages_manager.PagesManager.__init__), UPGRADE


def test_the_flag_still_selects_the_legacy_runner_and_navigation_still_clears_it():
    from streamlit.commands import navigation
    from streamlit.runtime.scriptrunner import script_runner

    assert re.search(rf"PagesManager\.{FLAG}\s*=\s*False", inspect.getsource(navigation.navigation)), UPGRADE
    assert re.search(rf"if PagesManager\.{FLAG}:\s*\n\s*_mpa_v1\(", inspect.getsource(script_runner)), UPGRADE


def test_the_flag_is_touched_in_exactly_one_place_of_the_app():
    sources = [*REPO_ROOT.glob("*.py"), *(p for d in ("ui", "pages", "olr") for p in (REPO_ROOT / d).rglob("*.py"))]
    users = sorted(str(p.relative_to(REPO_ROOT)) for p in sources if FLAG in p.read_text(encoding="utf-8"))
    assert users == ["ui/entry.py"], f"only ui/entry.py may use PagesManager.{FLAG}, found it in {users}"


def test_a_page_opened_first_still_runs_inside_the_app_navigation(monkeypatch):
    """A deep link before any st.navigation ran: the page hands over to app.py, whose sidebar renders."""
    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/evaluate.py")  # before the first run: the legacy pages/ mode resolves it by file name
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Evaluate" in [t.value for t in at.title]
    assert len(at.sidebar.children) > 0, "the page ran alone, without app.py's sidebar"
    from streamlit.runtime.pages_manager import PagesManager

    assert getattr(PagesManager, FLAG) is False, UPGRADE


def test_every_page_calls_ensure_entrypoint_before_rendering_anything():
    for path in sorted((REPO_ROOT / "pages").glob("*.py")):
        body = ast.parse(path.read_text(encoding="utf-8")).body
        calls = [n.value for n in body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)]
        assert calls and getattr(calls[0].func, "id", None) == "ensure_entrypoint", (
            f"{path.name} must call ensure_entrypoint() before its first other statement call"
        )


def test_apptest_still_scans_components_through_the_function_the_tests_cache():
    """tests/fixtures/pages.py keeps the first component scan's answer; it helps only while the scan is looked
    up in its module at each call."""
    from streamlit.components.v2 import component_manager

    source = inspect.getsource(component_manager.BidiComponentManager.discover_and_register_components)
    assert "from streamlit.components.v2.manifest_scanner import" in source, source
    assert "scan_component_manifests()" in source, source

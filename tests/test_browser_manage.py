"""Naming, finding and deleting runs in a real browser (headless Chromium against `streamlit run app.py`).

A throwaway copy of the session's classifier run `cls`, with a Siamese copy of `siam` depending on it, is
renamed, noted and tagged from the sidebar's "About this run", found by the search and the tag filter, and
deleted with confirmation: the dialog names the Siamese run that depends on it and needs the extra tick.
The shared runs `cls` and `siam` are never touched.
"""

from __future__ import annotations

import secrets
import shutil
import time

from olr import atomic
from olr.runs import annotations, manage, store
from olr.training import options
from tests.fixtures.browser import SCREENSHOTS
from tests.fixtures.runs import wait_for

NAME = "Throwaway baseline H2"


def settle(page, timeout: float = 90.0) -> None:
    """Wait until Streamlit has finished the run: no running indicator for a while."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        busy = page.locator('[data-testid="stStatusWidget"]').count()
        quiet = quiet + 1 if not busy else 0
        if quiet >= 3:
            return
        time.sleep(0.3)
    raise AssertionError("the page did not finish rendering")


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def throwaway_pair(models) -> tuple[str, str]:
    """Copies of `cls` and `siam` under new ids, the Siamese copy depending on the classifier copy."""
    token = secrets.token_hex(3)
    classifier, siamese = f"h2copy-cls-{token}", f"h2copy-siam-{token}"
    shutil.copytree(models / "cls", models / classifier)
    shutil.copytree(models / "siam", models / siamese)
    config = store.read_json(models / siamese / "config.json")
    atomic.write_json(models / siamese / "config.json", {**config, "classifier_run": classifier})
    return classifier, siamese


def search(sidebar, words: str) -> None:
    box = sidebar.get_by_label("Search runs and datasets", exact=True)
    box.fill(words)
    box.press("Enter")


def picked_run(sidebar) -> str:
    """What the sidebar's run picker shows (the combobox holds it as its value)."""
    return sidebar.get_by_role("combobox", name="Run", exact=True).input_value()


def test_a_run_is_named_found_and_deleted_with_its_dependency_named(app_server, browser_workspace, page):
    models = browser_workspace / "models"
    classifier, siamese = throwaway_pair(models)
    try:
        page.set_default_timeout(90_000)  # the machine may be busy: generous waits, never fixed sleeps
        page.goto(f"{app_server}/train")
        page.wait_for_selector('[data-testid="stSidebar"]')
        settle(page)
        sidebar = page.locator('[data-testid="stSidebar"]')

        # found by its id; the picker shows its readable title (its default name, told apart from `cls`'s)
        search(sidebar, classifier)
        title = annotations.run_titles(store.list_runs(models))[classifier]
        assert title.startswith(annotations.default_run_name(store.load_run(models / classifier)))
        wait_for(
            lambda: picked_run(sidebar) == f"{title} (finished)" and "1 of " in sidebar.inner_text(),
            60,
            "the copy picked by the search",
        )

        # named, noted and tagged from "About this run"
        sidebar.get_by_role("button", name="About this run").click()
        popover = page.locator('[data-testid="stPopoverBody"]')
        popover.get_by_label("Name", exact=True).fill(NAME)
        popover.get_by_label("Notes", exact=True).fill("copied from cls for the manage test")
        popover.get_by_label("Tags", exact=True).fill("h2tag, throwaway")
        screenshot(page, "manage-about-this-run")
        popover.get_by_role("button", name="Save").click()
        words = wait_for(
            lambda: annotations.read(models / classifier).name == NAME and annotations.read(models / classifier),
            60,
            "the words saved",
        )
        assert words.tags == ("h2tag", "throwaway") and words.notes.startswith("copied from cls")
        settle(page)
        page.keyboard.press("Escape")

        # found again by words of its name, and by its tag alone
        search(sidebar, "throwaway baseline")
        wait_for(lambda: picked_run(sidebar) == f"{NAME} (classifier, finished)", 60, "the renamed run found")
        search(sidebar, "")
        settle(page)
        sidebar.locator('[data-testid="stMultiSelect"]').click()
        page.get_by_role("option", name="h2tag").click()
        page.keyboard.press("Escape")
        wait_for(lambda: "1 of " in sidebar.inner_text() and NAME in picked_run(sidebar), 60, "the tag filter")
        settle(page)
        screenshot(page, "manage-found-by-tag")

        # a new run from its settings: the Train form filled with them
        sidebar.get_by_role("button", name="About this run").click()
        page.locator('[data-testid="stPopoverBody"]').get_by_role("button", name="New run from these settings").click()
        page.get_by_text("Filled from the settings of run").wait_for()
        settle(page)
        # the note shows in the first run after the switch; the run after it hands the values to the browser,
        # which on a busy machine can come after the page first looks settled
        width = page.get_by_label("Width", exact=True)
        wait_for(lambda: width.input_value() == "0.25", 30, "the run's width 0.25 in the form")
        assert page.get_by_label(options.OPTIONS["batch_size"].label, exact=True).input_value() == "16"
        assert page.get_by_label(options.OPTIONS["learning_rate"].label, exact=True).input_value() == "0.01"
        page.keyboard.press("Escape")  # the popover may have stayed open through the page switch
        screenshot(page, "manage-new-run-from-settings")

        # deleted with confirmation; the Siamese run that needs it is named and needs the extra tick
        sidebar.get_by_role("button", name="About this run").click()
        page.locator('[data-testid="stPopoverBody"]').get_by_role("button", name="Delete this run…").click()
        dialog = page.get_by_role("dialog").filter(has_text="Delete for good?")
        dialog.get_by_text("Siamese run(s) depend on this classifier").wait_for(timeout=60000)
        assert siamese in dialog.inner_text() and NAME in dialog.inner_text()
        delete = dialog.get_by_role("button", name="Delete")
        assert delete.is_disabled()
        dialog.get_by_text("I understand; delete it even so").click()
        wait_for(delete.is_enabled, 30, "the Delete button enabled by the tick")
        screenshot(page, "manage-delete-dialog")
        assert (models / classifier).is_dir()  # nothing deleted before the confirmation
        delete.click()
        wait_for(lambda: not (models / classifier).exists(), 60, "the run folder deleted")
        wait_for(lambda: not any((models / manage.TRASH).iterdir()), 30, "the trash emptied after the rename")
        page.get_by_text(f"Deleted the classifier run “{NAME}”").wait_for(timeout=60000)
        # the tag went with the run, so the filter is off and the picker shows another run
        wait_for(lambda: picked_run(sidebar) and NAME not in picked_run(sidebar), 60, "another run picked")
        assert NAME not in sidebar.inner_text() and "h2tag" not in sidebar.inner_text()
        assert (models / siamese).is_dir() and (models / "cls").is_dir() and (models / "siam").is_dir()
        settle(page)
        screenshot(page, "manage-deleted")
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        for run_id in (classifier, siamese):
            shutil.rmtree(models / run_id, ignore_errors=True)

"""Browser tests: Playwright (Python) driving Debian's Chromium, headless, against a real server on loopback.

Chromium comes from Debian (`apt-get install chromium`, which `make test` runs when it is missing); Playwright's
own browser download is never used. Every test gets a fresh browser context (its own IndexedDB and storage),
fails on any console error or uncaught page error, and leaves a screenshot in `test-output/<test name>/`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("PARLEY_CHROMIUM", "/usr/bin/chromium"))
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
# As the machine's own probe starts it: without the background-networking flags Chromium keeps trying hosts
# this closed network refuses.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]  # fmt: skip


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


class PageErrors(list):
    def check(self) -> None:
        assert not self, "browser console errors:\n" + "\n".join(self)


@pytest.fixture
def output_dir(request) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("::", 1)[-1])[:120]
    folder = OUTPUT / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page_errors() -> PageErrors:
    return PageErrors()


@pytest.fixture
def page(browser, output_dir: Path, page_errors: PageErrors, request) -> Iterator:
    """A page in a fresh context; console errors and page errors are collected and fail the test at the end
    (a test that expects one removes it from `page_errors`)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(60_000)
    p.on("console", lambda m: page_errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    p.on("pageerror", lambda e: page_errors.append(f"pageerror: {e}"))
    yield p
    try:
        p.screenshot(path=str(output_dir / "screenshot.png"), full_page=False)
    finally:
        context.close()
    page_errors.check()


def axe_violations(page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict]:
    """Run the bundled axe-core in the page; the violations of the given impacts."""
    # Not `add_script_tag(content=...)`: that adds an inline <script>, which the pages' CSP (script-src 'self')
    # refuses. Evaluated through the DevTools protocol, the source is not subject to the page's CSP.
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v.get("impact") in impacts]

"""The Space in a real browser: headless Chromium (Debian's) driven by Python playwright.

Screenshots go to ``test-artifacts/`` (git-ignored); with ``PHOTOSKETCH_SCREENSHOTS=docs`` they are
also written to ``docs/screenshot-photo2sketch.png`` and ``docs/screenshot-sketch2photo.png`` for
the README::

    PHOTOSKETCH_SCREENSHOTS=docs python -m pytest tests/test_browser.py
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("PHOTOSKETCH_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
DOCS = ROOT / "docs"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Chromium's built-in test camera (a moving pattern) and no permission prompt, for the live mode
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
]
TIMEOUT_MS = 120_000  # a shared 2-vCPU CI machine can be slow to sketch the first image

if not Path(CHROMIUM).is_file():
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium, as .ci/run does)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Python playwright is not installed (requirements-dev.txt)")

import app as space  # noqa: E402
from photosketch import hub  # noqa: E402
from photosketch.models import CompactGenerator  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        if not hub.available_models("sketch2photo"):
            # No trained sketch->photo model here: a tiny one so the tab runs (its output is noise).
            weights = tmp_path_factory.mktemp("weights")
            CompactGenerator(in_channels=1, out_channels=3, ngf=8, n_blocks=1, sample_size=32).save_pretrained(
                weights / "sketch2photo")
            mp.setattr(hub, "WEIGHTS_DIR", weights)
        demo = space.build_demo()
        _, local_url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=_free_port(),
                                      quiet=True, **space.launch_kwargs())
        try:
            yield local_url
        finally:
            demo.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, url):
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, permissions=["camera"])
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    # domcontentloaded, not networkidle: the page keeps a connection open and, offline, font
    # requests to the theme's CDN never settle.
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("#photo-button")
    yield page
    context.close()


def _screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    if os.environ.get("PHOTOSKETCH_SCREENSHOTS") == "docs":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS / f"{name}.png")


def _has_image(page, selector: str) -> bool:
    """An <img> inside ``selector`` that has finished loading with real pixels."""
    return page.eval_on_selector(
        selector, "el => { const i = el.querySelector('img'); return !!i && i.complete && i.naturalWidth > 0; }"
    )


def test_photo_to_sketch_in_the_browser(page):
    page.locator("#photo-input input[type=file]").set_input_files(str(ROOT / "examples" / "photo_astronaut.jpg"))
    page.wait_for_selector("#photo-input img")
    if hub.model_styles("photo2sketch"):  # the shipped model draws in styles: pick one by its preview
        page.wait_for_selector("#style-previews img")
        page.locator("#style-previews .thumbnail-item").first.click()  # the first preview: cufs
        page.wait_for_selector("#photo-style input[value=cufs][aria-checked=true]")
    page.click("#photo-button")
    page.wait_for_selector("#sketch-output img")
    page.wait_for_function("() => { const i = document.querySelector('#sketch-output img'); return i && i.complete && i.naturalWidth > 0; }")
    assert _has_image(page, "#sketch-output")
    page.wait_for_timeout(500)  # let the before/after slider render
    _screenshot(page, "screenshot-photo2sketch")


def test_sketch_to_photo_in_the_browser(page):
    page.get_by_role("tab", name="Sketch → Photo").click()
    canvas = page.locator("#sketchpad canvas").first
    canvas.wait_for()
    # Start from an example sketch (it becomes the canvas background), then draw over it.
    page.locator("#sketch-examples .gallery-item").last.click()
    page.wait_for_timeout(1000)  # the canvas resizes to the example and re-fits its zoom
    box = canvas.bounding_box()
    assert box and box["width"] > 50 and box["height"] > 50
    # A stroke across the middle of the sheet: mouse down, move, up.
    x0, y0 = box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.35
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(1, 6):  # few moves: every one repaints a software-rendered WebGL canvas
        page.mouse.move(x0 + i * 24, y0 + i * 15)
    page.mouse.up()
    page.wait_for_timeout(500)
    page.click("#sketch-button")
    page.wait_for_function("() => { const i = document.querySelector('#photo-output img'); return i && i.complete && i.naturalWidth > 0; }")
    assert _has_image(page, "#photo-output")
    _screenshot(page, "screenshot-sketch2photo")


def test_empty_sketch_shows_a_message(page):
    page.get_by_role("tab", name="Sketch → Photo").click()
    page.locator("#sketchpad canvas").first.wait_for()
    page.click("#sketch-button")
    page.get_by_text("Draw something first").first.wait_for()


def test_live_webcam_sketches_frames(page):
    page.get_by_text("Live webcam").click()
    page.get_by_text("Click to Access Webcam").click()
    page.locator("#webcam button[aria-label='capture photo']").click()  # starts streaming
    # A sketched frame arrives (frames keep replacing the <img>, so check inside one evaluation).
    page.wait_for_function("() => { const i = document.querySelector('#live-sketch img'); return i && i.complete && i.naturalWidth > 0; }")
    page.locator("#webcam").get_by_text("Stop").click()


def test_example_replaces_the_drawing(page):
    """Issue 16.6: draw, Generate, pick an example, Generate: the second result comes from the example."""
    page.get_by_role("tab", name="Sketch → Photo").click()
    canvas = page.locator("#sketchpad canvas").first
    canvas.wait_for()
    page.wait_for_timeout(1000)
    box = canvas.bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(1, 6):
        page.mouse.move(x0 + i * 30, y0 + i * 20)
    page.mouse.up()
    page.wait_for_timeout(500)
    src = "() => { const i = document.querySelector('#photo-output img'); return i && i.complete && i.naturalWidth > 0 ? i.src : null; }"
    page.click("#sketch-button")
    page.wait_for_function(src)
    first = page.evaluate(src)
    page.locator("#sketch-examples .gallery-item").first.click()
    page.wait_for_timeout(1500)
    page.click("#sketch-button")
    page.wait_for_function(f"() => {{ const s = ({src})(); return s && s !== {first!r}; }}")
    assert page.evaluate(src) != first  # results are stored by content hash: same input, same URL


def test_drawing_updates_the_photo_without_generate(page):
    """'Update while drawing' is on by default (one update fits app.LIVE_DRAW_BUDGET_MS): strokes alone give a photo."""
    page.get_by_role("tab", name="Sketch → Photo").click()
    canvas = page.locator("#sketchpad canvas").first
    canvas.wait_for()
    page.wait_for_timeout(1000)
    assert page.is_checked("#sketch-live input[type=checkbox]")
    box = canvas.bounding_box()
    for k in range(3):  # brows and a mouth: a few strokes, as people draw
        x0, y0 = box["x"] + box["width"] * (0.3 + 0.2 * (k % 2)), box["y"] + box["height"] * (0.3 + 0.25 * (k // 2))
        page.mouse.move(x0, y0)
        page.mouse.down()
        for i in range(1, 5):
            page.mouse.move(x0 + i * 12, y0 + (i % 2) * 4)
        page.mouse.up()
    page.wait_for_function("() => { const i = document.querySelector('#photo-output img'); return i && i.complete && i.naturalWidth > 0; }")


def test_brush_size_control(page):
    """The sketchpad's toolbar has a brush size slider (1-100 px), starting at the app's thin pencil line."""
    page.get_by_role("tab", name="Sketch → Photo").click()
    page.locator("#sketchpad canvas").first.wait_for()
    page.locator("#sketchpad button[aria-label='Brush Size']").click()
    size = page.locator("#sketchpad input[type=range]")
    size.wait_for()
    assert (size.input_value(), size.get_attribute("min"), size.get_attribute("max")) == (str(space.BRUSH_SIZE), "1", "100")
    size.fill("24")
    assert size.input_value() == "24"


def test_model_dropdown_fits_a_phone_screen(browser, url):
    """At phone width the longest model name stays clear of the dropdown's arrow (ellipsis, no overlap)."""
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(url, wait_until="domcontentloaded")
        page.wait_for_selector("#photo-model input")
        for elem in ("#photo-model", "#sketch-model"):
            if elem == "#sketch-model":
                page.get_by_role("tab", name="Sketch → Photo").click()
                page.wait_for_selector("#sketch-model input")
            box = page.eval_on_selector(elem, """el => {
                const input = el.querySelector('input'), icon = el.querySelector('.icon-wrap, svg');
                const r = input.getBoundingClientRect(), a = icon.getBoundingClientRect();
                return {input_right: r.right, icon_left: a.left, scroll: input.scrollWidth, client: input.clientWidth,
                        overflow: getComputedStyle(input).textOverflow};
            }""")
            assert box["input_right"] <= box["icon_left"] + 1, box
            assert box["scroll"] <= box["client"] or box["overflow"] == "ellipsis", box
        _screenshot(page, "phone-dropdown")
    finally:
        context.close()

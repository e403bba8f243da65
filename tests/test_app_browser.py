"""app_browser.py: what the server does for the in-browser live mode (the browser side is in test_browser.py)."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest

gr = pytest.importorskip("gradio")

import app as space  # noqa: E402
import app_browser  # noqa: E402
from photosketch.models import CompactGenerator  # noqa: E402
from tests.conftest import load_script  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _no_model(name):
    pytest.fail("no model should load")


def _components(demo) -> dict[str, dict]:
    return {c["props"]["elem_id"]: c for c in demo.config["components"] if c.get("props", {}).get("elem_id")}


@pytest.fixture
def browser_files(weights, tmp_path, monkeypatch):
    """A tiny student with its model.onnx in the shipped-weights folder, and stand-in onnxruntime-web files."""
    folder = weights / app_browser.BROWSER_MODEL
    CompactGenerator(ngf=4, n_blocks=1, norm="batch", sample_size=32).save_pretrained(folder)
    ort = tmp_path / "ort"
    ort.mkdir()
    for name in app_browser.ORT_FILES:
        (ort / name).write_text("// stand-in")
    monkeypatch.setattr(app_browser, "ORT_DIR", ort)
    return folder


def test_without_onnxruntime_web_the_block_is_a_note(weights, tmp_path, monkeypatch):
    monkeypatch.setattr(app_browser, "ORT_DIR", tmp_path / "nothing")
    CompactGenerator(ngf=4, n_blocks=1).save_pretrained(weights / app_browser.BROWSER_MODEL)
    needs = app_browser.missing()
    assert any("python scripts/fetch_ort_web.py" in n for n in needs)
    assert any("--onnx_only" in n for n in needs)  # the student is there, its model.onnx is not
    components = _components(space.build_demo(space.SketchApp(loader=_no_model)))
    assert "browser-live" not in components
    note = components["browser-live-missing"]["props"]["value"]
    assert "fetch_ort_web.py" in note and "server-side live mode" in note
    assert "webcam" in components  # the server-side live mode stays


def test_a_model_the_browser_cannot_feed_is_refused(weights, browser_files):
    CompactGenerator(in_channels=1, out_channels=3, ngf=4, n_blocks=1).save_pretrained(browser_files)  # sketch -> photo
    assert any("not an RGB -> grey model (in, out: (1, 3))" in n for n in app_browser.missing())


def test_a_styled_student_gets_its_styles_and_the_default(browser_files):
    # browser_live.js feeds a style-conditioned model.onnx its "style" input: the picker's style, one-hot, from the
    # style names here (test_browser checks it in Chromium), else the pipeline's default style.
    CompactGenerator(ngf=4, n_blocks=1, norm="batch", sample_size=32, styles=["cufs", "fs2k-1", "fs2k-2"]
                     ).save_pretrained(browser_files)
    (browser_files / "model.onnx").write_bytes(b"onnx")
    assert app_browser.missing() == []
    config = app_browser.browser_config()
    assert config["style"] == "fs2k-2" and config["style_weights"] == [0.0, 0.0, 1.0]
    assert config["styles"] == ["cufs", "fs2k-1", "fs2k-2"]
    assert "feeds.style" in (app_browser.STATIC_DIR / "browser_live.js").read_text()
    block = _components(space.build_demo(space.SketchApp(loader=_no_model)))["browser-live"]
    assert "<code>photo2sketch-fast</code> (in the style picked above) runs in this browser" in block["props"]["value"]


def test_the_block_carries_the_model_layout(browser_files):
    (browser_files / "model.onnx").write_bytes(b"onnx")
    assert app_browser.missing() == []
    block = _components(space.build_demo(space.SketchApp(loader=_no_model)))["browser-live"]
    config = block["props"]["props"]["config"]
    assert config["size"] == 32 and config["style"] is None and config["style_weights"] is None is config["styles"]  # no styles
    assert config["model"].startswith("gradio_api/file=") and "/photo2sketch-fast/model.onnx?v=" in config["model"]
    assert config["ort"].endswith("/ort/") and "browser_live.js?v=" in config["module"]
    assert "ps-start" in block["props"]["value"] and "m.mount(element, cfg)" in block["props"]["js_on_load"]
    assert "<code>photo2sketch-fast</code> runs in this browser" in block["props"]["value"]


@pytest.fixture
def server(browser_files):
    load_script("scripts/ship_model.py").write_onnx(browser_files)  # a real model.onnx
    with gr.Blocks() as demo:
        app_browser.live_block()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=_free_port(), quiet=True,
                            **space.launch_kwargs())
    try:
        yield url
    finally:
        demo.close()


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_the_server_isolates_the_page_and_serves_only_the_browser_files(server, browser_files):
    status, headers, _ = _get(server)
    assert status == 200
    assert headers["cross-origin-opener-policy"] == "same-origin"  # WASM threads need an isolated page
    assert headers["cross-origin-embedder-policy"] == "credentialless"
    config = app_browser.browser_config()
    status, headers, body = _get(server + config["module"])
    assert status == 200 and "javascript" in headers["content-type"] and b"export function mount" in body
    assert headers["cross-origin-embedder-policy"] == "credentialless"  # ORT's worker scripts need it too
    status, _, body = _get(server + config["model"])
    assert status == 200 and body == (browser_files / "model.onnx").read_bytes()
    status, headers, _ = _get(server + config["ort"] + "ort-wasm-simd-threaded.wasm")
    assert status == 200 and headers["content-type"] == "application/wasm"
    # Nothing else of the checkout or the weights folder.
    for path in (app_browser.ROOT / "app.py", browser_files / "model.safetensors"):
        status, _, _ = _get(server + "gradio_api/file=" + path.as_posix())
        assert status == 403, path

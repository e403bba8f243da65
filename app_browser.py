"""The Space's "live in your browser" mode: the real-time student sketches webcam frames in the visitor's browser.

The browser downloads ``weights/photo2sketch-fast/model.onnx`` (written by ``scripts/ship_model.py --onnx``)
and onnxruntime-web (``app_static/ort/``, fetched from npm at a pinned version by
``scripts/fetch_ort_web.py``), both from this server: no CDN, so it works offline. From then on every
frame stays on the visitor's device and the server does nothing per frame, so the mode scales with the
number of visitors (the server-side live mode in ``app.py`` costs ~20 frames/s of the Space's 2 vCPUs per
visitor). The code that runs in the browser is ``app_static/browser_live.js`` (camera -> centre crop ->
PIL-identical resize in ``app_static/pil_resize.js`` -> onnxruntime-web -> canvas).

WebAssembly threads need a cross-origin isolated page, so :func:`launch_kwargs` adds a middleware that
sends ``Cross-Origin-Opener-Policy: same-origin`` and ``Cross-Origin-Embedder-Policy: credentialless``
with every response; without isolation (a browser without ``credentialless``, or an embedding page that
is not isolated) the mode runs on one thread.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from photosketch.hub import MODELS

ROOT = Path(__file__).resolve().parent
STATIC_DIR = ROOT / "app_static"
#: onnxruntime-web's files, fetched by scripts/fetch_ort_web.py (git-ignored).
ORT_DIR = STATIC_DIR / "ort"
#: The onnxruntime-web release the app is tested with (npm).
ORT_WEB_VERSION = "1.30.0"
#: What the browser loads: the WASM-only build (ES module + its threaded SIMD runtime, ~14 MB) and, only where
#: the browser has a hardware WebGPU adapter, the WebGPU build (~27 MB).
ORT_FILES = (
    "ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm",
    "ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm",
)
#: The registry model the browser runs.
BROWSER_MODEL = "photo2sketch-fast"
#: Headers that make the page cross-origin isolated (SharedArrayBuffer, hence WASM threads). "credentialless"
#: rather than "require-corp": cross-origin subresources (the theme's web fonts) still load, without cookies.
ISOLATION_HEADERS = {
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "credentialless",
}


def model_folder() -> Path:
    """The shipped folder of :data:`BROWSER_MODEL` (``weights/photo2sketch-fast``)."""
    return MODELS[BROWSER_MODEL].local_dir


def model_file() -> Path:
    return model_folder() / "model.onnx"


def missing() -> list[str]:
    """What the browser mode lacks on this server, as instructions; empty when it can run."""
    needs = []
    absent = [name for name in ORT_FILES if not (ORT_DIR / name).is_file()]
    if absent:
        needs.append(f"onnxruntime-web {ORT_WEB_VERSION} is not installed (`python scripts/fetch_ort_web.py` "
                     f"puts it in `app_static/ort/`)")
    config_file = model_folder() / "config.json"
    if not config_file.is_file():
        needs.append(f"the `{BROWSER_MODEL}` model is not installed in `{model_folder()}`")
        return needs
    config = json.loads(config_file.read_text())
    layout = (config.get("in_channels", 3), config.get("out_channels", 1))
    if layout != (3, 1):
        # browser_live.js feeds one RGB input (and, for a styled model, the style weights) and reads one grey channel.
        needs.append(f"`{BROWSER_MODEL}` is not an RGB -> grey model (in, out: {layout})")
    elif not model_file().is_file():
        needs.append(f"`{model_file().relative_to(ROOT) if model_file().is_relative_to(ROOT) else model_file()}` "
                     f"is missing (`python scripts/ship_model.py --name {BROWSER_MODEL} --onnx_only` writes it)")
    return needs


def _url(path: Path) -> str:
    """Where gradio serves ``path`` (an allowed path), relative to the app's root."""
    return "gradio_api/file=" + quote(path.resolve().as_posix())


def _version(path: Path) -> str:
    """A short content hash, so browsers fetch a changed file instead of a cached one."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def browser_config() -> dict[str, Any]:
    """What ``browser_live.js`` needs: URLs (relative to the app's root), the working size (the pipeline's:
    the model's ``sample_size``, else ``photosketch.pipeline.DEFAULT_SIZE``) and, for a style-conditioned
    model, its style names and the weights it is fed when the app's style picker names none of them (one-hot:
    the style the pipeline draws by default) with that style's name; browser_live.js follows the picker."""
    from photosketch.pipeline import DEFAULT_SIZE, default_style

    config = json.loads((model_folder() / "config.json").read_text())
    styles = list(config.get("styles") or [])
    style = default_style(styles)
    return {
        "module": _url(STATIC_DIR / "browser_live.js") + "?v=" + _version(STATIC_DIR / "browser_live.js"),
        "model": _url(model_file()) + "?v=" + _version(model_file()),
        "ort": _url(ORT_DIR) + "/",
        "size": int(config.get("sample_size") or DEFAULT_SIZE),
        "style": style,
        "styles": styles or None,
        "style_weights": [float(s == style) for s in styles] if styles else None,
    }


#: Runs when the block renders: resolve the URLs against the app's root and start browser_live.js.
_JS_ON_LOAD = """
const root = (window.gradio_config && window.gradio_config.root) || "";
const base = new URL(root ? root.replace(/\\/?$/, "/") : "./", location.href).href;
const cfg = Object.assign({}, props.config);
for (const key of ["module", "model", "ort"]) cfg[key] = new URL(cfg[key], base).href;
import(cfg.module).then((m) => m.mount(element, cfg)).catch((err) => {
  console.error("photosketch browser mode:", err);
  element.querySelector(".ps-status").textContent =
    "This browser cannot run the in-browser mode (" + (err && err.message) + "); use the server mode below.";
});
"""


def live_block():
    """The in-browser live mode for the Photo → Sketch tab, or a note saying why it is unavailable here."""
    import gradio as gr

    needs = missing()
    if needs:
        return gr.Markdown("**Live in your browser** is not available on this server: " + "; ".join(needs)
                           + ". The server-side live mode below works without it.", elem_id="browser-live-missing")
    config = browser_config()
    # A style-conditioned student draws the style picked above, like the server modes.
    style = " (in the style picked above)" if config["style"] else ""
    return gr.HTML(
        (STATIC_DIR / "browser_live.html").read_text().replace("{model}", BROWSER_MODEL).replace("{style}", style),
        css_template=(STATIC_DIR / "browser_live.css").read_text(),
        js_on_load=_JS_ON_LOAD,
        elem_id="browser-live",
        config=config,
    )


class CrossOriginIsolation:
    """ASGI middleware adding :data:`ISOLATION_HEADERS` to every HTTP response (unless the app set them)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_isolated(message) -> None:
            if message["type"] == "http.response.start":
                from starlette.datastructures import MutableHeaders

                headers = MutableHeaders(scope=message)
                for name, value in ISOLATION_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_isolated)


def launch_kwargs() -> dict[str, Any]:
    """``demo.launch`` settings for the browser mode: serve its files, and isolate the page (WASM threads)."""
    from starlette.middleware import Middleware

    return {
        # Only these: the JS/CSS/HTML in app_static/, onnxruntime-web, and the one ONNX file.
        "allowed_paths": [str(STATIC_DIR), str(ORT_DIR), str(model_file())],
        "app_kwargs": {"middleware": [Middleware(CrossOriginIsolation)]},
    }

// "Live in your browser": the real-time student (weights/photo2sketch-fast/model.onnx) sketches webcam frames
// with onnxruntime-web, inside the visitor's browser. No frame leaves the device and the server does no work.
//
// A frame goes through exactly what photosketch's Python pipeline does to a picture, on a fixed centre crop:
//   the largest centred square of the frame (no face detection: a webcam sitter is roughly centred)
//   -> PIL-identical resize to the model's working size (pil_resize.js: Lanczos with reducing_gap=3 when
//      shrinking, bicubic when enlarging, as PhotoSketchPipeline._prepare)
//   -> float32 CHW in [-1, 1] (x / 127.5 - 1, photosketch.image.uint8_to_tensor)
//   -> the ONNX graph (the folded network; the working size is a multiple of its stride, so no padding)
//   -> round((clamp(y, -1, 1) + 1) * 127.5) (photosketch.image.tensor_to_pil)
// The snapshot is then resized to the crop's size (bicubic up / Lanczos down, PhotoSketchPipeline._finish), so
// it is the image `PhotoSketchPipeline(model)(crop)` returns. tests/test_browser.py checks both against Python.
//
// Engines, tried in this order under "auto": WebGPU (when the browser has a hardware adapter), WASM SIMD with
// threads (needs cross-origin isolation: the app sends COOP/COEP headers), WASM SIMD on one thread.

import { resize } from "./pil_resize.js";

const ENGINE_LABELS = { webgpu: "WebGPU", wasm: "WASM SIMD, threads", "wasm-1": "WASM SIMD, 1 thread" };
// onnxruntime-web's own default thread count: half the cores, at most 4 (more does not help a model this small).
const THREADS = Math.min(4, Math.ceil((navigator.hardwareConcurrency || 1) / 2));
const REDUCING_GAP = 3.0; // photosketch/pipeline.py: img.resize(work, LANCZOS, reducing_gap=3.0)
const FPS_WINDOW_MS = 2000;

// uint8 -> [-1, 1] in float32 steps, as torch does it: pixels.float().div_(127.5).sub_(1.0)
const TO_UNIT = new Float32Array(256);
for (let v = 0; v < 256; v++) TO_UNIT[v] = Math.fround(Math.fround(v / 127.5) - 1.0);

function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Interleaved RGB uint8 pixels (size x size x 3) -> float32 CHW tensor data in [-1, 1]. */
export function toTensorData(pixels, size) {
  const n = size * size;
  const data = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) {
    data[i] = TO_UNIT[pixels[3 * i]];
    data[n + i] = TO_UNIT[pixels[3 * i + 1]];
    data[2 * n + i] = TO_UNIT[pixels[3 * i + 2]];
  }
  return data;
}

/** A 1-channel model output in [-1, 1] -> uint8 (tensor_to_pil: clamp, +1, *127.5, round half to even). */
export function toPixels(output) {
  const out = new Uint8Array(output.length);
  for (let i = 0; i < output.length; i++) {
    const y = Math.min(1, Math.max(-1, output[i]));
    out[i] = roundHalfEven(Math.fround(Math.fround(y + 1) * 127.5));
  }
  return out;
}

/** The largest centred square of a w x h frame: [left, top, side]. */
export function centreSquare(w, h) {
  const side = Math.min(w, h);
  return [Math.floor((w - side) / 2), Math.floor((h - side) / 2), side];
}

async function hardwareWebGPU() {
  if (!("gpu" in navigator)) return false;
  try {
    const adapter = await navigator.gpu.requestAdapter();
    // A fallback adapter is a software rasteriser: far slower than WASM for this model.
    return !!adapter && !(adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter);
  } catch {
    return false;
  }
}

/** The student (RGB in, one grey channel out: app_browser.py checks the config) on one onnxruntime-web engine. */
export class Sketcher {
  constructor(ort, session, engine, threads, cfg) {
    Object.assign(this, { ort, session, engine, threads, cfg });
    this.label = engine === "wasm" ? `WASM SIMD, ${threads} threads` : ENGINE_LABELS[engine];
    this.work = document.createElement("canvas");
    this.workCtx = this.work.getContext("2d", { willReadFrequently: true });
  }

  /** Engines to try for a choice ("auto" or one engine), best first. */
  static async order(choice) {
    if (choice !== "auto") return [choice];
    const engines = [];
    if (await hardwareWebGPU()) engines.push("webgpu");
    if (self.crossOriginIsolated && THREADS > 1) engines.push("wasm");
    engines.push("wasm-1");
    return engines;
  }

  /** The first engine of `choice` that loads the model and runs it once; errors of the others are logged. */
  static async create(cfg, choice = "auto", onStatus = () => {}) {
    const model = await fetchModel(cfg.model);
    const failures = [];
    for (const engine of await Sketcher.order(choice)) {
      try {
        onStatus(`Starting ${ENGINE_LABELS[engine]}…`);
        const sketcher = await Sketcher.load(cfg, engine, model);
        await sketcher.runTensor(new Float32Array(3 * cfg.size * cfg.size)); // warm-up, and proof it runs
        return sketcher;
      } catch (err) {
        console.warn(`photosketch: ${engine} unavailable:`, err);
        failures.push(`${ENGINE_LABELS[engine]}: ${err?.message ?? err}`);
      }
    }
    throw new Error(`no engine could run the model (${failures.join("; ")})`);
  }

  static async load(cfg, engine, model) {
    if (engine === "wasm" && !self.crossOriginIsolated) {
      throw new Error("WASM threads need a cross-origin isolated page (COOP/COEP headers)");
    }
    // Each engine gets its own module instance: a WASM runtime's thread count is fixed when it first starts.
    const file = engine === "webgpu" ? "ort.webgpu.min.mjs" : "ort.wasm.min.mjs";
    const ort = await import(`${cfg.ort}${file}?engine=${engine}`);
    ort.env.logLevel = "error";
    ort.env.wasm.wasmPaths = cfg.ort;
    ort.env.wasm.proxy = false;
    const threads = engine === "wasm" ? Math.max(2, THREADS) : 1;
    ort.env.wasm.numThreads = threads;
    const session = await ort.InferenceSession.create(model, {
      executionProviders: [engine === "webgpu" ? "webgpu" : "wasm"],
      graphOptimizationLevel: "all",
    });
    return new Sketcher(ort, session, engine, threads, cfg);
  }

  async runTensor(data) {
    const { size } = this.cfg;
    const feeds = { input: new this.ort.Tensor("float32", data, [1, 3, size, size]) };
    // A style-conditioned student takes its style weights (one-hot) as a second input: the style picked in the
    // Photo -> Sketch tab's style picker, read on every frame so a change shows at once, else the default.
    const weights = this.styleWeights();
    if (weights && this.session.inputNames.includes("style")) {
      feeds.style = new this.ort.Tensor("float32", Float32Array.from(weights), [1, weights.length]);
    }
    const results = await this.session.run(feeds);
    const output = results.output ?? results[this.session.outputNames[0]];
    const values = output.data;
    if (typeof output.dispose === "function") output.dispose();
    return values;
  }

  /** One-hot weights for the style picker's choice (#photo-style) when the student draws it, else the default's. */
  styleWeights() {
    const { styles, style_weights: fallback } = this.cfg;
    const picked = document.querySelector("#photo-style input:checked")?.value;
    return styles && styles.includes(picked) ? styles.map((s) => (s === picked ? 1 : 0)) : fallback;
  }

  /** Sketch the centre square of `source` (a video, image, bitmap or canvas of `w` x `h` pixels). */
  async sketch(source, w, h) {
    const { size } = this.cfg;
    const [left, top, side] = centreSquare(w, h);
    if (this.work.width !== side) this.work.width = this.work.height = side;
    const ctx = this.workCtx;
    ctx.fillStyle = "#fff"; // transparency on white, as photosketch.image.load_image
    ctx.fillRect(0, 0, side, side);
    ctx.drawImage(source, left, top, side, side, 0, 0, side, side); // a pixel-for-pixel copy: no scaling here
    const rgba = ctx.getImageData(0, 0, side, side).data;
    const shrink = side > size;
    const pixels = resize(rgba, side, side, 4, 3, size, size, shrink ? "lanczos" : "bicubic", shrink ? REDUCING_GAP : null);
    const output = await this.runTensor(toTensorData(pixels, size));
    return { pixels: toPixels(output), side };
  }
}

async function fetchModel(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`the model could not be downloaded (HTTP ${response.status})`);
  return new Uint8Array(await response.arrayBuffer());
}

/** A grey image (uint8, w x h) -> RGBA ImageData. */
function greyImageData(grey, w, h) {
  const image = new ImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = grey[i];
    image.data[4 * i + 3] = 255;
  }
  return image;
}

/** Wire the markup of app_static/browser_live.html inside `element`; `cfg` comes from app_browser.py. */
export function mount(element, cfg) {
  const $ = (selector) => element.querySelector(selector);
  const video = $(".ps-video"), out = $(".ps-out"), fpsText = $(".ps-fps"), statusText = $(".ps-status");
  const startButton = $(".ps-start"), stopButton = $(".ps-stop"), snapButton = $(".ps-snap"), engineSelect = $(".ps-engine");
  out.width = out.height = cfg.size;
  const outCtx = out.getContext("2d");

  let sketcher = null, sketcherChoice = null, stream = null, running = false, busy = false;
  let last = null; // the latest sketch: { pixels, side }
  let frames = 0, stamps = [], costs = [];

  const status = (text) => { statusText.textContent = text; };
  const setRunning = (on) => {
    running = on;
    startButton.disabled = on;
    stopButton.disabled = !on;
    engineSelect.disabled = on;
  };

  async function ensureSketcher() {
    const choice = engineSelect.value;
    if (!sketcher || sketcherChoice !== choice) {
      status("Loading onnxruntime-web and the model (once)…");
      if (sketcher) await sketcher.session.release();
      sketcher = null;
      sketcher = await Sketcher.create(cfg, choice, status);
      sketcherChoice = choice;
    }
    return sketcher;
  }

  function show(result) {
    last = result;
    outCtx.putImageData(greyImageData(result.pixels, cfg.size, cfg.size), 0, 0);
    snapButton.disabled = false;
  }

  function readout() {
    const now = performance.now();
    stamps = stamps.filter((t) => now - t <= FPS_WINDOW_MS);
    const span = stamps.length > 1 ? stamps[stamps.length - 1] - stamps[0] : 0;
    const fps = span > 0 ? ((stamps.length - 1) * 1000) / span : 0;
    const ms = costs.length ? costs.reduce((a, b) => a + b, 0) / costs.length : 0;
    const text = `${fps.toFixed(1)} frames/s · ${ms.toFixed(1)} ms a frame · ${sketcher ? sketcher.label : ""}`;
    fpsText.textContent = text;
    return { fps, ms, text };
  }

  async function tick() {
    if (!running) return;
    if (!busy && video.readyState >= 2 && video.videoWidth > 0) {
      busy = true;
      try {
        const started = performance.now();
        show(await sketcher.sketch(video, video.videoWidth, video.videoHeight));
        costs.push(performance.now() - started);
        if (costs.length > 30) costs.shift();
        stamps.push(performance.now());
        frames += 1;
        readout();
      } catch (err) {
        status(`Stopped: ${err?.message ?? err}. The server mode below still works.`);
        stop();
        return;
      } finally {
        busy = false;
      }
    }
    // Next camera frame (requestVideoFrameCallback), else the next paint.
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(tick);
    else requestAnimationFrame(tick);
  }

  async function start() {
    if (running) return;
    if (!navigator.mediaDevices?.getUserMedia) {
      status("This page cannot use the camera (browsers allow it on https:// and http://localhost only).");
      return;
    }
    setRunning(true);
    try {
      await ensureSketcher();
      status("Waiting for the camera…");
      // 320x240, as the server mode (app.LIVE_SIDE): the model works at its sample_size (256 px), close to the 240 px
      // crop, and a 240 px crop costs a quarter of a 480 px one to read back and resize (the camera scales natively; from there on, every step is the pipeline's).
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 320 }, height: { ideal: 240 } }, audio: false });
      video.srcObject = stream;
      await video.play();
      frames = 0; stamps = []; costs = [];
      status(`Running on ${sketcher.label}${self.crossOriginIsolated ? "" : " (no cross-origin isolation: one thread)"}. Frames stay on this device.`);
      tick();
    } catch (err) {
      const denied = err?.name === "NotAllowedError";
      status(denied ? "Camera permission was refused." : `Could not start: ${err?.message ?? err}. Use the server mode below.`);
      stop();
    }
  }

  function stop() {
    setRunning(false);
    if (stream) stream.getTracks().forEach((track) => track.stop());
    stream = null;
    video.srcObject = null;
  }

  /** The latest sketch at the crop's size (what PhotoSketchPipeline returns for the crop) as a canvas. */
  function snapshotCanvas() {
    if (!last) throw new Error("nothing sketched yet");
    const { side } = last;
    const grey = side === cfg.size ? last.pixels
      : resize(last.pixels, cfg.size, cfg.size, 1, 1, side, side, side > cfg.size ? "bicubic" : "lanczos");
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = side;
    canvas.getContext("2d").putImageData(greyImageData(grey, side, side), 0, 0);
    return canvas;
  }

  function snapshot() {
    snapshotCanvas().toBlob((blob) => {
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = `photosketch-${new Date().toISOString().replace(/[:.]/g, "-")}.png`;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    }, "image/png");
  }

  /** Sketch one picture (a Blob, e.g. a PNG) the same way as a camera frame; shows it and returns the pixels. */
  async function sketchImage(blob) {
    const bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    const s = await ensureSketcher();
    const result = await s.sketch(bitmap, bitmap.width, bitmap.height);
    show(result);
    return { size: cfg.size, side: result.side, pixels: Array.from(result.pixels), engine: s.engine, label: s.label };
  }

  startButton.addEventListener("click", start);
  stopButton.addEventListener("click", stop);
  snapButton.addEventListener("click", snapshot);
  for (const [value, label] of Object.entries({ auto: "auto", ...ENGINE_LABELS })) {
    engineSelect.add(new Option(label, value));
  }
  startButton.disabled = false;
  status(`Ready. Frames stay on this device${self.crossOriginIsolated ? "" : " (this page is not cross-origin isolated: WASM runs on one thread)"}.`);

  // For scripts and tests, on the .ps-live node: the same code paths the buttons use.
  const api = {
    start, stop, snapshot, sketchImage, readout,
    state: () => ({
      running, frames, engine: sketcher?.engine ?? null, label: sketcher?.label ?? null,
      camera: [video.videoWidth, video.videoHeight], ...readout(),
    }),
  };
  $(".ps-live").photosketch = api;
  return api;
}

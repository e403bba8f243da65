"""Load test of the Space: concurrent ``/photo_to_sketch`` calls and a burst of bad uploads.

    python benchmarks/load.py                        # starts `python app.py` on a free local port
    python benchmarks/load.py --requests 64 --model pencil --size 1024x768
    python benchmarks/load.py --url http://127.0.0.1:7860/ --pid 12345   # a running server (RSS needs --pid)

Phases (each one a burst submitted at once from a thread pool of ``gradio_client`` jobs):

1. ``good``: ``--requests`` photo→sketch calls on a ``--size`` synthetic face photo;
2. ``bad``: ``--bad`` uploads that must be refused with a message (text renamed .png, truncated
   PNG, 1x1 image, a PNG whose header claims 72 MP), in rotation;
3. ``after``: a few good calls, to show the server still answers.

It prints a Markdown table: per phase, requests, answered with an image, answered with an error
message (expected for ``bad`` only), queue-full rejections, other failures, and p50 / p95 / max
latency (submit to answer); then the server's resident memory (RSS, with child processes) after a
warm-up request, after the bursts and after a few seconds of rest. Expectation: every good
request answered with 0 errors, every bad one answered with an error, memory back near the start.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------------
# inputs


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG claiming ``width`` x ``height`` with almost no data (must be refused from its header)."""
    buf = io.BytesIO()
    Image.new("L", (8, 8), 255).save(buf, format="PNG")
    raw = bytearray(buf.getvalue())
    ihdr = raw[16:29]
    ihdr[0:8] = struct.pack(">II", width, height)
    raw[16:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    return bytes(raw)


def make_inputs(folder: Path, size: tuple[int, int]) -> tuple[Path, list[Path]]:
    """The good photo (an example face scaled to ``size``) and the bad uploads."""
    face = ROOT / "examples" / "face_1.png"
    if face.is_file():
        photo = Image.open(face).convert("RGB").resize(size, Image.Resampling.BICUBIC)
    else:  # a checkout without examples/: any picture will do for timing
        photo = Image.radial_gradient("L").convert("RGB").resize(size)
    good = folder / "photo.png"
    photo.save(good)
    text = folder / "notes.png"
    text.write_text("this is not an image\n")
    truncated = folder / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    tiny = folder / "tiny.png"
    Image.new("RGB", (1, 1)).save(tiny)
    bomb = folder / "bomb.png"
    bomb.write_bytes(_png_header_only(12_000, 6_000))
    return good, [text, truncated, tiny, bomb]


# --------------------------------------------------------------------------------------------
# server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}:\n{proc.stderr.read()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"app.py did not open port {port} within {timeout:.0f} s")


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20
    except psutil.Error:
        return None


# --------------------------------------------------------------------------------------------
# load


@dataclass
class Phase:
    name: str
    requests: int = 0
    ok: int = 0
    app_errors: int = 0
    rejected: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    messages: set[str] = field(default_factory=set)

    def row(self) -> str:
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) if lat else float("nan")
        p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))] if lat else float("nan")
        top = lat[-1] if lat else float("nan")
        return (f"| {self.name} | {self.requests} | {self.ok} | {self.app_errors} | {self.rejected} | {self.failed} "
                f"| {p50:.2f} | {p95:.2f} | {top:.2f} |")


def burst(client: Client, name: str, calls: list[tuple], workers: int) -> Phase:
    """Submit every call at once (one thread each, up to ``workers``) and wait for all answers."""
    phase = Phase(name, requests=len(calls))

    def one(args: tuple) -> tuple[str, float, str]:
        start = time.perf_counter()
        try:
            client.predict(*args, api_name="/photo_to_sketch")
            return "ok", time.perf_counter() - start, ""
        except AppError as exc:
            return "app_errors", time.perf_counter() - start, str(exc)
        except Exception as exc:  # noqa: BLE001 - classify everything else
            kind = "rejected" if "queue is full" in str(exc).lower() else "failed"
            return kind, time.perf_counter() - start, f"{type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(calls)))) as pool:
        for kind, seconds, message in pool.map(one, calls):
            phase.latencies.append(seconds)
            setattr(phase, kind, getattr(phase, kind) + 1)
            if message:
                phase.messages.add(message[:160])
    return phase


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running Space (default: start app.py on a free local port)")
    parser.add_argument("--pid", type=int, help="server process id for RSS when --url is given")
    parser.add_argument("--requests", type=int, default=32, help="concurrent good requests (default 32)")
    parser.add_argument("--bad", type=int, default=16, help="bad uploads in the burst (default 16)")
    parser.add_argument("--after", type=int, default=4, help="good requests after the bad burst (default 4)")
    parser.add_argument("--workers", type=int, default=64, help="client threads (default 64)")
    parser.add_argument("--model", default="xdog", help="photo→sketch model or style (default xdog)")
    parser.add_argument("--size", default="640x480", help="photo size WxH (default 640x480)")
    parser.add_argument("--face-crop", action="store_true", help="crop to the face (off by default)")
    parser.add_argument("--rest", type=float, default=5.0, help="seconds to wait before the last RSS reading")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    proc = None
    if args.url:
        url, pid = args.url, args.pid
    else:
        proc, url = start_server()
        pid = proc.pid
    try:
        with tempfile.TemporaryDirectory() as tmp:
            good, bads = make_inputs(Path(tmp), (width, height))
            client = Client(url, verbose=False, download_files=str(Path(tmp) / "downloads"))
            good_call = (handle_file(str(good)), args.model, args.face_crop, 0.5)
            t0 = time.perf_counter()
            client.predict(*good_call, api_name="/photo_to_sketch")  # warm-up: loads the model
            warmup = time.perf_counter() - t0
            rss = {"after warm-up": rss_mb(pid)}
            phases = [burst(client, "good", [good_call] * args.requests, args.workers)]
            bad_calls = [(handle_file(str(bads[i % len(bads)])), args.model, args.face_crop, 0.5) for i in range(args.bad)]
            phases.append(burst(client, "bad", bad_calls, args.workers))
            rss["after bursts"] = rss_mb(pid)
            phases.append(burst(client, "after", [good_call] * args.after, args.workers))
            time.sleep(args.rest)
            rss[f"after {args.rest:.0f} s rest"] = rss_mb(pid)
            client.close()
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()

    print(f"### Load test: `{args.model}`, {width}x{height} photo, face crop {'on' if args.face_crop else 'off'}\n")
    print(f"Server: {url} · machine: {os.cpu_count()} CPUs · warm-up request (model load): {warmup:.2f} s\n")
    print("| phase | requests | image | error message | queue full | other failure | p50 s | p95 s | max s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for phase in phases:
        print(phase.row())
    print()
    print("| server RSS | MiB |")
    print("|---|---:|")
    for label, value in rss.items():
        print(f"| {label} | {'n/a (pass --pid)' if value is None else f'{value:.0f}'} |")
    messages = sorted(set().union(*(p.messages for p in phases)))
    if messages:
        print("\nMessages seen:\n")
        for message in messages:
            print(f"- {message}")
    good_ok = all(p.ok == p.requests for p in phases if p.name != "bad")
    bad_ok = phases[1].app_errors == phases[1].requests
    print(f"\nResult: {'PASS' if good_ok and bad_ok else 'FAIL'} (good requests all answered with an image: "
          f"{good_ok}; bad uploads all answered with an error message: {bad_ok})")
    return 0 if good_ok and bad_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

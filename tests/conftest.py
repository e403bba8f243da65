"""Shared test fixtures: tiny generated images only, never the network."""

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Tests never touch the network: any Hub call must come from a local folder or the offline cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


ROOT = Path(__file__).resolve().parent.parent


def load_script(relative_path: str, name: str | None = None):
    """Import a repository script (``train/pix2pix.py``, ``scripts/ship_model.py``...) as a module."""
    path = ROOT / relative_path
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_paired_split(folder: Path, n: int, size=(40, 48)) -> Path:
    """``folder/photos`` + ``folder/sketches``: ``n`` synthetic faces and their inverted grey copies as 'sketches'."""
    from PIL import ImageOps

    for sub in ("photos", "sketches"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        photo = make_face(size, seed=i)
        photo.save(folder / "photos" / f"{i}.png")
        ImageOps.invert(photo.convert("L")).save(folder / "sketches" / f"{i}.png")
    return folder


def make_face(size=(64, 64), seed=0) -> Image.Image:
    """A synthetic 'face': skin-coloured ellipse, dark eyes and mouth on a light background."""
    import cv2

    w, h = size
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 235, np.uint8)
    cx, cy = w // 2, h // 2
    cv2.ellipse(img, (cx, cy), (int(w * 0.3), int(h * 0.4)), 0, 0, 360, (190, 150, 120), -1)
    for dx in (-1, 1):
        cv2.circle(img, (cx + dx * int(w * 0.12), cy - int(h * 0.08)), max(1, w // 20), (30, 30, 30), -1)
    cv2.ellipse(img, (cx, cy + int(h * 0.18)), (int(w * 0.1), max(1, h // 30)), 0, 0, 360, (60, 20, 20), -1)
    noise = rng.integers(-8, 8, img.shape)
    return Image.fromarray(np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8))


@pytest.fixture
def face_image():
    return make_face()


@pytest.fixture
def accelerator(tmp_path):
    """A CPU ``Accelerator``; its state is a process-wide singleton, so each test gets a fresh one."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    yield Accelerator(cpu=True)
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture
def one_thread():
    """torch on one thread for the test: small float64 work is faster so, and CI's 2 cores are shared."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def weights(tmp_path, monkeypatch):
    """An empty shipped-weights folder in place of the repo's weights/ (which holds real models)."""
    from photosketch import hub

    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setattr(hub, "WEIGHTS_DIR", folder)
    return folder


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow (minutes each)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)

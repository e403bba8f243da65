"""The README front matter that makes the repository a Hugging Face Space (gradio SDK)."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub.repocard import metadata_load

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = ("title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file", "python_version",
            "models", "license", "short_description")
#: The colours the Space settings accept for the card gradient.
COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}


@pytest.fixture(scope="module")
def meta() -> dict:
    return metadata_load(ROOT / "README.md") or {}


def test_required_keys(meta):
    assert meta, "README.md has no YAML front matter (a --- block at the very top)"
    missing = [key for key in REQUIRED if key not in meta]
    assert not missing, f"README front matter lacks: {', '.join(missing)}"


def test_gradio_space(meta):
    assert meta["sdk"] == "gradio"
    assert meta["app_file"] == "app.py" and (ROOT / meta["app_file"]).is_file()
    assert str(meta["python_version"]) == "3.11"
    assert meta["colorFrom"] in COLORS and meta["colorTo"] in COLORS
    assert len(meta["short_description"]) <= 60
    assert set(meta["models"]) >= {"photosketch/photo2sketch", "photosketch/sketch2photo"}
    assert meta["license"] == "mit"


def test_sdk_version_is_the_tested_gradio(meta):
    gradio = pytest.importorskip("gradio")
    assert str(meta["sdk_version"]) == gradio.__version__, (
        "the Space would run another gradio than the one the tests use; update sdk_version and requirements.txt together"
    )
    pinned = [line.split("==", 1)[1].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip().startswith("gradio==")]
    assert pinned == [str(meta["sdk_version"])]


def test_requirements_install_the_cpu_torch_by_default():
    """requirements.txt points pip at PyTorch's CPU index, so the README's command does not pull CUDA."""
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert any(line.startswith("torch==") for line in lines)


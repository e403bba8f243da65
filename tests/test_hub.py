import time

import pytest
import torch

from photosketch import hub
from photosketch.classical import LineDrawing, PencilSketch, XDoG
from photosketch.hub import (
    MODELS,
    ModelNotAvailableError,
    available_models,
    default_model,
    load_model,
    resolve_direction,
)
from photosketch.models import CompactGenerator

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def save_tiny(folder, n_blocks=1, in_channels=3, out_channels=1):
    """A tiny generator folder in Hub layout; n_blocks tags where a loaded model came from."""
    CompactGenerator(in_channels=in_channels, out_channels=out_channels, ngf=8, n_blocks=n_blocks).save_pretrained(folder)
    return folder


def fake_cache(cache_dir, repo_id, **kw):
    """An offline HF cache entry laid out like huggingface_hub's: models--org--name/{refs/main, snapshots/<commit>/}."""
    repo = cache_dir / f"models--{repo_id.replace('/', '--')}"
    save_tiny(repo / "snapshots" / COMMIT, **kw)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return cache_dir


def tag(model):
    return model._hub_mixin_config["n_blocks"]




@pytest.fixture
def cache(tmp_path):
    folder = tmp_path / "hf-cache"
    folder.mkdir()
    return folder


def test_registry_entries():
    assert {"xdog", "pencil", "photo2sketch", "sketch2photo"} <= set(MODELS)
    assert MODELS["photo2sketch"].repo_id == "photosketch/photo2sketch"
    assert MODELS["sketch2photo"].direction == "sketch2photo"
    assert MODELS["xdog"].style == "xdog" and MODELS["xdog"].repo_id is None
    for name, spec in MODELS.items():
        assert spec.name == name and (spec.style is None) != (spec.repo_id is None)


def test_local_dir_follows_weights_dir(weights):
    assert MODELS["photo2sketch"].local_dir == weights / "photo2sketch"


def test_unknown_name_lists_valid_names(weights):
    with pytest.raises(KeyError, match="lines, pencil, photo2sketch, photo2sketch-fast, sketch2photo, xdog"):
        load_model("no-such-model")
    # The documented error for any model that cannot be loaded, with a readable (unquoted) message.
    with pytest.raises(ModelNotAvailableError) as exc:
        load_model("no-such-model")
    assert str(exc.value).startswith("unknown model 'no-such-model': ")


@pytest.mark.parametrize("name, cls", [("xdog", XDoG), ("pencil", PencilSketch), ("lines", LineDrawing)])
def test_classical_models_always_load(weights, name, cls):
    model = load_model(name)
    assert isinstance(model, cls) and not model.training


def test_nothing_installed_is_a_clear_error(weights, cache):
    with pytest.raises(ModelNotAvailableError, match="no sketch→photo model is installed: train one with train/pix2pix.py") as info:
        load_model("sketch2photo", cache_dir=cache)
    assert isinstance(info.value, LookupError) and "\n" not in str(info.value)
    with pytest.raises(ModelNotAvailableError, match="photo→sketch"):
        load_model("photo2sketch", cache_dir=cache)


def test_shipped_folder(weights, cache):
    save_tiny(weights / "photo2sketch", n_blocks=2)
    model = load_model("photo2sketch", cache_dir=cache)
    assert isinstance(model, CompactGenerator) and tag(model) == 2 and not model.training


def test_cache_beats_shipped_folder(weights, cache):
    save_tiny(weights / "photo2sketch", n_blocks=2)
    fake_cache(cache, "photosketch/photo2sketch", n_blocks=3)
    assert tag(load_model("photo2sketch", cache_dir=cache)) == 3


def test_explicit_path_beats_everything(weights, cache, tmp_path):
    save_tiny(weights / "photo2sketch", n_blocks=2)
    fake_cache(cache, "photosketch/photo2sketch", n_blocks=3)
    folder = save_tiny(tmp_path / "mine", n_blocks=4)
    assert tag(load_model(folder, cache_dir=cache)) == 4
    assert tag(load_model(str(folder))) == 4


def test_folder_without_config_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_model(tmp_path / "empty")


def test_repo_id_outside_the_registry_uses_the_cache(weights, cache):
    fake_cache(cache, "someone/my-sketcher", n_blocks=5)
    assert tag(load_model("someone/my-sketcher", cache_dir=cache)) == 5
    with pytest.raises(ModelNotAvailableError, match="'someone/other' was not found"):
        load_model("someone/other", cache_dir=cache)


def test_unreachable_hub_falls_through_quickly(weights, cache, monkeypatch):
    # Online mode, but every request fails as with no network: no retries, straight to weights/.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub.constants, "is_offline_mode", lambda: False)
    calls = []

    def no_network(self, repo_id, **kwargs):
        calls.append((repo_id, kwargs.get("timeout")))
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr("huggingface_hub.HfApi.model_info", no_network)
    save_tiny(weights / "photo2sketch", n_blocks=2)
    start = time.monotonic()
    assert tag(load_model("photo2sketch", cache_dir=cache)) == 2
    assert time.monotonic() - start < 5
    assert calls == [("photosketch/photo2sketch", hub.HUB_PROBE_TIMEOUT)]


def test_broken_cached_checkpoint_fails_loudly(weights, cache):
    fake_cache(cache, "photosketch/photo2sketch", n_blocks=3)
    config = cache / "models--photosketch--photo2sketch" / "snapshots" / COMMIT / "config.json"
    config.write_text(config.read_text().replace('"n_blocks": 3', '"n_blocks": 1'))  # weights have 3 blocks
    save_tiny(weights / "photo2sketch", n_blocks=2)
    with pytest.raises(RuntimeError):  # strict loading: never silently fall back past a corrupt model
        load_model("photo2sketch", cache_dir=cache)


def test_available_and_default_models(weights, cache):
    assert available_models("photo2sketch", cache_dir=cache) == ["xdog", "pencil", "lines"]
    assert available_models("sketch2photo", cache_dir=cache) == []
    assert default_model("photo2sketch", cache_dir=cache) == "xdog"
    assert default_model("sketch2photo", cache_dir=cache) == "sketch2photo"

    save_tiny(weights / "sketch2photo", in_channels=1, out_channels=3)
    fake_cache(cache, "photosketch/photo2sketch")
    assert available_models("photo2sketch", cache_dir=cache) == ["photo2sketch", "xdog", "pencil", "lines"]
    assert available_models("sketch2photo", cache_dir=cache) == ["sketch2photo"]
    assert default_model("photo2sketch", cache_dir=cache) == "photo2sketch"
    # The live stream asks for the fast student, and gets the full model until the student is installed.
    assert default_model("photo2sketch", fast=True, cache_dir=cache) == "photo2sketch"
    save_tiny(weights / "photo2sketch-fast", n_blocks=1)
    assert default_model("photo2sketch", fast=True, cache_dir=cache) == "photo2sketch-fast"
    assert default_model("photo2sketch", cache_dir=cache) == "photo2sketch"
    assert available_models("photo2sketch", cache_dir=cache) == ["photo2sketch", "photo2sketch-fast", "xdog", "pencil", "lines"]
    with pytest.raises(ValueError, match="direction must be one of"):
        default_model("photo2photo")


def test_weights_dir_argument(tmp_path, cache):
    save_tiny(tmp_path / "elsewhere" / "photo2sketch", n_blocks=2)
    assert tag(load_model("photo2sketch", weights_dir=tmp_path / "elsewhere", cache_dir=cache)) == 2
    assert default_model("photo2sketch", weights_dir=tmp_path / "elsewhere", cache_dir=cache) == "photo2sketch"


def test_resolve_direction(tmp_path):
    assert resolve_direction("xdog") == "photo2sketch"
    assert resolve_direction("sketch2photo") == "sketch2photo"
    assert resolve_direction("x", CompactGenerator(in_channels=1, out_channels=3, ngf=8, n_blocks=1)) == "sketch2photo"
    assert resolve_direction("x", CompactGenerator(in_channels=3, out_channels=3, ngf=8, n_blocks=1)) is None
    assert resolve_direction("x", torch.nn.Identity()) is None


def test_missing_fast_model_names_its_trainer(weights, cache):
    with pytest.raises(ModelNotAvailableError, match="train/distill.py"):
        load_model("photo2sketch-fast", cache_dir=cache, local_files_only=True)


def test_falling_back_from_a_missing_learned_model_is_warned(weights, cache, caplog):
    with caplog.at_level("WARNING", logger="photosketch.hub"):
        assert default_model("photo2sketch", cache_dir=cache) == "xdog"
    [record] = caplog.records
    assert "photo2sketch" in record.getMessage() and "xdog" in record.getMessage()
    assert str(weights / "photo2sketch") in record.getMessage() and "\n" not in record.getMessage()
    caplog.clear()
    save_tiny(weights / "photo2sketch")
    with caplog.at_level("WARNING", logger="photosketch.hub"):
        assert default_model("photo2sketch", cache_dir=cache) == "photo2sketch"
        assert default_model("photo2sketch", fast=True, cache_dir=cache) == "photo2sketch"  # the live stream's fallback
    assert [r.getMessage().split(" model ")[0] for r in caplog.records] == ["the learned photo2sketch-fast"]


def test_plain_pip_install_finds_the_shipped_weights(tmp_path):
    # `pip install .` (not editable) from a copy of the sources, then the library used from elsewhere.
    import json
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    for name in ("photosketch", "weights"):
        shutil.copytree(root / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("PHOTOSKETCH_WEIGHTS_DIR", "PYTHONPATH")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"), PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   cwd=tmp_path, env=env, check=True, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("photosketch-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)],
                   cwd=tmp_path, env=env, check=True, capture_output=True)
    shutil.rmtree(src)  # nothing may be read from the source tree
    code = ("import photosketch, photosketch.hub as h; print(photosketch.__file__); print(h.WEIGHTS_DIR); "
            "print(h.default_model()); print(type(h.load_model('sketch2photo')).__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(tmp_path / "site")},
                         check=True, capture_output=True, text=True).stdout.split("\n")
    assert out[0].startswith(str(tmp_path / "site")) and out[1] == str(tmp_path / "site" / "photosketch" / "weights")
    shipped_class = json.loads((root / "weights" / "sketch2photo" / "config.json").read_text())["_class_name"]
    assert out[2:4] == ["photo2sketch", shipped_class]  # the shipped sketch2photo, whatever its architecture

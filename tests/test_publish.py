"""scripts/publish.py pushes shipped folders unchanged (HfApi patched: no network)."""

from pathlib import Path

import pytest
from huggingface_hub import HfApi

from photosketch.models import CompactGenerator
from tests.conftest import load_script

ROOT = Path(__file__).resolve().parent.parent


def load_publish():
    return load_script("scripts/publish.py")


@pytest.fixture
def uploads(monkeypatch):
    calls = []

    def fake_create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))

    def fake_upload_folder(self, *, repo_id, folder_path, **kwargs):
        files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        calls.append(("upload_folder", repo_id, files, kwargs))
        return f"https://huggingface.co/{repo_id}/commit/1"

    monkeypatch.setattr(HfApi, "create_repo", fake_create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", fake_upload_folder)
    return calls


def test_publish_uploads_shipped_folder_byte_for_byte(tmp_path, uploads):
    folder = tmp_path / "photo2sketch"
    CompactGenerator(ngf=8, n_blocks=1).save_pretrained(folder)
    publish = load_publish()
    rc = publish.main(publish.parse_args(["photo2sketch", "--weights_dir", str(tmp_path), "--repo_id", "me/p2s", "--private"]))
    assert rc == 0
    assert uploads[0][:2] == ("create_repo", "me/p2s") and uploads[0][2]["private"] is True
    kind, repo_id, files, kwargs = uploads[1]
    assert (kind, repo_id) == ("upload_folder", "me/p2s")
    assert set(files) == {"config.json", "model.safetensors", "README.md"}
    assert all(files[name] == (folder / name).read_bytes() for name in files)
    assert set(kwargs["allow_patterns"]) == {"config.json", "model.safetensors", "README.md"}


def test_publish_uses_registry_repo_ids(tmp_path, uploads):
    from photosketch.hub import MODELS

    CompactGenerator(ngf=8, n_blocks=1).save_pretrained(tmp_path / "photo2sketch")
    publish = load_publish()
    assert publish.main(publish.parse_args(["photo2sketch", "--weights_dir", str(tmp_path)])) == 0
    assert uploads[1][1] == MODELS["photo2sketch"].repo_id


def test_publish_refuses_incomplete_folder(tmp_path, uploads):
    folder = tmp_path / "photo2sketch"
    CompactGenerator(ngf=8, n_blocks=1).save_pretrained(folder)
    (folder / "README.md").unlink()
    publish = load_publish()
    assert publish.main(publish.parse_args(["photo2sketch", "--weights_dir", str(tmp_path)])) == 2
    assert uploads == []


def test_publish_includes_the_onnx_export_when_shipped(tmp_path, uploads):
    folder = tmp_path / "photo2sketch-fast"
    CompactGenerator(ngf=8, n_blocks=1).save_pretrained(folder)
    (folder / "model.onnx").write_bytes(b"onnx bytes")
    publish = load_publish()
    assert publish.main(publish.parse_args(["photo2sketch-fast", "--weights_dir", str(tmp_path)])) == 0
    _, _, files, kwargs = uploads[1]
    assert set(kwargs["allow_patterns"]) == {"config.json", "model.safetensors", "README.md", "model.onnx"}
    assert files["model.onnx"] == b"onnx bytes"

"""scripts/fetch_ort_web.py: only the pinned tarball is accepted, and only the files the app loads are kept."""

import io
import json
import tarfile

import pytest

import app_browser
from tests.conftest import load_script


def make_tarball(path, names, version=app_browser.ORT_WEB_VERSION):
    with tarfile.open(path, "w:gz") as tar:
        for name in list(names) + ["ort.node.min.mjs", "../../outside.txt"]:  # extra files are left alone
            data = f"{version}:{name}".encode()
            info = tarfile.TarInfo(f"package/dist/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def fetch():
    return load_script("scripts/fetch_ort_web.py")


def test_extracts_the_app_files_from_the_pinned_tarball(fetch, tmp_path, monkeypatch):
    tarball = make_tarball(tmp_path / "onnxruntime-web.tgz", app_browser.ORT_FILES)
    monkeypatch.setattr(fetch, "INTEGRITY", fetch.integrity(tarball))
    out = tmp_path / "static" / "ort"
    assert fetch.main(fetch.parse_args(["--tarball", str(tarball), "--output_dir", str(out)])) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*app_browser.ORT_FILES, "SOURCE.json"])
    assert (out / "ort.wasm.min.mjs").read_text() == f"{app_browser.ORT_WEB_VERSION}:ort.wasm.min.mjs"
    source = json.loads((out / "SOURCE.json").read_text())
    assert source["version"] == app_browser.ORT_WEB_VERSION and source["integrity"] == fetch.INTEGRITY
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "static" / "outside.txt").exists()
    assert fetch.installed(out)
    # Already there: nothing to do (no npm, no tarball needed).
    monkeypatch.setattr(fetch, "npm_pack", lambda workdir: pytest.fail("npm must not run"))
    assert fetch.main(fetch.parse_args(["--output_dir", str(out)])) == 0


def test_refuses_a_tarball_that_is_not_the_pinned_one(fetch, tmp_path):
    tarball = make_tarball(tmp_path / "onnxruntime-web.tgz", app_browser.ORT_FILES)
    out = tmp_path / "ort"
    with pytest.raises(SystemExit, match="is not the pinned onnxruntime-web"):
        fetch.main(fetch.parse_args(["--tarball", str(tarball), "--output_dir", str(out)]))
    assert not out.exists()


def test_a_package_without_a_needed_file_is_a_clear_error(fetch, tmp_path, monkeypatch):
    tarball = make_tarball(tmp_path / "onnxruntime-web.tgz", app_browser.ORT_FILES[:-1])
    monkeypatch.setattr(fetch, "INTEGRITY", fetch.integrity(tarball))
    with pytest.raises(SystemExit, match=f"has no dist/{app_browser.ORT_FILES[-1]}"):
        fetch.main(fetch.parse_args(["--tarball", str(tarball), "--output_dir", str(tmp_path / "ort")]))
    assert not (tmp_path / "ort").exists()


def test_without_npm_it_says_what_to_install(fetch, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="npm not found"):
        fetch.main(fetch.parse_args(["--output_dir", str(tmp_path / "ort")]))

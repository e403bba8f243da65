"""scripts/merge_styles.py: style fine-tunes trained side by side, merged into one model folder."""

import copy

import pytest
import torch

from photosketch.models import ResnetGenerator, load_generator
from tests.conftest import load_script


def _folders(tmp_path):
    torch.manual_seed(0)
    base = ResnetGenerator(in_channels=3, out_channels=1, ngf=8, n_blocks=1, sample_size=32, styles=["a", "b"])
    base.save_pretrained(tmp_path / "base")
    run = copy.deepcopy(base)
    with torch.no_grad():
        for m in run.modules():
            if hasattr(m, "film"):
                m.film.weight[:, 1] += 0.05  # what --finetune_style b can change
    run.save_pretrained(tmp_path / "run_b")
    return base, run


def test_merge_styles_writes_a_loadable_folder(tmp_path):
    script = load_script("scripts/merge_styles.py")
    base, run = _folders(tmp_path)
    out = script.main(script.parse_args(["--base", str(tmp_path / "base"), "--style", f"b={tmp_path / 'run_b'}",
                                         "--output_dir", str(tmp_path / "merged")]))
    merged = load_generator(out).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(merged(x, style="b"), run.eval()(x, style="b"))
        assert torch.equal(merged(x, style="a"), base.eval()(x, style="a"))
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))


def test_merge_styles_usage_errors(tmp_path, capsys):
    script = load_script("scripts/merge_styles.py")
    _folders(tmp_path)
    cases = [(["--style", "b"], "expected STYLE=FOLDER"),
             (["--style", f"b={tmp_path}"], "not a model folder"),
             (["--style", f"b={tmp_path / 'run_b'}", "--style", f"b={tmp_path / 'run_b'}"], "each style once")]
    for extra, message in cases:
        with pytest.raises(SystemExit):
            script.parse_args(["--base", str(tmp_path / "base"), "--output_dir", str(tmp_path / "o"), *extra])
        assert message in capsys.readouterr().err, extra

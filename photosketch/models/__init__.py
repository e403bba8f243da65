"""Generators and the discriminators.

Every generator maps an image tensor in [-1, 1] (NCHW) to an image tensor in [-1, 1] and
accepts any spatial size: inputs are reflect-padded up to the network's stride and the output
is cropped back, so a 250x200 CUFS photo goes in as it is.

Generators are ``nn.Module`` + ``PyTorchModelHubMixin``: their typed constructor arguments are
the ``config.json`` that ``save_pretrained`` writes, weights are saved as ``model.safetensors``
only, and ``from_pretrained`` loads strictly (a checkpoint with missing or extra keys raises
instead of silently leaving layers at their random initialisation).

Layout: :mod:`.base` (the Hub base class and the style layers), :mod:`.generators` (the
architectures and their registry), :mod:`.discriminators` (training only). Everything is importable
from ``photosketch.models`` as before.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .base import Chain, Norm, PhotoSketchModel, StyleNorm, norm_layer
from .discriminators import MultiscaleDiscriminator, PatchDiscriminator
from .generators import (
    GENERATORS,
    CompactGenerator,
    ResnetBlock,
    ResnetGenerator,
    SeparableResBlock,
    UnetBlock,
    UnetGenerator,
    build_generator,
    load_generator,
)

__all__ = [
    "GENERATORS",
    "Chain",
    "CompactGenerator",
    "MultiscaleDiscriminator",
    "Norm",
    "PatchDiscriminator",
    "PhotoSketchModel",
    "ResnetBlock",
    "ResnetGenerator",
    "SeparableResBlock",
    "StyleNorm",
    "UnetBlock",
    "UnetGenerator",
    "build_generator",
    "count_params",
    "fix_style",
    "fuse_conv_bn",
    "load_generator",
    "norm_layer",
    "style_foldable",
    "widen_into",
]


@torch.no_grad()
def _scaled_conv(conv: nn.Conv2d, scale: torch.Tensor, shift: torch.Tensor) -> nn.Conv2d:
    """``conv`` followed by the per-channel affine map ``y * scale + shift``, as one conv with a bias."""
    new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
    new.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
    new.bias.copy_(bias * scale + shift)
    return new


@torch.no_grad()
def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """An inference copy of ``model`` with every BatchNorm folded into the Conv2d right before it.

    In eval mode BN is a fixed per-channel affine map, y = gamma * (x - mean) / sqrt(var + eps) + beta,
    so it can be absorbed into the conv's weights and bias: one pass over the feature map fewer per
    layer, which is a large share of a small CPU network's time. The original model is untouched
    (its state dict still matches its config); models without BatchNorm are returned as they are.
    """
    if not any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        return model
    fused = copy.deepcopy(model).eval()
    for seq in [m for m in fused.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            # A style-conditioned norm (StyleNorm) is BatchNorm then a per-style affine: fold the BatchNorm.
            styled = isinstance(bn, StyleNorm) and isinstance(bn.norm, nn.BatchNorm2d)
            bn = bn.norm if styled else bn
            if type(conv) is not nn.Conv2d or not isinstance(bn, nn.BatchNorm2d) or bn.running_var is None:
                continue
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            seq[i] = _scaled_conv(conv, scale, bn.bias - bn.running_mean * scale)
            if styled:
                seq[i + 1].norm = nn.Identity()
            else:
                seq[i + 1] = nn.Identity()
    return fused


def _style_layers(model: nn.Module) -> list[tuple[nn.Sequential, int]]:
    """(sequence, index) of every :class:`StyleNorm` that sits in an ``nn.Sequential`` after another layer."""
    return [(seq, i) for seq in model.modules() if isinstance(seq, nn.Sequential)
            for i in range(1, len(seq)) if isinstance(seq[i], StyleNorm)]


def style_foldable(model: nn.Module) -> bool:
    """Whether :func:`fix_style` can fold ``model``'s styles into its convs: it has style layers, and each
    one sits right after a conv with its norm already folded (:func:`fuse_conv_bn` of a BatchNorm model)."""
    layers = _style_layers(model)
    return (0 < len(layers) == sum(isinstance(m, StyleNorm) for m in model.modules())
            and all(type(seq[i - 1]) is nn.Conv2d and isinstance(seq[i].norm, nn.Identity) for seq, i in layers))


def fix_style(model: nn.Module, weights: torch.Tensor) -> nn.Module | None:
    """An inference copy of a :func:`fuse_conv_bn`-folded styled model that draws only the style
    ``weights`` (one row of :meth:`~photosketch.models.PhotoSketchModel.style_weights`), with no style input.

    With BatchNorm folded, each :class:`StyleNorm` is just ``x * (1 + gamma) + beta`` per channel
    (Dumoulin et al. 2017, eq. 5) right after a conv, so it folds into that conv too: the copy runs
    exactly the convolutions of an unconditioned model (the style-conditioned ``photo2sketch-fast``:
    as fast as the one-style student). ``None`` when some style layer does not sit right after a
    conv with its norm folded (instance norm: the ResNet and U-Net generators).
    """
    if not style_foldable(model):
        return None
    fixed = copy.deepcopy(model).eval()
    w = weights.reshape(1, -1).to(torch.float32)
    with torch.no_grad():
        for seq, i in _style_layers(fixed):
            conv, film = seq[i - 1], seq[i].film
            gamma, beta = film(w.to(film.weight.dtype))[0].chunk(2)
            seq[i - 1], seq[i] = _scaled_conv(conv, 1 + gamma, beta), nn.Identity()
    fixed.styles = ()
    return fixed


@torch.no_grad()
def widen_into(narrow: nn.Module, wide: nn.Module) -> nn.Module:
    """Copy ``narrow``'s weights into ``wide``, the same architecture with more channels, so that
    ``wide`` computes exactly ``narrow``'s function (Net2WiderNet, Chen et al. 2016, with the new
    units' outgoing weights at zero instead of split copies).

    Every old channel keeps its weights and ignores the new ones (those input columns are zeroed);
    new channels keep ``wide``'s own initialisation for their incoming weights, an identity
    BatchNorm (scale 1, shift 0, running mean 0 / variance 1) and a neutral style (scale and shift
    0). Gradients still reach the zeroed weights (the new channels' activations are not zero), so
    training grows into the extra capacity from the narrow model's quality instead of from scratch:
    the warm start of a wider student (``--init_weights ... --widen_init``). Only convolutions,
    BatchNorm and :class:`StyleNorm` are widened; other layers with weights (transposed convs,
    affine instance norms) raise ``TypeError``. Returns ``wide``, modified in place.
    """
    if len(list(narrow.modules())) != len(list(wide.modules())):
        raise ValueError("widen_into: the two models have different layer structures")
    for (name, old), (_, new) in zip(narrow.named_modules(), wide.named_modules()):
        if type(old) is not type(new):
            raise ValueError(f"widen_into: layer {name or '<root>'} is {type(old).__name__} in one model, "
                             f"{type(new).__name__} in the other")
        if isinstance(old, StyleNorm):
            # film maps the style weights to [gamma (C); beta (C)]: the split point moves with C.
            c_old, c_new = old.film.out_features // 2, new.film.out_features // 2
            for attr in ("weight", "bias"):
                src, dst = getattr(old.film, attr), getattr(new.film, attr)
                dst.zero_()
                dst[:c_old] = src[:c_old]
                dst[c_new:c_new + c_old] = src[c_old:]
        elif isinstance(old, nn.Conv2d):
            o, i = old.weight.shape[:2]
            if old.groups == 1:
                new.weight[:o, :i] = old.weight
                new.weight[:o, i:] = 0  # old channels ignore the new ones: the function is unchanged
            elif old.groups == old.in_channels == old.out_channels and new.groups == new.in_channels:
                new.weight[:o] = old.weight  # depthwise: each channel sees only itself
            else:
                raise TypeError(f"widen_into: grouped conv {name} (groups={old.groups}) is not supported")
            if old.bias is not None:
                new.bias[:o] = old.bias
        elif isinstance(old, nn.BatchNorm2d):
            c = old.num_features
            new.weight.fill_(1.0), new.bias.zero_(), new.running_mean.zero_(), new.running_var.fill_(1.0)
            for attr in ("weight", "bias", "running_mean", "running_var"):
                getattr(new, attr)[:c] = getattr(old, attr)
            new.num_batches_tracked.copy_(old.num_batches_tracked)
        elif isinstance(old, nn.Linear) and name.endswith(".film"):
            continue  # done with its StyleNorm
        elif any(True for _ in old.parameters(recurse=False)):
            raise TypeError(f"widen_into: cannot widen {type(old).__name__} layer {name}")
    return wide


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

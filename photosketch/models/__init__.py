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
    "grow_into",
    "load_generator",
    "norm_layer",
    "style_foldable",
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


#: Residual blocks ``x + f(x)``: the layers :func:`grow_into` may add (as the identity).
RESIDUAL_BLOCKS = (ResnetBlock, SeparableResBlock)


def _widen_layer(name: str, old: nn.Module, new: nn.Module) -> None:
    """One layer of :func:`grow_into`: ``old``'s weights into the same layer with more channels."""
    if type(old) is not type(new):
        raise ValueError(f"grow_into: layer {name} is {type(old).__name__} in one model, {type(new).__name__} in the other")
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
            raise TypeError(f"grow_into: grouped conv {name} (groups={old.groups}) is not supported")
        if old.bias is not None:
            new.bias[:o] = old.bias
    elif isinstance(old, nn.BatchNorm2d):
        c = old.num_features
        new.weight.fill_(1.0), new.bias.zero_(), new.running_mean.zero_(), new.running_var.fill_(1.0)
        for attr in ("weight", "bias", "running_mean", "running_var"):
            getattr(new, attr)[:c] = getattr(old, attr)
        new.num_batches_tracked.copy_(old.num_batches_tracked)
    elif any(True for _ in old.parameters(recurse=False)) and not (isinstance(old, nn.Linear) and name.endswith(".film")):
        raise TypeError(f"grow_into: cannot widen {type(old).__name__} layer {name}")


def _zero_residual(block: nn.Module, name: str) -> None:
    """Make a residual block ``x + f(x)`` the identity: its last norm's scale and shift to zero, so
    ``f(x) = 0`` in training and eval mode alike (the "zero-gamma" init of Goyal et al. 2017), while
    that scale still gets gradients, so the block can start to learn. Behind an affine-free norm
    (instance norm) a conditional norm's scale ``1 + gamma`` is set to zero instead (gamma = -1)."""
    norms = [m for m in block.modules() if isinstance(m, (nn.BatchNorm2d, StyleNorm))]
    last = norms[-1] if norms else None
    if isinstance(last, StyleNorm):
        last.film.weight.zero_(), last.film.bias.zero_()
        if not isinstance(last.norm, nn.BatchNorm2d):
            last.film.bias[: last.film.out_features // 2] = -1.0
            return
        last = last.norm
    if not isinstance(last, nn.BatchNorm2d):
        raise TypeError(f"grow_into: new block {name} does not end in a BatchNorm or a conditional norm, "
                        "so it cannot start as the identity")
    last.weight.zero_(), last.bias.zero_()


@torch.no_grad()
def grow_into(small: nn.Module, large: nn.Module) -> nn.Module:
    """Copy ``small``'s weights into ``large``, the same architecture with more channels and/or more
    residual blocks, so that ``large`` computes exactly ``small``'s function: the warm start of a
    bigger student (``--init_weights ... --grow_init``), so the CPU hours behind ``small`` are kept.

    Wider (Net2WiderNet, Chen et al. 2016, with the new units' outgoing weights at zero instead of
    split copies): every old channel keeps its weights and ignores the new ones; new channels keep
    ``large``'s own initialisation for their incoming weights, an identity BatchNorm and a neutral
    style. Deeper (Net2DeeperNet): the old residual blocks are spread evenly among the new ones, and
    each new block starts as the identity (:func:`_zero_residual`). Gradients reach every zeroed
    weight's neighbours, so training grows into the extra capacity. Convolutions, BatchNorm and
    :class:`StyleNorm` widen; anything else with weights (transposed convs, affine instance norms)
    raises ``TypeError``, a different layout ``ValueError``. Returns ``large``, modified in place.
    """
    if type(small) is not type(large) or not isinstance(getattr(small, "net", None), nn.Sequential):
        raise ValueError("grow_into: the two models have different layer structures")
    old_layers, new_layers = list(small.net), list(large.net)
    old_blocks = [i for i, m in enumerate(old_layers) if isinstance(m, RESIDUAL_BLOCKS)]
    new_blocks = [i for i, m in enumerate(new_layers) if isinstance(m, RESIDUAL_BLOCKS)]
    k, n = len(old_blocks), len(new_blocks)
    if len(old_layers) - k != len(new_layers) - n or n < k:
        raise ValueError("grow_into: the two models have different layer structures")
    # Old block b goes to new block round(b * n / k); the other new blocks start as the identity.
    keep = {new_blocks[round(b * n / k)]: old_blocks[b] for b in range(k)}
    old_plain = [i for i in range(len(old_layers)) if i not in old_blocks]
    new_plain = [j for j in range(len(new_layers)) if j not in new_blocks]
    pairs = [(i, j) for j, i in keep.items()] + list(zip(old_plain, new_plain))
    for i, j in pairs:
        olds, news = list(old_layers[i].named_modules()), list(new_layers[j].named_modules())
        if len(olds) != len(news):
            raise ValueError(f"grow_into: layer net.{i} differs in structure")
        for (name, old), (_, new) in zip(olds, news):
            _widen_layer(f"net.{j}.{name}".rstrip("."), old, new)
    for j in new_blocks:
        if j not in keep:
            _zero_residual(new_layers[j], f"net.{j}")
    return large


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

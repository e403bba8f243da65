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
    "fuse_conv_bn",
    "load_generator",
    "norm_layer",
]


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
            if type(conv) is not nn.Conv2d or not isinstance(bn, nn.BatchNorm2d) or bn.running_var is None:
                continue
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                            conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
            new.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            new.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
            seq[i], seq[i + 1] = new, nn.Identity()
    return fused


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

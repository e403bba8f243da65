"""The discriminators the trainers use: pix2pix's 70x70 PatchGAN and pix2pixHD's multi-scale stack.

Training-only (saved in resume checkpoints, never published), so plain ``nn.Module`` s.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Norm, norm_layer


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN (pix2pix appendix 6.1.2): ``C64-C128-C256-C512`` then a 1-channel map.

    Each output value judges one 70x70 receptive field as real or fake. Used only for training,
    so it is a plain ``nn.Module`` (saved in resume checkpoints, never published).

    Args:
        in_channels: channels of the judged image (for pix2pix, condition + output concatenated).
        ndf: width of the first layer.
        n_layers: 3 gives the 70x70 receptive field.
        norm: ``"instance"`` (CycleGAN) or ``"batch"`` (pix2pix).
    """

    def __init__(self, in_channels: int = 1, ndf: int = 64, n_layers: int = 3, norm: Norm = "instance"):
        super().__init__()
        bias = norm != "batch"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        ch = ndf
        for i in range(1, n_layers + 1):
            out = ndf * min(2**i, 8)
            stride = 2 if i < n_layers else 1  # the last C512 has stride 1 (70x70 receptive field)
            layers += [nn.Conv2d(ch, out, 4, stride=stride, padding=1, bias=bias), norm_layer(norm, out), nn.LeakyReLU(0.2, True)]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The activation after each LeakyReLU, then the logit map (last): what feature matching compares."""
        out = []
        for layer in self.net:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                out.append(x)
        return out + [x]


class MultiscaleDiscriminator(nn.Module):
    """``num_scales`` PatchGANs on the image at full, 1/2, 1/4... resolution (pix2pixHD, Wang et al.
    2018, sec. 3.2): the coarse one sees whole-face structure, the fine one strokes and texture.

    ``forward`` returns, per scale, the list of intermediate features with the logit map last
    (:meth:`PatchDiscriminator.features`), for the GAN loss (eq. 2) and feature matching (eq. 4).
    """

    def __init__(self, in_channels: int = 1, ndf: int = 64, n_layers: int = 3, norm: Norm = "instance", num_scales: int = 2):
        super().__init__()
        if num_scales < 1:
            raise ValueError(f"num_scales must be >= 1; got {num_scales}")
        self.scales = nn.ModuleList(PatchDiscriminator(in_channels, ndf, n_layers, norm) for _ in range(num_scales))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        for i, d in enumerate(self.scales):
            if i:  # pix2pixHD downsamples with a 3x3 average pool, stride 2, not counting the padding
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out.append(d.features(x))
        return out

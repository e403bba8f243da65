"""The generator architectures, their registry (:data:`GENERATORS`) and loading by name or folder.

A new architecture: a :class:`~photosketch.models.base.PhotoSketchModel` subclass here whose
typed constructor arguments are its config (build its norms with ``self._norm`` so it can take
styles, set ``stride`` / ``min_size`` for the padding, assign the layers to ``self.net``), then an
entry in :data:`GENERATORS`; ``train/*.py --generator NAME`` and :func:`load_generator` find it there.
"""

from __future__ import annotations

import json
import os

import torch
from huggingface_hub import constants, hf_hub_download
from torch import nn

from .base import Chain, Norm, PhotoSketchModel, norm_layer


class ResnetBlock(nn.Module):
    """Residual block with two 3x3 convs (CycleGAN appendix 7.2, "R256")."""

    takes_style = True

    def __init__(self, channels: int, norm: Norm, dropout: float = 0.0, make_norm=norm_layer):
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=norm != "batch"),
            make_norm(norm, channels),
            nn.ReLU(True),
        ]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=norm != "batch"), make_norm(norm, channels)]
        self.block = Chain(*layers)

    def forward(self, x: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        return x + self.block(x, w)


class ResnetGenerator(PhotoSketchModel):
    """CycleGAN generator (Zhu et al. 2017, appendix 7.2; after Johnson et al. 2016).

    ``c7s1-64, d128, d256, R256 x n_blocks, u128, u64, c7s1-out`` with reflection padding,
    instance norm and a final tanh. ``n_blocks=9`` is the paper's 256x256 network.

    Args:
        in_channels: 3 for photos, 1 (or 3) for sketches.
        out_channels: 1 (or 3) for sketches, 3 for photos.
        ngf: width of the first layer; the paper uses 64.
        n_blocks: residual blocks at the bottleneck (paper: 6 for 128 px, 9 for 256 px).
        norm: ``"instance"`` (paper), ``"batch"`` or ``"none"``.
        dropout: dropout inside residual blocks (0 in CycleGAN).
        sample_size: the resolution the weights were trained at; pipelines resize inputs to it.
        styles: names of the styles the model can draw (``forward(x, style=...)``); none by default.
    """

    stride = 4
    min_size = 8  # the bottleneck's 3x3 reflection pads need a map of at least 2x2

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: Norm = "instance",
        dropout: float = 0.0,
        sample_size: int = 256,
        styles: list[str] | None = None,
    ):
        super().__init__()
        self._set_styles(styles)
        bias = norm != "batch"  # a norm with affine shift makes the conv bias redundant
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=bias),
            self._norm(norm, ngf),
            nn.ReLU(True),
        ]
        ch = ngf
        for _ in range(2):  # d128, d256
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1, bias=bias), self._norm(norm, ch * 2), nn.ReLU(True)]
            ch *= 2
        layers += [ResnetBlock(ch, norm, dropout, self._norm) for _ in range(n_blocks)]
        for _ in range(2):  # u128, u64: fractionally strided convs as in the paper
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                self._norm(norm, ch // 2),
                nn.ReLU(True),
            ]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_channels, 7), nn.Tanh()]
        self.net = Chain(*layers)


class UnetBlock(nn.Module):
    """One level of the U-Net: down, (inner levels), up, then concatenate the skip (pix2pix fig. 3)."""

    def __init__(self, outer: int, inner: int, norm: Norm, submodule: nn.Module | None = None,
                 outermost: bool = False, in_channels: int | None = None, out_channels: int | None = None,
                 dropout: float = 0.0, make_norm=norm_layer):
        super().__init__()
        self.outermost = outermost
        in_channels = in_channels or outer
        bias = norm != "batch"
        down = [nn.Conv2d(in_channels, inner, 4, stride=2, padding=1, bias=bias)]
        if outermost:
            # C64 has no norm (pix2pix appendix 6.1.1); the last layer maps to the output + tanh.
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner * 2, out_channels or outer, 4, stride=2, padding=1), nn.Tanh()]
            layers = down + [submodule] + up
        elif submodule is None:  # innermost: no norm on the 1x1 bottleneck, no skip input
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=bias), make_norm(norm, outer)]
            layers = [nn.LeakyReLU(0.2, True)] + down + up
        else:
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=bias), make_norm(norm, outer)]
            if dropout:
                up.append(nn.Dropout(dropout))  # pix2pix: dropout is the generator's noise z
            layers = [nn.LeakyReLU(0.2, True)] + down + [make_norm(norm, inner), submodule] + up
        self.model = Chain(*layers)

    takes_style = True

    def forward(self, x: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        if self.outermost:
            return self.model(x, w)
        return torch.cat([x, self.model(x, w)], 1)


class UnetGenerator(PhotoSketchModel):
    """pix2pix U-Net (Isola et al. 2017, appendix 6.1.1).

    Encoder ``C64-C128-C256-C512-C512-C512-C512-C512`` and the mirrored decoder with skip
    connections between layer i and n - i. ``num_downs=8`` is the paper's U-Net-256 (the 256 px
    input reaches 1x1 at the bottleneck); ``num_downs=7`` is U-Net-128.

    Args:
        in_channels / out_channels: image channels in and out.
        ngf: width of the outermost layer (64 in the paper).
        num_downs: number of stride-2 levels; inputs are padded to a multiple of 2**num_downs.
        norm: ``"batch"`` (paper, batch size 1 makes it instance-like), ``"instance"`` or ``"none"``.
        dropout: dropout in the first three decoder layers of the 512-wide levels (paper: 0.5).
        sample_size: training resolution; pipelines resize inputs to it.
        styles: names of the styles the model can draw (``forward(x, style=...)``); none by default.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        ngf: int = 64,
        num_downs: int = 8,
        norm: Norm = "batch",
        dropout: float = 0.5,
        sample_size: int = 256,
        styles: list[str] | None = None,
    ):
        super().__init__()
        self._set_styles(styles)
        if num_downs < 5:
            raise ValueError(f"num_downs must be >= 5 (C64..C512 plus a bottleneck); got {num_downs}")
        self.stride = 2**num_downs
        block = UnetBlock(ngf * 8, ngf * 8, norm, make_norm=self._norm)  # innermost
        for _ in range(num_downs - 5):
            block = UnetBlock(ngf * 8, ngf * 8, norm, block, dropout=dropout, make_norm=self._norm)
        block = UnetBlock(ngf * 4, ngf * 8, norm, block, make_norm=self._norm)
        block = UnetBlock(ngf * 2, ngf * 4, norm, block, make_norm=self._norm)
        block = UnetBlock(ngf, ngf * 2, norm, block, make_norm=self._norm)
        self.net = UnetBlock(ngf, ngf, norm, block, outermost=True, in_channels=in_channels, out_channels=out_channels,
                             make_norm=self._norm)


class SeparableResBlock(nn.Module):
    """Residual block with depthwise-separable convolutions (MobileNet; GAN Compression, Li et al. 2020).

    A 3x3 depthwise conv + 1x1 pointwise conv costs about 1/9 + 1/C of a dense 3x3 conv.
    """

    takes_style = True

    def __init__(self, channels: int, norm: Norm, make_norm=norm_layer):
        super().__init__()
        bias = norm != "batch"
        self.block = Chain(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1, bias=bias),
            make_norm(norm, channels),
            nn.ReLU(True),
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1, bias=bias),
            make_norm(norm, channels),
        )

    def forward(self, x: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        return x + self.block(x, w)


class CompactGenerator(PhotoSketchModel):
    """A small, fast ResNet-style generator for CPU inference.

    Same encoder / residual bottleneck / decoder plan as :class:`ResnetGenerator`, but with
    depthwise-separable residual blocks and fewer channels (GAN Compression, Li et al. 2020),
    zero padding (cheaper than reflection on CPU), and nearest-neighbour upsampling + conv instead
    of transposed convs (no checkerboard artefacts, Odena et al. 2016).

    Args:
        in_channels / out_channels: image channels in and out.
        ngf: width of the first layer (the bottleneck has ``ngf * 2**n_downsampling`` channels).
        n_blocks: separable residual blocks at the bottleneck.
        n_downsampling: stride-2 stages (2 like CycleGAN; 3 is faster at 256 px).
        norm: ``"instance"``, ``"batch"`` (foldable into convs for inference) or ``"none"``.
        sample_size: training resolution; pipelines resize inputs to it.
        styles: names of the styles the model can draw (``forward(x, style=...)``); none by default.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        ngf: int = 16,
        n_blocks: int = 6,
        n_downsampling: int = 2,
        norm: Norm = "instance",
        sample_size: int = 256,
        styles: list[str] | None = None,
    ):
        super().__init__()
        self._set_styles(styles)
        self.stride = 2**n_downsampling
        bias = norm != "batch"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ngf, 7, padding=3, bias=bias), self._norm(norm, ngf), nn.ReLU(True)]
        ch = ngf
        for _ in range(n_downsampling):
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1, bias=bias), self._norm(norm, ch * 2), nn.ReLU(True)]
            ch *= 2
        layers += [SeparableResBlock(ch, norm, self._norm) for _ in range(n_blocks)]
        for _ in range(n_downsampling):
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(ch, ch // 2, 3, padding=1, bias=bias),
                self._norm(norm, ch // 2),
                nn.ReLU(True),
            ]
            ch //= 2
        layers += [nn.Conv2d(ch, out_channels, 7, padding=3), nn.Tanh()]
        self.net = Chain(*layers)


#: Published generator architectures by name. ``build_generator("resnet", ngf=32)``.
GENERATORS: dict[str, type[PhotoSketchModel]] = {
    "resnet": ResnetGenerator,
    "unet": UnetGenerator,
    "compact": CompactGenerator,
}


def build_generator(name: str, **kwargs) -> PhotoSketchModel:
    """Instantiate a registered generator; unknown names raise ``KeyError`` listing the valid ones."""
    try:
        cls = GENERATORS[name]
    except KeyError:
        raise KeyError(f"unknown generator {name!r}; choose one of: {', '.join(sorted(GENERATORS))}") from None
    return cls(**kwargs)


def load_generator(pretrained: str | os.PathLike, **kwargs) -> PhotoSketchModel:
    """Load any registered generator from a folder or Hub repo id, picking the class from config.json.

    Extra keyword arguments go to ``from_pretrained`` (``revision``, ``cache_dir``,
    ``local_files_only``, ``token``...).
    """
    model_id = str(pretrained)
    if os.path.isdir(model_id):
        config_file = os.path.join(model_id, constants.CONFIG_NAME)
        if not os.path.isfile(config_file):
            raise FileNotFoundError(f"{model_id} has no {constants.CONFIG_NAME}: not a photosketch model folder")
    else:
        hub_kwargs = {k: kwargs[k] for k in ("revision", "cache_dir", "local_files_only", "token", "force_download") if k in kwargs}
        config_file = hf_hub_download(repo_id=model_id, filename=constants.CONFIG_NAME, **hub_kwargs)
    with open(config_file, encoding="utf-8") as f:
        class_name = json.load(f).get("_class_name")
    by_class = {cls.__name__: cls for cls in GENERATORS.values()}
    if class_name not in by_class:
        raise ValueError(
            f"{model_id}: config.json names class {class_name!r}; expected one of {', '.join(sorted(by_class))}"
        )
    return by_class[class_name].from_pretrained(model_id, **kwargs)

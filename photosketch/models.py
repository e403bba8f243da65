"""Generators and the discriminator.

Every generator maps an image tensor in [-1, 1] (NCHW) to an image tensor in [-1, 1] and
accepts any spatial size: inputs are reflect-padded up to the network's stride and the output
is cropped back, so a 250x200 CUFS photo goes in as it is.

Generators are ``nn.Module`` + ``PyTorchModelHubMixin``: their typed constructor arguments are
the ``config.json`` that ``save_pretrained`` writes, weights are saved as ``model.safetensors``
only, and ``from_pretrained`` loads strictly (a checkpoint with missing or extra keys raises
instead of silently leaving layers at their random initialisation).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin, constants, hf_hub_download
from torch import nn

__all__ = [
    "GENERATORS",
    "CompactGenerator",
    "MultiscaleDiscriminator",
    "PatchDiscriminator",
    "ResnetGenerator",
    "UnetGenerator",
    "build_generator",
    "fuse_conv_bn",
    "load_generator",
]

Norm = Literal["instance", "batch", "none"]
_MODEL_CARD = (Path(__file__).resolve().parent.parent / "model_cards" / "generator.md")
_REPO_URL = "https://github.com/photosketch/photosketch"


def _model_card_template() -> str:
    # The template lives in model_cards/ so it is edited next to the cards it renders. When the
    # package is installed without the repo (pip install from a wheel), a short inline card is used.
    if _MODEL_CARD.is_file():
        return _MODEL_CARD.read_text(encoding="utf-8")
    return "---\n{{ card_data }}\n---\n\n# photosketch generator\n\nSee {{ repo_url }}.\n"


def norm_layer(norm: Norm, channels: int) -> nn.Module:
    """Instance norm (CycleGAN/pix2pix default, affine=False like the reference code), batch norm, or none."""
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of 'instance', 'batch', 'none'; got {norm!r}")


class Chain(nn.Sequential):
    """``nn.Sequential`` that hands the style weights to the layers that take them (``takes_style``).

    Without styles (``w=None``) it is a plain ``nn.Sequential`` with the same parameter names, so
    checkpoints of unconditioned models load unchanged.
    """

    def forward(self, x: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self:
            x = layer(x, w) if getattr(layer, "takes_style", False) else layer(x)
        return x


class StyleNorm(nn.Module):
    """Conditional normalisation (Dumoulin et al. 2017, "A Learned Representation for Artistic
    Style", eq. 5): the usual norm, then a per-style scale and shift, ``(1 + gamma(w)) * x + beta(w)``
    with ``w`` the style weights (one-hot, or a mix). A style has to enter *after* the norm: a
    constant input plane or bias would be removed by instance norm's per-channel mean.

    ``gamma`` and ``beta`` start at zero, so a new styled model behaves like the plain norm, and
    weights of an unconditioned model are a valid warm start.
    """

    takes_style = True

    def __init__(self, norm: Norm, channels: int, num_styles: int):
        super().__init__()
        self.norm = norm_layer(norm, channels)
        self.film = nn.Linear(num_styles, 2 * channels)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm(x)
        if w is None:
            return x
        gamma, beta = self.film(w.to(x.dtype))[:, :, None, None].chunk(2, dim=1)
        return x * (1 + gamma) + beta


class PhotoSketchModel(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="photosketch",
    pipeline_tag="image-to-image",
    tags=["photosketch", "face-sketch", "image-to-image", "gan"],
    license="mit",
    repo_url=_REPO_URL,
    model_card_template=_model_card_template(),
):
    """Shared Hub behaviour: strict, safetensors-only loading and stride-aware padding."""

    #: Inputs are padded to a multiple of this (2 ** number of stride-2 layers).
    stride: int = 1
    #: ... and to at least this size, so inner reflection pads never see a 1-pixel map.
    min_size: int = 1
    #: Named styles the model draws (e.g. ``("fs2k-1", "fs2k-2", "fs2k-3", "cufs")``); empty: one style.
    styles: tuple[str, ...] = ()

    def _set_styles(self, styles: Sequence[str] | None) -> None:
        """Record the style names (before the layers are built: :meth:`_norm` reads them)."""
        names = tuple(str(s) for s in (styles or ()))
        if any(not n for n in names) or len(set(names)) != len(names):
            raise ValueError(f"styles must be distinct, non-empty names; got {list(names)}")
        self.styles = names

    def style_index(self, style: str | int) -> int:
        """The position of ``style`` (a name or an index) in :attr:`styles`; a one-line ``ValueError`` otherwise."""
        if not self.styles:
            raise ValueError(f"{type(self).__name__} has no styles; call it without style=")
        if isinstance(style, str):
            if style not in self.styles:
                raise ValueError(f"unknown style {style!r}; choose one of: {', '.join(self.styles)}")
            return self.styles.index(style)
        i = int(style)
        if not 0 <= i < len(self.styles):
            raise ValueError(f"style index {i} out of range; this model has {len(self.styles)} styles: {', '.join(self.styles)}")
        return i

    def style_weights(self, style, batch: int, device=None, dtype=None) -> torch.Tensor:
        """``(batch, len(styles))`` weights for ``style``.

        ``style`` is ``None`` (the first style), a name or index (the whole batch), a list with one
        name/index per image, or a float tensor of shape ``(S,)`` or ``(batch, S)``: rows that are
        one-hot select a style, other rows mix styles.
        """
        n = len(self.styles)
        if isinstance(style, torch.Tensor) and style.is_floating_point():
            w = style.to(device=device, dtype=dtype)
            w = w.expand(batch, n) if w.dim() == 1 else w
            if tuple(w.shape) != (batch, n):
                raise ValueError(f"style weights must have shape ({n},) or ({batch}, {n}); got {tuple(style.shape)}")
            return w
        if isinstance(style, torch.Tensor):
            style = style.tolist()
        if style is None or isinstance(style, (str, int)):
            style = [0 if style is None else style] * batch
        if len(style) != batch:
            raise ValueError(f"got {len(style)} styles for a batch of {batch} images")
        idx = torch.tensor([self.style_index(s) for s in style], device=device)
        return F.one_hot(idx, n).to(dtype or torch.float32)

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs,
    ):
        # huggingface_hub defaults to strict=False and falls back to pickled pytorch_model.bin;
        # we load safetensors only, strictly, so a truncated export fails loudly.
        import safetensors.torch

        model = cls(**model_kwargs)
        if os.path.isdir(model_id):
            model_file = os.path.join(model_id, constants.SAFETENSORS_SINGLE_FILE)
            if not os.path.isfile(model_file):
                raise FileNotFoundError(f"{model_id} has no {constants.SAFETENSORS_SINGLE_FILE}")
        else:
            model_file = hf_hub_download(
                repo_id=model_id,
                filename=constants.SAFETENSORS_SINGLE_FILE,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                token=token,
                local_files_only=local_files_only,
            )
        # load_state_dict copies into the existing fp32 parameters, so fp16 checkpoints upcast here.
        missing, unexpected = safetensors.torch.load_model(model, model_file, strict=strict, device=map_location)
        del missing, unexpected
        model.eval()
        return model

    def _save_pretrained(self, save_directory: Path) -> None:
        # Weights as safetensors only; config.json also names the class (like diffusers' _class_name)
        # so load_generator() can rebuild any architecture from a folder or repo id.
        import safetensors.torch

        safetensors.torch.save_model(self, str(save_directory / constants.SAFETENSORS_SINGLE_FILE))
        config = {**(self._hub_mixin_config or {}), "_class_name": type(self).__name__}
        (save_directory / constants.CONFIG_NAME).write_text(json.dumps(config, sort_keys=True, indent=2) + "\n")

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        h, w = x.shape[-2:]
        ph = max(self.min_size - h, (-h) % self.stride)
        pw = max(self.min_size - w, (-w) % self.stride)
        ph, pw = ph + (-(h + ph)) % self.stride, pw + (-(w + pw)) % self.stride
        if ph or pw:
            # Reflect padding needs pad < size; replicate covers tiny inputs (e.g. 8x8 with stride 256).
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return x, h, w

    def _norm(self, norm: Norm, channels: int) -> nn.Module:
        """The norm layer at ``channels``: conditioned on the style when the model has styles."""
        return StyleNorm(norm, channels, len(self.styles)) if self.styles else norm_layer(norm, channels)

    def forward(self, x: torch.Tensor, style=None) -> torch.Tensor:
        """``x`` (N, C, H, W) in [-1, 1] -> the output at the same H and W; ``style``: see :meth:`style_weights`."""
        if not self.styles and style is not None:
            raise ValueError(f"{type(self).__name__} has no styles; call it without style=")
        x, h, w = self._pad(x)
        if not self.styles:
            return self.net(x)[..., :h, :w]
        return self.net(x, self.style_weights(style, x.shape[0], x.device, x.dtype))[..., :h, :w]


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

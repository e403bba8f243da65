"""The networks of a run, from the command line: the generator (``--generator`` and its options,
pix2pix's initialisation, a warm start from ``--init_weights``), the PatchGAN discriminators, and
helpers to freeze a network or reach the plain module under DDP / ``torch.compile``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..models import MultiscaleDiscriminator, PatchDiscriminator, StyleNorm, build_generator, grow_into, load_generator

logger = logging.getLogger(__name__)


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """N(0, 0.02) conv weights, zero biases, N(1, 0.02) batch-norm scales (pix2pix sec. 3.3 /
    the reference implementation's ``init_type='normal'``)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    for m in net.modules():
        if isinstance(m, StyleNorm):  # styles start as the plain norm (see StyleNorm)
            nn.init.zeros_(m.film.weight)
            nn.init.zeros_(m.film.bias)
    return net


def load_init_weights(generator: nn.Module, folder: str | os.PathLike, grow: bool = False) -> nn.Module:
    """Warm start (``--init_weights``): copy a Hub-layout folder's ``model.safetensors`` into ``generator``.

    Shapes must match exactly. The only keys allowed to be missing are the style layers
    (``StyleNorm.film``), so an unconditioned model warm-starts a style-conditioned one of the same
    architecture; those layers keep their identity initialisation, and a plain norm's weights
    (``net.1.weight``) go to the conditional norm's inner one (``net.1.norm.weight``). Optimizer
    state starts fresh.

    With ``grow`` (``--grow_init``), ``folder`` may hold a smaller model (smaller ``ngf`` and/or fewer
    ``n_blocks``, all else equal): it is copied in by :func:`~photosketch.models.grow_into`, so the
    bigger generator starts out drawing exactly what the small one drew.
    """
    from safetensors.torch import load_file

    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"--init_weights {folder}: no model.safetensors there")
    if grow:
        return _load_grown(generator, folder)
    own = generator.state_dict()
    loaded = {_styled_key(k, own): v for k, v in load_file(str(path)).items()}
    mismatched = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in loaded.items() if k in own and v.shape != own[k].shape]
    unexpected = sorted(set(loaded) - set(own))
    missing = sorted(k for k in set(own) - set(loaded) if ".film." not in k)
    if mismatched or unexpected or missing:
        problems = mismatched[:3] + [f"unexpected {k}" for k in unexpected[:3]] + [f"missing {k}" for k in missing[:3]]
        raise ValueError(f"--init_weights {folder} does not fit this generator: " + "; ".join(problems))
    with torch.no_grad():
        for k, v in loaded.items():
            own[k].copy_(v.to(own[k].dtype))
    logger.info("warm start from %s (%d tensors)", folder, len(loaded))
    return generator


def _load_grown(generator: nn.Module, folder: str | os.PathLike) -> nn.Module:
    """``--grow_init``: the smaller model in ``folder``, grown into ``generator`` (see load_init_weights)."""
    small = load_generator(folder).float()
    own_config, config = dict(generator._hub_mixin_config or {}), dict(small._hub_mixin_config or {})
    grows = ("ngf", "n_blocks")
    different = sorted(k for k in set(own_config) | set(config) if k not in grows and own_config.get(k) != config.get(k))
    if type(small) is not type(generator) or different:
        what = ", ".join(f"{k} {config.get(k)!r} vs {own_config.get(k)!r}" for k in different) or \
            f"{type(small).__name__} vs {type(generator).__name__}"
        raise ValueError(f"--init_weights {folder} --grow_init: only ngf and n_blocks may differ; {what}")
    bigger = [f"its {k} {config[k]} is larger than this generator's {own_config[k]}"
              for k in grows if k in config and config[k] > own_config[k]]
    if bigger:
        raise ValueError(f"--init_weights {folder} --grow_init: " + "; ".join(bigger))
    grow_into(small, generator)
    logger.info("warm start from %s, grown from %s", folder,
                ", ".join(f"{k} {config.get(k)} to {own_config.get(k)}" for k in grows if k in config))
    return generator


def _styled_key(key: str, own: dict) -> str:
    """``key`` of an unconditioned model as the style-conditioned ``own`` names it: a BatchNorm's
    ``a.weight`` is ``a.norm.weight`` inside a :class:`~photosketch.models.StyleNorm`."""
    head, _, leaf = key.rpartition(".")
    return f"{head}.norm.{leaf}" if key not in own and f"{head}.norm.{leaf}" in own else key


def train_only_style(generator: nn.Module, style: str) -> list[nn.Parameter]:
    """``--finetune_style``: freeze the generator except one style's scale and shift, and return those.

    In a conditional norm a style *is* its per-channel scale and shift (Dumoulin et al. 2017, sec. 2.2:
    "it is sufficient to specialize scaling and shifting parameters after normalization to each specific
    style"). With one-hot style weights that is column ``j`` of every :class:`StyleNorm`'s ``film``
    weight; the convolutions and the shared ``film`` bias stay frozen, and a gradient hook keeps every
    other column's gradient at zero, so Adam (moments zero, no weight decay) leaves the other styles
    bit-identical. A few thousand parameters to fit instead of a whole generator: the adaptation a few
    CPU-hours on one style's pairs can afford, without putting the other styles at risk.
    """
    j = generator.style_index(style)
    for p in generator.parameters():
        p.requires_grad_(False)

    def keep_column(grad: torch.Tensor) -> torch.Tensor:
        masked = torch.zeros_like(grad)
        masked[:, j] = grad[:, j]
        return masked

    params = []
    for m in generator.modules():
        if isinstance(m, StyleNorm):
            m.film.weight.requires_grad_(True)
            m.film.weight.register_hook(keep_column)
            params.append(m.film.weight)
    if not params:
        raise ValueError(f"{type(generator).__name__} has no style layers to fine-tune")
    logger.info("--finetune_style %s: training %d of %d parameters (that style's scale and shift in %d conditional norms)",
                style, sum(p.shape[0] for p in params), sum(p.numel() for p in generator.parameters()), len(params))
    return params


def merge_style_finetunes(base: nn.Module, tuned: dict[str, nn.Module]) -> nn.Module:
    """One model from ``--finetune_style`` runs that started from ``base`` side by side, one style each.

    Each run changed only its own style's column of the conditional norms (:func:`train_only_style`), so
    the runs commute: the merge is ``base`` with column ``j`` of every ``film`` weight taken from the run
    of style ``j``. A run that changed anything else (another style, a convolution) or has another
    architecture is a ``ValueError``: merging it would silently drop part of what it learned.
    Returns a new model; ``base`` and the runs are left as they are.
    """
    import copy

    merged = copy.deepcopy(base)
    own = merged.state_dict()
    base_state = base.state_dict()
    # The columns train_only_style trains: the film weight of every StyleNorm, found the same way.
    style_keys = {f"{name}.film.weight" for name, m in base.named_modules() if isinstance(m, StyleNorm)}
    for style, model in tuned.items():
        j = base.style_index(style)
        state = model.state_dict()
        if list(state) != list(base_state) or tuple(getattr(model, "styles", ())) != tuple(base.styles):
            raise ValueError(f"the {style!r} run is not the base model's architecture and styles")
        for key, value in state.items():
            if value.shape != base_state[key].shape:
                raise ValueError(f"the {style!r} run's {key} has shape {tuple(value.shape)}, the base's {tuple(base_state[key].shape)}")
            diff = value != base_state[key]
            if key in style_keys:
                diff[:, j] = False  # its own style's column may move
                own[key][:, j] = value[:, j]
            if diff.any():
                raise ValueError(f"the {style!r} run also changed {key} beyond its own style: was it trained with "
                                 f"--finetune_style {style} from this base?")
    merged.load_state_dict(own)
    return merged


def generator_kwargs(args: argparse.Namespace, in_channels: int, out_channels: int, styles: Sequence[str] | None = None) -> dict:
    """Constructor arguments of ``--generator`` from the command line (only those it takes)."""
    kwargs: dict[str, Any] = {"in_channels": in_channels, "out_channels": out_channels, "ngf": args.ngf, "sample_size": args.resolution}
    if styles:
        kwargs["styles"] = list(styles)
    if args.generator in ("resnet", "compact") and args.n_blocks is not None:
        kwargs["n_blocks"] = args.n_blocks
    if args.generator == "unet":
        # U-Net-256 has 8 levels, U-Net-128 7: the bottleneck reaches 1x1 (pix2pix appendix 6.1.1).
        kwargs["num_downs"] = args.num_downs or max(5, min(8, int(math.log2(args.resolution))))
    if args.norm is not None:
        kwargs["norm"] = args.norm
    elif args.generator == "unet":
        # pix2pix trains at batch size 1 and keeps batch norm in training mode at test time, i.e.
        # instance norm; using instance norm outright gives the exported (eval-mode) model the same
        # behaviour as during training.
        kwargs["norm"] = "instance"
    if args.dropout is not None and args.generator in ("resnet", "unet"):
        kwargs["dropout"] = args.dropout
    return kwargs


def build_generator_from_args(args: argparse.Namespace, in_channels: int, out_channels: int,
                              styles: Sequence[str] | None = None) -> nn.Module:
    """The generator, initialised (pix2pix sec. 3.3), warm-started from ``--init_weights`` when given."""
    generator = init_weights(build_generator(args.generator, **generator_kwargs(args, in_channels, out_channels, styles)))
    if getattr(args, "init_weights", None):
        try:
            load_init_weights(generator, args.init_weights, grow=getattr(args, "grow_init", False))
        except (ValueError, TypeError) as e:  # a folder that does not fit: one line, like argparse's errors
            raise SystemExit(f"error: {e}") from None
    return generator


def build_discriminator(args: argparse.Namespace, in_channels: int, num_scales: int | None = None) -> nn.Module:
    """A 70x70 PatchGAN (``--ndf``, ``--n_layers_d``, ``--norm_d``) judging ``in_channels``-channel images,
    initialised as pix2pix sec. 3.3. With ``num_scales``, pix2pixHD's stack of them at full, 1/2, 1/4...
    resolution, which returns every layer's features (what feature matching needs, even at one scale)."""
    if num_scales is not None:
        net = MultiscaleDiscriminator(in_channels, ndf=args.ndf, n_layers=args.n_layers_d, norm=args.norm_d,
                                      num_scales=num_scales)
    else:
        net = PatchDiscriminator(in_channels, ndf=args.ndf, n_layers=args.n_layers_d, norm=args.norm_d)
    return init_weights(net)


def set_requires_grad(modules: nn.Module | Sequence[nn.Module], flag: bool) -> None:
    """Freeze the discriminator(s) while the generator is updated (saves their gradient compute)."""
    for m in [modules] if isinstance(modules, nn.Module) else modules:
        for p in m.parameters():
            p.requires_grad_(flag)


def unwrap(model: nn.Module, accelerator=None) -> nn.Module:
    """The plain module under DDP / torch.compile wrappers."""
    if accelerator is not None:
        return accelerator.unwrap_model(model, keep_torch_compile=False)
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        else:
            return model


class FeatureTap:
    """Keeps the output of one module from the latest forward pass (a forward hook), for feature losses
    (``train/distill.py``: the teacher's and the student's bottleneck)."""

    def __init__(self, module: nn.Module):
        self.value: torch.Tensor | None = None
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        self.value = output

    def remove(self) -> None:
        # Hooks are part of a module's state: gone before export (deepcopy) so the model is saved bare.
        self._handle.remove()
        self.value = None

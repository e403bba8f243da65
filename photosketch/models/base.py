"""What every generator shares: the Hub base class :class:`PhotoSketchModel` and the layers that
make a generator style-conditioned (:class:`StyleNorm`, :class:`Chain`).

``PhotoSketchModel`` is ``nn.Module`` + ``PyTorchModelHubMixin``: typed constructor arguments are
the ``config.json`` that ``save_pretrained`` writes, weights are saved as ``model.safetensors``
only, and ``from_pretrained`` loads strictly. Inputs of any size are padded to the network's
stride and the output is cropped back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin, constants, hf_hub_download
from torch import nn

Norm = Literal["instance", "batch", "none"]
_MODEL_CARD = Path(__file__).resolve().parents[2] / "model_cards" / "generator.md"
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

    def _require_styles(self) -> None:
        if not self.styles:
            raise ValueError(f"{type(self).__name__} has no styles; call it without style=")

    def style_index(self, style: str | int) -> int:
        """The position of ``style`` (a name or an index) in :attr:`styles`; a one-line ``ValueError`` otherwise."""
        self._require_styles()
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

    def style_input(self, style, batch: int, device=None, dtype=None) -> torch.Tensor | None:
        """What the network takes for ``style``: :meth:`style_weights`, or ``None`` for a model without
        styles (which refuses a ``style`` with a one-line ``ValueError``). Used by :meth:`forward` and
        by the other backends (:class:`~photosketch.runtime.OnnxRunner`)."""
        if not self.styles:
            if style is not None:
                self._require_styles()
            return None
        return self.style_weights(style, batch, device, dtype)

    def forward(self, x: torch.Tensor, style=None) -> torch.Tensor:
        """``x`` (N, C, H, W) in [-1, 1] -> the output at the same H and W; ``style``: see :meth:`style_weights`."""
        w = self.style_input(style, x.shape[0], x.device, x.dtype)
        x, h, width = self._pad(x)
        return (self.net(x) if w is None else self.net(x, w))[..., :h, :width]



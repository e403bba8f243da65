"""photosketch.training.args: the shared flags, the GAN / paired groups, one-line errors, the command line."""

import pytest

from photosketch.training.args import (
    add_gan_args,
    add_paired_args,
    check_common_args,
    format_command,
    refuse_args,
    trainer_parser,
)


def test_trainer_parser_with_gan_and_paired_groups(tmp_path):
    parser, group = trainer_parser("A trainer.", "mine")
    add_paired_args(group, lambda_l1=25.0)
    args = parser.parse_args(["--data_dir", str(tmp_path)])
    assert (args.lambda_l1, args.gan_weight, args.gan_mode, args.norm_d, args.sketch_source) == (25.0, 1.0, "vanilla", "instance", "real")
    assert "mine" in [g.title for g in parser._action_groups] and parser.description == "A trainer."
    parser, group = trainer_parser("CycleGAN.", "cyclegan")
    add_gan_args(group, gan_mode="lsgan", judged="real and generated images")
    assert parser.parse_args([]).gan_mode == "lsgan" and parser.parse_args([]).data_dir is None  # --data_dir optional
    assert "real and generated images go through D" in " ".join(parser.format_help().split())


@pytest.mark.parametrize("argv, message", [
    (["--resolution", "8"], "--resolution must be at least 16"),
    (["--resolution", "32", "--train_crop", "64"], "--train_crop must be between 16 and --resolution (32); got 64"),
    (["--train_crop", "128", "--data_pack", "x.pack"], "--train_crop needs --data_dir (a pack is augmented on the device, at full size)"),
    (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be >= 1"),
    (["--max_train_minutes", "0"], "--max_train_minutes must be > 0"),
    (["--decay_start_fraction", "1.5"], "--decay_start_fraction must be in [0, 1]"),
    (["--resume_from_checkpoint", "nowhere"], "--resume_from_checkpoint nowhere: no such checkpoint folder"),
])
def test_bad_values_are_one_line_usage_errors(tmp_path, capsys, argv, message):
    parser, _ = trainer_parser("A trainer.", "mine")
    args = parser.parse_args(["--data_dir", str(tmp_path), *argv])
    with pytest.raises(SystemExit) as exc:
        check_common_args(parser, args)
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"error: {message}")


def test_refused_flags_and_the_card_command(tmp_path, capsys):
    parser, _ = trainer_parser("A trainer.", "mine")
    args = parser.parse_args(["--data_dir", str(tmp_path), "--style_conditioning"])
    refuse_args(parser, parser.parse_args(["--data_dir", str(tmp_path)]), ("style_conditioning",), "train/x.py")  # unset: fine
    with pytest.raises(SystemExit):
        refuse_args(parser, args, ("style_conditioning",), "train/x.py")
    assert "--style_conditioning is not supported by train/x.py" in capsys.readouterr().err
    assert format_command(["--data_dir", "my data"], "train/x.py") == "python train/x.py --data_dir 'my data'"
    assert format_command(None, "train/x.py") == "python train/x.py"

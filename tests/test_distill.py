"""train/distill.py end to end: a tiny teacher (ngf 8) distilled into a tinier student (ngf 4) at 32 px."""

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from photosketch.models import CompactGenerator, UnetGenerator, load_generator
from tests.conftest import load_script
from tests.test_pix2pix import _fresh_accelerate_state, checkpoints, make_pairs  # noqa: F401 (autouse fixture)

ROOT = Path(__file__).resolve().parent.parent


distill = load_script("train/distill.py", "distill_trainer")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_pairs(tmp_path_factory.mktemp("pairs"))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A (random-weight) compact photo->sketch teacher saved in Hub layout, trained at 32 px."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("teacher") / "photo2sketch"
    CompactGenerator(ngf=8, n_blocks=2, norm="batch", sample_size=32).eval().save_pretrained(path)
    return path


def run(data_dir, teacher, out, *extra):
    argv = ["--data_dir", str(data_dir), "--teacher", str(teacher), "--output_dir", str(out), "--ngf", "4",
            "--n_blocks", "2", "--ndf", "8", "--train_batch_size", "2", "--report_to", "none", "--validation_steps", "0",
            "--num_validation_images", "2", "--logging_steps", "1", "--seed", "3", *extra]
    return distill.main(distill.parse_args(argv))


def test_distils_exports_the_student_and_logs_every_loss(data_dir, teacher, tmp_path):
    out = tmp_path / "run"
    export = run(data_dir, teacher, out, "--max_train_steps", "2", "--validation_steps", "2", "--checkpointing_steps", "0")
    assert export == out / "photo2sketch"
    student = load_generator(export)
    config = json.loads((export / "config.json").read_text())
    # The student is the --generator/--ngf asked for; resolution and direction come from the teacher.
    assert type(student).__name__ == "CompactGenerator" and config["ngf"] == 4 and config["sample_size"] == 32
    assert (config["in_channels"], config["out_channels"]) == (3, 1)
    assert student(torch.zeros(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    records = [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines()]
    assert {"loss/teacher_l1", "loss/l1", "loss/feature", "loss/gan_generator", "loss/discriminator"} <= records[0].keys()
    # The validation grid shows input | student | teacher | target for each of the 2 images.
    from PIL import Image

    grid = Image.open(out / "validation" / "step-2.png")
    assert grid.size == (4 * 34 + 2, 2 * 34 + 2)
    card = (export / "README.md").read_text()
    assert "train/distill.py" in card and str(teacher) in card and "L1 to the teacher x 100" in card


def test_student_moves_towards_the_teacher(data_dir, teacher, tmp_path):
    # Only the teacher term: after some steps the student's L1 to the teacher must have dropped.
    out = tmp_path / "run"
    run(data_dir, teacher, out, "--max_train_steps", "30", "--checkpointing_steps", "0", "--lambda_l1", "0",
        "--gan_weight", "0", "--lambda_feature", "0", "--learning_rate", "2e-3", "--no-augment")
    losses = [json.loads(line)["loss/teacher_l1"] for line in (out / "logs.jsonl").read_text().splitlines()]
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


def test_resume_matches_uninterrupted_run(data_dir, teacher, tmp_path):
    # The feature adapter and the discriminator are checkpointed along with the student.
    common = ("--checkpointing_steps", "2")
    run(data_dir, teacher, tmp_path / "full", "--max_train_steps", "4", *common)
    run(data_dir, teacher, tmp_path / "split", "--max_train_steps", "2", *common)
    run(data_dir, teacher, tmp_path / "split", "--max_train_steps", "4", "--resume_from_checkpoint", "latest", *common)
    assert checkpoints(tmp_path / "split") == [2, 4]
    names = sorted(p.name for p in (tmp_path / "full" / "checkpoint-4").glob("model*.safetensors"))
    assert len(names) == 3  # student, discriminator, adapter
    for name in [f"checkpoint-4/{n}" for n in names] + ["photo2sketch/model.safetensors"]:
        a, b = load_file(tmp_path / "full" / name), load_file(tmp_path / "split" / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}:{k} differs after resume"


def test_sketch2photo_teacher_without_gan_or_features(data_dir, tmp_path):
    torch.manual_seed(0)
    teacher = tmp_path / "s2p"
    CompactGenerator(in_channels=1, out_channels=3, ngf=8, n_blocks=1, sample_size=32).save_pretrained(teacher)
    out = tmp_path / "run"
    export = run(data_dir, teacher, out, "--max_train_steps", "2", "--gan_weight", "0", "--lambda_feature", "0",
                 "--checkpointing_steps", "2", "--sketch_source", "mixed")
    assert export == out / "sketch2photo"
    assert sorted(p.name for p in (out / "checkpoint-2").glob("model*.safetensors")) == ["model.safetensors"]
    assert load_generator(export)(torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)


def test_unet_teacher_needs_feature_loss_off(data_dir, tmp_path, capsys):
    teacher = tmp_path / "unet"
    UnetGenerator(ngf=8, num_downs=5, sample_size=32).save_pretrained(teacher)
    with pytest.raises(SystemExit):
        distill.parse_args(["--data_dir", str(data_dir), "--teacher", str(teacher)])
    assert "--lambda_feature" in capsys.readouterr().err
    args = distill.parse_args(["--data_dir", str(data_dir), "--teacher", str(teacher), "--lambda_feature", "0"])
    assert args.direction == "photo2sketch" and args.resolution == 32


@pytest.mark.parametrize("name, message", [("xdog", "classical style"), ("no/such-model-here", "not found")])
def test_bad_teacher_is_a_usage_error(data_dir, name, message, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit) as exc:
        distill.parse_args(["--data_dir", str(data_dir), "--teacher", name])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--teacher" in err and message in err and "Traceback" not in err


def test_default_teacher_is_the_shipped_model(data_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = distill.parse_args(["--data_dir", str(data_dir)])
    # weights/photo2sketch: a 256 px style-conditioned photo->sketch model, so the student trains at 256 px,
    # in the style the pipeline draws by default.
    assert (args.teacher, args.direction, args.resolution) == ("photo2sketch", "photo2sketch", 256)
    assert args.teacher_style == "fs2k-2"
    assert (args.generator, args.ngf, args.norm) == ("compact", 8, "batch")


def test_missing_default_teacher_says_what_to_do(data_dir, weights, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit):
        distill.parse_args(["--data_dir", str(data_dir)])
    assert "no photo→sketch model is installed" in capsys.readouterr().err


def test_two_processes_on_cpu(data_dir, teacher, tmp_path):
    # DDP over gloo with the feature adapter as a second wrapped module (see tests/test_pix2pix.py).
    import subprocess
    import sys

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "train/distill.py", "--data_dir", str(data_dir),
           "--teacher", str(teacher), "--output_dir", str(out), "--ngf", "4", "--n_blocks", "2", "--ndf", "8",
           "--train_batch_size", "1", "--max_train_steps", "2", "--checkpointing_steps", "2", "--validation_steps", "0",
           "--report_to", "none"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= set(os.listdir(out / "checkpoint-2"))
    assert load_generator(out / "photo2sketch")(torch.zeros(1, 3, 32, 32)).shape == (1, 1, 32, 32)


def test_styled_teacher_teaches_one_style(data_dir, tmp_path, capsys):
    # A style-conditioned teacher: the (single-style) student learns the style it is told, and the
    # validation grid's teacher column shows that style.
    torch.manual_seed(0)
    teacher = CompactGenerator(ngf=8, n_blocks=2, sample_size=32, styles=["a", "b"]).eval()
    with torch.no_grad():
        for m in teacher.modules():
            if type(m).__name__ == "StyleNorm":
                m.film.weight.normal_(0, 1.0)
    teacher.save_pretrained(tmp_path / "teacher")
    args = distill.parse_args(["--data_dir", str(data_dir), "--teacher", str(tmp_path / "teacher")])
    assert args.teacher_style == "a"  # no preferred style among a, b: the first
    with pytest.raises(SystemExit):
        distill.parse_args(["--data_dir", str(data_dir), "--teacher", str(tmp_path / "teacher"), "--teacher_style", "c"])
    assert "--teacher_style 'c': the teacher draws a, b" in capsys.readouterr().err
    out = run(data_dir, tmp_path / "teacher", tmp_path / "run", "--teacher_style", "b", "--max_train_steps", "1",
              "--validation_steps", "1", "--num_validation_images", "1")
    assert load_generator(out).styles == ()


def test_distils_from_a_pack(data_dir, teacher, tmp_path):
    # --data_pack (the GPU recipe's student phase): the pairs decoded once into device memory.
    from photosketch.packed import write_pack

    write_pack(tmp_path / "p.safetensors", data_dir, resolution=32, progress=False)
    argv = ["--data_pack", str(tmp_path / "p.safetensors"), "--teacher", str(teacher), "--output_dir", str(tmp_path / "run"),
            "--ngf", "4", "--n_blocks", "2", "--ndf", "8", "--train_batch_size", "2", "--report_to", "none",
            "--max_train_steps", "3", "--checkpointing_steps", "0", "--validation_steps", "3", "--num_validation_images", "2"]
    export = distill.main(distill.parse_args(argv))
    assert load_generator(export)(torch.zeros(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    assert (tmp_path / "run" / "validation" / "step-3.png").is_file()
    assert json.loads((tmp_path / "run" / "logs.jsonl").read_text().splitlines()[-1])["step"] == 3


def test_needs_data(teacher, capsys):
    with pytest.raises(SystemExit):
        distill.parse_args(["--teacher", str(teacher)])
    assert "give --data_dir (or --data_pack)" in capsys.readouterr().err


def _styled_teacher(path: Path) -> Path:
    """A compact teacher drawing the styles a and b (random, non-zero style layers: the styles differ)."""
    torch.manual_seed(0)
    teacher = CompactGenerator(ngf=8, n_blocks=2, norm="batch", sample_size=32, styles=["a", "b"]).eval()
    with torch.no_grad():
        for m in teacher.modules():
            if type(m).__name__ == "StyleNorm":
                m.film.weight.normal_(0, 1.0)
    teacher.save_pretrained(path)
    return path


def test_style_conditioned_student_learns_every_style(tmp_path):
    # --style_conditioning: each pair is distilled in its own style (styles.csv), into a student that
    # takes the teacher's styles, warm-started from an unconditioned student (issue 13, item 5).
    from tests.test_pix2pix import _styled_pairs

    data, teacher = _styled_pairs(tmp_path / "data"), _styled_teacher(tmp_path / "teacher")
    plain = CompactGenerator(ngf=4, n_blocks=2, norm="batch", sample_size=32)
    plain.save_pretrained(tmp_path / "plain")
    out = tmp_path / "run"
    export = run(data, teacher, out, "--style_conditioning", "--init_weights", str(tmp_path / "plain"),
                 "--max_train_steps", "40", "--checkpointing_steps", "0", "--lambda_l1", "0", "--gan_weight", "0",
                 "--lambda_feature", "0", "--learning_rate", "5e-3", "--no-augment", "--validation_steps", "40")
    student = load_generator(export).eval()
    assert student.styles == ("a", "b") and json.loads((export / "config.json").read_text())["styles"] == ["a", "b"]
    assert "in every style of the teacher (a, b; `style=` at inference)" in (export / "README.md").read_text()
    assert (out / "validation" / "step-40.png").is_file()
    # Each style of the student has moved towards the teacher's answer in that style, and they differ.
    teacher_model = load_generator(teacher).eval()
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        for style in ("a", "b"):
            before = (plain.eval()(x) - teacher_model(x, style=style)).abs().mean()
            after = (student(x, style=style) - teacher_model(x, style=style)).abs().mean()
            assert after < 0.8 * before, style
        assert not torch.allclose(student(x, style="a"), student(x, style="b"), atol=1e-3)


def test_style_conditioning_usage_errors(data_dir, teacher, tmp_path, capsys):
    from tests.test_pix2pix import _styled_pairs

    styled = _styled_teacher(tmp_path / "teacher")
    data = _styled_pairs(tmp_path / "data")
    cases = [
        (["--data_dir", str(data), "--teacher", str(teacher)], "the teacher"),  # an unstyled teacher
        (["--data_dir", str(data), "--teacher", str(styled), "--teacher_style", "a"], "drop one of them"),
        (["--data_dir", str(data_dir), "--teacher", str(styled)], "no style for unstyled pairs"),  # no styles.csv
    ]
    (tmp_path / "other" / "train").mkdir(parents=True)
    for sub in ("photos", "sketches"):
        (tmp_path / "other" / "train" / sub).symlink_to(data / "train" / sub)
    (tmp_path / "other" / "train" / "styles.csv").write_text("name,style\n" + "".join(f"{i:02d},c\n" for i in range(6)))
    cases.append((["--data_dir", str(tmp_path / "other"), "--teacher", str(styled)], "the teacher has no style c (it draws a, b)"))
    for argv, message in cases:
        with pytest.raises(SystemExit) as exc:
            distill.parse_args([*argv, "--style_conditioning"])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err and "Traceback" not in err, err


def test_gradient_similarity_to_the_teacher(data_dir, teacher, tmp_path, capsys):
    # --lambda_gradient: 1 - FSIM's gradient similarity of the student's output to the teacher's, logged and in the card.
    out = tmp_path / "run"
    export = run(data_dir, teacher, out, "--max_train_steps", "2", "--checkpointing_steps", "0", "--lambda_gradient", "50")
    record = json.loads((out / "logs.jsonl").read_text().splitlines()[0])
    assert 0 < record["loss/gradient_similarity"] <= 1
    assert "gradient similarity to the teacher x 50" in (export / "README.md").read_text()
    with pytest.raises(SystemExit):
        distill.parse_args(["--data_dir", str(data_dir), "--teacher", str(teacher), "--lambda_gradient", "-1"])
    assert "--lambda_gradient must be >= 0" in capsys.readouterr().err


def test_grow_init_warm_starts_a_bigger_student(data_dir, teacher, tmp_path, capsys, monkeypatch):
    # --init_weights SMALL --grow_init: the wider, deeper student starts out drawing what the small one
    # drew (so training adds to it); anything else differing is a one-line error, not a traceback.
    import photosketch.training.nets as nets

    small = CompactGenerator(ngf=4, n_blocks=2, norm="batch", sample_size=32).eval()
    small.save_pretrained(tmp_path / "small")
    seen, real_load = {}, nets.load_init_weights

    def spy(generator, folder, grow=False):
        out = real_load(generator, folder, grow=grow)
        x = torch.rand(2, 3, 32, 32) * 2 - 1
        with torch.no_grad():
            seen["gap"] = (generator.eval()(x) - small(x)).abs().max().item()
        generator.train()
        return out

    monkeypatch.setattr(nets, "load_init_weights", spy)
    export = run(data_dir, teacher, tmp_path / "run", "--ngf", "6", "--n_blocks", "4", "--init_weights",
                 str(tmp_path / "small"), "--grow_init", "--max_train_steps", "2", "--checkpointing_steps", "0")
    monkeypatch.undo()
    assert seen["gap"] < 1e-5
    config = json.loads((export / "config.json").read_text())
    assert (config["ngf"], config["n_blocks"]) == (6, 4)
    with pytest.raises(SystemExit, match="only ngf and n_blocks may differ; norm 'batch' vs 'instance'"):
        run(data_dir, teacher, tmp_path / "bad", "--norm", "instance", "--init_weights", str(tmp_path / "small"),
            "--grow_init", "--max_train_steps", "1")
    with pytest.raises(SystemExit, match="its ngf 4 is larger than this generator's 2"):
        run(data_dir, teacher, tmp_path / "bad1", "--ngf", "2", "--init_weights", str(tmp_path / "small"),
            "--grow_init", "--max_train_steps", "1")
    with pytest.raises(SystemExit, match="does not fit this generator"):  # without --grow_init: refused
        run(data_dir, teacher, tmp_path / "bad2", "--ngf", "6", "--init_weights", str(tmp_path / "small"), "--max_train_steps", "1")
    with pytest.raises(SystemExit):
        distill.parse_args(["--data_dir", str(data_dir), "--teacher", str(teacher), "--grow_init"])
    assert "--grow_init needs --init_weights" in capsys.readouterr().err

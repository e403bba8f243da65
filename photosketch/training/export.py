"""The end of a run: the trained generator saved in Hub layout (``save_pretrained``: config.json,
model.safetensors and a model card that reads the same for every trainer), and ``--push_to_hub``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .nets import unwrap

logger = logging.getLogger(__name__)


def export_generator(
    model: nn.Module,
    path: str | os.PathLike,
    model_card_kwargs: dict | None = None,
    ema=None,
    accelerator=None,
) -> Path:
    """Save a trained generator in Hub layout (config.json, model.safetensors, README.md).

    The model is unwrapped and copied to fp32 on CPU (the training copy is untouched); with an
    ``ema`` (diffusers ``EMAModel``) its averaged weights are exported. ``path`` is replaced as a
    whole so no stale file from an earlier export survives.
    """
    net = copy.deepcopy(unwrap(model, accelerator)).to("cpu", torch.float32).to(memory_format=torch.contiguous_format)
    if ema is not None:
        ema.copy_to(net.parameters())
    net.eval()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp-export")
    shutil.rmtree(tmp, ignore_errors=True)
    net.save_pretrained(tmp, model_card_kwargs=model_card_kwargs or {})
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    logger.info("exported %s to %s", type(net).__name__, path)
    return path


def model_card_kwargs(
    args: argparse.Namespace,
    *,
    title: str,
    summary: str,
    method: str,
    data: str,
    loss: str,
    steps: int,
    class_name: str,
    gen_kwargs: dict,
    repo_id: str | None,
) -> dict:
    """``export_generator``'s model card fields in the layout every trainer's card shares: the
    trainer-specific ``method`` line, the command that trained it, then data, steps, loss,
    optimiser and seed, so cards of different trainers read (and compare) the same way."""
    training = "\n".join([
        method,
        "",
        "```bash",
        args.command,
        "```",
        "",
        f"- data: {data}",
        f"- steps: {steps}, resolution: {args.resolution}x{args.resolution}"
        + (f" (random {args.train_crop}x{args.train_crop} windows)" if getattr(args, "train_crop", None) else "")
        + ", batch size: "
        f"{args.train_batch_size} x {args.gradient_accumulation_steps} accumulation",
        f"- loss: {loss}",
        f"- optimiser: Adam lr {args.learning_rate:g}, betas ({args.adam_beta1:g}, {args.adam_beta2:g}), "
        f"schedule `{args.lr_scheduler}`" + (", EMA weights" if args.use_ema else ""),
        f"- seed: {args.seed}, mixed precision: {args.mixed_precision or 'no'}",
    ])
    return {
        "title": title,
        "summary": summary,
        "repo_id": repo_id,
        "class_name": class_name,
        "architecture": f"`{class_name}` with `{json.dumps(gen_kwargs, sort_keys=True)}`.",
        "training": training,
    }


def push_folder_to_hub(folder: str | os.PathLike, repo_id: str, token: str | None = None, commit_message: str | None = None) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` to it; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id=repo_id, repo_type="model", exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id,
        repo_type="model",
        folder_path=str(folder),
        commit_message=commit_message or "Upload photosketch generator",
    )
    logger.info("uploaded %s to %s", folder, repo_id)
    return str(getattr(info, "commit_url", info))


def export_and_push(generator, args: argparse.Namespace, name: str, card_kwargs: Callable[[str | None], dict],
                    accelerator, ema=None, commit_message: str = "", repo_suffix: bool = False) -> Path:
    """Export ``generator`` to ``OUTPUT_DIR/<name>/`` (Hub layout) and, with ``--push_to_hub``, upload it.

    ``card_kwargs(repo_id)`` builds the model card fields. The repo id is ``--hub_model_id`` (with
    ``-<name>`` appended when ``repo_suffix``: a trainer that exports several models) or one derived
    from the output folder; it is written into the card only when the model goes to the Hub.
    """
    export_dir = Path(args.output_dir) / name
    if args.hub_model_id:
        repo_id = f"{args.hub_model_id}-{name}" if repo_suffix else args.hub_model_id
    else:
        repo_id = default_hub_model_id(args.output_dir, name)
    card_repo_id = repo_id if (args.push_to_hub or args.hub_model_id) else None
    export_generator(generator, export_dir, card_kwargs(card_repo_id), ema=ema, accelerator=accelerator)
    logger.info("exported %s to %s", name, export_dir)
    if args.push_to_hub:
        url = push_folder_to_hub(export_dir, repo_id, token=args.hub_token, commit_message=commit_message or None)
        logger.info("pushed %s to %s", name, url)
    return export_dir


def default_hub_model_id(output_dir: str | os.PathLike, suffix: str = "") -> str:
    name = Path(output_dir).resolve().name + (f"-{suffix}" if suffix else "")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "photosketch"

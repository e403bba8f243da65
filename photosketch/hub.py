"""The model registry: names -> classical styles, Hub repos and the folders shipped in ``weights/``.

A name resolves, in this order:

1. an existing folder with a ``config.json`` (``load_model("runs/p2s/final")``);
2. for a registry name with a ``repo_id`` (or any ``"org/name"`` string): the Hugging Face Hub,
   through the local HF cache. Offline (``HF_HUB_OFFLINE=1``) or when the Hub is unreachable only
   the cache is read; a 3-second probe decides "unreachable", so there are no long retries;
3. the shipped folder ``weights/<name>`` (exact Hub layout: config.json, model.safetensors, README.md);
4. otherwise :class:`ModelNotAvailableError`.

A learned model is never built with random weights as a fallback: no weights, no model.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from huggingface_hub import constants
from torch import nn

from .classical import build_style
from .models import load_generator

__all__ = [
    "MODELS",
    "WEIGHTS_DIR",
    "Direction",
    "ModelNotAvailableError",
    "UnknownModelError",
    "ModelSpec",
    "available_models",
    "default_model",
    "load_model",
    "model_styles",
    "resolve_direction",
]

logger = logging.getLogger(__name__)

Direction = Literal["photo2sketch", "sketch2photo"]
DIRECTIONS: tuple[str, ...] = ("photo2sketch", "sketch2photo")


def _shipped_weights_dir() -> Path:
    """``weights/`` next to the package in a checkout (or an editable install), else the copy a
    plain ``pip install .`` puts inside the package (``photosketch/weights/``, package data)."""
    here = Path(__file__).resolve().parent
    checkout = here.parent / "weights"
    return checkout if checkout.is_dir() and (here.parent / "pyproject.toml").is_file() else here / "weights"


#: Shipped models, one folder per registry name, in exact Hub layout (``$PHOTOSKETCH_WEIGHTS_DIR``
#: overrides it, e.g. for a deployment that keeps the weights elsewhere).
WEIGHTS_DIR = Path(os.environ.get("PHOTOSKETCH_WEIGHTS_DIR") or _shipped_weights_dir())

#: Seconds to wait for the Hub before treating it as unreachable (huggingface_hub's own downloads
#: retry a failing connection five times with back-off, ~25 s, which is too long for a fallback).
HUB_PROBE_TIMEOUT = 3.0

_ARROW = {"photo2sketch": "photo→sketch", "sketch2photo": "sketch→photo"}
_TRAINER = {"photo2sketch": "train/pix2pix.py or train/cyclegan.py", "sketch2photo": "train/pix2pix.py"}


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry. ``style`` names a classical style (no weights); ``repo_id`` a Hub repo."""

    name: str
    direction: Direction
    description: str
    repo_id: str | None = None
    style: str | None = None
    #: How to make the weights yourself, for the "not installed" message (default: by direction).
    trainer: str | None = None

    @property
    def local_dir(self) -> Path:
        """The shipped folder ``weights/<name>`` (read at call time, so tests can point it elsewhere)."""
        return WEIGHTS_DIR / self.name


MODELS: dict[str, ModelSpec] = {
    "xdog": ModelSpec("xdog", "photo2sketch", "XDoG line-and-tone sketch (Winnemöller et al. 2012); no weights", style="xdog"),
    "pencil": ModelSpec("pencil", "photo2sketch", "colour-dodge pencil sketch; no weights", style="pencil"),
    "lines": ModelSpec("lines", "photo2sketch", "thin black-on-white line drawing; no weights", style="lines"),
    "photo2sketch": ModelSpec(
        "photo2sketch", "photo2sketch", "learned face photo → pencil sketch generator", repo_id="photosketch/photo2sketch"
    ),
    "photo2sketch-fast": ModelSpec(
        "photo2sketch-fast", "photo2sketch", "photo → sketch student distilled from photo2sketch for real-time use "
        "(the live webcam default)", repo_id="photosketch/photo2sketch-fast", trainer="train/distill.py"
    ),
    "sketch2photo": ModelSpec(
        "sketch2photo", "sketch2photo", "learned face sketch → photo generator", repo_id="photosketch/sketch2photo"
    ),
}


class ModelNotAvailableError(LookupError):
    """A known model whose weights are neither in a folder, the HF cache, the Hub nor ``weights/``."""


class UnknownModelError(ModelNotAvailableError, KeyError):
    """A name that is no registry entry, folder or Hub repo id: a :class:`ModelNotAvailableError` (the
    documented error for any model that cannot be loaded) and a ``KeyError`` (an unknown registry
    key), with its message unquoted."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}; got {direction!r}")
    return direction


def _weights_dir(weights_dir: str | os.PathLike | None) -> Path:
    return Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR


def _is_model_folder(path: Path) -> bool:
    return (path / constants.CONFIG_NAME).is_file() and (path / constants.SAFETENSORS_SINGLE_FILE).is_file()


def _looks_like_repo_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~")) and "\\" not in name


def _offline(hub_kwargs: dict) -> bool:
    # constants.HF_HUB_OFFLINE is read once at import; the environment may have changed since.
    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return bool(hub_kwargs.get("local_files_only")) or env or constants.is_offline_mode()


def _is_hub_error(exc: BaseException) -> bool:
    """Not found / not cached / no network: reasons to fall through to the next source."""
    from huggingface_hub import errors

    if isinstance(exc, (OSError, errors.EntryNotFoundError, errors.HFValidationError, errors.HTTPError)):
        return True
    # the HTTP client's own connection errors (httpx / requests, depending on the hub version)
    return type(exc).__module__.split(".")[0] in {"httpx", "httpx2", "httpcore", "requests", "urllib3"}


def _hub_reachable(repo_id: str, hub_kwargs: dict) -> bool:
    from huggingface_hub import HfApi

    try:
        HfApi(token=hub_kwargs.get("token")).model_info(repo_id, revision=hub_kwargs.get("revision"), timeout=HUB_PROBE_TIMEOUT)
        return True
    except Exception as exc:  # noqa: BLE001 - any failure means "use the cache only"
        logger.debug("Hub probe for %s failed (%s: %s); using the local cache only", repo_id, type(exc).__name__, exc)
        return False


def _from_hub(repo_id: str, hub_kwargs: dict) -> nn.Module | None:
    """The model from the Hub (online) or the HF cache (offline / unreachable); ``None`` if neither has it."""
    online = not _offline(hub_kwargs) and _hub_reachable(repo_id, hub_kwargs)
    kwargs = dict(hub_kwargs)
    if not online:
        kwargs["local_files_only"] = True
    try:
        return load_generator(repo_id, **kwargs)
    except Exception as exc:
        if not _is_hub_error(exc):
            raise  # a broken checkpoint (wrong keys, bad config) must fail loudly, not fall back
        logger.debug("%s not available from the Hub/cache: %s: %s", repo_id, type(exc).__name__, exc)
    if online:  # the download failed midway: a cached copy is still better than nothing
        try:
            return load_generator(repo_id, **{**hub_kwargs, "local_files_only": True})
        except Exception as exc:
            if not _is_hub_error(exc):
                raise
    return None


def _cached(repo_id: str, hub_kwargs: dict) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return all(
            isinstance(
                try_to_load_from_cache(repo_id, f, cache_dir=hub_kwargs.get("cache_dir"), revision=hub_kwargs.get("revision")),
                str,
            )
            for f in (constants.CONFIG_NAME, constants.SAFETENSORS_SINGLE_FILE)
        )
    except Exception as exc:  # noqa: BLE001 - an unreadable cache is an empty cache here
        logger.debug("cache lookup for %s failed: %s", repo_id, exc)
        return False


def _not_available(name: str, spec: ModelSpec | None, weights_dir: Path) -> ModelNotAvailableError:
    if spec is None:
        return ModelNotAvailableError(
            f"model {name!r} was not found: not a folder, not in the Hugging Face cache and the Hub did not serve it"
        )
    return ModelNotAvailableError(
        f"no {_ARROW[spec.direction]} model is installed: train one with {spec.trainer or _TRAINER[spec.direction]} (see README), "
        f"put it in {weights_dir / spec.name}, or pass a model folder"
        + (f" (Hub repo {spec.repo_id}: not in the local Hugging Face cache, and offline or unreachable)" if spec.repo_id else "")
    )


def model_styles(name_or_path: str | os.PathLike, *, weights_dir: str | os.PathLike | None = None) -> list[str]:
    """The style names in a model's ``config.json`` (``[]`` for classical styles, unconditioned models and
    models that are not installed), read from the folder, the HF cache or ``weights/``: no weights
    are loaded and the network is never used (the app calls it while building its page)."""
    import json

    from huggingface_hub import try_to_load_from_cache

    name = os.fspath(name_or_path)
    spec = MODELS.get(name)
    candidates: list[Path] = []
    path = Path(name).expanduser()
    if path.is_dir():
        candidates.append(path / constants.CONFIG_NAME)
    elif spec is not None and spec.style is None:
        if spec.repo_id is not None:
            cached = try_to_load_from_cache(spec.repo_id, constants.CONFIG_NAME)
            if isinstance(cached, str):
                candidates.append(Path(cached))
        candidates.append(_weights_dir(weights_dir) / spec.name / constants.CONFIG_NAME)
    for config in candidates:
        if config.is_file():
            try:
                return [str(s) for s in json.loads(config.read_text(encoding="utf-8")).get("styles") or []]
            except (OSError, ValueError):
                return []
    return []


def load_model(name_or_path: str | os.PathLike, *, weights_dir: str | os.PathLike | None = None, **hub_kwargs) -> nn.Module:
    """A ready-to-run model (eval mode) by registry name, folder or Hub repo id.

    Args:
        name_or_path: a key of :data:`MODELS`, a model folder (``config.json`` + ``model.safetensors``)
            or a Hub repo id ``"org/name"``.
        weights_dir: where shipped folders live (default :data:`WEIGHTS_DIR`).
        **hub_kwargs: ``revision``, ``cache_dir``, ``token``, ``local_files_only``, ``force_download``.

    Raises:
        UnknownModelError: unknown name that is neither a path nor a repo id (lists the valid names);
            both a ``ModelNotAvailableError`` and a ``KeyError``.
        ModelNotAvailableError: a known model whose weights are nowhere to be found.
    """
    name = os.fspath(name_or_path)
    wdir = _weights_dir(weights_dir)
    path = Path(name).expanduser()
    spec = MODELS.get(name)
    if path.is_dir() and (spec is None or (path / constants.CONFIG_NAME).is_file()):
        # An explicit folder wins (load_generator raises a clear error if it lacks config.json).
        logger.info("loading model from folder %s", path)
        return load_generator(path).eval()
    if spec is None:
        if _looks_like_repo_id(name):
            model = _from_hub(name, hub_kwargs)
            if model is None:
                raise _not_available(name, None, wdir)
            return model.eval()
        raise UnknownModelError(
            f"unknown model {name!r}: not a folder, a Hub repo id or a registry name; "
            f"choose one of: {', '.join(sorted(MODELS))}"
        )
    if spec.style is not None:
        return build_style(spec.style)
    if spec.repo_id is not None:
        model = _from_hub(spec.repo_id, hub_kwargs)
        if model is not None:
            logger.info("loaded %s from the Hub / HF cache (%s)", name, spec.repo_id)
            return model.eval()
    shipped = wdir / spec.name
    if (shipped / constants.CONFIG_NAME).is_file():
        logger.info("loading shipped model %s", shipped)
        return load_generator(shipped).eval()
    raise _not_available(name, spec, wdir)


def is_available(name: str, *, weights_dir: str | os.PathLike | None = None, **hub_kwargs) -> bool:
    """Whether ``load_model(name)`` would succeed right now without the network (cheap: no weights are read)."""
    spec = MODELS[name]
    if spec.style is not None:
        return True
    if spec.repo_id is not None and _cached(spec.repo_id, hub_kwargs):
        return True
    return _is_model_folder(_weights_dir(weights_dir) / spec.name)


def available_models(direction: str, *, weights_dir: str | os.PathLike | None = None, **hub_kwargs) -> list[str]:
    """Registry names for ``direction`` usable now, offline: classical styles always, learned ones when
    their weights are in the HF cache or ``weights/``. Learned models come first."""
    _check_direction(direction)
    names = [n for n, s in MODELS.items() if s.direction == direction and is_available(n, weights_dir=weights_dir, **hub_kwargs)]
    return sorted(names, key=lambda n: MODELS[n].style is not None)  # stable: registry order within groups


def default_model(direction: str = "photo2sketch", *, fast: bool = False, weights_dir: str | os.PathLike | None = None,
                  **hub_kwargs) -> str:
    """``"photo2sketch"`` when its weights resolve offline, else ``"xdog"``; always ``"sketch2photo"``
    for the other direction (loading it raises :class:`ModelNotAvailableError` if it is absent).

    ``fast=True`` (the live webcam stream) prefers the distilled ``"photo2sketch-fast"`` when it is installed.
    """
    if _check_direction(direction) == "sketch2photo":
        return "sketch2photo"
    candidates = (["photo2sketch-fast"] if fast else []) + ["photo2sketch"]
    found = next((n for n in candidates if is_available(n, weights_dir=weights_dir, **hub_kwargs)), "xdog")
    if found != candidates[0]:
        spec = MODELS[candidates[0]]
        logger.warning("the learned %s model is not installed (not in the Hugging Face cache as %s, nor in %s); "
                       "using %s instead", spec.name, spec.repo_id, _weights_dir(weights_dir) / spec.name, found)
    return found


def resolve_direction(name_or_path: str | os.PathLike, model: nn.Module | None = None) -> str | None:
    """The direction of a registry name, or guessed from a learned model's channels (3→1 photo→sketch,
    1→3 sketch→photo); ``None`` when it cannot tell."""
    spec = MODELS.get(os.fspath(name_or_path))
    if spec is not None:
        return spec.direction
    config = getattr(model, "_hub_mixin_config", None) or {}
    channels = (config.get("in_channels"), config.get("out_channels"))
    return {(3, 1): "photo2sketch", (1, 3): "sketch2photo"}.get(channels)

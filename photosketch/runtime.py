"""Inference backends: how a loaded generator actually runs on the CPU.

``make_runner(model, backend)`` returns a callable ``NCHW tensor in [-1, 1] -> tensor`` that gives
the same numbers as ``model`` (within float rounding), faster:

- ``"torch"``: eager PyTorch on a copy with BatchNorm folded into the convs (:func:`fuse_conv_bn`).
- ``"onnxruntime"``: the folded network exported to ONNX in memory (dynamic batch, height and
  width) and run by ONNX Runtime's CPU provider. On a 2-vCPU machine the compact generators run
  about 1.5x faster than in eager PyTorch at 256 px and 2.4-2.6x at 128 px (the shipped models'
  working size), because ONNX Runtime fuses conv + activation and has less per-op overhead
  (``python benchmarks/latency.py --variants fp32 onnxruntime``). Export takes well under a second
  and happens once, when the pipeline is built.
- ``"auto"`` (the pipeline's default): ``onnxruntime`` when the ``onnxruntime`` and ``onnx``
  packages are installed and the model is a CPU :class:`~photosketch.models.PhotoSketchModel`,
  else ``torch``.

Tried and not kept (``benchmarks/latency.py --variants fp32 onnxruntime torchscript int8 compile
channels_last``; numbers in the README): at 128 px ONNX Runtime ran the shipped student in 4.0 ms
against 6.9 (TorchScript freeze + optimize_for_inference), 6.9 (int8 FX quantisation, mean error
0.006), 7.3 (``torch.compile``), 8.6 (channels_last) and 10.5 (eager). ``torch.compile`` also
compiles for ~30 s per new input shape and needs a C++ compiler on the host, which a Space may not have.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import threading
import warnings
from collections.abc import Callable

import torch
from torch import nn

from .models import PhotoSketchModel, fix_style, fuse_conv_bn, style_foldable

__all__ = ["BACKENDS", "OnnxRunner", "export_onnx", "make_runner", "onnxruntime_available"]

logger = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("auto", "torch", "onnxruntime")

Runner = Callable[..., torch.Tensor]


def onnxruntime_available() -> bool:
    """Whether the ONNX backend can be used: ``onnxruntime`` to run, ``onnx`` for torch's exporter."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def _on_cpu(model: nn.Module) -> bool:
    return all(p.device.type == "cpu" for p in model.parameters())


class _StyledNet(nn.Module):
    """A styled model's layers with the style weights as a second, explicit input, for export."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.net(x, w)


def export_onnx(model: PhotoSketchModel) -> bytes:
    """``model``'s network, BatchNorm folded, as an ONNX file (bytes).

    One input ``input`` (N x C x H x W in [-1, 1], H and W multiples of ``model.stride``), plus
    ``style`` (N x n_styles weights) for style-conditioned models; one output ``output``, same range.
    Batch, height and width are dynamic. The stride padding of ``PhotoSketchModel.forward`` is not in
    the graph: callers pad (``OnnxRunner``) or feed multiples of the stride (the browser's square
    working size). Used by :class:`OnnxRunner` in memory and by ``scripts/ship_model.py --onnx``, which
    writes it next to the safetensors for the app's in-browser mode (onnxruntime-web).
    """
    folded = fuse_conv_bn(model).eval()
    config = getattr(model, "_hub_mixin_config", None) or {}
    in_channels = int(config.get("in_channels", 3))
    size = max(folded.min_size, folded.stride, 32)
    size += (-size) % folded.stride
    dynamic = {0: "batch", 2: "height", 3: "width"}
    net, inputs, names, axes = folded.net, (torch.zeros(1, in_channels, size, size),), ["input"], {"input": dynamic}
    if folded.styles:  # style weights (batch, n_styles) as a second input
        net, names = _StyledNet(folded.net), ["input", "style"]
        inputs += (torch.zeros(1, len(folded.styles)),)
        axes["style"] = {0: "batch"}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # torch's TorchScript-based exporter warns that it is deprecated; it needs no onnxscript.
        warnings.simplefilter("ignore")
        torch.onnx.export(net, inputs, buffer, input_names=names, output_names=["output"],
                          dynamic_axes={**axes, "output": dynamic}, dynamo=False)
    return buffer.getvalue()


class OnnxRunner:
    """A :class:`PhotoSketchModel` run by ONNX Runtime, with the model's own stride padding.

    The model's ``net`` (BatchNorm folded) is exported with dynamic batch / height / width
    (:func:`export_onnx`), so one session serves every input size; padding to the stride and
    cropping back stay in Python, exactly as in ``PhotoSketchModel.forward``. ``num_threads``
    (default: torch's current setting) sets ONNX Runtime's intra-op threads; sessions are
    thread-safe, so one runner can serve concurrent requests.

    A style-conditioned model whose style layers fold into its convs (:func:`~photosketch.models.fix_style`:
    the BatchNorm student) runs a batch drawn in one style through a second session made for that
    style, exported on its first use and kept (at most :attr:`MAX_FIXED_STYLES`): the convolutions of
    an unconditioned model, without the per-layer scale and shift (12.2 -> 9.4 ms for the ngf 8
    student at 256², ``benchmarks/latency.py``). Mixed-style batches use the general session.
    """

    #: Sessions kept for single styles (the app's four styles, with room for a few style mixes).
    MAX_FIXED_STYLES = 8

    def __init__(self, model: PhotoSketchModel, num_threads: int | None = None) -> None:
        import onnxruntime as ort

        self.model = fuse_conv_bn(model).eval()
        onnx_bytes = export_onnx(model)
        self._ort = ort
        options = self._options = ort.SessionOptions()
        options.intra_op_num_threads = int(num_threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: no per-session warnings in the server log
        # ONNX Runtime's worker threads busy-wait after each run by default. Measured here (compact ngf 8,
        # 128 px, a frame every 20 ms) that kept 1.2 cores busy against 0.3 without spinning, for ~20 %
        # lower latency: on a 2-vCPU Space the face detector, JPEG encoding and other users need that CPU.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        # Whether the style layers fold into the convs; then per-style sessions, made on first use.
        self._foldable = style_foldable(self.model)
        self._fixed: dict[tuple[float, ...], object] = {}
        self._lock = threading.Lock()

    def _fixed_session(self, w: torch.Tensor):
        """The session for a batch whose style weights are all the row ``w[0]`` (``None``: use the general one)."""
        if not self._foldable or not bool((w == w[:1]).all()):
            return None
        key = tuple(w[0].tolist())
        with self._lock:
            session = self._fixed.get(key)
        if session is None:
            session = self._ort.InferenceSession(export_onnx(fix_style(self.model, w[0])), self._options,
                                                 providers=["CPUExecutionProvider"])
            with self._lock:
                if len(self._fixed) < self.MAX_FIXED_STYLES:
                    self._fixed[key] = session
        return session

    def __call__(self, x: torch.Tensor, style=None) -> torch.Tensor:
        """Like ``model(x, style)``: ``style`` as in :meth:`~photosketch.models.PhotoSketchModel.style_weights`."""
        feeds, session = {}, self.session
        w = self.model.style_input(style, x.shape[0], dtype=torch.float32)  # refuses a style for an unstyled model
        if w is not None:
            session = self._fixed_session(w)
            if session is None:
                session, feeds["style"] = self.session, w.numpy()
        x, h, w = self.model._pad(x)
        feeds["input"] = x.detach().float().contiguous().numpy()
        out = session.run(None, feeds)[0]
        return torch.from_numpy(out)[..., :h, :w]


def make_runner(model: nn.Module, backend: str = "auto", num_threads: int | None = None) -> Runner:
    """The fastest available way to run ``model`` (see the module docstring).

    Raises:
        ValueError: unknown ``backend``.
        ImportError: ``backend="onnxruntime"`` without the ``onnxruntime`` / ``onnx`` packages.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    learned = isinstance(model, PhotoSketchModel)
    if backend == "onnxruntime":
        if not onnxruntime_available():
            raise ImportError("backend='onnxruntime' needs the onnxruntime and onnx packages: pip install onnxruntime onnx")
        if not learned:
            raise ValueError(f"backend='onnxruntime' runs learned generators only, not {type(model).__name__}")
        return OnnxRunner(model, num_threads)
    if backend == "auto" and learned and _on_cpu(model) and onnxruntime_available():
        try:
            return OnnxRunner(model, num_threads)
        except Exception as exc:  # noqa: BLE001 - an export problem must not stop inference
            logger.warning("ONNX Runtime backend unavailable for %s (%s: %s); using PyTorch",
                           type(model).__name__, type(exc).__name__, exc)
    return fuse_conv_bn(model)

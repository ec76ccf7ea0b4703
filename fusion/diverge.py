"""Naming what went non-finite when training diverges.

When the loss of a training batch or a validation prediction is NaN/inf, :func:`first_nonfinite`
replays that forward pass and names the first non-finite thing on the way, in this order:

1. an input:      ``input audio features (video demo03)``;
2. a parameter or buffer of the model: ``parameter tcn.audio.network.0.conv1.bias (audio)``;
3. else the first module (in execution order) whose output is non-finite, e.g. a weight norm
   whose direction and magnitude underflowed to 0 (0/0):
   ``output of module tcn.audio.network.0.conv1.parametrizations.weight.0 (audio)``.

The modality in parentheses is the branch the name belongs to (``shared`` for the fused part).
The trainer stops with that message (fusion/train.py); :class:`Diverged` is raised when no epoch
was usable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from fusion.data import ArrayVideo, Video, WindowDataset
from fusion.evaluate import autocast, input_pad, model_inputs


class Diverged(RuntimeError):
    """Training went non-finite before any usable epoch; the message names the culprit."""


def branch(name: str, modalities: Sequence[str]) -> str:
    """The modality a parameter/module name belongs to (a dotted component), else ``shared``."""
    parts = name.split(".")
    hits = [m for m in modalities if m in parts or f"input_mean_{m}" in parts or f"input_std_{m}" in parts]
    return hits[0] if hits else "shared"


def _nonfinite(x) -> bool:
    if isinstance(x, torch.Tensor):
        return x.is_floating_point() and not bool(torch.isfinite(x).all())
    if isinstance(x, (tuple, list)):
        return any(_nonfinite(v) for v in x)
    if isinstance(x, dict):
        return any(_nonfinite(v) for v in x.values())
    return False


@torch.no_grad()
def first_nonfinite(model: torch.nn.Module, inputs: Mapping[str, torch.Tensor],
                    videos: Sequence[str] = (), amp: bool = False) -> str:
    """Describe the first non-finite input, parameter/buffer or module output of ``model(inputs)``.

    inputs: modality -> ``[B, K, D_m]`` as the model got them; videos: the id of each window's video
    (``[B]``, for naming an input). Runs the forward pass once more (same mode, no gradients).
    """
    modalities = list(getattr(model, "modalities", inputs))
    for m, x in inputs.items():
        if _nonfinite(x):
            rows = torch.nonzero(~torch.isfinite(x).flatten(1).all(1)).flatten().tolist()
            which = sorted({videos[i] for i in rows}) if videos else []
            return f"input {m} features" + (f" (video {', '.join(which)})" if which else "")
    for kind, named in (("parameter", model.named_parameters()), ("buffer", model.named_buffers())):
        for name, p in named:
            if _nonfinite(p):
                return f"{kind} {name} ({branch(name, modalities)})"
    found: list[str] = []

    def hook(name):
        def record(module, args, out):
            if not found and _nonfinite(out):
                found.append(name)
        return record

    handles = [mod.register_forward_hook(hook(name)) for name, mod in model.named_modules() if name]
    try:
        device = next(model.parameters()).device
        with autocast(device, amp):
            out = model(dict(inputs))
    finally:
        for h in handles:
            h.remove()
    if found:
        return f"output of module {found[0]} ({branch(found[0], modalities)})"
    if _nonfinite(out):
        return "the model's output (no module output was non-finite)"
    return "no input, parameter or module output (the replayed forward pass was finite)"


def first_nonfinite_video(model: torch.nn.Module, video: Video | ArrayVideo, window: int,
                          amp: bool = False) -> str:
    """:func:`first_nonfinite` on every window (stride = ``window``) of one video, padded as
    :func:`fusion.evaluate.predict_video` pads."""
    windows = WindowDataset([video], window, window, pad=input_pad(model), inputs=model_inputs(model))
    inputs = {m: torch.stack([windows[i]["features"][m] for i in range(len(windows))])
              for m in model.modalities}
    device = next(model.parameters()).device
    return first_nonfinite(model, {m: x.to(device) for m, x in inputs.items()}, [video.id] * len(windows),
                           amp)

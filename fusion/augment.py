"""Face augmentation on the device: random crop + horizontal flip in training, centre crop in
evaluation, then ``(x / 255 - 0.5) / 0.5`` (the official pipeline's transforms, paper 4.2.2).

Works on uint8 faces already on the model's device (the whole batch at once, one crop position and
one flip draw per face), so only uint8 crosses the host-device boundary.
"""

from __future__ import annotations

import torch

from pipeline.visual.ir50 import NORM_MEAN, NORM_STD

FLIP_P = 0.5  # probability of a horizontal flip in training


def crop_offsets(n: int, side: int, crop: int, train: bool, device: torch.device,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left corners ``(oy [n], ox [n])`` int64: uniform in ``[0, side - crop]`` in training,
    the centre ``(side - crop) // 2`` (the evaluation crop of pipeline.visual.features) otherwise."""
    if crop > side:
        raise ValueError(f"crop {crop} is larger than the face side {side}")
    if not train:
        o = torch.full((n,), (side - crop) // 2, dtype=torch.long, device=device)
        return o, o.clone()
    hi = side - crop + 1
    oy = torch.randint(0, hi, (n,), device=device, generator=generator)
    ox = torch.randint(0, hi, (n,), device=device, generator=generator)
    return oy, ox


def crop_flip(faces: torch.Tensor, crop: int, train: bool,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """``[N, S, S, 3]`` uint8 RGB -> ``[N, 3, crop, crop]`` float32 normalised.

    Training: a random ``crop`` x ``crop`` window per face and a horizontal flip with probability
    :data:`FLIP_P`; evaluation: the centre crop, no flip.
    """
    n, side = faces.shape[0], faces.shape[1]
    device = faces.device
    oy, ox = crop_offsets(n, side, crop, train, device, generator)
    ar = torch.arange(crop, device=device)
    rows = oy[:, None] + ar  # [N, crop]
    cols = ox[:, None] + ar  # [N, crop]
    if train:
        flip = torch.rand(n, device=device, generator=generator) < FLIP_P
        cols = torch.where(flip[:, None], cols.flip(1), cols)
    idx = torch.arange(n, device=device)[:, None, None]
    x = faces[idx, rows[:, :, None], cols[:, None, :]]  # [N, crop, crop, 3]
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    return x.sub_(NORM_MEAN).div_(NORM_STD)

"""FROZEN BASELINE: fusion/model.py at commit f564621, before the issue-11 speed-ups; bench/
bench_train_step.py times the current model against this copy. Do not edit.

RJCMA: per-modality TCN -> recursive joint cross-modal attention -> regression head.

    inputs m: [B, K, D_in,m] --TCN_m--> [B, K, d_m]  (d_m = fusion.tcn_channels[m][-1])
      --RecursiveJointCrossModalAttention (variant, l = fusion.recursions)--> [B, K, d_m]
      --concat over fusion.modalities--> [B, K, d] --RegressionHead--> [B, K, n_outputs] in [-1, 1]

Everything structural comes from :class:`pipeline.core.params.FusionParams`, the per-modality input dims
and the number of outputs; :meth:`RJCMA.config_dict` is that triple as plain JSON-able data and
:func:`build_model` rebuilds the model from it, so a checkpoint is ``state_dict`` + ``config_dict``
(loadable with ``torch.load(weights_only=True)``).

Optional input standardisation: per-modality ``input_mean`` / ``input_std`` buffers (0 / 1 unless
:meth:`RJCMA.set_input_stats` is called, e.g. with training-set statistics), so that the statistics
travel inside the checkpoint's state dict.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bench.baseline.attention import RecursiveJointCrossModalAttention, canonical
from bench.baseline.head import RegressionHead
from bench.baseline.tcn import TCN
from pipeline.core.params import FusionParams, section_from_dict, to_dict

MIN_STD = 1e-6  # input_std below this is clamped (a constant feature must not divide by ~0)


class RJCMA(nn.Module):
    """The full fusion model. forward: dict m -> ``[B, K, D_in,m]`` -> ``[B, K, n_outputs]``."""

    def __init__(self, fusion: FusionParams, input_dims: dict[str, int], n_outputs: int):
        super().__init__()
        modalities = [canonical(m) for m in fusion.modalities]
        if len(set(modalities)) != len(modalities) or not modalities:
            raise ValueError(
                f"fusion.modalities must be distinct and non-empty, got {list(fusion.modalities)}"
            )
        input_dims = {canonical(m): int(v) for m, v in input_dims.items()}
        channels = {canonical(m): tuple(v) for m, v in fusion.tcn_channels.items()}
        for m in modalities:
            if m not in input_dims:
                raise ValueError(f"no input dim for modality {m!r} (input_dims has {sorted(input_dims)})")
            if m not in channels:
                raise ValueError(
                    f"fusion.tcn_channels has no entry for modality {m!r} (has {sorted(channels)})"
                )
        if n_outputs < 1:
            raise ValueError(f"n_outputs must be >= 1, got {n_outputs}")
        self.fusion = fusion
        self.modalities = modalities
        self.input_dims = {m: input_dims[m] for m in modalities}
        self.n_outputs = n_outputs
        self.window = fusion.window

        self.tcn = nn.ModuleDict(
            {
                m: TCN(self.input_dims[m], channels[m], fusion.tcn_kernel, fusion.tcn_dropout)
                for m in modalities
            }
        )
        dims = {m: self.tcn[m].output_dim for m in modalities}  # modality dims from the TCN outputs
        self.attention = RecursiveJointCrossModalAttention(
            dims,
            window=fusion.window,
            recursions=fusion.recursions,
            variant=fusion.variant,
            dropout=fusion.attention_dropout,
            shared_weights=fusion.shared_weights,
        )
        d = sum(dims.values())
        self.head = RegressionHead(d, fusion.head_hidden or d // 2, n_outputs)
        for m in modalities:
            self.register_buffer(f"input_mean_{m}", torch.zeros(self.input_dims[m]))
            self.register_buffer(f"input_std_{m}", torch.ones(self.input_dims[m]))

    def set_input_stats(self, mean: dict[str, Any], std: dict[str, Any]) -> None:
        """Store per-modality input statistics (``[D_in,m]`` or scalars); forward standardises with them."""
        for m in self.modalities:
            dim = self.input_dims[m]
            mu = torch.as_tensor(mean[m], dtype=torch.float32).expand(dim).clone()
            sd = torch.as_tensor(std[m], dtype=torch.float32).expand(dim).clamp(min=MIN_STD).clone()
            getattr(self, f"input_mean_{m}").copy_(mu)
            getattr(self, f"input_std_{m}").copy_(sd)

    def config_dict(self) -> dict[str, Any]:
        """Plain (JSON/weights_only-safe) config that :func:`build_model` turns back into this model."""
        return {
            "fusion": to_dict(self.fusion),
            "input_dims": dict(self.input_dims),
            "n_outputs": self.n_outputs,
        }

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """inputs: m -> ``[B, K, D_in,m]`` (``video`` accepted for ``visual``) -> ``[B, K, n_outputs]``."""
        by_name = {canonical(k): v for k, v in inputs.items()}
        missing = [m for m in self.modalities if m not in by_name]
        if missing:
            raise ValueError(f"missing input modalities {missing}; the model uses {self.modalities}")
        feats = {}
        for m in self.modalities:
            x = by_name[m]
            if x.dim() != 3 or x.shape[2] != self.input_dims[m]:
                raise ValueError(f"{m}: expected [B, K, {self.input_dims[m]}], got shape {tuple(x.shape)}")
            x = (x - getattr(self, f"input_mean_{m}")) / getattr(self, f"input_std_{m}")
            feats[m] = self.tcn[m](x)  # [B, K, d_m]
        attended = self.attention(feats)
        return self.head(torch.cat([attended[m] for m in self.modalities], dim=-1))


def build_model(config: dict[str, Any]) -> RJCMA:
    """Rebuild an (untrained) :class:`RJCMA` from :meth:`RJCMA.config_dict` output."""
    for key in ("fusion", "input_dims", "n_outputs"):
        if key not in config:
            raise ValueError(f"model config lacks {key!r} (has {sorted(config)})")
    fusion = section_from_dict(FusionParams, config["fusion"], "model config: fusion")
    return RJCMA(fusion, dict(config["input_dims"]), int(config["n_outputs"]))

"""The fine-tuning model (``train.backbones: finetune``): IR-50 and VGGish inside RJCMA.

    visual: faces [B, K, S, S, 3] uint8 + face_present [B, K] bool
        --crop/flip (fusion.augment), only the frames with a face--> IR-50 --> [B, K, 512]
        (zeros where no face: the frozen path's all-zero embedding of a faceless frame)
    audio:  log-mel patches [B, K, 96, 64] float32 (cut as extraction cuts them) --> VGGish --> [B, K, 128]
    text:   cached BERT features [B, K, 768] (the paper does not fine-tune BERT)
      --> RJCMA (fusion.model) on the per-frame embeddings --> [B, K, n_outputs]

With ``fusion.normalize`` the embeddings are standardised like cached features, with FIXED
per-dimension statistics of the initial backbones' embeddings of the first training windows
(:func:`embedding_stats`; a random-init VGGish-tiny embeds at a std of ~1e-3, far below the text's
1), stored in the model's input buffers and checkpoint.

A backbone is run as an ordered list of stages (IR-50: input_layer, body.0 .. body.23,
output_layer, L2-normalisation; VGGish: features, flatten, embeddings.0 ..): the stages before the
first one with a trainable parameter run under ``no_grad`` in chunks of ``chunk`` frames (no
activations kept, bounded memory), the rest with autograd on all frames of the batch.

Backbone names (``train.finetune_visual`` / ``train.finetune_audio``):

- ``ir50``: IR-50 (:mod:`pipeline.visual.ir50`), weights from ``visual.ir50_weights``;
- ``ir50-tiny``: the same layout and forward pass, units (1, 1, 4, 2), widths (8, 8, 16, 16), a
  stride-2 first stage, a 32-d embedding, random init (the CPU demo);
- ``vggish``: VGGish (:mod:`pipeline.audio.vggish`), weights from ``audio.vggish_weights``;
- ``vggish-tiny``: the same layout, convs (4, 8, 8, 16), hidden 64, a 32-d embedding, random init.

:meth:`BackboneRJCMA.config_dict` records the backbones' names and configs beside RJCMA's config;
:func:`build_backbone_model` rebuilds the network (random weights: a checkpoint's state dict then
carries the fine-tuned backbone weights, no weights file is needed to predict).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fusion.augment import crop_flip
from fusion.data import EMBEDDING, FACES, LOGMEL
from fusion.model import RJCMA
from pipeline.audio.vggish import VGGishConfig, build_vggish, load_vggish
from pipeline.core.params import FusionParams, Params, section_from_dict, to_dict
from pipeline.visual.ir50 import IR50, IR50Config, load_ir50

PRESENT = "face_present"  # the extra input: [B, K] bool, a face was found in the frame (fusion.data)
VISUAL_BACKBONES = {
    "ir50": IR50Config(),
    "ir50-tiny": IR50Config(units=(1, 1, 4, 2), depths=(8, 8, 16, 16), first_stride=2,
                            stem_channels=8, embedding_dim=32),
}
AUDIO_BACKBONES = {
    "vggish": VGGishConfig(),
    "vggish-tiny": VGGishConfig(channels=(4, 8, 8, 16), pools=(0, 1, 2, 3), hidden=64,
                                embedding_dim=32),
}
BACKBONE_MODALITIES = ("visual", "audio")
STATS_WINDOWS = 64  # training windows whose embeddings fix the backbones' input standardisation
STD_FLOOR = 1e-6

Stage = Callable[[torch.Tensor], torch.Tensor]


def _vggish_flatten(x: torch.Tensor) -> torch.Tensor:
    """torchvggish's reshape between ``features`` and ``embeddings``: ``[N, C, H, W]`` -> ``[N, H*W*C]``."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)


def _l2(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=1)


def ir50_stages(m: IR50) -> list[Stage]:
    """IR50.forward as stages: input_layer, body.0 .. body.N, output_layer, L2-normalisation."""
    return [m.input_layer, *m.body, m.output_layer, _l2]


def vggish_stages(m: nn.Module) -> list[Stage]:
    """torchvggish VGG.forward (no PCA) as stages: features, flatten, embeddings.0 ..."""
    return [m.features, _vggish_flatten, *m.embeddings]


def _trainable(stage: Stage) -> bool:
    return isinstance(stage, nn.Module) and any(p.requires_grad for p in stage.parameters())


def run_stages(stages: Sequence[Stage], x: torch.Tensor, chunk: int) -> torch.Tensor:
    """Apply ``stages`` in order to ``x`` ``[N, ...]``; the frozen prefix without autograd, in
    chunks of ``chunk`` rows."""
    first = next((i for i, s in enumerate(stages) if _trainable(s)), len(stages))
    if first > 0:
        outs = []
        with torch.no_grad():
            for c in range(0, x.shape[0], chunk):
                h = x[c:c + chunk]
                for s in stages[:first]:
                    h = s(h)
                outs.append(h)
        x = torch.cat(outs) if len(outs) > 1 else outs[0]
    for s in stages[first:]:
        x = s(x)
    return x


class FaceEncoder(nn.Module):
    """``faces [B, K, S, S, 3]`` uint8, ``present [B, K]`` bool -> ``[B, K, D]`` per-frame embeddings."""

    def __init__(self, name: str, crop: int, chunk: int, channels_last: bool = False):
        super().__init__()
        cfg = dataclasses.replace(VISUAL_BACKBONES[name], input_size=crop)
        self.name, self.crop, self.chunk, self.channels_last = name, crop, chunk, channels_last
        self.backbone = IR50(cfg)
        self.dim = cfg.embedding_dim
        if channels_last:
            self.backbone.to(memory_format=torch.channels_last)

    def forward(self, faces: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        b, k = faces.shape[:2]
        flat = faces.reshape(b * k, *faces.shape[2:])  # [B*K, S, S, 3]
        idx = torch.nonzero(present.reshape(-1), as_tuple=True)[0]  # frames with a face
        out = torch.zeros(b * k, self.dim, device=faces.device)
        if idx.numel() == 0:
            return out.reshape(b, k, self.dim)
        x = crop_flip(flat[idx], self.crop, self.training)  # [n, 3, crop, crop]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if idx.numel() == 1 and self.backbone.output_layer[4].training:  # BatchNorm1d needs 2 rows
            emb = run_stages(ir50_stages(self.backbone), x.repeat(2, 1, 1, 1), self.chunk)[:1]
        else:
            emb = run_stages(ir50_stages(self.backbone), x, self.chunk)  # [n, D]
        out = out.to(emb.dtype).index_copy(0, idx, emb)
        return out.reshape(b, k, self.dim)


class PatchEncoder(nn.Module):
    """``patches [B, K, 96, 64]`` float32 log-mel -> ``[B, K, D]`` per-frame VGGish embeddings."""

    def __init__(self, name: str, relu: bool, chunk: int):
        super().__init__()
        self.name, self.relu, self.chunk = name, relu, chunk
        self.backbone = build_vggish(relu, AUDIO_BACKBONES[name])
        self.dim = AUDIO_BACKBONES[name].embedding_dim

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        b, k = patches.shape[:2]
        x = patches.reshape(b * k, 1, *patches.shape[2:]).float()  # [B*K, 1, 96, 64]
        return run_stages(vggish_stages(self.backbone), x, self.chunk).reshape(b, k, -1)


class BackboneRJCMA(nn.Module):
    """RJCMA with its visual and audio backbones inside. forward: inputs (module docstring) ->
    ``[B, K, n_outputs]``. ``input_dims``: the dims of the cached modalities (text)."""

    def __init__(self, fusion: FusionParams, backbones: dict[str, dict[str, Any]],
                 input_dims: dict[str, int], n_outputs: int):
        super().__init__()
        self.backbone_config = {m: dict(c) for m, c in backbones.items()}
        encoders: dict[str, nn.Module] = {}
        for m, c in self.backbone_config.items():
            if m == "visual":
                encoders[m] = FaceEncoder(c["name"], int(c["crop"]), int(c["chunk"]),
                                          bool(c.get("channels_last", False)))
            elif m == "audio":
                encoders[m] = PatchEncoder(c["name"], bool(c["relu"]), int(c["chunk"]))
            else:
                raise ValueError(f"no backbone for modality {m!r} (have {list(BACKBONE_MODALITIES)})")
        self.encoders = nn.ModuleDict(encoders)
        dims = dict(input_dims) | {m: e.dim for m, e in encoders.items()}
        self.fusion_model = RJCMA(fusion, dims, n_outputs)
        self.cached_dims = {m: int(d) for m, d in input_dims.items()}
        self.modalities = self.fusion_model.modalities
        self.window = fusion.window

    @property
    def input_kinds(self) -> dict[str, str]:
        """The input kind per modality (fusion.data): ``faces``, ``logmel``, ``embedding`` (text)."""
        return kinds_for(self.modalities, self.encoders)

    def input_pad(self) -> dict[str, np.ndarray]:
        """Padding of the cached modalities ``[D_m]``: their training mean (standardised to 0);
        the reader pads faces with black faces (``face_present`` False) and log-mel with silence."""
        return {m: getattr(self.fusion_model, f"input_mean_{m}").detach().cpu().numpy()
                for m in self.cached_dims}

    def set_input_stats(self, mean: dict[str, Any], std: dict[str, Any]) -> None:
        """Per-modality input standardisation (fusion.model); a modality not given keeps 0 / 1."""
        m0 = {m: 0.0 for m in self.modalities} | dict(mean)
        s1 = {m: 1.0 for m in self.modalities} | dict(std)
        self.fusion_model.set_input_stats(m0, s1)

    def config_dict(self) -> dict[str, Any]:
        return {"kind": "backbones", "fusion": to_dict(self.fusion_model.fusion),
                "backbones": self.backbone_config, "input_dims": dict(self.cached_dims),
                "n_outputs": self.fusion_model.n_outputs}

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = {}
        for m in self.modalities:
            if m not in inputs:
                raise ValueError(f"missing input {m!r}; the model reads {self.input_kinds}")
            if m == "visual":
                feats[m] = self.encoders[m](inputs[m], inputs[PRESENT])
            elif m in self.encoders:
                feats[m] = self.encoders[m](inputs[m])
            else:
                feats[m] = inputs[m]
        return self.fusion_model({m: x.float() for m, x in feats.items()})


def kinds_for(modalities, backbones) -> dict[str, str]:
    """``{modality: input kind}``: ``faces`` / ``logmel`` for the ``backbones``, else ``embedding``."""
    kind = {"visual": FACES, "audio": LOGMEL}
    return {m: kind[m] if m in backbones else EMBEDDING for m in modalities}


def input_kinds(params: Params) -> dict[str, str] | None:
    """The readers' input kinds of a run: None (embeddings) unless ``train.backbones: finetune``."""
    if params.train.backbones != "finetune":
        return None
    return kinds_for(params.fusion.modalities, backbone_config(params))


@torch.no_grad()
def embedding_stats(model: BackboneRJCMA, videos: Sequence, window: int, batch_size: int,
                    max_windows: int = STATS_WINDOWS) -> tuple[dict, dict]:
    """Per-dimension mean and std ``{modality: [D_m]}`` of the backbones' embeddings (eval mode,
    centre crops, frames with a face) over the first ``max_windows`` non-overlapping windows of
    ``videos`` (the training videos), for the model's fixed input standardisation."""
    from fusion.data import WindowDataset, make_loader

    was_training = model.training
    model.eval()
    ds = WindowDataset(videos, window, window, pad=model.input_pad(), inputs=model.input_kinds)
    embs: dict[str, list[torch.Tensor]] = {m: [] for m in model.encoders}
    device = next(model.parameters()).device
    seen = 0
    for batch in make_loader(ds, batch_size, shuffle=False):
        x, mask = batch["features"], batch["mask"]
        for m, enc in model.encoders.items():
            if m == "visual":
                keep = (batch[PRESENT] & mask).reshape(-1)
                e = enc(x[m].to(device), batch[PRESENT].to(device))
            else:
                keep = mask.reshape(-1)
                e = enc(x[m].to(device))
            embs[m].append(e.reshape(-1, enc.dim)[keep.to(device)].float().cpu())
        seen += len(mask)
        if seen >= max_windows:
            break
    model.train(was_training)
    mean, std = {}, {}
    for m, parts in embs.items():
        e = torch.cat(parts) if parts else torch.zeros(0, model.encoders[m].dim)
        mean[m] = (e.mean(0) if len(e) > 1 else torch.zeros(e.shape[1])).numpy()
        sd = e.std(0) if len(e) > 1 else torch.ones(e.shape[1])
        std[m] = torch.where(sd < STD_FLOOR, torch.ones_like(sd), sd).numpy()
    return mean, std


def backbone_config(params: Params) -> dict[str, dict[str, Any]]:
    """``{modality: backbone config}`` of the fine-tuned modalities in ``fusion.modalities``."""
    out: dict[str, dict[str, Any]] = {}
    t = params.train
    mods = list(params.fusion.modalities)
    if "visual" in mods or "video" in mods:
        out["visual"] = {"name": t.finetune_visual, "crop": params.visual.crop_size,
                         "chunk": t.backbone_chunk, "channels_last": t.channels_last}
    if "audio" in mods:
        out["audio"] = {"name": t.finetune_audio, "relu": params.audio.vggish_relu,
                        "chunk": t.backbone_chunk}
    return out


def load_pretrained(model: BackboneRJCMA, params: Params) -> None:
    """Load the released weights of the full-size backbones (``ir50`` from ``visual.ir50_weights``,
    ``vggish`` from ``audio.vggish_weights``; a clear AssetError when missing). Tiny ones stay random."""
    enc = model.encoders
    if "visual" in enc and enc["visual"].name == "ir50":
        cfg = enc["visual"].backbone.cfg
        enc["visual"].backbone.load_state_dict(load_ir50(params.visual.ir50_weights, cfg).state_dict())
    if "audio" in enc and enc["audio"].name == "vggish":
        vgg, _ = load_vggish(params.audio.vggish_weights, params.audio.vggish_relu)
        enc["audio"].backbone.load_state_dict(vgg.state_dict())


def build_backbone_model(config: dict[str, Any]) -> BackboneRJCMA:
    """Rebuild an (untrained) :class:`BackboneRJCMA` from :meth:`BackboneRJCMA.config_dict` output."""
    for key in ("fusion", "backbones", "input_dims", "n_outputs"):
        if key not in config:
            raise ValueError(f"model config lacks {key!r} (has {sorted(config)})")
    fusion = section_from_dict(FusionParams, config["fusion"], "model config: fusion")
    return BackboneRJCMA(fusion, dict(config["backbones"]), dict(config["input_dims"]),
                         int(config["n_outputs"]))


def is_backbone_config(config: dict[str, Any]) -> bool:
    return config.get("kind") == "backbones"

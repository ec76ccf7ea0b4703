"""Import of checkpoints trained with the authors' code (praveena2j/RJCMA, forking sucv/ABAW3).

:func:`load_official_state_dict` takes an official state dict (plain tensors) and loads it into

- a :class:`fusion.attention.RecursiveJointCrossModalAttention` built with ``variant="official"``
  (names ``dcn_layers.{s}.*``, optionally under ``coattn.``), or
- a full :class:`fusion.model.RJCMA` with ``fusion.variant = "official"`` (names ``temporal.*``,
  ``bn.*``, ``coattn.dcn_layers.*``, ``regressor1``/``bn1``/``regressor2``).

Name mapping (official -> ours; modality index 1/2/3 and 0/1/2 = video/audio/text):

    dcn_layers.{s}.dense_coattn.key{i}_linear.*     -> steps.{s}.key.{m_i}.*
    dcn_layers.{s}.dense_coattn.value{i}_linear.*   -> steps.{s}.value.{m_i}.*
    dcn_layers.{s}.dense_coattn.query_linear.*      -> ignored (computed but unused officially)
    dcn_layers.{s}.linears.{i-1}.0.*                -> steps.{s}.out.{m_i}.*   (input columns reordered
                                                       from video|audio|text to our J order)
    temporal.{tm}.network.{l}.conv{1,2}.weight_g    -> tcn.{m}.network.{l}.conv{1,2}.P.original0
    temporal.{tm}.network.{l}.conv{1,2}.weight_v    -> tcn.{m}.network.{l}.conv{1,2}.P.original1
      (P = parametrizations.weight: torch's weight_norm g and v, same shapes, dim 0)
    temporal.{tm}.network.{l}.conv{1,2}.bias        -> tcn.{m}.network.{l}.conv{1,2}.bias
      (parametrizations-style names are accepted as well; ``net.0`` / ``net.4`` are the same
      tensors as ``conv1`` / ``conv2`` registered twice by the official block: checked, then dropped)
    temporal.{tm}.network.{l}.downsample.*          -> tcn.{m}.network.{l}.downsample.*
    bn.{tm}.*                                       -> tcn.{m}.norm.*
    regressor1.* / bn1.* / regressor2.*             -> head.fc1.* / head.norm.* / head.fc2.*
                                                       (regressor1's input columns reordered likewise)
    spatial.*                                       -> ignored (backbones; this model reads cached features)

with official TCN modality names ``video`` -> visual, ``logmel`` / ``vggish`` -> audio, ``bert`` -> text.
A leading ``module.`` (DataParallel) is stripped. Anything missing, unexpected or mis-shaped is an
error that lists the names; the return value lists the official names that were ignored.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from fusion.attention import RecursiveJointCrossModalAttention

OFFICIAL_ORDER = ("visual", "audio", "text")  # key{1,2,3} / linears.{0,1,2} / the official J order
OFFICIAL_TCN_NAMES = {"video": "visual", "logmel": "audio", "vggish": "audio", "bert": "text"}
HEAD_NAMES = {"regressor1": "head.fc1", "bn1": "head.norm", "regressor2": "head.fc2"}
IGNORED_PREFIXES = ("spatial.",)  # official backbones (IR-50, VGGish): not part of this model

_ATTN_KEY = re.compile(r"^dcn_layers\.(\d+)\.dense_coattn\.(key|value)([123])_linear\.(weight|bias)$")
_ATTN_QUERY = re.compile(r"^dcn_layers\.(\d+)\.dense_coattn\.query_linear\.(weight|bias)$")
_ATTN_OUT = re.compile(r"^dcn_layers\.(\d+)\.linears\.([012])\.0\.(weight|bias)$")
_TCN_CONV = re.compile(
    r"^temporal\.(\w+)\.network\.(\d+)\.(conv1|conv2|net\.0|net\.4)\."
    r"(weight_g|weight_v|bias|parametrizations\.weight\.original0|parametrizations\.weight\.original1)$"
)
_TCN_DOWN = re.compile(r"^temporal\.(\w+)\.network\.(\d+)\.downsample\.(weight|bias)$")
_BN = re.compile(r"^bn\.(\w+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")
_HEAD = re.compile(
    r"^(regressor1|bn1|regressor2)\.(weight|bias|running_mean|running_var|num_batches_tracked)$"
)
_WEIGHT_NORM = {
    "weight_g": "parametrizations.weight.original0",
    "weight_v": "parametrizations.weight.original1",
    "parametrizations.weight.original0": "parametrizations.weight.original0",
    "parametrizations.weight.original1": "parametrizations.weight.original1",
    "bias": "bias",
}


class OfficialImportError(ValueError):
    """An official state dict that does not fit the module; the message lists the offending names."""


def _strip(key: str, prefix: str) -> str:
    return key[len(prefix) :] if key.startswith(prefix) else key


def _reorder_columns(weight: torch.Tensor, dims: dict[str, int]) -> torch.Tensor:
    """``[d_m, d]`` with input columns in video|audio|text order -> columns in ``dims`` order."""
    blocks, start = {}, 0
    for m in OFFICIAL_ORDER:
        blocks[m] = weight[:, start : start + dims[m]]
        start += dims[m]
    if start != weight.shape[1]:
        raise OfficialImportError(
            f"a Linear over the joint features has {weight.shape[1]} input columns, expected d = {start} "
            f"(modality dims {dims})"
        )
    return torch.cat([blocks[m] for m in dims], dim=1)


def _convert_attention(
    state_dict: dict[str, torch.Tensor], attention: RecursiveJointCrossModalAttention, prefix: str
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Official ``dcn_layers.*`` -> our attention names under ``prefix``: (converted, ignored, unexpected)."""
    if attention.variant != "official":
        raise OfficialImportError(
            f"official checkpoints need variant='official'; this attention is variant={attention.variant!r}"
        )
    if set(attention.dims) != set(OFFICIAL_ORDER):
        raise OfficialImportError(
            f"official checkpoints hold video, audio and text; this attention has {list(attention.dims)}"
        )
    converted, ignored, unexpected = {}, [], []
    for key, value in state_dict.items():
        if m := _ATTN_KEY.match(key):
            step, kind, i, leaf = m.groups()
            name = OFFICIAL_ORDER[int(i) - 1]
            converted[f"{prefix}steps.{step}.{kind}.{name}.{leaf}"] = value
        elif m := _ATTN_OUT.match(key):
            step, i, leaf = m.groups()
            name = OFFICIAL_ORDER[int(i)]
            if leaf == "weight" and value.dim() == 2:
                value = _reorder_columns(value, attention.dims)
            converted[f"{prefix}steps.{step}.out.{name}.{leaf}"] = value
        elif _ATTN_QUERY.match(key):
            ignored.append(key)
        else:
            unexpected.append(key)
    return converted, ignored, unexpected


def _convert_model(state_dict: dict[str, torch.Tensor], model: nn.Module) -> tuple[dict, list, list]:
    """Official full-model names -> :class:`fusion.model.RJCMA` names: (converted, ignored, unexpected)."""
    converted, ignored, unexpected = {}, [], []
    attention_part = {}
    tcn_names: dict[str, str] = {}  # official TCN modality name -> ours (checked for clashes)

    def ours(official: str, key: str) -> str | None:
        name = OFFICIAL_TCN_NAMES.get(official)
        if name is None:
            unexpected.append(key)
            return None
        other = next((o for o, n in tcn_names.items() if n == name and o != official), None)
        if other is not None:
            raise OfficialImportError(f"official modalities {other!r} and {official!r} both map to {name!r}")
        tcn_names[official] = name
        return name

    for key, value in state_dict.items():
        if key.startswith(IGNORED_PREFIXES):
            ignored.append(key)
        elif key.startswith("coattn."):
            attention_part[key[len("coattn.") :]] = value
        elif m := _TCN_CONV.match(key):
            official, level, conv, leaf = m.groups()
            if (name := ours(official, key)) is None:
                continue
            conv = {"net.0": "conv1", "net.4": "conv2"}.get(conv, conv)
            target = f"tcn.{name}.network.{level}.{conv}.{_WEIGHT_NORM[leaf]}"
            if target in converted:  # conv1 and net.0 (conv2 and net.4) name the same tensor
                if converted[target].shape != value.shape or not torch.equal(converted[target], value):
                    raise OfficialImportError(f"{key} differs from the tensor it duplicates ({target})")
                ignored.append(key)
            else:
                converted[target] = value
        elif m := _TCN_DOWN.match(key):
            official, level, leaf = m.groups()
            if (name := ours(official, key)) is not None:
                converted[f"tcn.{name}.network.{level}.downsample.{leaf}"] = value
        elif m := _BN.match(key):
            official, leaf = m.groups()
            if (name := ours(official, key)) is not None:
                converted[f"tcn.{name}.norm.{leaf}"] = value
        elif m := _HEAD.match(key):
            layer, leaf = m.groups()
            if layer == "regressor1" and leaf == "weight" and value.dim() == 2:
                value = _reorder_columns(value, model.attention.dims)  # input = concat in our order
            converted[f"{HEAD_NAMES[layer]}.{leaf}"] = value
        else:
            unexpected.append(key)
    att, att_ignored, att_unexpected = _convert_attention(attention_part, model.attention, "attention.")
    converted.update(att)
    ignored += ["coattn." + k for k in att_ignored]
    unexpected += ["coattn." + k for k in att_unexpected]
    return converted, ignored, unexpected


def load_official_state_dict(module: nn.Module, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Load official parameter names into ``module`` (attention or full RJCMA model), strictly.

    Returns the official names that were deliberately ignored (``query_linear``, backbones, the
    duplicate ``net.*`` names of the TCN). Raises :class:`OfficialImportError` naming every missing,
    unexpected or mis-shaped parameter. The model's own ``input_mean_*`` / ``input_std_*`` buffers
    (no official counterpart; the official code normalises in its data loader) are left as they are.
    """
    from fusion.model import RJCMA  # local import: fusion.model imports nothing from here

    state_dict = {_strip(k, "module."): v for k, v in state_dict.items()}
    if isinstance(module, RecursiveJointCrossModalAttention):
        state_dict = {_strip(k, "coattn."): v for k, v in state_dict.items()}
        converted, ignored, unexpected = _convert_attention(state_dict, module, "")
        keep_own: tuple[str, ...] = ()
    elif isinstance(module, RJCMA):
        converted, ignored, unexpected = _convert_model(state_dict, module)
        keep_own = ("input_mean_", "input_std_")
    else:
        raise OfficialImportError(
            "can load official weights into RecursiveJointCrossModalAttention or RJCMA, "
            f"not {type(module).__name__}"
        )
    own = module.state_dict()
    unexpected += [k for k in converted if k not in own and k not in unexpected]
    missing = [k for k in own if k not in converted and not k.startswith(keep_own)]
    mis_shaped = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in converted.items()
        if k in own and v.shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing (in the model, not in the checkpoint): {missing}")
    if unexpected:
        problems.append(f"unexpected (in the checkpoint, not in the model): {unexpected}")
    if mis_shaped:
        problems.append(f"shape mismatch: {mis_shaped}")
    if problems:
        hint = ""
        if any(".key." in p for p in mis_shaped):
            hint = " (the key Linear is K x K: fusion.window must equal the official window, 300)"
        raise OfficialImportError("official state dict does not fit: " + "; ".join(problems) + hint)
    full = {k: (converted[k] if k in converted else own[k]) for k in own}
    module.load_state_dict(full, strict=True)
    return ignored

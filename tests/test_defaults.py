"""One source of defaults, and exactly which keys each preset changes.

The model: the section dataclasses' defaults (pipeline/core/params.py) are the paper's method and
recipe — window, stride and TCNs, the optimiser, warm-up, epochs, 6 folds, Vosk ASR — running on
the components that ship with the package and the built-in demo data (no downloaded weights).
``conf/dataset/affwild2.yaml`` (the paper on Aff-Wild2) changes where the data and the
pretrained models are, and switches on the authors' training system (backbones fine-tuned in the
loop, their warm-up, per-epoch best reload, early stop 50, their folds, VGGish without its final
ReLU), which needs those weights and stays opt-in; ``conf/dataset/demo.yaml`` changes only the
recipe for the small demo (and its ASR: Whisper tiny.en offline instead of Vosk). ``params.yaml``
is the defaults plus the demo preset, with every key written out (DVC tracks params.yaml). A
default that drifts, or a preset that starts changing another key, fails here until the lists
below say so.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.core.params import Params, params_from_dict, to_dict

ROOT = Path(__file__).resolve().parents[1]

# keys where a preset's value differs from the dataclass default
PAPER_OVERRIDES = {  # the data and the pretrained models of the paper
    "data.root", "data.layout", "data.shards", "data.shard_ids",
    "audio.vggish_weights", "asr.model", "punctuation.model", "text.bert",
    "visual.face_source", "visual.backbone", "visual.ir50_weights",
    # the authors' training system (docs/training.md, "The paper's setting")
    "train.backbones", "train.warmup", "train.reload_best_every_epoch", "train.early_stop",
    "data.fold_scheme", "audio.vggish_relu",
}
DEMO_OVERRIDES = {  # the small demo's recipe, and its own transcripts instead of ASR
    "asr.engine",
    "fusion.window", "fusion.stride", "fusion.tcn_channels",
    "train.folds", "train.batch_size", "train.lr", "train.warmup_epochs", "train.epochs",
    "train.early_stop", "train.threads",
    "train.finetune_visual", "train.finetune_audio",  # small random-init backbones when fine-tuning
}
# the paper's recipe as the dataclasses hold it (the paper, and conf/dataset/affwild2.yaml's comment)
PAPER_RECIPE = {
    "fusion.window": 300, "fusion.stride": 200, "fusion.recursions": 3,
    "train.batch_size": 12, "train.lr": 1e-5, "train.weight_decay": 1e-3, "train.warmup_epochs": 5,
    "train.epochs": 100, "data.folds": 6, "train.folds": [0, 1, 2, 3, 4, 5], "asr.engine": "vosk",
}


def flat(d: dict, prefix: str = "") -> dict:
    """Dotted leaf keys -> values (``fusion.tcn_channels`` is one value)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "tcn_channels":
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def preset(name: str) -> dict:
    return yaml.safe_load((ROOT / "conf" / "dataset" / f"{name}.yaml").read_text())


DEFAULTS = flat(to_dict(Params()))


def changed(raw: dict, defaults: dict = DEFAULTS) -> set[str]:
    """The keys of a (partial) params mapping whose resolved value differs from the default."""
    resolved = flat(to_dict(params_from_dict(raw)))
    return {k for k in flat(raw) if resolved[k] != defaults[k]}


def test_the_dataclass_defaults_are_the_papers_recipe():
    assert {k: DEFAULTS[k] for k in PAPER_RECIPE} == PAPER_RECIPE


@pytest.mark.parametrize("name, overrides", [("affwild2", PAPER_OVERRIDES), ("demo", DEMO_OVERRIDES)])
def test_each_preset_overrides_exactly_its_keys(name, overrides):
    assert changed(preset(name)) == overrides


def test_params_yaml_is_the_defaults_plus_the_demo_preset():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(flat(raw)) == set(DEFAULTS), "params.yaml must write out every key"
    assert changed(raw) == DEMO_OVERRIDES
    demo = flat(to_dict(params_from_dict(preset("demo"))))
    resolved = flat(to_dict(params_from_dict(raw)))
    assert {k: resolved[k] for k in DEMO_OVERRIDES} == {k: demo[k] for k in DEMO_OVERRIDES}


def test_a_drifting_default_is_caught():
    """The checks above compare against the live defaults: a changed default changes the sets."""
    demo_k = {**DEFAULTS, "fusion.window": 64}  # as if the default K became the demo's
    assert changed(preset("demo"), demo_k) == DEMO_OVERRIDES - {"fusion.window"}
    assert changed(preset("affwild2"), demo_k) == PAPER_OVERRIDES | {"fusion.window"}
    no_vosk = {**DEFAULTS, "asr.engine": "transcripts"}
    assert changed(preset("affwild2"), no_vosk) == PAPER_OVERRIDES | {"asr.engine"}

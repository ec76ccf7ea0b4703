"""The typed params loader: defaults, the project's params.yaml, and clear errors on bad files."""

from pathlib import Path

import pytest

from pipeline.core.params import Params, ParamsError, load_params, params_from_dict, to_dict

ROOT = Path(__file__).resolve().parents[1]


def test_project_params_yaml_loads_and_round_trips():
    params = load_params(ROOT / "params.yaml")
    assert isinstance(params, Params)
    assert params_from_dict(to_dict(params)) == params


def test_values_are_typed():
    p = params_from_dict({"train": {"lr": 1, "folds": [0, 1]}, "fusion": {"modalities": ["audio", "visual"]}})
    assert p.train.lr == 1.0 and isinstance(p.train.lr, float)
    assert p.train.folds == (0, 1)
    assert p.fusion.modalities == ("audio", "visual")
    assert p.audio == Params().audio  # untouched sections keep their defaults


@pytest.mark.parametrize("raw, words", [
    ({"fusion": {"recursion": 4}}, ["fusion", "recursion"]),
    ({"fusoin": {}}, ["fusoin"]),
    ({"train": {"epochs": "many"}}, ["train.epochs", "integer"]),
    ({"train": {"amp": "yes"}}, ["train.amp", "true/false"]),
])
def test_bad_params_name_the_key(raw, words):
    with pytest.raises(ParamsError) as e:
        params_from_dict(raw, "p.yaml")
    for w in words:
        assert w in str(e.value)


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match="bad.yaml"):
        load_params(bad)


@pytest.mark.parametrize("raw, words", [
    ({"train": {"epochs": 0}}, ["train.epochs", ">= 1"]),
    ({"train": {"lr": -0.001}}, ["train.lr"]),
    ({"fusion": {"variant": "papr"}}, ["fusion.variant", "papr"]),
    ({"fusion": {"modalities": ["vision"]}}, ["fusion.modalities", "vision"]),
    ({"fusion": {"window": 0}}, ["fusion.window"]),
    ({"visual": {"face_source": "mtcnn"}}, ["visual.face_source", "mtcnn"]),
    ({"visual": {"backbone": "resnet"}}, ["visual.backbone", "resnet"]),
    ({"visual": {"crop_size": 64}}, ["visual.crop_size", "visual.face_size"]),
    ({"visual": {"detect_every": 0}}, ["visual.detect_every", ">= 1"]),
    ({"visual": {"detect_smooth": 0.0}}, ["visual.detect_smooth"]),
    ({"visual": {"detect_hold": -1}}, ["visual.detect_hold"]),
    ({"audio": {"batch_size": 0}}, ["audio.batch_size"]),
    ({"asr": {"engine": "kaldi"}}, ["asr.engine", "kaldi"]),
    ({"text": {"gap": "fill"}}, ["text.gap", "fill"]),
    ({"train": {"device": "gpu 0"}}, ["train.device", "torch device"]),
])
def test_out_of_range_values_name_the_key(raw, words):
    with pytest.raises(ParamsError) as e:
        params_from_dict(raw, "p.yaml")
    for w in words:
        assert w in str(e.value)
    assert "p.yaml" in str(e.value)


def test_exponent_without_dot_is_a_number(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("train:\n  lr: 1e-3\n")  # YAML 1.1 reads this as a string
    assert load_params(p).train.lr == 1e-3


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1", "mps", "xpu:0"])
def test_any_torch_device_string_is_accepted(device):
    assert params_from_dict({"train": {"device": device}}).train.device == device


def test_the_trainer_honours_the_device_string():
    import torch

    from fusion.train import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    n = torch.cuda.device_count()
    if n:
        assert resolve_device(f"cuda:{n - 1}") == torch.device(f"cuda:{n - 1}")
    with pytest.raises(RuntimeError, match=rf"train.device = cuda:{n}: .*{n} CUDA device"):
        resolve_device(f"cuda:{n}")  # one past the last GPU (every GPU when there is none)
    with pytest.raises(ValueError, match="train.device = warp: not a torch device"):
        resolve_device("warp")

"""IR-50: the res50_ir key layout, loading checkpoints made here in that format, 512-d L2 output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.core.assets import AssetError
from pipeline.core.params import VisualParams
from pipeline.visual.features import visual_features_for
from pipeline.visual.ir50 import IR50, IR50Config, load_ir50, output_side
from tests.media_fixtures import write_crops


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, IR50]:
    """A res50_ir-layout checkpoint of a randomly initialised IR-50 with non-trivial BN stats."""
    torch.manual_seed(0)
    model = IR50()
    for m in model.modules():  # give BatchNorm running stats values a loader must carry over
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("ir50") / "res50_ir_0.887.pth"
    torch.save(model.state_dict(), path)
    return path, model.eval()


def test_state_dict_has_the_res50_ir_layout():
    sd = IR50().state_dict()
    assert output_side(IR50Config()) == 5  # 40x40 input: 40 -> 40 -> 20 -> 10 -> 5
    assert sd["input_layer.0.weight"].shape == (64, 3, 3, 3)
    assert sd["body.0.res_layer.1.weight"].shape == (64, 64, 3, 3)
    assert "body.0.shortcut_layer.0.weight" not in sd  # same channels: MaxPool2d(1, stride)
    assert sd["body.3.shortcut_layer.0.weight"].shape == (128, 64, 1, 1)
    assert sd["body.23.res_layer.4.running_var"].shape == (512,)
    assert "body.24.res_layer.1.weight" not in sd  # 3 + 4 + 14 + 3 = 24 units
    assert sd["output_layer.3.weight"].shape == (512, 512 * 5 * 5)
    assert sd["output_layer.4.running_mean"].shape == (512,)


def test_loads_checkpoint_and_gives_unit_512d_embeddings(checkpoint):
    path, ref = checkpoint
    model = load_ir50(str(path))
    x = torch.randn(2, 3, 40, 40)  # IR-50 at 40x40 costs ~2.8 GMAC per image
    with torch.no_grad():
        y = model(x)
        torch.testing.assert_close(y, ref(x))
    assert y.shape == (2, 512)
    torch.testing.assert_close(y.norm(dim=1), torch.ones(2))


def test_loads_the_official_wrapper_layout(checkpoint, tmp_path):
    """Checkpoints saved from the official wrapper: ``backbone.*`` keys plus a ``logits`` head."""
    path, ref = checkpoint
    sd = {f"backbone.{k}": v for k, v in torch.load(path, weights_only=True).items()}
    sd["logits.weight"], sd["logits.bias"] = torch.zeros(8, 512), torch.zeros(8)
    wrapped = tmp_path / "wrapped.pth"
    torch.save(sd, wrapped)
    loaded = load_ir50(str(wrapped)).state_dict()
    assert loaded.keys() == ref.state_dict().keys()
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(loaded[k], v, msg=k)


def test_bad_checkpoints_give_clear_errors(checkpoint, tmp_path):
    path, _ = checkpoint
    with pytest.raises(AssetError, match=r"visual\.ir50_weights"):
        load_ir50("")
    with pytest.raises(AssetError, match=r"nope\.pth.*res50_ir_0\.887\.pth"):
        load_ir50(str(tmp_path / "nope.pth"))
    with pytest.raises(AssetError, match="crop_size"):  # 48x48 needs a 6x6 map, not 5x5
        load_ir50(str(path), IR50Config(input_size=48))
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in torch.load(path, weights_only=True).items()
                if not k.startswith("body.7.")}, partial)
    with pytest.raises(AssetError, match=r"partial\.pth.*res50_ir layout"):
        load_ir50(str(partial))


def test_visual_features_with_ir50(checkpoint, tmp_path):
    path, _ = checkpoint
    crops = write_crops(tmp_path / "crops", 3, missing=(1,))
    params = VisualParams(backbone="ir50", ir50_weights=str(path), batch_size=2)
    arrays, attrs = visual_features_for(None, 3, params, crops)
    emb = arrays["embedding"]
    assert attrs["backbone"] == "ir50" and emb.shape == (3, 512) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb[[0, 2]], axis=1), 1.0, atol=1e-5)
    assert not emb[1].any()  # no face: zero embedding

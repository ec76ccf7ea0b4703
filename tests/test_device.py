"""Where the backbones run: device resolution, threads, precision, prefetching, and what the caches
record (fp32 caches are the same whatever the device, threads or reader threads)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from pipeline.audio.features import load_extractor
from pipeline.audio.vggish import build_vggish, embed_patches
from pipeline.core.device import cpu_cores, place, precision_dtype, prefetch, resolve_device, use_threads
from pipeline.core.params import AudioParams, ParamsError, VisualParams, params_from_dict
from pipeline.visual.faces import iter_faces
from pipeline.visual.features import cache_settings, ir50_embed, load_backbone, visual_features_for
from pipeline.visual.ir50 import IR50, IR50Config
from tests.media_fixtures import write_crops

N = 6


def test_auto_is_cuda_when_available_and_bad_devices_are_clear():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"visual\.device: 'gpu0' is not a torch device"):
        resolve_device("gpu0", "visual.device")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"audio\.device: 'cuda:1'.*no CUDA device"):
            resolve_device("cuda:1", "audio.device")


def test_params_check_precision_threads_and_workers():
    with pytest.raises(ParamsError, match=r"visual\.precision: 'fp8'"):
        params_from_dict({"visual": {"precision": "fp8"}})
    with pytest.raises(ParamsError, match=r"audio\.threads"):
        params_from_dict({"audio": {"threads": -1}})
    with pytest.raises(ParamsError, match=r"visual\.workers"):
        params_from_dict({"visual": {"workers": -2}})
    assert precision_dtype("bf16") == torch.bfloat16


def test_cpu_threads_default_to_every_core():
    before = torch.get_num_threads()
    try:
        assert use_threads(torch.device("cpu"), 0) == cpu_cores()
        assert use_threads(torch.device("cpu"), 1) == 1
    finally:
        torch.set_num_threads(before)


def test_prefetch_keeps_order_raises_where_the_producer_failed_and_stops_early():
    assert list(prefetch(iter(range(50)), 3)) == list(range(50))
    assert list(prefetch(iter(range(5)), 0)) == list(range(5))

    def broken():
        yield 1
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for x in prefetch(broken()):
            got.append(x)
    assert got == [1]
    before = threading.active_count()
    it = prefetch(iter(range(10_000)), 2)
    assert next(it) == 0
    it.close()  # the consumer stops: the producer thread ends too
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before


def test_reader_threads_give_the_same_faces(tmp_path):
    crops = write_crops(tmp_path / "c", N, missing=(2,))
    (crops / "00005.jpg").write_bytes(b"not a jpeg")  # frame 4: unreadable
    seq = list(iter_faces(None, N, VisualParams(batch_size=4, workers=0), crops))
    par = list(iter_faces(None, N, VisualParams(batch_size=4, workers=3), crops))
    assert len(seq) == len(par) == 2
    for (f0, p0), (f1, p1) in zip(seq, par, strict=True):
        np.testing.assert_array_equal(f0, f1)
        np.testing.assert_array_equal(p0, p1)
    assert np.concatenate([p for _, p in par]).tolist() == [True, True, False, True, False, True]


def test_runtime_keys_stay_out_of_the_cache_settings_and_precision_goes_in():
    base = cache_settings(VisualParams(backbone="ir50"), "crops")
    other = cache_settings(VisualParams(backbone="ir50", device="cpu", threads=1, workers=0,
                                        batch_size=7), "crops")
    assert base == other and "device" not in base and "precision" not in base
    assert cache_settings(VisualParams(backbone="ir50", precision="bf16"), "crops")["precision"] == "bf16"
    assert "precision" not in cache_settings(VisualParams(precision="bf16"), "crops")  # pixels
    a = load_extractor(AudioParams()).settings
    assert a == load_extractor(AudioParams(device="cpu", threads=1, batch_size=3)).settings
    assert not {"batch_size", "device", "threads", "precision"} & set(a)  # the demo's caches


def tiny_ir50() -> IR50:
    """The real IR-50 code at toy widths (the full network costs seconds per frame in bf16 on CPU)."""
    torch.manual_seed(0)
    return IR50(IR50Config(units=(1, 1, 1, 1), depths=(8, 16, 16, 32), stem_channels=8,
                           embedding_dim=32)).eval()


def test_ir50_fp32_through_the_pipeline_equals_the_model_and_bf16_is_close(tmp_path):
    model = tiny_ir50()
    crops = write_crops(tmp_path / "c", N, missing=(1,))
    faces = np.concatenate([f for f, _ in iter_faces(None, N, VisualParams(), crops)])
    present = np.ones(N, bool)
    present[1] = False
    x = (faces[:, 4:44, 4:44].astype(np.float32) / 255.0 - 0.5) / 0.5
    with torch.no_grad():
        ref = model(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
    ref[1] = 0
    m32, dev, dtype = place(model, "auto", "fp32", 0, "visual.device")
    assert dtype == torch.float32 and next(m32.parameters()).device.type == dev.type
    np.testing.assert_allclose(ir50_embed(m32, faces, present, 40), ref, atol=1e-5)
    copy = tiny_ir50()
    copy.load_state_dict(model.state_dict())
    m16, _, _ = place(copy, "cpu", "bf16", 0, "visual.device")
    low = ir50_embed(m16, faces, present, 40)
    assert low.dtype == np.float32 and not low[1].any()
    assert 0 < np.abs(low - ref).max() < 0.1  # bf16: 8 mantissa bits on unit-norm embeddings


def test_ir50_backbone_is_loaded_on_the_configured_device(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "res50_ir_0.887.pth"
    torch.save(IR50().state_dict(), path)
    crops = write_crops(tmp_path / "c", 2)
    p = VisualParams(backbone="ir50", ir50_weights=str(path), device="cpu", batch_size=1, workers=2)
    backbone = load_backbone(p)
    w = next(backbone.model.parameters())
    assert (w.device.type, w.dtype) == ("cpu", torch.float32)
    arrays, _ = visual_features_for(None, 2, p, crops, backbone)  # 2 batches, read ahead
    faces = arrays["faces"]
    np.testing.assert_allclose(arrays["embedding"], ir50_embed(backbone.model, faces,
                                                               np.ones(2, bool), 40), atol=1e-6)


def test_vggish_fp32_batches_equal_the_model_and_bf16_is_close():
    torch.manual_seed(0)
    model = build_vggish()
    x = torch.randn(3, 1, 96, 64) * 2 - 3
    with torch.no_grad():
        ref = model(x).numpy()
    got = embed_patches(model, lambda sl: x[sl, 0].numpy(), 3, 2)  # 2 batches, cut ahead
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    low_model, _, _ = place(build_vggish(), "cpu", "bf16", 0, "audio.device")
    low_model.load_state_dict(model.state_dict())
    low = embed_patches(low_model, lambda sl: x[sl, 0].numpy(), 1, 1)  # bf16 is slow on CPU
    assert 0 < np.abs(low - ref[:1]).max() < 0.05 * np.abs(ref).max()

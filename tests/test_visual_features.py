"""Visual features: the built-in pixels backbone, the stage on an Aff-Wild2-style dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np

from pipeline.core import layout
from pipeline.core.cache import read_arrays, read_attrs
from pipeline.core.frames import frame_features
from pipeline.core.manifest import VideoEntry, file_hash, write_shards
from pipeline.core.media import probe
from pipeline.core.params import VisualParams
from pipeline.visual.features import pixels_embed, visual_features_for
from stages import visual_features
from tests.media_fixtures import astronaut_face, make_video, write_crops

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"
N = 12


def test_pixels_backbone_is_standardised_and_zero_without_face():
    face = astronaut_face(48)
    faces = np.stack([face, face[::-1], face, np.zeros_like(face)])
    present = np.array([True, True, True, False])
    emb = pixels_embed(faces, present, crop=40, size=16)
    assert emb.shape == (4, 256) and emb.dtype == np.float32
    np.testing.assert_allclose(emb[:3].mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(emb[:3].std(axis=1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(emb[0], emb[2])  # same face, same feature
    assert np.abs(emb[0] - emb[1]).max() > 0.5  # a different image, a different feature
    assert not emb[3].any()
    # brightness/contrast changes do not matter after standardisation
    brighter = np.clip(face.astype(np.int32) // 2 + 60, 0, 255).astype(np.uint8)
    emb2 = pixels_embed(brighter[None], np.array([True]), crop=40, size=16)
    np.testing.assert_allclose(emb2[0], emb[0], atol=0.1)


def test_crops_features_in_process(tmp_path):
    crops = write_crops(tmp_path / "c", N, missing=(3, 4))
    arrays, attrs = visual_features_for(None, N, VisualParams(batch_size=5), crops)
    assert attrs == {"face_source": "crops", "backbone": "pixels", "dim": 256, "faces_found": N - 2}
    assert arrays["faces"].shape == (N, 48, 48, 3) and arrays["faces"].dtype == np.uint8
    assert arrays["face_present"].dtype == bool and arrays["embedding"].shape == (N, 256)
    assert not arrays["embedding"][[3, 4]].any() and arrays["embedding"][[0, 5]].any()


def _entry(path: Path, vid: str, crops: Path | None = None) -> VideoEntry:
    info = probe(path)
    return VideoEntry(id=vid, source=str(path), source_id=vid, content_hash=file_hash(path),
                      fps=info.fps, n_frames=info.n_frames, duration=info.duration,
                      has_audio=info.has_audio, crops_dir=str(crops) if crops else "", shard=0)


def test_stage_on_crops_detection_and_a_corrupt_video(tmp_path, caplog):
    data = tmp_path / "data"
    crops = write_crops(tmp_path / "ds" / "cropped_aligned" / "withcrops", N, missing=(3, 4))
    withcrops = make_video(tmp_path / "ds" / "videos" / "withcrops.mp4", n_frames=N)
    astro = make_video(tmp_path / "ds" / "videos" / "astro.mp4", n_frames=N, size=(320, 240),
                       face="astronaut", with_audio=False)
    broken = tmp_path / "ds" / "videos" / "broken.mp4"
    shutil.copy(astro, broken)
    entries = [_entry(withcrops, "withcrops", crops), _entry(astro, "astro"),
               _entry(astro, "broken")]
    broken.write_bytes(broken.read_bytes()[:300])  # corrupted after the manifest was made
    entries[2] = VideoEntry(**{**entries[2].to_dict(), "source": str(broken)})
    write_shards(entries, 1, data)
    argv = ["--params", str(PARAMS), "--data", str(data), "--shard", "0"]

    assert visual_features.main(argv) == 1  # broken failed, the others went on
    assert "broken.mp4" in caplog.text
    out = {e.id: layout.feature_path("visual", 0, e.id, data) for e in entries}
    assert not out["broken"].exists()

    a = read_arrays(out["withcrops"])
    assert a["face_present"].tolist() == [i not in (3, 4) for i in range(N)]
    attrs = read_attrs(out["withcrops"])
    assert attrs["face_source"] == "crops" and attrs["extractor"] == "pixels"
    assert attrs["source_hash"].startswith(entries[0].content_hash + "+crops:")
    assert attrs["settings"]["face_source"] == "crops" and attrs["n_frames"] == N
    assert "detect_width" not in attrs["settings"]  # detector settings do not apply to crops
    assert read_attrs(out["astro"])["settings"]["detect_every"] == 10
    feats = frame_features(out["withcrops"])
    assert feats.shape == (N, 256) and feats.dtype == np.float32
    b = read_arrays(out["astro"])
    assert read_attrs(out["astro"])["face_source"] == "detect" and b["face_present"].all()
    with h5py.File(out["astro"]) as f:
        assert f["faces"].compression == "gzip" and f["faces"].chunks[1:] == (48, 48, 3)

    # rerun: skipped while current; changed crops are noticed; a rewrite is byte-identical
    caplog.clear()
    before = out["withcrops"].read_bytes()
    mtime = out["withcrops"].stat().st_mtime_ns
    visual_features.main(argv)
    assert out["withcrops"].stat().st_mtime_ns == mtime and "2 skipped" in caplog.text
    out["withcrops"].unlink()
    visual_features.main(argv)
    assert out["withcrops"].read_bytes() == before
    (crops / "00006.jpg").unlink()
    caplog.clear()
    visual_features.main(argv)
    assert "1 done" in caplog.text
    assert not read_arrays(out["withcrops"], ["face_present"])["face_present"][5]


def test_stage_reports_missing_ir50_weights_before_any_video(tmp_path, caplog):
    data = tmp_path / "data"
    write_shards([], 1, data)
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS.read_text().replace("backbone: pixels", "backbone: ir50"))
    assert visual_features.main(["--params", str(params), "--data", str(data), "--shard", "0"]) == 2
    assert "visual.ir50_weights" in caplog.text

"""Face crops per frame: cropped_aligned images, whole frames, OpenCV detection on a real face."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from pipeline.core.params import VisualParams
from pipeline.visual.faces import (
    FaceTracker,
    VideoError,
    box_iou,
    crop_box,
    detect_largest,
    detect_near,
    iter_faces,
    iter_video_frames,
    load_cascade,
    resolve_source,
)
from tests.media_fixtures import astronaut_face, frame_marker, make_video, write_crops

N = 12
# The astronaut's face in the frames make_video writes at 320x240: the photo's face box
# (x 177..272, y 66..161 in skimage's 512x512 astronaut, checked by eye) mapped through the
# fixture's crop [30:230, 140:340] -> 112 px -> pasted 180 px at (70, 30).
FACE_IN_FRAME = np.array([146.0, 105.0, 86.0])  # (cx, cy, side)


def _collect(video, n_frames, params, crops_dir=None):
    faces, present = zip(*iter_faces(video, n_frames, params, crops_dir))
    return np.concatenate(faces), np.concatenate(present)


def test_source_resolution():
    assert resolve_source("auto", "cropped_aligned/x") == "crops"
    assert resolve_source("auto", None) == "detect"
    assert resolve_source("frames", "some/dir") == "frames"
    with pytest.raises(ValueError, match="no cropped_aligned"):
        resolve_source("crops", None)
    with pytest.raises(ValueError, match="face_source"):
        resolve_source("mtcnn", None)


def test_crops_are_frame_aligned_and_missing_ones_are_black_and_flagged(tmp_path):
    crops = write_crops(tmp_path / "cropped_aligned" / "v", N, missing=(3, 4, N - 1))
    params = VisualParams(batch_size=5)  # batches of 5 do not divide 12
    faces, present = _collect(None, N, params, crops)
    assert faces.shape == (N, 48, 48, 3) and faces.dtype == np.uint8
    assert present.tolist() == [i not in (3, 4, N - 1) for i in range(N)]
    assert not faces[[3, 4, N - 1]].any()
    for i in np.flatnonzero(present):  # 00001.jpg is frame 0: the marker block says which frame
        assert abs(float(faces[i, :5, :5].mean()) - frame_marker(i)) < 10, i
    # the stored face is the crop image, RGB, resized to 48 x 48
    ref = cv2.resize(cv2.imread(str(crops / "00001.jpg"))[..., ::-1], (48, 48),
                     interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(faces[0], ref)
    # more frames than crops: the rest have no face
    faces, present = _collect(None, N + 3, params, crops)
    assert len(faces) == N + 3 and not present[N:].any()


def test_missing_crops_directory_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        _collect(None, N, VisualParams(face_source="crops"), tmp_path / "nowhere")


def test_whole_frames_are_centre_squares(tmp_path):
    video = make_video(tmp_path / "close.mp4", n_frames=N, size=(96, 72), with_audio=False,
                       face="astronaut")
    params = VisualParams(face_source="frames", batch_size=4)
    faces, present = _collect(video, N, params)
    assert present.all() and faces.shape == (N, 48, 48, 3)
    first = next(iter_video_frames(video))
    ref = cv2.resize(first[:, 12:84][..., ::-1], (48, 48), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(faces[0], ref)
    # the manifest may count more frames than the decoder yields: padded, flagged
    faces, present = _collect(video, N + 2, params)
    assert present.tolist() == [True] * N + [False] * 2 and not faces[N:].any()


def test_detects_and_tracks_a_real_face(tmp_path):
    video = make_video(tmp_path / "astro.mp4", n_frames=N, size=(320, 240), with_audio=False,
                       face="astronaut")
    cascade = load_cascade()
    frame = next(iter_video_frames(video))
    box = detect_largest(frame, cascade, width=160, min_face=0.1)  # detection on a 2x downscale
    assert box is not None and box_iou(box, FACE_IN_FRAME) > 0.6
    # between full detections the tracker searches only around the face it follows
    near = detect_near(frame, cascade, FACE_IN_FRAME + [12.0, -8.0, 10.0])
    assert near is not None and box_iou(near, FACE_IN_FRAME) > 0.6
    assert detect_near(frame, cascade, np.array([20.0, 20.0, 30.0])) is None  # no face there
    params = VisualParams(face_source="detect", batch_size=5, detect_every=4)
    faces, present = _collect(video, N, params)
    assert present.all()
    # the crop shows the face: it correlates with the photo's face cropped the same way
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    ref = cv2.resize(rgb[62:148, 103:189], (48, 48), interpolation=cv2.INTER_AREA)
    inner = faces[0][4:44, 4:44].astype(float).ravel()  # margin 0.1: the box is ~ the inner 40 px
    refc = cv2.resize(ref, (40, 40), interpolation=cv2.INTER_AREA).astype(float).ravel()
    assert np.corrcoef(inner, refc)[0, 1] > 0.8


def test_no_face_video_gives_black_flagged_frames(tmp_path):
    video = make_video(tmp_path / "noface.mp4", n_frames=N, size=(160, 120), with_audio=False)
    faces, present = _collect(video, N, VisualParams(face_source="detect"))
    assert not present.any() and not faces.any()


def test_tracker_smooths_holds_and_resets():
    t = FaceTracker(smooth=0.5, hold=2)
    a = np.array([100.0, 100.0, 50.0])
    np.testing.assert_array_equal(t.update(a), a)
    np.testing.assert_allclose(t.update(a + [4, 0, 0]), [102, 100, 50])  # moving average
    np.testing.assert_allclose(t.update(None), [102, 100, 50])  # held
    assert t.update(None) is not None and t.update(None) is None  # hold = 2 frames, then lost
    t.update(a)
    far = np.array([300.0, 50.0, 40.0])
    np.testing.assert_array_equal(t.update(far), far)  # a jump restarts the track


def test_crop_box_pads_black_outside_the_frame():
    frame = np.full((100, 100, 3), 200, np.uint8)
    out = crop_box(frame, np.array([0.0, 50.0, 40.0]), margin=0.0, size=40)
    assert out.shape == (40, 40, 3)
    assert not out[:, :18].any() and (out[:, 22:] == 200).all()


def test_corrupt_video_is_named(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    with pytest.raises(VideoError, match="broken.mp4"):
        _collect(bad, N, VisualParams(face_source="detect"))
    with pytest.raises(VideoError, match="missing.mp4"):
        _collect(tmp_path / "missing.mp4", N, dataclasses.replace(VisualParams(),
                                                                   face_source="frames"))


def test_astronaut_fixture_is_a_face():
    """Guard for the tests above: the fixture photograph itself is detected as a face."""
    img = cv2.cvtColor(astronaut_face(), cv2.COLOR_RGB2BGR)
    assert detect_largest(img, load_cascade(), width=112, min_face=0.3) is not None

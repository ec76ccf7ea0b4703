"""Face crops per video frame: from ``cropped_aligned`` images, whole frames, or OpenCV detection.

Every source yields exactly ``n_frames`` faces, in streamed batches, as ``face_size`` x
``face_size`` RGB uint8 plus a ``present`` flag; a frame without a face is black and flagged
False (masked later, never dropped: dropping is what misaligns the official pipeline).

- ``crops``: ``<crops_dir>/00001.jpg`` is video frame 0 (Aff-Wild2's 1-based numbering); a missing
  or unreadable image means no face. The video itself is not decoded.
- ``frames``: the video is already a face crop (e.g. a webcam close-up): each decoded frame's
  centre square, resized.
- ``detect``: OpenCV's Haar frontal-face cascade (shipped by ``opencv-python-headless`` < 5) on a
  grayscale frame downscaled to ``detect_width``, every ``detect_every`` frames and whenever the
  face is lost; in between, only a small region around the tracked face is searched (several
  times cheaper). The largest face is tracked with a moving average of its box (a jump to a
  different place restarts the average) and held for ``detect_hold`` frames when the detector
  misses it; the crop is square, widened by ``detect_margin``, black outside the frame.
- ``auto``: ``crops`` when the video has a crops directory, else ``detect``.

Crop images are decoded by ``visual.workers`` threads; whatever the source, the batches are
produced ahead of the backbone (:func:`pipeline.core.device.prefetch` in
:mod:`pipeline.visual.features`), so reading and decoding overlap with its compute.

Videos are decoded once, frame by frame (memory independent of the video's length apart from the
48x48 output).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.core.layout import crop_path
from pipeline.core.params import FACE_SOURCES, VisualParams

log = logging.getLogger(__name__)

CASCADE_FILE = "haarcascade_frontalface_default.xml"
DETECT_SCALE_FACTOR = 1.1  # Haar image-pyramid step
DETECT_MIN_NEIGHBORS = 5  # Haar: overlapping hits needed to accept a face
TRACK_RESET_IOU = 0.3  # a detection overlapping the tracked box less than this restarts the track
ROI_FACTOR = 2.0  # between full detections, search a square of this many face sides around the face
ROI_PIXELS = 160  # ... downscaled to at most this side
ROI_SIZE_RANGE = 1.5  # ... for faces between 1/1.5 and 1.5 times the tracked size


class VideoError(RuntimeError):
    """A video that cannot be decoded; the message names the file."""


def resolve_source(face_source: str, crops_dir: str | Path | None) -> str:
    """The concrete source (crops | frames | detect) for a configured ``face_source``."""
    if face_source not in FACE_SOURCES:
        raise ValueError(f"visual.face_source must be one of {FACE_SOURCES}, got {face_source!r}")
    if face_source == "auto":
        return "crops" if crops_dir else "detect"
    if face_source == "crops" and not crops_dir:
        raise ValueError("visual.face_source = crops but the video has no cropped_aligned directory")
    return face_source


def resize_face(img: np.ndarray, size: int) -> np.ndarray:
    """``[h, w, 3]`` uint8 -> ``[size, size, 3]`` uint8 (area interpolation when shrinking)."""
    if img.shape[0] == size and img.shape[1] == size:
        return img
    shrink = img.shape[0] > size or img.shape[1] > size
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def centre_square(img: np.ndarray) -> np.ndarray:
    """The largest centred square of ``[h, w, c]``."""
    h, w = img.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return img[y0:y0 + s, x0:x0 + s]


def iter_video_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Decode ``path`` frame by frame: ``[h, w, 3]`` uint8 BGR. Raises ``VideoError`` (naming the
    file) when it cannot be opened or yields no frame at all."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"{path}: cannot open the video (missing, corrupt or unsupported format)")
    n = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            n += 1
            yield frame
    finally:
        cap.release()
    if n == 0:
        raise VideoError(f"{path}: no frame could be decoded (corrupt or empty video)")


def _batches(items: Iterator[tuple[np.ndarray, bool]], n_frames: int, size: int,
             batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Group per-frame (face, present) into batches, padding/truncating to ``n_frames``."""
    faces = np.zeros((batch_size, size, size, 3), np.uint8)
    present = np.zeros(batch_size, bool)
    i = 0
    for face, ok in items:
        if i >= n_frames:
            break
        j = i % batch_size
        faces[j] = face if ok else 0
        present[j] = ok
        i += 1
        if j == batch_size - 1:
            yield faces.copy(), present.copy()
    while i < n_frames:  # frames the source did not provide: no face
        j = i % batch_size
        faces[j] = 0
        present[j] = False
        i += 1
        if j == batch_size - 1:
            yield faces.copy(), present.copy()
    if i % batch_size:
        k = i % batch_size
        yield faces[:k].copy(), present[:k].copy()


CROP_CHUNK = 64  # crops read per round of the reader threads (bounds what is read ahead)


def read_crop(path: Path, size: int) -> tuple[np.ndarray | None, str]:
    """One crop image as ``[size, size, 3]`` RGB uint8 and ``ok``, or ``(None, missing|unreadable)``."""
    if not path.is_file():
        return None, "missing"
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        return None, "unreadable"
    return resize_face(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), size), "ok"


def _crop_items(crops_dir: Path, n_frames: int, size: int,
                workers: int = 0) -> Iterator[tuple[np.ndarray, bool]]:
    """Crops of frames 0..n_frames-1 in order; ``workers`` > 0 threads decode them (OpenCV
    releases the GIL), ``CROP_CHUNK`` frames at a time."""
    counts = {"missing": 0, "unreadable": 0}
    pool = ThreadPoolExecutor(workers, thread_name_prefix="rjcma-crops") if workers else None
    try:
        for c0 in range(0, n_frames, CROP_CHUNK):
            paths = [crop_path(crops_dir, i) for i in range(c0, min(n_frames, c0 + CROP_CHUNK))]
            read = pool.map(read_crop, paths, [size] * len(paths)) if pool else \
                (read_crop(q, size) for q in paths)
            for img, status in read:
                if img is None:
                    counts[status] += 1
                    yield np.zeros((size, size, 3), np.uint8), False
                else:
                    yield img, True
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
    if counts["unreadable"]:
        log.warning("%s: %d crop image(s) could not be read; those frames have no face",
                    crops_dir, counts["unreadable"])
    log.debug("%s: %d of %d frames have no crop", crops_dir, counts["missing"], n_frames)


def _count_check(path: str | Path, decoded: int, n_frames: int) -> None:
    if decoded != n_frames:
        log.warning("%s: decoded %d frames but the manifest says %d; %s", path, decoded, n_frames,
                    "the missing frames have no face" if decoded < n_frames else
                    "the extra frames are ignored")


def _frame_items(video: Path, n_frames: int, size: int) -> Iterator[tuple[np.ndarray, bool]]:
    decoded = 0
    for frame in iter_video_frames(video):
        decoded += 1
        if decoded <= n_frames:
            rgb = cv2.cvtColor(centre_square(frame), cv2.COLOR_BGR2RGB)
            yield resize_face(rgb, size), True
    _count_check(video, decoded, n_frames)


@dataclass
class FaceTracker:
    """The tracked face box ``(cx, cy, side)`` in frame pixels, smoothed and held across frames."""

    smooth: float = 0.5  # weight of a new detection in the moving average
    hold: int = 15  # frames a box is kept without a detection
    box: np.ndarray | None = None
    misses: int = 0

    def update(self, det: np.ndarray | None) -> np.ndarray | None:
        """Feed this frame's detection (or None); returns the box to crop (or None: no face)."""
        if det is None:
            self.misses += 1
            if self.misses > self.hold:
                self.box = None
            return self.box
        self.misses = 0
        if self.box is None or box_iou(det, self.box) < TRACK_RESET_IOU:
            self.box = det.astype(np.float64)
        else:
            self.box = self.smooth * det + (1 - self.smooth) * self.box
        return self.box


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two square boxes ``(cx, cy, side)``."""
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[2] / 2, a[0] + a[2] / 2, a[1] + a[2] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[2] / 2, b[0] + b[2] / 2, b[1] + b[2] / 2
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = a[2] ** 2 + b[2] ** 2 - inter
    return float(inter / union) if union > 0 else 0.0


def load_cascade() -> cv2.CascadeClassifier:
    """OpenCV's Haar frontal-face cascade; a clear error when this OpenCV build lacks it."""
    data = getattr(getattr(cv2, "data", None), "haarcascades", "") or ""
    path = Path(data) / CASCADE_FILE
    if not hasattr(cv2, "CascadeClassifier") or not path.is_file():
        raise RuntimeError(f"OpenCV {cv2.__version__} has no Haar cascade {CASCADE_FILE} (tried "
                           f"{path}); install opencv-python-headless<5 (opencv 5 dropped them) or "
                           "use visual.face_source = crops | frames")
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise RuntimeError(f"{path}: OpenCV could not load the Haar cascade")
    return cascade


def _largest(gray: np.ndarray, cascade: cv2.CascadeClassifier, min_side: int,
             max_side: int = 0) -> np.ndarray | None:
    """The largest Haar detection in ``gray`` (already equalised) as ``(cx, cy, side)``, or None."""
    max_size = (max_side, max_side) if max_side else (0, 0)  # (0, 0): no maximum
    dets = cascade.detectMultiScale(gray, scaleFactor=DETECT_SCALE_FACTOR,
                                    minNeighbors=DETECT_MIN_NEIGHBORS,
                                    minSize=(min_side, min_side), maxSize=max_size)
    if len(dets) == 0:
        return None
    x, y, bw, bh = max((tuple(d) for d in dets), key=lambda d: (d[2] * d[3], -d[0], -d[1]))
    return np.array([x + bw / 2, y + bh / 2, max(bw, bh)], np.float64)


def _gray(frame_bgr: np.ndarray, scale: float) -> np.ndarray:
    gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
    if scale < 1.0:
        h, w = gray.shape
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))),
                          interpolation=cv2.INTER_AREA)
    return cv2.equalizeHist(gray)


def detect_largest(frame_bgr: np.ndarray, cascade: cv2.CascadeClassifier, width: int,
                   min_face: float) -> np.ndarray | None:
    """The largest frontal face in a BGR frame as ``(cx, cy, side)`` in frame pixels, or None.

    The frame is downscaled to ``width`` (never up); faces smaller than ``min_face`` x the frame
    height are ignored.
    """
    scale = min(1.0, width / frame_bgr.shape[1])
    gray = _gray(frame_bgr, scale)
    box = _largest(gray, cascade, max(1, int(min_face * gray.shape[0])))
    return None if box is None else box / scale


def detect_near(frame_bgr: np.ndarray, cascade: cv2.CascadeClassifier,
                box: np.ndarray) -> np.ndarray | None:
    """Search for the tracked face only around ``box`` (``ROI_FACTOR`` x its side, faces of
    ``1 / ROI_SIZE_RANGE`` .. ``ROI_SIZE_RANGE`` x its size): a fraction of a full detection's cost."""
    h, w = frame_bgr.shape[:2]
    half = box[2] * ROI_FACTOR / 2
    x0, y0 = max(0, int(box[0] - half)), max(0, int(box[1] - half))
    x1, y1 = min(w, int(box[0] + half) + 1), min(h, int(box[1] + half) + 1)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    scale = min(1.0, ROI_PIXELS / max(x1 - x0, y1 - y0))
    gray = _gray(frame_bgr[y0:y1, x0:x1], scale)
    side = box[2] * scale
    found = _largest(gray, cascade, max(1, int(side / ROI_SIZE_RANGE)),
                     int(side * ROI_SIZE_RANGE) + 1)
    return None if found is None else found / scale + np.array([x0, y0, 0.0])


def crop_box(frame_bgr: np.ndarray, box: np.ndarray, margin: float, size: int) -> np.ndarray:
    """The square ``box`` (``cx, cy, side``) widened by ``margin`` per side, black outside the
    frame, as ``[size, size, 3]`` RGB uint8."""
    h, w = frame_bgr.shape[:2]
    side = max(1, int(round(box[2] * (1 + 2 * margin))))
    x0 = int(round(box[0] - side / 2))
    y0 = int(round(box[1] - side / 2))
    out = np.zeros((side, side, 3), np.uint8)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(w, x0 + side), min(h, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = frame_bgr[sy0:sy1, sx0:sx1]
    return resize_face(cv2.cvtColor(out, cv2.COLOR_BGR2RGB), size)


def _detect_items(video: Path, n_frames: int, params: VisualParams,
                  ) -> Iterator[tuple[np.ndarray, bool]]:
    cascade = load_cascade()
    tracker = FaceTracker(smooth=params.detect_smooth, hold=params.detect_hold)
    size = params.face_size
    decoded = found = 0
    for frame in iter_video_frames(video):
        decoded += 1
        if decoded > n_frames:
            continue
        det = None
        full = tracker.box is None or (decoded - 1) % params.detect_every == 0
        if not full:
            det = detect_near(frame, cascade, tracker.box)  # type: ignore[arg-type]
        if det is None:
            det = detect_largest(frame, cascade, params.detect_width, params.detect_min_face)
        box = tracker.update(det)
        if box is None:
            yield np.zeros((size, size, 3), np.uint8), False
        else:
            found += 1
            yield crop_box(frame, box, params.detect_margin, size), True
    _count_check(video, decoded, n_frames)
    if found == 0:
        log.debug("%s: no face detected in any frame", video)


def iter_faces(video_path: str | Path | None, n_frames: int, params: VisualParams,
               crops_dir: str | Path | None = None, source: str | None = None,
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Faces of a video's ``n_frames`` frames in batches of ``params.batch_size``:
    ``([b, S, S, 3] uint8 RGB, [b] bool present)``, S = ``params.face_size``. ``source``: the
    concrete source (crops | frames | detect) when already settled, else resolved here."""
    source = source or resolve_source(params.face_source, crops_dir)
    size = params.face_size
    if source == "crops":
        if not Path(crops_dir).is_dir():  # type: ignore[arg-type]
            raise FileNotFoundError(f"{crops_dir}: face crops directory not found")
        items = _crop_items(Path(crops_dir), n_frames, size,  # type: ignore[arg-type]
                            params.workers)
    elif video_path is None:
        raise ValueError(f"face_source {source} needs the video file")
    elif source == "frames":
        items = _frame_items(Path(video_path), n_frames, size)
    else:
        items = _detect_items(Path(video_path), n_frames, params)
    yield from _batches(items, n_frames, size, params.batch_size)

"""The demo's faces: per-frame poses and an OpenCV-drawn face whose mouth follows valence and
speech, eyes, brows and head jitter arousal; the face crop."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from rjcma.demo.plan import Person, lerp, unit

# ---- face drawing (units of the face's half-height R, image y grows downwards) ----
FACE_RADIUS = 0.34  # R as a fraction of FRAME_SIZE
EYE_DX, EYE_Y, EYE_W = 0.36, -0.18, 0.17
EYE_H = (0.03, 0.17)  # half-height at arousal -1 .. +1
IRIS = 0.09  # iris radius
BROW_GAP = (0.16, 0.36)  # brow above eye centre at arousal -1 .. +1
BROW_W = 0.2
MOUTH_Y, MOUTH_W = 0.46, 0.4
MOUTH_LIFT = 0.24  # corner lift at valence +1 (negative valence pulls the corners down)
MOUTH_OPEN = 0.2  # lower-lip drop at full speech envelope
SWAY = 0.03  # slow head drift, fraction of FRAME_SIZE
SWAY_PERIODS = (7.0, 5.0)  # seconds, x and y
JITTER = (0.0, 0.05)  # per-frame head jitter (std, fraction of FRAME_SIZE) at arousal -1 .. +1
BLINK_PROB = 0.02  # per frame
CROP_SCALE = 2.7  # crop side / R, centred on the head
EYE_WHITE, IRIS_COLOR = (245, 245, 245), (40, 30, 20)  # BGR
NOSE_COLOR, LIP_COLOR, MOUTH_INSIDE = (70, 90, 130), (50, 50, 150), (30, 20, 60)
HAND_EDGE = (60, 80, 110)


@dataclass(frozen=True)
class Pose:
    """One person in one frame: where the head is and what the face does."""

    cx: float  # head centre, pixels in the person's canvas
    cy: float
    valence: float
    arousal: float
    mouth_open: float  # 0..1
    blink: bool
    occluded: bool


def poses(person: Person, mouth: np.ndarray, size: int, fps: float, rng: np.random.Generator) -> list[Pose]:
    """Per-frame poses ``[n_frames]``: slow sway plus arousal-scaled jitter, random blinks."""
    n = person.valence.size
    t = np.arange(n) / fps
    ph = rng.uniform(0, 2 * math.pi, 2)
    sway = SWAY * size * np.stack([np.sin(2 * math.pi * t / SWAY_PERIODS[0] + ph[0]),
                                   np.sin(2 * math.pi * t / SWAY_PERIODS[1] + ph[1])])
    jitter = rng.standard_normal((2, n)) * np.array([lerp(JITTER, unit(a)) for a in person.arousal]) * size
    blink = rng.random(n) < BLINK_PROB
    cx = size / 2 + sway[0] + jitter[0]
    cy = size / 2 + 0.04 * size + sway[1] + jitter[1]
    return [Pose(float(cx[i]), float(cy[i]), float(person.valence[i]), float(person.arousal[i]),
                 float(mouth[i]), bool(blink[i]), bool(person.occluded[i])) for i in range(n)]


def _pt(x: float, y: float) -> tuple[int, int]:
    """Sub-pixel point for OpenCV drawing with shift=SHIFT."""
    return int(round(x * (1 << SHIFT))), int(round(y * (1 << SHIFT)))


SHIFT = 4  # fractional bits of drawing coordinates


def draw_person(canvas: np.ndarray, person: Person, pose: Pose) -> None:
    """Draw one face on ``canvas`` ``[S, S, 3]`` uint8 BGR in place."""
    s = canvas.shape[0]
    r = FACE_RADIUS * s
    cx, cy = pose.cx, pose.cy
    aa = cv2.LINE_AA
    ax = _pt  # ellipse half-axes use the same fixed-point coordinates
    # shoulders, hair, face
    cv2.ellipse(canvas, _pt(cx, cy + 1.9 * r), ax(1.3 * r, 0.8 * r), 0, 0, 360, person.shirt, -1, aa, SHIFT)
    cv2.ellipse(canvas, _pt(cx, cy - 0.12 * r), ax(person.width * r * 1.12, r * 1.05), 0, 0, 360,
                person.hair, -1, aa, SHIFT)
    cv2.ellipse(canvas, _pt(cx, cy), ax(person.width * r, r), 0, 0, 360, person.skin, -1, aa, SHIFT)
    # eyes and brows (arousal)
    ua = unit(pose.arousal)
    eh = (EYE_H[0] if pose.blink else lerp(EYE_H, ua)) * r
    for side in (-1, 1):
        ex, ey = cx + side * EYE_DX * r, cy + EYE_Y * r
        cv2.ellipse(canvas, _pt(ex, ey), ax(EYE_W * r, eh), 0, 0, 360, EYE_WHITE, -1, aa, SHIFT)
        iris = IRIS * r
        cv2.ellipse(canvas, _pt(ex, ey), ax(iris, min(eh, iris)), 0, 0, 360, IRIS_COLOR, -1, aa, SHIFT)
        by = ey - lerp(BROW_GAP, ua) * r
        cv2.line(canvas, _pt(ex - BROW_W * r, by), _pt(ex + BROW_W * r, by), person.hair,
                 max(1, round(0.07 * r)), aa, SHIFT)
    # nose
    cv2.line(canvas, _pt(cx, cy - 0.05 * r), _pt(cx - 0.06 * r, cy + 0.2 * r), NOSE_COLOR, 1, aa, SHIFT)
    # mouth (valence: corner lift; speech: opening)
    mx, my, mw = cx, cy + MOUTH_Y * r, MOUTH_W * r
    lift = MOUTH_LIFT * r * pose.valence
    xs = np.linspace(-1, 1, 13)
    upper = [(mx + x * mw, my - lift * x * x + lift * 0.5) for x in xs]
    drop = MOUTH_OPEN * r * pose.mouth_open
    lower = [(mx + x * mw, y + drop * (1 - x * x)) for x, (_, y) in zip(xs, upper)]
    if drop > 0.5:
        poly = np.array([_pt(*p) for p in upper + lower[::-1]], np.int32)
        cv2.fillPoly(canvas, [poly], MOUTH_INSIDE, aa, SHIFT)
        cv2.polylines(canvas, [np.array([_pt(*p) for p in lower], np.int32)], False, LIP_COLOR,
                      max(1, round(0.06 * r)), aa, SHIFT)
    cv2.polylines(canvas, [np.array([_pt(*p) for p in upper], np.int32)], False, LIP_COLOR,
                  max(1, round(0.08 * r)), aa, SHIFT)
    if pose.occluded:  # a hand in front of the face: no usable face, no crop
        x0, y0 = int(cx - 0.9 * r), int(cy - 0.5 * r)
        cv2.rectangle(canvas, (x0, y0), (x0 + int(1.8 * r), y0 + int(1.4 * r)), person.skin, -1)
        cv2.rectangle(canvas, (x0, y0), (x0 + int(1.8 * r), y0 + int(1.4 * r)), HAND_EDGE, 1)


def crop(canvas: np.ndarray, pose: Pose, size: int) -> np.ndarray:
    """The face crop ``[size, size, 3]`` centred on the head (CROP_SCALE x R), edge-replicated."""
    s = canvas.shape[0]
    half = CROP_SCALE * FACE_RADIUS * s / 2
    m = np.float32([[size / (2 * half), 0, size / 2 - pose.cx * size / (2 * half)],
                    [0, size / (2 * half), size / 2 - pose.cy * size / (2 * half)]])
    return cv2.warpAffine(canvas, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)

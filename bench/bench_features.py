"""Audio and visual feature stages: throughput (video frames/s) and cache bytes per frame.

Writes one real video (OpenCV frames with a face photograph pasted in + an AAC tone muxed by
ffmpeg) and its 112x112 crops under bench/out/features/, extracts its wav, then times the
in-process feature functions the stages call (``audio_features_for``, ``visual_features_for``)
and the cache writes, and compares the cache bytes per frame with the official layout
(per-frame 96x64 float16 log-mel patches = 12,288 B; 48x48x3 uint8 faces = 6,912 B). It also
checks that the stored log-mel is exact: patches cut from the cache equal torchvggish's
``waveform_to_examples`` to 1e-5. VGGish and IR-50 run with random weights (the same compute as
the released ones) on a subset of frames.

Run: ``python bench/bench_features.py [--seconds 60 --fps 30 --size 640x360]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchvggish import vggish_input  # noqa: E402

from pipeline.audio.features import AudioExtractor, audio_features_for, patches  # noqa: E402
from pipeline.audio.vggish import build_vggish  # noqa: E402
from pipeline.core.cache import CacheKey, write_cache  # noqa: E402
from pipeline.core.media import extract_wav, read_wav  # noqa: E402
from pipeline.core.params import AudioParams, VisualParams  # noqa: E402
from pipeline.visual.features import VisualBackbone, ir50_embed, load_backbone, visual_features_for  # noqa: E402
from pipeline.visual.ir50 import IR50  # noqa: E402
from tests.media_fixtures import make_video, write_crops  # noqa: E402

OUT = Path("bench/out/features")
OFFICIAL_LOGMEL = 96 * 64 * 2  # B per frame: one float16 96x64 patch per video frame
OFFICIAL_FACES = 48 * 48 * 3  # B per frame: one 48x48 RGB uint8 jpg-decoded face per frame
SUBSET = 64  # frames for the slow CNN backbones (VGGish, IR-50)


def timed(fn):
    """(result, wall seconds, process CPU seconds) of fn()."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def stored_bytes(path: Path, name: str) -> int:
    with h5py.File(path, "r") as f:
        return int(f[name].id.get_storage_size())


def write(path: Path, modality: str, arrays: dict, attrs: dict, fps: float, n: int) -> Path:
    key = CacheKey(modality, path.stem, fps, n, "bench", {}, {}, "bench")
    return write_cache(path, arrays, key, attrs=attrs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--size", default="640x360", help="WxH of the video")
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    n = int(round(args.seconds * args.fps))
    fps = args.fps
    shutil.rmtree(OUT, ignore_errors=True)
    video = make_video(OUT / "video.mp4", n_frames=n, fps=fps, size=(w, h), face="astronaut")
    crops = write_crops(OUT / "cropped_aligned" / "video", n, missing=tuple(range(0, n, 50)))
    wav = extract_wav(video, OUT / "video.wav")
    rows = []
    print(f"# {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); video {args.seconds:g} s at {fps:g} fps {w}x{h} "
          f"= {n} frames")

    # --- audio ----------------------------------------------------------------------------------
    (arrays, attrs), dt, cpu = timed(lambda: audio_features_for(wav, fps, n, AudioParams()))
    rows.append(("audio: log-mel + logmel_mean (default)", n / dt, n / cpu))
    samples, sr = read_wav(wav)
    ref = vggish_input.waveform_to_examples(samples, sr, return_tensor=False)
    # example j starts at 0.96 j s; compare with the patch cut from the cache at that offset
    got = patches(arrays["logmel"], np.arange(len(ref)), 1 / 0.96)
    err = float(np.abs(got - ref).max())
    assert err < 1e-5, err
    apath = write(OUT / "audio.h5", "audio", arrays, attrs, fps, n)
    logmel_b = stored_bytes(apath, "logmel") / n
    logmel_raw = arrays["logmel"].nbytes / n
    audio_file = apath.stat().st_size / n

    torch.manual_seed(0)
    ext = AudioExtractor(AudioParams(batch_size=SUBSET), build_vggish(), "vggish")
    _, dt, cpu = timed(lambda: audio_features_for(wav, fps, SUBSET, ext.params, ext))
    rows.append((f"audio: + VGGish embeddings ({SUBSET} frames)", SUBSET / dt, SUBSET / cpu))

    # --- visual ---------------------------------------------------------------------------------
    results = {}
    for source, crop_dir in [("crops", crops), ("detect", None), ("frames", None)]:
        p = VisualParams(face_source=source)
        backbone = load_backbone(p)
        (va, vattrs), dt, cpu = timed(lambda p=p, b=backbone, c=crop_dir:  # noqa: B023
                                      visual_features_for(video, n, p, c, b))
        results[source] = (va, vattrs)
        rows.append((f"visual: faces ({source}) + pixels backbone", n / dt, n / cpu))
    va, vattrs = results["detect"]
    det_rate = float(va["face_present"].mean())
    vpath = write(OUT / "visual.h5", "visual", va, vattrs, fps, n)
    faces_b = stored_bytes(vpath, "faces") / n
    visual_file = vpath.stat().st_size / n

    torch.manual_seed(0)
    model = IR50().eval()
    ir = VisualBackbone("ir50", 512, lambda f, pr: ir50_embed(model, f, pr, 40))
    _, dt, cpu = timed(lambda: visual_features_for(None, SUBSET, VisualParams(), crops, ir))
    rows.append((f"visual: faces (crops) + IR-50 ({SUBSET} frames)", SUBSET / dt, SUBSET / cpu))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print("\n| step | frames/s (wall) | frames/s per CPU-second |")
    print("|---|---:|---:|")
    for name, wall, per_cpu in rows:
        print(f"| {name} | {wall:,.0f} | {per_cpu:,.0f} |")
    print("\n| cache | bytes per frame | official layout | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| audio `logmel` float32 (stored, gzip) | {logmel_b:,.0f} | {OFFICIAL_LOGMEL:,} | "
          f"{OFFICIAL_LOGMEL / logmel_b:.1f}x smaller |")
    print(f"| audio `logmel` float32 (uncompressed) | {logmel_raw:,.0f} | {OFFICIAL_LOGMEL:,} | "
          f"{OFFICIAL_LOGMEL / logmel_raw:.1f}x smaller |")
    print(f"| audio file (logmel + logmel_mean + attrs) | {audio_file:,.0f} | | |")
    print(f"| visual `faces` uint8, detected (stored, gzip) | {faces_b:,.0f} | {OFFICIAL_FACES:,} | "
          f"{OFFICIAL_FACES / faces_b:.1f}x smaller |")
    print(f"| visual `faces` uint8 (uncompressed) | {va['faces'][0].nbytes:,} | {OFFICIAL_FACES:,} | "
          f"1.0x |")
    print(f"| visual file (faces + flags + 256-d embedding) | {visual_file:,.0f} | | |")
    print(f"\nlog-mel exact: max |cache patch - waveform_to_examples| = {err:.2e} over {len(ref)} "
          f"examples; face detected in {det_rate:.0%} of frames; peak RSS {peak:,.0f} MiB")


if __name__ == "__main__":
    main()

"""Audio and visual feature stages: throughput (video frames/s) and cache bytes per frame.

Writes one real video (OpenCV frames with a face photograph pasted in + an AAC tone muxed by
ffmpeg) and its 112x112 crops under bench/out/features/, extracts its wav, then times the
in-process feature functions the stages call (``audio_features_for``, ``visual_features_for``)
and the cache writes, and compares the cache bytes per frame with the official layout
(per-frame 96x64 float16 log-mel patches = 12,288 B; 48x48x3 uint8 faces = 6,912 B). It also
checks that the stored log-mel is exact: patches cut from the cache equal torchvggish's
``waveform_to_examples`` to 1e-5. VGGish and IR-50 run with random weights (the same compute as
the released ones) on a subset of frames.

``--backbones`` measures instead what extraction on a GPU is about: each backbone loaded as the
stages load it (IR-50 and VGGish with random weights saved in the released file formats, BERT =
the packaged MiniLM) on ``--device`` (auto = CUDA when available) with ``--threads`` torch
threads, frames/s (words/s for BERT) of the in-process feature functions with the crop reader
threads on and off, the backbone alone, GMAC per frame (``torch.utils.flop_counter``), and the
max difference of fp16 / bf16 from fp32 on the same frames.

Run: ``python bench/bench_features.py [--seconds 60 --fps 30 --size 640x360]`` or
``python bench/bench_features.py --backbones [--threads 2 --frames 128 --device auto]``.
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


def gmac(model, x) -> float:
    """Multiply-accumulates of one forward of ``x`` (one frame), in GMAC."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x)
    return fc.get_total_flops() / 2 / 1e9


def low_precision(load, embed, n: int, ref: np.ndarray) -> list[tuple[str, float, float, float]]:
    """(precision, frames/s, max |low - fp32|, max |fp32|) on the first ``n`` frames for fp16 and
    bf16 (``load(precision)`` -> model; ``embed(model, n)`` -> [n, D] float32)."""
    out = []
    for precision in ("fp16", "bf16"):
        try:
            model = load(precision)
            got, dt, _ = timed(lambda m=model: embed(m, n))  # noqa: B023
        except RuntimeError as e:  # an op without a kernel for this dtype on this device
            print(f"# {precision}: not supported here ({str(e).splitlines()[0]})")
            continue
        out.append((precision, n / dt, float(np.abs(got - ref[:n]).max()), float(np.abs(ref[:n]).max())))
    return out


def bench_backbones(threads: int, n: int, device: str, n_low: int) -> None:
    """Frames/s per backbone as the stages run them, GMAC/frame, fp16/bf16 vs fp32 differences."""
    from pipeline.core.device import resolve_device
    from pipeline.text.bert import encode_words, load_bert
    from pipeline.visual.faces import iter_faces
    from pipeline.visual.ir50 import IR50Config

    out = OUT / "backbones"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    dev = resolve_device(device)
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "none (CPU run)"
    print(f"# {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, device "
          f"{dev} (GPU: {gpu}), {threads} torch threads; {n} frames (low precision: {n_low})")
    rows, diffs = [], []

    # IR-50: random weights in the res50_ir layout, loaded like the stage (visual.ir50_weights)
    torch.manual_seed(0)
    weights = out / "res50_ir_random.pth"
    torch.save(IR50(IR50Config()).state_dict(), weights)
    crops = write_crops(out / "crops", n)
    base = dict(backbone="ir50", ir50_weights=str(weights), face_source="crops", device=device,
                threads=threads)
    p = VisualParams(**base)
    backbone = load_backbone(p)
    visual_features_for(None, 8, p, crops, backbone)  # warm-up
    for workers in (VisualParams().workers, 0):
        q = VisualParams(**base, workers=workers)
        (va, _), dt, cpu = timed(lambda q=q: visual_features_for(None, n, q, crops, backbone))  # noqa: B023
        rows.append((f"IR-50, crops -> embedding, reader threads {workers}", n / dt, n / cpu))
    faces = np.concatenate([f for f, _ in iter_faces(None, n, VisualParams(face_source="crops"), crops)])
    present = np.ones(n, bool)
    ref, dt, cpu = timed(lambda: np.concatenate([backbone.embed(faces[i:i + p.batch_size],
                                                                present[i:i + p.batch_size])
                                                 for i in range(0, n, p.batch_size)]))
    rows.append(("IR-50 alone (faces in memory)", n / dt, n / cpu))
    assert np.allclose(ref, va["embedding"], atol=1e-6)
    ir_gmac = gmac(backbone.model, torch.zeros(1, 3, 40, 40, device=dev))
    diffs += [("IR-50", *d) for d in low_precision(
        lambda pr: load_backbone(VisualParams(**{**base, "device": device}, precision=pr)),
        lambda b, k: b.embed(faces[:k], present[:k]), n_low, ref)]

    # VGGish: random weights in torchvggish's released format (audio.vggish_weights)
    torch.manual_seed(0)
    vw = out / "vggish-random.pth"
    torch.save(build_vggish().state_dict(), vw)
    fps = 30.0
    seconds = n / fps + 1
    t = np.arange(int(16000 * seconds)) / 16000
    samples = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    from pipeline.audio.features import features_from_samples, load_extractor
    from pipeline.audio.vggish import embed_patches

    aparams = AudioParams(vggish_weights=str(vw), device=device, threads=threads)
    ext = load_extractor(aparams)
    features_from_samples(samples, 16000, fps, 8, ext)  # warm-up
    (aa, _), dt, cpu = timed(lambda: features_from_samples(samples, 16000, fps, n, ext))
    rows.append(("VGGish, wav samples -> log-mel -> embedding", n / dt, n / cpu))
    logmel = aa["logmel"]
    cut = lambda sl: patches(logmel, np.arange(n)[sl], fps)  # noqa: E731
    aref, dt, cpu = timed(lambda: embed_patches(ext.model, cut, n, aparams.batch_size))
    rows.append(("VGGish alone (patches cut from the log-mel)", n / dt, n / cpu))
    vg_gmac = gmac(ext.model, torch.zeros(1, 1, 96, 64, device=dev))
    diffs += [("VGGish", *d) for d in low_precision(
        lambda pr: load_extractor(AudioParams(vggish_weights=str(vw), device=device, precision=pr)),
        lambda e, k: embed_patches(e.model, cut, k, aparams.batch_size), n_low, aref)]

    # BERT: the packaged MiniLM (text.bert = minilm), words of 12-word sentences
    torch.set_num_threads(threads)
    enc = load_bert("minilm")
    vocab = [w for w in enc.tokenizer.vocab if w.isalpha() and len(w) > 2][:2000]
    rng = np.random.default_rng(0)
    words = [vocab[i] + ("." if j % 12 == 11 else "") for j, i in
             enumerate(rng.integers(0, len(vocab), 1200))]
    encode_words(enc, words[:50], 4, 512, 8)  # warm-up
    _, dt, cpu = timed(lambda: encode_words(enc, words, 4, 512, 8))
    bert_row = (len(words) / dt, len(words) / cpu)

    print("\n| backbone (as the stage runs it) | frames/s (wall) | frames/s per CPU-second |")
    print("|---|---:|---:|")
    for name, wall, per_cpu in rows:
        print(f"| {name} | {wall:,.1f} | {per_cpu:,.1f} |")
    print(f"| BERT minilm, words -> word features (words/s) | {bert_row[0]:,.0f} | {bert_row[1]:,.0f} |")
    print(f"\nGMAC per frame: IR-50 (40x40) {ir_gmac:.3f}, VGGish (96x64 patch) {vg_gmac:.3f}")
    print("\n| backbone | precision | frames/s (wall) | max abs diff from fp32 | max abs fp32 value |")
    print("|---|---|---:|---:|---:|")
    for name, precision, fps_, diff, scale in diffs:
        print(f"| {name} | {precision} | {fps_:,.2f} | {diff:.2e} | {scale:.2e} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--size", default="640x360", help="WxH of the video")
    ap.add_argument("--backbones", action="store_true",
                    help="measure the backbones (IR-50, VGGish, BERT) on --device instead")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (--backbones)")
    ap.add_argument("--frames", type=int, default=128, help="frames per backbone (--backbones)")
    ap.add_argument("--low-frames", type=int, default=4,
                    help="frames for the fp16/bf16 runs (slow on CPUs without native support)")
    ap.add_argument("--device", default="auto", help="torch device (--backbones)")
    args = ap.parse_args()
    if args.backbones:
        bench_backbones(args.threads, args.frames, args.device, args.low_frames)
        return
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

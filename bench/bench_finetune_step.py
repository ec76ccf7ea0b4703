"""Time one fine-tuning step (``train.backbones: finetune``): IR-50 on 40x40 crops of 48x48 uint8
faces + VGGish on 96x64 log-mel patches inside RJCMA, forward + backward (1 - CCC) + Adam step.

Defaults are the paper's sizes: batch 12, K = 300 (3600 faces and 3600 patches per step), the
Aff-Wild2 preset's TCN channels, text 768-d (cached BERT), l = 3. Each configuration runs in its
own child process, which reports wall and CPU seconds per step and its peak resident memory
(``ru_maxrss``), for release 1 (output layer / last FC trainable) and release 3 (all three groups).
On CUDA (``--device cuda``) the step runs under autocast (bf16 where supported) with uint8 faces
moved to the device and augmented there, and peak memory is ``torch.cuda.max_memory_allocated``.

    python bench/bench_finetune_step.py                          # paper sizes (slow on a CPU)
    python bench/bench_finetune_step.py --batch 1 --window 30    # a CPU-sized slice
    python bench/bench_finetune_step.py --device cuda --channels-last
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from any directory

from fusion.backbones import BackboneRJCMA  # noqa: E402
from fusion.ccc import ccc_loss  # noqa: E402
from fusion.evaluate import amp_dtype, autocast  # noqa: E402
from fusion.unfreeze import Phases  # noqa: E402
from pipeline.core.params import FusionParams, TrainParams  # noqa: E402

PAPER_CHANNELS = {"audio": (128, 128, 128, 128), "visual": (256, 256, 256, 256), "text": (128, 128, 128, 128)}
TEXT_DIM = 768
FACE_PRESENT = 0.9  # fraction of frames with a face (the rest skip IR-50)


def child(args: argparse.Namespace) -> dict:
    """One configuration in this process: mean seconds per timed step, peak memory."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    fusion = FusionParams(window=args.window, stride=args.window, tcn_channels=PAPER_CHANNELS)
    backbones = {"visual": {"name": "ir50", "crop": 40, "chunk": args.chunk,
                            "channels_last": args.channels_last},
                 "audio": {"name": "vggish", "relu": False, "chunk": args.chunk}}
    model = BackboneRJCMA(fusion, backbones, {"text": TEXT_DIM}, 1).to(device)
    phases = Phases(model, TrainParams(warmup_epochs=0), n_batches=1)
    while phases.released < args.release:
        phases.start_phase()
    b, k = args.batch, args.window
    g = torch.Generator().manual_seed(0)
    batch = {"visual": torch.randint(0, 256, (b, k, 48, 48, 3), dtype=torch.uint8, generator=g),
             "face_present": torch.rand(b, k, generator=g) < FACE_PRESENT,
             "audio": torch.randn(b, k, 96, 64, generator=g),
             "text": torch.randn(b, k, TEXT_DIM, generator=g)}
    target = torch.tanh(torch.randn(b, k, 1, generator=g))
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype(device) == torch.float16)
    model.train()
    phases.set_modes()

    def step() -> None:
        inputs = {m: x.to(device, non_blocking=True) for m, x in batch.items()}
        with autocast(device, use_amp):
            pred = model(inputs)
        loss = ccc_loss(pred.float(), target.to(device))
        phases.optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(phases.optimizer)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()

    walls, cpus = [], []
    for i in range(args.warmup + args.steps):
        w0, c0 = time.perf_counter(), time.process_time()
        step()
        if i >= args.warmup:
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"release": args.release, "batch": b, "window": k, "wall_s": sum(walls) / len(walls),
            "cpu_s": sum(cpus) / len(cpus), "peak_gib": peak / 2 ** 30,
            "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--window", type=int, default=300)
    p.add_argument("--releases", type=int, nargs="+", default=[1, 3])
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--chunk", type=int, default=1024, help="train.backbone_chunk")
    p.add_argument("--device", default="cpu")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--release", type=int, default=0, help=argparse.SUPPRESS)  # child mode
    args = p.parse_args()
    if args.release:
        print(json.dumps(child(args)))
        return
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {args.threads or torch.get_num_threads()}, device {args.device}"
          f"{', channels_last' if args.channels_last else ''}")
    print("| release | batch x K | frames/step | s/step (wall) | s/step (CPU) | s/frame (wall) "
          "| peak memory |")
    print("|---|---|---|---|---|---|---|")
    for r in args.releases:
        cmd = [sys.executable, __file__, "--release", str(r), "--batch", str(args.batch),
               "--window", str(args.window), "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--threads", str(args.threads), "--chunk", str(args.chunk), "--device", args.device]
        cmd += ["--channels-last"] if args.channels_last else []
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        frames = row["batch"] * row["window"]
        print(f"| {r} | {row['batch']} x {row['window']} | {frames} | {row['wall_s']:.2f} | "
              f"{row['cpu_s']:.2f} | {row['wall_s'] / frames * 1e3:.1f} ms | {row['peak_gib']:.2f} GiB |")


if __name__ == "__main__":
    main()

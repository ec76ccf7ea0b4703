"""Where and how a backbone runs: device, precision, CPU threads, and input prefetching.

Shared by the audio (VGGish) and visual (IR-50) extractors; the ``device`` / ``precision`` /
``threads`` keys of their params sections mean the same in both:

- ``device``: ``auto`` (CUDA when ``torch.cuda.is_available()``, else the CPU) or any torch device
  string (``cpu``, ``cuda``, ``cuda:1``, ``mps`` ...). A CUDA device that is not there is a clear
  error, never a silent fall-back.
- ``precision``: ``fp32`` (the default: exact, what the caches are made with; on CUDA TF32 is
  switched off so that fp32 means fp32), ``fp16`` or ``bf16`` (weights and inputs cast to that
  dtype; outputs back to float32). docs/benchmarks.md records the measured difference from fp32.
- ``threads``: torch CPU threads when the device is the CPU; 0 = every core this process may use
  (its CPU affinity, which Slurm and ``taskset`` set).

:func:`prefetch` runs an input generator (decoding, crop reading, patch cutting) in a background
thread so that it overlaps with the backbone's compute (OpenCV, h5py and torch release the GIL).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from pipeline.core.params import PRECISIONS

AUTO = "auto"
PREFETCH_DEPTH = 2  # batches decoded ahead of the one being computed
_DONE = object()


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_device(name: str, param: str = "device"):
    """``auto`` -> CUDA when available else CPU; any other torch device string as is.

    Raises ``ValueError`` naming ``param`` for a malformed string or a CUDA device that this
    machine does not have.
    """
    import torch

    if name == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"{param}: {name!r} is not a torch device (auto, cpu, cuda, cuda:N, mps ...)"
                         ) from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{param}: {name!r} but this torch build sees no CUDA device "
                             f"(torch {torch.__version__}); use auto or cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{param}: {name!r} but only {torch.cuda.device_count()} CUDA "
                             "device(s) are visible (CUDA_VISIBLE_DEVICES renumbers them from 0)")
    return dev


def precision_dtype(precision: str):
    """``fp32`` | ``fp16`` | ``bf16`` -> the torch dtype."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def use_threads(device, threads: int) -> int:
    """Set torch's CPU threads for a CPU device (``threads`` or, when 0, every core); returns the
    count in effect. A GPU device leaves torch's setting alone."""
    import torch

    if device.type == "cpu":
        torch.set_num_threads(threads or cpu_cores())
    return torch.get_num_threads()


def place(model, device_name: str, precision: str, threads: int, param: str):
    """Move ``model`` (eval mode) to the resolved device and dtype; returns ``(model, device, dtype)``."""
    import torch

    device = resolve_device(device_name, param)
    dtype = precision_dtype(precision)
    use_threads(device, threads)
    if device.type == "cuda" and dtype == torch.float32:  # fp32 means fp32: no TF32 convolutions
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    return model.to(device=device, dtype=dtype).eval(), device, dtype


def to_device(array, device, dtype):
    """A float32 numpy array -> a tensor on ``device`` in ``dtype`` (pinned, asynchronous copy on CUDA)."""
    import torch

    t = torch.from_numpy(array)
    if device.type == "cuda":
        t = t.pin_memory().to(device, non_blocking=True)
    return t.to(device=device, dtype=dtype)


def prefetch(items: Iterable[Any], depth: int = PREFETCH_DEPTH) -> Iterator[Any]:
    """Iterate ``items`` in a background thread, up to ``depth`` items ahead (0: no thread).

    The consumer sees the same items in the same order; an exception in the producer is raised in
    the consumer at the point it happened. Closing the consumer early stops the producer.
    """
    if depth <= 0:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((_DONE, None))
        except BaseException as e:  # handed to the consumer
            q.put((_DONE, e))

    thread = threading.Thread(target=produce, name="rjcma-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, err = q.get()
            if item is _DONE:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                pass
            thread.join(timeout=0.05)

"""Extract each video's audio of one shard to a 16 kHz mono 16-bit wav.

Writes ``data/interim/wav/<shard>/<id>.wav`` (ffmpeg, metadata stripped, bitexact: identical video →
identical bytes) and a small sidecar ``<id>.wav.json`` recording the source's content hash, the
sample rate and the wav's size. A rerun skips a video whose sidecar matches (cheap: no decoding,
no hashing of the wav). A video without an audio track gets a wav of silence of its duration
(counted as ``no audio track``: one summary line, the ids in the shard's ``conditions.json``).
The two people of a two-person video (``x_left``/``x_right``) share one source:
the second one's wav is a copy of the first's when both are in this shard, else it is extracted
again (same bytes).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.core import layout
from pipeline.core.atomic import atomic_path, write_json
from pipeline.core.manifest import VideoEntry, read_shard
from pipeline.core.media import VideoInfo, extract_wav
from pipeline.core.params import Params
from pipeline.core.stage import Outcome

EXTRACTOR = "ffmpeg pcm_s16le mono bitexact aligned v2"  # bump when the wav's content would change
NO_AUDIO = "no audio track"  # the condition of a video written as silence


def sidecar_path(wav: Path) -> Path:
    return wav.with_name(wav.name + ".json")


def expected_meta(entry: VideoEntry, sample_rate: int) -> dict:
    return {"extractor": EXTRACTOR, "sample_rate": sample_rate, "source_hash": entry.content_hash,
            "has_audio": entry.has_audio}


def is_current(wav: Path, meta: dict) -> bool:
    """The wav exists, its sidecar records ``meta`` and the wav's size matches the sidecar."""
    side = sidecar_path(wav)
    try:
        recorded = json.loads(side.read_text())
        return (wav.is_file() and recorded.get("wav_bytes") == wav.stat().st_size
                and {k: recorded.get(k) for k in meta} == meta)
    except (OSError, ValueError):
        return False


def make_process(params: Params, shard: int, data: Path) -> Callable[[VideoEntry], Outcome]:
    sample_rate = params.audio.sample_rate
    by_source: dict[str, list[VideoEntry]] = {}
    for e in read_shard(shard, data):
        by_source.setdefault(e.source, []).append(e)

    def process(entry: VideoEntry) -> Outcome:
        wav = layout.wav_path(shard, entry.id, data)
        meta = expected_meta(entry, sample_rate)
        conditions = () if entry.has_audio else (NO_AUDIO,)
        if entry.content_hash and is_current(wav, meta):
            return Outcome("skipped", conditions)
        sibling = next((layout.wav_path(shard, s.id, data) for s in by_source.get(entry.source, [])
                        if s.id != entry.id and s.content_hash == entry.content_hash
                        and is_current(layout.wav_path(shard, s.id, data), meta)), None)
        if sibling is not None:  # the other person of the same video: same audio, same bytes
            with atomic_path(wav) as tmp:
                shutil.copyfile(sibling, tmp)
        else:
            info = VideoInfo(fps=entry.fps, n_frames=entry.n_frames, duration=entry.duration,
                             has_audio=entry.has_audio, width=0, height=0)
            extract_wav(entry.source, wav, sample_rate, info=info)
        write_json(sidecar_path(wav), {**meta, "wav_bytes": wav.stat().st_size})
        return Outcome("done", conditions)

    return process


def main(argv: Sequence[str] | None = None) -> int:
    from pipeline.core.stage import shard_stage_main

    return shard_stage_main("extract_audio", __doc__.splitlines()[0], make_process, argv,
                            out_dir=layout.wav_dir, chain="wav")


if __name__ == "__main__":
    sys.exit(main())

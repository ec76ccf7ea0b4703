"""Audio feature caches for one shard: VGGish log-mel (10 ms) + per-frame features per video.

Reads each video's 16 kHz mono wav written by ``python -m stages.extract_audio`` and writes
``data/features/audio/<shard>/<id>.h5`` (schema in docs/caches.md). With ``audio.vggish_weights``
set, the per-frame features are VGGish embeddings; otherwise the compact mean log-mel spectrum.
A video without an audio track gets the features of silence. Silent or missing audio is counted
(one summary line per condition, the ids in the shard's ``conditions.json``). Videos whose cache
is current (same wav bytes, settings and versions) are skipped.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.audio.features import CONDITIONS, audio_cache_key, audio_features_for, load_extractor
from pipeline.core import layout
from pipeline.core.cache import is_current, read_attrs, write_cache
from pipeline.core.manifest import VideoEntry, file_hash
from pipeline.core.params import Params
from pipeline.core.stage import Outcome


def make_process(params: Params, shard: int, data: Path) -> Callable[[VideoEntry], Outcome]:
    extractor = load_extractor(params.audio)  # loads VGGish once (clear error if unavailable)

    def process(entry: VideoEntry) -> Outcome:
        out = layout.feature_path("audio", shard, entry.id, data)
        wav: Path | None = layout.wav_path(shard, entry.id, data)
        if not wav.is_file():
            if entry.has_audio:
                raise FileNotFoundError(f"{wav}: wav missing for a video with audio; run "
                                        f"`python -m stages.extract_audio --shard {shard}` first")
            wav = None  # no audio track: defined features of silence
        # the wav's own bytes: a re-extracted wav (new extractor, changed video) is never stale
        source = file_hash(wav) if wav is not None else f"{entry.content_hash}:no-audio"
        key = audio_cache_key(entry.id, entry.fps, entry.n_frames, extractor, source)
        if is_current(out, key):
            return Outcome("skipped", CONDITIONS.get(read_attrs(out).get("audio_status"), ()))
        arrays, attrs = audio_features_for(wav, entry.fps, entry.n_frames, params.audio, extractor)
        write_cache(out, arrays, key, attrs=attrs)
        return Outcome("done", CONDITIONS.get(attrs["audio_status"], ()))

    return process


def main(argv: Sequence[str] | None = None) -> int:
    from pipeline.core.stage import shard_stage_main

    return shard_stage_main("audio_features", __doc__.splitlines()[0], make_process, argv,
                            out_dir=lambda shard, data: layout.feature_shard_dir("audio", shard, data),
                            chain="audio")


if __name__ == "__main__":
    sys.exit(main())

"""Word timestamps for one shard: ASR (Vosk or Whisper) on each video's wav, or the user's transcripts.

``asr.engine: vosk`` (the paper's) decodes ``data/interim/wav/<shard>/<id>.wav`` (from
``python -m stages.extract_audio``) with the Vosk model of ``asr.model``, fed in chunks of
``asr.chunk_seconds``; ``asr.engine: whisper`` decodes it with faster-whisper and
``asr.whisper_model`` (default: the offline tiny.en, English); ``asr.engine: transcripts`` reads
``<data.root>/<asr.transcripts_dir>/<id>.json`` or ``.csv`` (the manifest's ``transcript_file``).
Either way it writes
``data/interim/asr/<shard>/<id>.json`` (words with start/end seconds and confidence; format in
docs/text.md). Silence or music gives an empty transcript, not a failure (counted as ``no words``:
one summary line, the ids in the shard's ``conditions.json``). A video whose output
records the same settings and input hash is skipped; the two people of a two-person video
(``x_left``/``x_right``, one wav) are decoded once.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.core import layout
from pipeline.core.manifest import VideoEntry, file_hash
from pipeline.core.params import Params
from pipeline.core.stage import Outcome
from pipeline.text.transcripts import (
    NO_WORDS,
    Transcript,
    find_user_transcript,
    is_current,
    read_transcript,
    read_user_transcript,
    write_transcript,
)

log = logging.getLogger("rjcma.transcribe")


def make_process(params: Params, shard: int, data: Path) -> Callable[[VideoEntry], Outcome]:
    asr = params.asr
    if asr.engine == "transcripts":
        recognizer = None
        settings, versions = {"engine": "transcripts"}, {}
    else:
        from pipeline.core.media import read_wav
        from pipeline.text.asr import load_recognizer

        recognizer = load_recognizer(asr)  # once per shard; a clear error when it is not available
        settings, versions = recognizer.settings, recognizer.versions

    decoded: dict[str, tuple] = {}  # wav hash → words: the two people of one video share a wav

    def process(entry: VideoEntry) -> Outcome:
        out = layout.asr_path(shard, entry.id, data)
        if asr.engine == "transcripts":
            src = find_user_transcript(entry.id, entry.source_id, entry.transcript_file,
                                       params.data.root, asr.transcripts_dir)
        else:
            src = layout.wav_path(shard, entry.id, data)
            if not src.is_file():
                raise FileNotFoundError(f"{src}: wav missing; run "
                                        f"`python -m stages.extract_audio --shard {shard}` first")
        key = dict(settings=settings, input_hash=file_hash(src), versions=versions)
        if is_current(out, **key):
            return Outcome("skipped", () if read_transcript(out).words else NO_WORDS)
        if asr.engine == "transcripts":
            transcript = read_user_transcript(src, entry.id)
        else:
            if key["input_hash"] not in decoded:
                samples, sr = read_wav(src)
                decoded[key["input_hash"]] = recognizer.words(samples, sr)
            transcript = Transcript(entry.id, decoded[key["input_hash"]], recognizer.source)
        if not transcript.words:
            log.debug("%s: no words (silence or music?); the text features will be zeros", entry.id)
        write_transcript(out, transcript, **key)
        return Outcome("done", () if transcript.words else NO_WORDS)

    return process


def main(argv: Sequence[str] | None = None) -> int:
    from pipeline.core.stage import shard_stage_main

    return shard_stage_main("transcribe", __doc__.splitlines()[0], make_process, argv,
                            out_dir=layout.asr_dir, chain="text")


if __name__ == "__main__":
    sys.exit(main())

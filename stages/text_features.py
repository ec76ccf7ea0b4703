"""Word-level BERT features for one shard, aligned to video frames.

Reads ``data/interim/transcripts/<shard>/<id>.json`` (``python -m stages.punctuate``), encodes each
word with the BERT of ``text.bert`` (sum of the last ``text.layers`` layers, word pieces averaged)
and writes ``data/features/text/<shard>/<id>.h5``: words, start/end, one float16 embedding per word
and the frame → word index (−1 where no word covers a frame; schema in docs/caches.md). A video
without words gets all-zero features (counted as ``no words``: one summary line, the ids in the
shard's ``conditions.json``). A video whose cache is current is skipped.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.core import layout
from pipeline.core.cache import is_current
from pipeline.core.manifest import VideoEntry, file_hash
from pipeline.core.params import Params
from pipeline.core.stage import Outcome

log = logging.getLogger("rjcma.text_features")


def make_process(params: Params, shard: int, data: Path) -> Callable[[VideoEntry], Outcome]:
    from pipeline.text.bert import load_bert
    from pipeline.text.features import text_cache_key, write_text_features
    from pipeline.text.transcripts import NO_WORDS, read_transcript

    text = params.text
    encoder = load_bert(text.bert)  # once per shard; a clear error when it is not available

    def process(entry: VideoEntry) -> Outcome:
        src = layout.transcript_path(shard, entry.id, data)
        out = layout.feature_path("text", shard, entry.id, data)
        if not src.is_file():
            raise FileNotFoundError(f"{src}: transcript missing; run "
                                    f"`python -m stages.punctuate --shard {shard}` first")
        key = text_cache_key(entry.id, entry.fps, entry.n_frames, text, encoder, file_hash(src))
        transcript = read_transcript(src)  # small: read for the skipped videos' conditions too
        conditions = () if transcript.words else NO_WORDS
        if is_current(out, key):
            return Outcome("skipped", conditions)
        if not transcript.words:
            log.debug("%s: no words; text features are zeros", entry.id)
        write_text_features(out, transcript, encoder, text, key)
        return Outcome("done", conditions)

    return process


def main(argv: Sequence[str] | None = None) -> int:
    from pipeline.core.stage import shard_stage_main

    return shard_stage_main("text_features", __doc__.splitlines()[0], make_process, argv,
                            out_dir=lambda shard, data: layout.feature_shard_dir("text", shard, data),
                            chain="text")


if __name__ == "__main__":
    sys.exit(main())

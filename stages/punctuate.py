"""Punctuation and capitals for one shard's transcripts, every word keeping its timestamps.

Reads ``data/interim/asr/<shard>/<id>.json`` (``python -m stages.transcribe``), restores
punctuation with the deepmultilingualpunctuation model of ``punctuation.model`` (a mark attaches to
the word before it, sentence starts are capitalised, no token is invented) and writes
``data/interim/transcripts/<shard>/<id>.json``. ``punctuation.model: none`` copies the words
unchanged. A video whose output records the same settings and input hash is skipped.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.core import layout
from pipeline.core.manifest import VideoEntry, file_hash
from pipeline.core.params import Params, PunctuationParams
from pipeline.text.transcripts import Transcript, is_current, read_transcript, write_transcript


def punctuation_settings(p: PunctuationParams, model_name: str | None) -> dict:
    """What shapes the punctuated transcript (recorded in the output's key)."""
    if model_name is None:
        return {"model": "none"}
    return {"model": model_name, "chunk_words": p.chunk_words}


def make_process(params: Params, shard: int, data: Path) -> Callable[[VideoEntry], str]:
    from pipeline.text.punctuation import load_punctuator, punctuate, versions

    p = params.punctuation
    punctuator = load_punctuator(p.model, p.chunk_words)  # None for `none`
    settings = punctuation_settings(p, punctuator.name if punctuator else None)
    vers = versions() if punctuator else {}

    def process(entry: VideoEntry) -> str:
        src = layout.asr_path(shard, entry.id, data)
        out = layout.transcript_path(shard, entry.id, data)
        if not src.is_file():
            raise FileNotFoundError(f"{src}: ASR transcript missing; run "
                                    f"`python -m stages.transcribe --shard {shard}` first")
        key = dict(settings=settings, input_hash=file_hash(src), versions=vers)
        if is_current(out, **key):
            return "skipped"
        raw = read_transcript(src)
        if punctuator is None or not raw.words:
            transcript = Transcript(entry.id, raw.words, raw.source)
        else:
            transcript = Transcript(entry.id, punctuate(punctuator, raw.words),
                                    f"{raw.source}+punctuation:{punctuator.name}")
        write_transcript(out, transcript, **key)
        return "done"

    return process


def main(argv: Sequence[str] | None = None) -> int:
    from pipeline.core.stage import shard_stage_main

    return shard_stage_main("punctuate", __doc__.splitlines()[0], make_process, argv,
                            out_dir=layout.transcript_dir, chain="text")


if __name__ == "__main__":
    sys.exit(main())

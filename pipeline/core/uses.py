"""Which extraction chains the configuration uses: one small file per chain under ``data/uses/``.

A run pays only for the modalities it uses. The ``uses`` stage (``python -m stages.uses``, params
``fusion.modalities`` and ``asr.engine``) writes ``data/uses/<chain>.json``; each per-shard stage of
a chain depends on its chain's file, not on those params. DVC hashes the file's bytes, and each
file holds only its own chain's verdict, so switching a modality off re-runs only that modality's
stages (which then extract nothing), switching it back on re-runs them (restored from DVC's
run-cache when that configuration ran before), and ``-S fusion.recursions=4`` re-runs none.

=======  ======================================  ============================================
chain    stages                                  used when
=======  ======================================  ============================================
wav      extract_audio                           audio is used, or text with ASR (vosk, whisper)
audio    audio_features                          audio is in fusion.modalities
visual   visual_features                         visual (or its alias video) is in it
text     transcribe, punctuate, text_features    text is in it
=======  ======================================  ============================================

A stage of an unused chain loads no model and reads no video: it writes ``unused.json`` (the
verdict) into its shard's output folder, which DVC needs to exist, and says so once. Without a
``data/uses/<chain>.json`` (a stage run by hand before ``stages.uses``) the chain counts as used.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.core import layout
from pipeline.core.atomic import write_json
from pipeline.core.params import Params

CHAINS = ("wav", "audio", "visual", "text")
UNUSED_FILE = "unused.json"  # written into a shard's output folder by a stage of an unused chain
ASR_ENGINES_READING_WAV = ("vosk", "whisper")  # the transcripts engine reads the user's files instead
# one fixed reason per verdict: the file's bytes must not change unless the verdict does
WHY = {
    ("wav", True): "the audio features or the ASR (vosk, whisper) read the wavs",
    ("wav", False): "no configured run reads the wavs (no audio in fusion.modalities, and text "
                    "with asr.engine transcripts)",
    **{(m, True): f"{m} is in fusion.modalities" for m in CHAINS[1:]},
    **{(m, False): f"no configured run uses {m} (not in fusion.modalities)" for m in CHAINS[1:]},
}


@dataclass(frozen=True)
class Usage:
    """One chain's verdict, the content of ``data/uses/<chain>.json``."""

    chain: str
    used: bool
    why: str


def chain_uses(params: Params) -> dict[str, Usage]:
    """``{chain: Usage}`` for every chain of :data:`CHAINS`, from ``fusion.modalities`` and
    ``asr.engine``."""
    modalities = {"visual" if m == "video" else m for m in params.fusion.modalities}
    used = {m: m in modalities for m in CHAINS[1:]}
    used["wav"] = used["audio"] or (used["text"] and params.asr.engine in ASR_ENGINES_READING_WAV)
    return {c: Usage(c, used[c], WHY[c, used[c]]) for c in CHAINS}


def write_uses(usages: dict[str, Usage], data: Path = layout.DATA) -> list[Path]:
    """Write ``data/uses/<chain>.json`` for each usage (atomic, deterministic bytes)."""
    paths = []
    for c, u in usages.items():
        paths.append(layout.uses_file(c, data))
        write_json(paths[-1], asdict(u))
    return paths


def read_usage(chain: str, data: Path = layout.DATA) -> Usage:
    """The verdict for ``chain``; used when ``data/uses/<chain>.json`` does not exist."""
    if chain not in CHAINS:
        raise ValueError(f"unknown chain {chain!r}; expected one of {CHAINS}")
    path = layout.uses_file(chain, data)
    if not path.is_file():
        return Usage(chain, True, f"{path} not written yet (python -m stages.uses): extracting")
    try:
        raw = json.loads(path.read_text())
        return Usage(chain, bool(raw["used"]), str(raw["why"]))
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a usage file ({e}); run `python -m stages.uses`") from e

"""Model-asset resolution: where pretrained weights come from, and a clear error when they can't.

Every pretrained model the pipeline can use (VGGish, IR-50, BERT, Vosk, the punctuation model) is
described once in :data:`ASSETS`: the file or directory it needs, where to get it, and the param
that points at a local copy. :func:`resolve_local` turns a configured value into an existing path or
raises :class:`AssetError` with everything a user needs to fix it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


class AssetError(RuntimeError):
    """A pretrained model that is not available; the message says which, where, and which param."""


@dataclass(frozen=True)
class Asset:
    name: str  # what it is, for messages
    filename: str  # the released file or directory name
    url: str  # where a user gets it
    param: str  # the params.yaml key that points at a local copy
    sha256: str = ""  # of the released file, when known ("" = not checked)


ASSETS: dict[str, Asset] = {
    "vggish": Asset("VGGish (AudioSet) weights", "vggish-10086976.pth",
                    "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth",
                    "audio.vggish_weights"),
    "ir50": Asset("IR-50 face backbone (MS-Celeb-1M + FER+)", "res50_ir_0.887.pth",
                  "the RJCMA authors' release (see docs/models.md)", "visual.ir50_weights"),
    "bert-base-uncased": Asset("BERT base uncased", "bert-base-uncased",
                               "https://huggingface.co/bert-base-uncased (or pytorch-pretrained-bert's "
                               "own download)", "text.bert"),
    "vosk-model-en-us-0.22": Asset("Vosk English model", "vosk-model-en-us-0.22",
                                   "https://alphacephei.com/vosk/models/vosk-model-en-us-0.22.zip",
                                   "asr.model"),
    "vosk-model-small-en-us-0.15": Asset("Vosk small English model", "vosk-model-small-en-us-0.15",
                                         "https://alphacephei.com/vosk/models/"
                                         "vosk-model-small-en-us-0.15.zip", "asr.model"),
    "punctuation": Asset("punctuation model", "fullstop-punctuation-multilang-large",
                         "https://huggingface.co/oliverguhr/fullstop-punctuation-multilang-large",
                         "punctuation.model"),
}


def missing(asset: Asset, tried: str = "", why: str = "") -> AssetError:
    """The error for an asset that could not be had: names the file, where to get it, the param."""
    parts = [f"{asset.name} not available"]
    if tried:
        parts.append(f"(tried {tried}{': ' + why if why else ''})")
    parts.append(f"- get {asset.filename} from {asset.url}, save it locally and set "
                 f"`{asset.param}` in params.yaml to its path")
    return AssetError(" ".join(parts))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def resolve_local(asset: Asset, value: str, *, directory: bool = False) -> Path:
    """The existing local path ``value`` for ``asset``, checked (kind and, if known, checksum)."""
    path = Path(value).expanduser()
    if not path.exists():
        raise missing(asset, str(path), "no such file or directory")
    if directory and not path.is_dir():
        raise missing(asset, str(path), "expected a directory")
    if not directory and not path.is_file():
        raise missing(asset, str(path), "expected a file")
    if asset.sha256 and not directory and sha256_file(path) != asset.sha256:
        raise missing(asset, str(path), "checksum differs from the released file")
    return path

"""Visual feature caches for one shard: 48x48 faces, face flags and per-frame embeddings per video.

Faces come from the dataset's ``cropped_aligned`` images, the whole frames, or OpenCV face
detection (``visual.face_source``); embeddings from the built-in ``pixels`` backbone or IR-50
(``visual.backbone``). Writes ``data/features/visual/<shard>/<id>.h5`` (schema in docs/caches.md).
A video without any face is counted (``no face``: one summary line, the ids in the shard's
``conditions.json``). Videos whose cache is current (same video/crops, settings and versions) are
skipped.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.core import layout
from pipeline.core.cache import is_current, read_attrs, write_cache
from pipeline.core.manifest import VideoEntry
from pipeline.core.params import Params
from pipeline.core.stage import Outcome
from pipeline.visual.faces import resolve_source
from pipeline.visual.features import NO_FACE, load_backbone, visual_cache_key, visual_features_for


def make_process(params: Params, shard: int, data: Path) -> Callable[[VideoEntry], Outcome]:
    backbone = load_backbone(params.visual)  # loads IR-50 once (clear error if unavailable)

    def process(entry: VideoEntry) -> Outcome:
        out = layout.feature_path("visual", shard, entry.id, data)
        crops = entry.crops_dir or None
        source = resolve_source(params.visual.face_source, crops)  # settled once for this video
        key = visual_cache_key(entry.id, entry.fps, entry.n_frames, params.visual, source, backbone,
                               entry.content_hash, crops)
        if is_current(out, key):
            return Outcome("skipped", NO_FACE if read_attrs(out).get("faces_found") == 0 else ())
        arrays, attrs = visual_features_for(entry.source, entry.n_frames, params.visual, crops,
                                            backbone, source)
        write_cache(out, arrays, key, attrs=attrs)
        return Outcome("done", NO_FACE if attrs["faces_found"] == 0 else ())

    return process


def main(argv: Sequence[str] | None = None) -> int:
    from pipeline.core.stage import shard_stage_main

    return shard_stage_main("visual_features", __doc__.splitlines()[0], make_process, argv,
                            out_dir=lambda shard, data: layout.feature_shard_dir("visual", shard, data),
                            chain="visual")


if __name__ == "__main__":
    sys.exit(main())

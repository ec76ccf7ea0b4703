"""Visual feature caches for one shard: 48x48 faces, face flags and per-frame embeddings per video.

Faces come from the dataset's ``cropped_aligned`` images, the whole frames, or OpenCV face
detection (``visual.face_source``); embeddings from the built-in ``pixels`` backbone or IR-50
(``visual.backbone``). Writes ``data/features/visual/<shard>/<id>.h5`` (schema in docs/caches.md).
Videos whose cache is current (same video/crops, settings and versions) are skipped.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.core import layout
from pipeline.core.cache import is_current, write_cache
from pipeline.core.manifest import VideoEntry
from pipeline.core.params import Params
from pipeline.visual.faces import resolve_source
from pipeline.visual.features import load_backbone, visual_cache_key, visual_features_for


def make_process(params: Params, shard: int, data: Path) -> Callable[[VideoEntry], str]:
    backbone = load_backbone(params.visual)  # loads IR-50 once (clear error if unavailable)

    def process(entry: VideoEntry) -> str:
        out = layout.feature_path("visual", shard, entry.id, data)
        crops = entry.crops_dir or None
        source = resolve_source(params.visual.face_source, crops)  # settled once for this video
        key = visual_cache_key(entry.id, entry.fps, entry.n_frames, params.visual, source, backbone,
                               entry.content_hash, crops)
        if is_current(out, key):
            return "skipped"
        arrays, attrs = visual_features_for(entry.source, entry.n_frames, params.visual, crops,
                                            backbone, source)
        write_cache(out, arrays, key, attrs=attrs)
        return "done"

    return process


def main(argv: Sequence[str] | None = None) -> int:
    from pipeline.core.stage import shard_stage_main

    return shard_stage_main("visual_features", __doc__.splitlines()[0], make_process, argv,
                            output=lambda shard, data: layout.feature_shard_dir("visual", shard, data))


if __name__ == "__main__":
    sys.exit(main())

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
from pipeline.visual.features import cache_settings, load_backbone, source_hash, visual_features_for


def make_process(params: Params, shard: int, data: Path) -> Callable[[VideoEntry], str]:
    backbone = load_backbone(params.visual)  # loads IR-50 once (clear error if unavailable)

    def process(entry: VideoEntry) -> str:
        out = layout.feature_path("visual", shard, entry.id, data)
        crops = entry.crops_dir or None
        settings = cache_settings(params.visual, resolve_source(params.visual.face_source, crops))
        meta = dict(modality="visual", video_id=entry.id, fps=entry.fps, n_frames=entry.n_frames,
                    extractor=backbone.name, settings=settings, versions=backbone.versions,
                    source_hash=source_hash(entry.content_hash, params.visual, crops))
        if is_current(out, **meta):
            return "skipped"
        arrays, attrs = visual_features_for(entry.source, entry.n_frames, params.visual, crops,
                                            backbone)
        write_cache(out, arrays, attrs=attrs, **meta)
        return "done"

    return process


def main(argv: Sequence[str] | None = None) -> int:
    from pipeline.core.stage import shard_stage_main

    return shard_stage_main("visual_features", __doc__.splitlines()[0], make_process, argv)


if __name__ == "__main__":
    sys.exit(main())

"""The built-in demo dataset: synthetic talking faces in the Aff-Wild2 layout, made reproducibly.

Every annotated person has smooth random valence and arousal trajectories (one value per frame,
in [-1, 1], drawn independently of each other) that drive all three modalities:

- face:  mouth curvature <-> valence; eye opening, brow height and head jitter <-> arousal; the
  mouth opens with the person's own speech envelope;
- voice: real espeak-ng speech whose pitch, rate and loudness rise with arousal (set per word);
- words: sentences whose words come from lists graded from very negative to very positive,
  picked by the speaker's valence when the sentence starts.

Layout written under ``--out`` (docs/demo.md has the full description)::

    videos/<source>.mp4                   H.264 + AAC (16 kHz mono), FPS frames/s
    cropped_aligned/<id>/00001.jpg ...    CROP_SIZE x CROP_SIZE face crops, 1-based frame numbers;
                                          a missing file = no face in that frame
    annotations/Train_Set/<id>.txt        header "valence,arousal", one row per frame, -5 = unlabeled
    annotations/Validation_Set/<id>.txt
    transcripts/<source>.json             [{"word", "start", "end"}], seconds, one per video file
    demo.json                             settings, tool versions and a summary of every video

The two-person video ``<source>.mp4`` holds ``<source>_left`` and ``<source>_right`` side by side
(separate crops and annotations; they take turns speaking). The last two videos have no
annotation (the test partition); a few videos have no crops (the pipeline uses whole frames or
detection there).

The same seed and settings give byte-identical files with the same espeak-ng, ffmpeg and OpenCV
builds (single-threaded bit-exact encoders, no timestamps or metadata). Run::

    python -m rjcma.demo --out data/demo --seed 0
"""

from rjcma.demo.build import generate, make_video
from rjcma.demo.cli import main
from rjcma.demo.encode import encode, ffmpeg_exe, tool_versions
from rjcma.demo.plan import CROP_SIZE, FPS, N_VIDEOS, SECONDS, DemoConfig, plan_videos
from rjcma.demo.speech import ESPEAK, WORDS

__all__ = ["CROP_SIZE", "ESPEAK", "FPS", "N_VIDEOS", "SECONDS", "WORDS", "DemoConfig", "encode",
           "ffmpeg_exe", "generate", "main", "make_video", "plan_videos", "tool_versions"]

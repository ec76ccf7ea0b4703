"""Audio: the log-mel front end, per-frame audio features, VGGish."""

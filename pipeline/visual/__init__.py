"""Visual: face sources (crops, frames, detection), embedding backbones, IR-50."""

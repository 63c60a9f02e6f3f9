"""spanbank: an annotated news corpus of speakers, quotes, cues and events, synced with Label Studio."""

__version__ = "0.1.0"

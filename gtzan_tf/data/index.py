"""Dataset index: the GTZAN folder layout, split lists, validation hold-out."""
from __future__ import annotations

GTZAN_8_GENRES = ("classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae")
GTZAN_10_GENRES = ("blues",) + GTZAN_8_GENRES[:6] + ("pop", "reggae", "rock")

"""The seven FER-2013 emotion classes, defined once for the whole package."""

from __future__ import annotations

#: Class names in FER-2013 label order (label ``i`` is ``EMOTIONS[i]``).
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

NUM_CLASSES = len(EMOTIONS)

#: Folder names seen in public image-folder datasets, mapped to a label index.
ALIASES: dict[str, int] = {
    **{name: i for i, name in enumerate(EMOTIONS)},
    "anger": 0,
    "angry": 0,
    "mad": 0,
    "disgusted": 1,
    "disgust": 1,
    "contempt_disgust": 1,
    "fearful": 2,
    "afraid": 2,
    "scared": 2,
    "happiness": 3,
    "happy": 3,
    "joy": 3,
    "sadness": 4,
    "sad": 4,
    "surprised": 5,
    "surprise": 5,
    "neutrality": 6,
    "calm": 6,
}


def label_for_name(name: str) -> int | None:
    """Label index for a class folder name (case-insensitive, aliases allowed), or None."""
    return ALIASES.get(name.strip().lower().replace("-", "_").replace(" ", "_"))

"""Post-processing: what turns speech curves into a finished face, for every path alike.

    settings   what a user sets: `FaceParams`, `LifeConfig`, the emotion and `EmotionSettings`
    style      `Style`, all of them together, and `Style.apply` for a whole clip
    prosody    the voice on a 100 Hz grid: a stream's `Listener`, a whole clip's `analyse` (measures:
               the level and pitch of its 40 ms windows)
    emotion    the ten emotions' poses and patterns, blended without breaking lip sync
    life       blinks, gaze, head motion and breathing (life_shapes: their timing table and shapes)
    driver     `Post`: the steps in order, a block of frames at a time (many streams' at once: `process`)
    smoothing  low-pass filters that carry their state across blocks; `Blocks`, many streams' blocks in one array

A stream and a whole clip run the same code: a stream block by block as its audio arrives, a clip
in one block that may see all of itself (`driver.Horizon`).
"""

from .settings import (
    EMOTIONS,
    PARAMETERS,
    EmotionSettings,
    EmotionTrack,
    FaceParams,
    LifeConfig,
    load_track,
    parse_assignments,
    parse_emotions,
)
from .style import Style

__all__ = [
    "EMOTIONS",
    "PARAMETERS",
    "EmotionSettings",
    "EmotionTrack",
    "FaceParams",
    "LifeConfig",
    "Style",
    "load_track",
    "parse_assignments",
    "parse_emotions",
]

"""The ARKit face rig: the 52 blendshape names, their groups, left/right pairs and Live Link order.

Everything in talkface indexes channels by these names, so that any ARKit-rigged character
(MetaHuman, Live Link Face, Ready Player Me, VRM) can consume the output directly.
"""

from __future__ import annotations

#: The 52 ARKit blendshapes, in Apple's documented order.
ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)  # fmt: skip

#: Column index of each ARKit name.
INDEX: dict[str, int] = {name: i for i, name in enumerate(ARKIT_NAMES)}


def _group(prefix: str) -> tuple[str, ...]:
    return tuple(n for n in ARKIT_NAMES if n.startswith(prefix))


#: Shapes by facial region.
GROUPS: dict[str, tuple[str, ...]] = {
    "eyes": _group("eye"),
    "jaw": _group("jaw"),
    "mouth": _group("mouth"),
    "brows": _group("brow"),
    "cheeks": _group("cheek"),
    "nose": _group("nose"),
    "tongue": _group("tongue"),
}

#: (left, right) pairs of mirrored shapes.
LEFT_RIGHT_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (n, n[: -len("Left")] + "Right") for n in ARKIT_NAMES if n.endswith("Left")
)

#: Head and eye rotation channels that Live Link Face appends after the 52 shapes (radians).
POSE_NAMES: tuple[str, ...] = (
    "headYaw", "headPitch", "headRoll",
    "leftEyeYaw", "leftEyePitch", "leftEyeRoll",
    "rightEyeYaw", "rightEyePitch", "rightEyeRoll",
)  # fmt: skip


def _live_link_order() -> tuple[str, ...]:
    """Live Link Face's order: Apple's, but with the Right shape before Left for jaw and mouth sideways."""
    order = list(ARKIT_NAMES)
    for left, right in (("jawLeft", "jawRight"), ("mouthLeft", "mouthRight")):
        i, j = order.index(left), order.index(right)
        order[i], order[j] = order[j], order[i]
    return (*order, *POSE_NAMES)


#: The 61 value channels of a Live Link Face CSV row or UDP packet, in order (internal names).
LIVE_LINK_ORDER: tuple[str, ...] = _live_link_order()


def live_link_column(name: str) -> str:
    """Live Link Face spelling of a channel: the name with its first letter capitalised."""
    return name[0].upper() + name[1:]


#: Header of a Live Link Face CSV file.
LIVE_LINK_HEADER: tuple[str, ...] = (
    "Timecode",
    "BlendShapeCount",
    *(live_link_column(n) for n in LIVE_LINK_ORDER),
)

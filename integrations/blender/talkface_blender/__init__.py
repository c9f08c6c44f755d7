"""talkface animation import for Blender: File > Import > talkface animation (.json / Live Link .csv).

Keys the shape keys of the selected objects from a talkface JSON export or a Live Link Face CSV,
matching channel names to shape-key names (ARKit names, any case, with or without a prefix such as
``blendShape1.``), optionally through a talkface ``--rig`` mapping file, and places the speech as a
sound strip in the sequencer. Self-contained: it reads the files itself (`formats`), without talkface.

Timing: by default the scene takes the file's frame rate (29.97 as 30 / 1.001) and each frame of the
file is one scene frame from the scene's start frame; the frame range is set to cover the animation.
With "Set the scene's frame rate" off the scene keeps its rate and the keys are placed at the file's
times (on sub-frames where the rates differ), so the face stays in sync with the sound either way.
"""

from __future__ import annotations

import math
import os

import bpy
from bpy.props import BoolProperty, FloatProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from . import formats

bl_info = {
    "name": "talkface animation import",
    "author": "talkface",
    "version": (1, 0, 0),
    "blender": (3, 0, 0),
    "location": "File > Import > talkface animation (.json / Live Link .csv)",
    "description": "Shape-key animation from talkface JSON or Live Link Face CSV, with the speech as a sound strip",
    "category": "Import-Export",
}

#: Head and eye angles a file may carry besides the shapes: not shape keys, so never reported missing.
ANGLES = frozenset(
    a + b for a in ("head", "leftEye", "rightEye") for b in ("Yaw", "Pitch", "Roll")
)  # fmt: skip


def _key_name(name: str) -> str:
    """How names are compared: lower case, without a prefix up to the last dot (``blendShape1.jawOpen``)."""
    return name.rsplit(".", 1)[-1].lower()


def default_audio(path: str) -> str | None:
    """The speech beside an animation file: ``NAME.wav`` for ``NAME.json`` / ``NAME.csv``, else ``speech.wav``."""
    folder, base = os.path.split(os.path.abspath(path))
    for candidate in (os.path.splitext(base)[0] + ".wav", "speech.wav"):
        if os.path.isfile(os.path.join(folder, candidate)):
            return os.path.join(folder, candidate)
    return None


def _set_frame_rate(scene: bpy.types.Scene, fps: float) -> None:
    """The scene's rate set to `fps`: Blender keeps it as a whole ``fps`` over ``fps_base`` (30 / 1.001)."""
    whole = max(1, math.ceil(fps - 1e-6))
    scene.render.fps = whole
    scene.render.fps_base = whole / fps


def _key(shape_keys: bpy.types.Key, action_name: str, channels: dict[str, list[float]], frames: list[float]) -> None:
    """A new action on `shape_keys` with one linear f-curve per shape key in `channels` (values at `frames`)."""
    linear = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value
    anim = shape_keys.animation_data or shape_keys.animation_data_create()
    anim.action = bpy.data.actions.new(action_name)
    for block, values in channels.items():
        curve = anim.action.fcurves.new(f'key_blocks["{bpy.utils.escape_identifier(block)}"].value')
        points = curve.keyframe_points
        points.add(len(frames))
        points.foreach_set("co", [c for pair in zip(frames, values) for c in pair])
        points.foreach_set("interpolation", [linear] * len(frames))
        curve.update()


def _add_sound(scene: bpy.types.Scene, wav: str, frame: int) -> bpy.types.Sequence:
    """`wav` as a sound strip from `frame`, on a sequencer channel above any strip already there."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    channel = 1 + max((s.channel for s in editor.sequences_all), default=0)
    return editor.sequences.new_sound(os.path.basename(wav), wav, channel, frame)


def import_animation(
    context: bpy.types.Context,
    path: str,
    *,
    mapping: str = "",
    audio: str = "",
    use_audio: bool = True,
    set_scene_fps: bool = True,
    csv_fps: float = 0.0,
) -> str:
    """Key the selected objects' shape keys from the animation file `path`; returns a one-line summary.

    `mapping`: a talkface ``--rig`` JSON file applied to the file's ARKit channels first. `audio`: the WAV
    for the sound strip (empty: `default_audio`). `csv_fps`: a CSV's frame rate when its timecodes cannot
    tell (0: from them). Raises formats.FormatError (one line) on a bad file or nothing to key."""
    track = formats.read(path, csv_fps or None)
    if mapping:
        track = formats.retarget(track, formats.read_mapping(bpy.path.abspath(mapping)))
    wav = None
    if use_audio:
        wav = bpy.path.abspath(audio) if audio else default_audio(path)
        if audio and not os.path.isfile(wav):
            raise formats.FormatError(f"{audio}: no such audio file")
    objects = [o for o in context.selected_objects if getattr(o.data, "shape_keys", None)]
    if not objects:
        raise formats.FormatError("select the object(s) whose shape keys the animation drives")
    driven = {}  # object: {shape key: the channel that keys it}
    for obj in objects:
        blocks = {_key_name(k.name): k.name for k in obj.data.shape_keys.key_blocks[1:]}  # [0] is the basis
        driven[obj] = {blocks[_key_name(n)]: n for n in track.names if _key_name(n) in blocks}
    used = {n for channels in driven.values() for n in channels.values()}
    if not used:
        raise formats.FormatError(
            "none of the selected objects has a shape key named like the file's channels "
            f"({', '.join(track.names[:4])} …)"
        )

    scene = context.scene
    if set_scene_fps:
        _set_frame_rate(scene, track.fps)
    rate = scene.render.fps / scene.render.fps_base
    start = scene.frame_start
    frames = [start + t * rate for t in track.times]
    frames = [round(f) if abs(f - round(f)) < 1e-6 else f for f in frames]
    action = "talkface " + os.path.splitext(os.path.basename(path))[0]
    for obj, channels in driven.items():
        if channels:
            _key(obj.data.shape_keys, action, {k: track.column(n) for k, n in channels.items()}, frames)
    end = math.ceil(frames[-1]) if frames else start
    summary = f"keyed {len(used)} channels on {len(objects)} object(s) at {track.fps:g} fps, frames {start}-{end}"
    if wav:
        strip = _add_sound(scene, wav, start)
        end = max(end, strip.frame_final_end - 1)
        summary += f"; audio {os.path.basename(wav)}"
    elif use_audio:
        summary += "; no audio (no NAME.wav or speech.wav beside the file)"
    scene.frame_end = max(end, start)
    missing = [n for n in track.names if n not in used and n not in ANGLES]
    if missing:
        summary += f"; no shape key for {len(missing)}: {', '.join(missing[:6])}{' …' if len(missing) > 6 else ''}"
    return summary


class IMPORT_ANIM_OT_talkface(bpy.types.Operator, ImportHelper):
    """Key the selected objects' shape keys from a talkface animation, with its audio as a sound strip"""

    bl_idname = "import_anim.talkface"
    bl_label = "Import talkface animation"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json;*.csv", options={"HIDDEN"})
    rig_mapping: StringProperty(
        name="Rig mapping",
        description="A talkface --rig JSON file ({target: {ARKit shape: weight}}) applied to the ARKit weights",
        subtype="FILE_PATH",
    )
    use_audio: BoolProperty(name="Add the audio", description="Place the speech as a sound strip", default=True)
    audio: StringProperty(
        name="Audio",
        description="The WAV for the sound strip (empty: NAME.wav or speech.wav beside the animation file)",
        subtype="FILE_PATH",
    )
    set_scene_fps: BoolProperty(
        name="Set the scene's frame rate",
        description="One key per scene frame at the file's rate; off: keys at the file's times in the scene's rate",
        default=True,
    )
    csv_fps: FloatProperty(
        name="CSV frame rate",
        description="For Live Link CSV takes shorter than a second (0: from the timecodes)",
        default=0.0,
        min=0.0,
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            summary = import_animation(
                context,
                self.filepath,
                mapping=self.rig_mapping,
                audio=self.audio,
                use_audio=self.use_audio,
                set_scene_fps=self.set_scene_fps,
                csv_fps=self.csv_fps,
            )
        except (formats.FormatError, OSError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        self.report({"INFO"}, "talkface: " + summary)
        return {"FINISHED"}


def _menu(self: bpy.types.Menu, context: bpy.types.Context) -> None:
    self.layout.operator(IMPORT_ANIM_OT_talkface.bl_idname, text="talkface animation (.json / Live Link .csv)")


def register() -> None:
    bpy.utils.register_class(IMPORT_ANIM_OT_talkface)
    bpy.types.TOPBAR_MT_file_import.append(_menu)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_import.remove(_menu)
    bpy.utils.unregister_class(IMPORT_ANIM_OT_talkface)

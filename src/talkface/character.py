"""Animate the user's own character: talkface's animation added to a copy of a binary glTF (.glb) or
VRM (.vrm) model, driving the morph targets it already has.

Three conventions are recognised, on every mesh that has them (head, teeth, tongue, beard):

- **ARKit** names, in any case, with or without a prefix (``blendShape1.jawOpen``, ``Face|JAWOPEN``,
  ``mouth_smile_left``, ``eyeBlink_L``): driven by talkface's ARKit weights directly;
- **Oculus / Meta visemes** (``viseme_PP``, VRChat's ``vrc.v_pp``, also ``ih oh ou`` for I O U):
  driven by the ``oculus`` rig (`retarget`);
- **VRM expressions**: VRM 1.0's ``VRMC_vrm`` presets (``morphTargetBinds``) and VRM 0.x's
  ``blendShapeMaster`` groups (``binds``, weights 0-100), driven by the ``vrm`` rig through their binds.

A model with ARKit targets is driven by them alone (they include blinks, gaze and emotion); one
without is driven by its visemes for the mouth and its VRM expressions for the rest (their mouth
presets too where it has no visemes). Target names come from ``mesh.extras.targetNames`` (what
Blender, three.js and Unity write) or the first primitive's ``extras.targetNames``.

The copy gets one more animation, ``talkface`` (morph-weight channels, linear, as long as the audio),
its data appended after the model's own binary data; every other part of the file is kept as it
was (the JSON is written anew, with the same content plus the animation). Written by hand, like
`export.gltf`: the GLB container is small and needs no dependency.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .animation import Animation
from .errors import TalkfaceError
from .files import atomic_path, opened
from .phonemes import VISEMES
from .retarget import OCULUS_SPELLING, OCULUS_VISEMES, VRM0_NAMES, load_rig
from .rig import ARKIT_NAMES

#: Most morph targets of the meshes animated, all together: every frame holds a weight for each (a 1 MB
#: model of 300 000 empty targets made a 10 s clip of 1.5 GB), while a game character with several
#: levels of detail of a face of a few hundred shapes each stays well under it.
MAX_TARGETS = 16384
#: File suffixes a character may have (both are GLB containers).
SUFFIXES = (".glb", ".vrm")
_FLOAT = 5126
_ARKIT = {n.lower(): n for n in ARKIT_NAMES}
_VISEME = {
    spelled.lower(): oculus
    for v, oculus in zip(VISEMES, OCULUS_VISEMES, strict=True)
    for spelled in {v, OCULUS_SPELLING.get(v, v)}
}
#: VRM 0.x preset names (lower case, as ``presetName`` has them) as VRM 1.0 names them.
_VRM0_PRESETS = {old.lower(): new for new, old in VRM0_NAMES.items()}
_VRM_MOUTH = ("aa", "ih", "ou", "ee", "oh")


def _normalized(name: str) -> str:
    """A target name without its prefix (``blendShape1.``, ``Face|``) or separators, in lower case."""
    return re.sub(r"[\s_\-]", "", re.split(r"[.:|/]", name)[-1]).lower()


def arkit_name(name: str) -> str | None:
    """The ARKit shape a morph target name stands for, or None."""
    key = _normalized(name)
    if key in _ARKIT:
        return _ARKIT[key]
    side = {"l": "left", "r": "right"}.get(key[-1:])
    return _ARKIT.get(key[:-1] + side) if side else None


def viseme_name(name: str) -> str | None:
    """The Oculus viseme (``viseme_PP``) a morph target name stands for, or None."""
    key = _normalized(name)
    for prefix in ("viseme", "v"):
        if key.startswith(prefix) and key[len(prefix) :] in _VISEME:
            return _VISEME[key[len(prefix) :]]
    return None


@dataclass
class Plan:
    """What in a character talkface drives: per mesh, (target index, ARKit name or Oculus viseme), and
    per VRM expression its binds (mesh, target index, weight 0-1); what was expected and is not there.
    It keeps the file as read (`doc`, `blob`): `write` copies that, so a model given as a pipe
    (``<(command)``), which can be read once, works, and a file changed in between changes nothing."""

    path: Path
    doc: dict[str, Any] = field(default_factory=dict, repr=False)
    blob: bytes = field(default=b"", repr=False)
    arkit: dict[int, list[tuple[int, str]]] = field(default_factory=dict)
    visemes: dict[int, list[tuple[int, str]]] = field(default_factory=dict)
    expressions: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def meshes(self) -> list[int]:
        binds = {m for b in self.expressions.values() for m, _, _ in b}
        return sorted(set(self.arkit) | set(self.visemes) | binds)


def read_glb(path: str | os.PathLike) -> tuple[dict[str, Any], bytes]:
    """The JSON document and the binary chunk (empty when there is none) of a GLB file."""
    with opened(path, "character") as f:
        data = bytearray(f.read(20))
        total = struct.unpack_from("<I", data, 8)[0] if len(data) == 20 else 0
        # read up to the length the header gives, as it comes: an endless pipe ends there (at most 4 GB), and
        # a length that lies asks for no memory the file does not fill
        while len(data) < total and (part := f.read(min(total - len(data), 1 << 24))):
            data += part
    if len(data) < 20 or data[:4] != b"glTF":
        raise TalkfaceError(f"{path}: not a binary glTF (.glb or .vrm) file")
    version, total = struct.unpack_from("<II", data, 4)
    json_length, kind = struct.unpack_from("<I4s", data, 12)
    if version != 2 or kind != b"JSON" or total > len(data) or 20 + json_length > total:
        raise TalkfaceError(f"{path}: not a glTF 2.0 binary file (damaged header or JSON chunk)")
    try:
        doc = json.loads(data[20 : 20 + json_length], parse_float=_finite, parse_constant=_finite)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise TalkfaceError(f"{path}: the glTF JSON chunk is not valid JSON (or has a number beyond a float)") from None
    if not isinstance(doc, dict):
        raise TalkfaceError(f"{path}: the glTF JSON chunk is not an object")
    offset = 20 + json_length
    blob = b""
    if offset + 8 <= total:
        length, kind = struct.unpack_from("<I4s", data, offset)
        if kind == b"BIN\0" and offset + 8 + length > total:  # (the copy would lose the model's data)
            raise TalkfaceError(f"{path}: damaged glTF binary file (its BIN chunk runs past the end)")
        if kind == b"BIN\0":
            blob = bytes(memoryview(data)[offset + 8 : offset + 8 + length])
    buffers = doc.get("buffers")
    first = buffers[0] if isinstance(buffers, list) and buffers and isinstance(buffers[0], dict) else {}
    declared = first.get("byteLength", 0) if "uri" not in first else 0
    if isinstance(declared, int | float) and declared > len(blob):  # the appended animation would take its place
        raise TalkfaceError(f"{path}: damaged glTF binary file (its buffer is {declared} bytes, its BIN chunk "
                            f"{len(blob)})")  # fmt: skip
    return doc, blob


def _target_count(mesh: dict) -> int:
    """How many morph targets a mesh has (every primitive of a mesh has as many)."""
    return len(((mesh.get("primitives") or [{}])[0]).get("targets") or [])


def _target_names(mesh: dict) -> list[str]:
    primitives = mesh.get("primitives") or [{}]
    names = (mesh.get("extras") or {}).get("targetNames") or (primitives[0].get("extras") or {}).get("targetNames")
    return [str(n) for n in names] if isinstance(names, list) else []


def _vrm_expressions(doc: dict) -> dict[str, list[tuple[int, int, float]]]:
    """The VRM preset expressions of the model (1.0 or 0.x) by VRM 1.0 name: their morph-target binds."""
    extensions = doc.get("extensions") or {}
    nodes = doc.get("nodes") or []
    found: dict[str, list[tuple[int, int, float]]] = {}
    presets = (((extensions.get("VRMC_vrm") or {}).get("expressions") or {}).get("preset")) or {}
    for name, expression in presets.items():
        for bind in (expression or {}).get("morphTargetBinds") or []:
            node = nodes[bind["node"]] if 0 <= bind.get("node", -1) < len(nodes) else {}
            if "mesh" in node:
                found.setdefault(name, []).append(
                    (node["mesh"], int(bind["index"]), _weight(bind.get("weight", 1.0), 1))
                )
    groups = ((extensions.get("VRM") or {}).get("blendShapeMaster") or {}).get("blendShapeGroups") or []
    for group in groups:
        name = _VRM0_PRESETS.get(str(group.get("presetName", "")).lower())
        for bind in (group.get("binds") or []) if name else []:
            found.setdefault(name, []).append(
                (int(bind["mesh"]), int(bind["index"]), _weight(bind.get("weight", 100), 100))
            )
    return found


def _weight(value: object, full: float) -> float:
    """A bind's weight as 0-1 of its target (VRM 1.0 gives 0-1, VRM 0.x 0-100); ValueError (malformed)
    outside that range or not a number (NaN or 1e308 would reach the animation)."""
    weight = float(value) / full  # type: ignore[arg-type]
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"a morph-target bind weight of {value!r}, not from 0 to {full:g}")
    return weight


def plan(path: str | os.PathLike) -> Plan:
    """What talkface can drive in the character at `path`; TalkfaceError (one line) if nothing, or if
    the parts it reads (meshes, nodes, VRM expressions) are malformed."""
    doc, blob = read_glb(path)
    with _malformed(path):
        return _plan(Path(path), doc, blob)


def _finite(text: str) -> float:
    """A JSON number as a float; ValueError for NaN, Infinity or one beyond a float (1e400), which the
    copy could only write back as JSON no reader takes."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


@contextlib.contextmanager
def _malformed(path: str | os.PathLike) -> Iterator[None]:
    """Turn what a malformed glTF document makes the code trip over into one clear TalkfaceError."""
    try:
        yield
    except (AttributeError, IndexError, KeyError, OverflowError, TypeError, ValueError) as e:  # (10**400 overflows)
        raise TalkfaceError(f"{path}: malformed glTF document ({type(e).__name__}: {str(e)[:200]})") from None


def _plan(path: Path, doc: dict, blob: bytes) -> Plan:
    buffers = doc.get("buffers") or [{}]
    if "uri" in buffers[0]:
        raise TalkfaceError(f"{path}: its binary data is in another file; give a self-contained .glb or .vrm")
    result = Plan(path, doc, blob)
    meshes = doc.get("meshes") or []
    shown = {node.get("mesh") for node in doc.get("nodes") or []}  # a mesh no node shows is not animated
    for m, mesh in enumerate(meshes):
        if m not in shown:
            continue
        for i, name in enumerate(_target_names(mesh)[: _target_count(mesh)]):
            if arkit := arkit_name(name):
                result.arkit.setdefault(m, []).append((i, arkit))
            elif viseme := viseme_name(name):
                result.visemes.setdefault(m, []).append((i, viseme))
    valid = {(m, i) for m, mesh in enumerate(meshes) if m in shown for i in range(_target_count(mesh))}
    expressions = {name: [b for b in binds if (b[0], b[1]) in valid] for name, binds in _vrm_expressions(doc).items()}
    expressions = {name: binds for name, binds in expressions.items() if binds}
    if result.arkit:
        result.visemes = {}
        _note_missing(result, "ARKit shapes", ARKIT_NAMES, {n for targets in result.arkit.values() for _, n in targets})
    else:
        if result.visemes:
            found = {n for targets in result.visemes.values() for _, n in targets}
            _note_missing(result, "Oculus visemes", OCULUS_VISEMES, found)
            expressions = {n: b for n, b in expressions.items() if n not in _VRM_MOUTH}
        result.expressions = expressions
        if expressions:
            vrm0 = "VRMC_vrm" not in (doc.get("extensions") or {})  # 0.x has no surprised
            wanted = [n for n in load_rig("vrm").targets
                      if not (result.visemes and n in _VRM_MOUTH) and not (vrm0 and n == "surprised")]  # fmt: skip
            _note_missing(result, "VRM expressions", wanted, set(expressions))
    if not result.meshes:
        raise TalkfaceError(
            f"{path}: no morph targets talkface can drive (ARKit shape names, Oculus visemes, or VRM expressions)"
        )
    if (count := sum(_target_count(meshes[m]) for m in result.meshes)) > MAX_TARGETS:
        raise TalkfaceError(
            f"{path}: its animated meshes have {count} morph targets; talkface drives at most {MAX_TARGETS}"
        )
    return result


def _note_missing(result: Plan, what: str, expected: tuple[str, ...] | list[str], found: set[str]) -> None:
    """Add to `result.missing` the `expected` names of `what` that are not `found`, if any."""
    missing = [n for n in expected if n not in found]
    if missing:
        result.missing.append(f"{what} ({len(missing)} of {len(expected)}): {', '.join(missing)}")


def mesh_weights(character: Plan, doc: dict, anim: Animation) -> dict[int, np.ndarray]:
    """The morph weights [frames, targets] of each driven mesh over `anim` (undriven targets keep the
    mesh's default weight)."""
    meshes = doc["meshes"]
    out: dict[int, np.ndarray] = {}
    for m in character.meshes:
        count = _target_count(meshes[m])
        default = np.asarray(meshes[m].get("weights") or [0.0] * count, np.float32)
        if default.shape != (count,):
            default = np.zeros(count, np.float32)
        default[~np.isfinite(default)] = 0.0  # (1e300 is no float32: no weight an animation may hold)
        out[m] = np.tile(default, (anim.num_frames, 1))
    if character.arkit:
        arkit = anim.with_channels(ARKIT_NAMES)
        for m, targets in character.arkit.items():
            for i, name in targets:
                out[m][:, i] = arkit[name]
    if character.visemes:
        visemes = load_rig("oculus").apply(anim)
        for m, targets in character.visemes.items():
            for i, name in targets:
                out[m][:, i] = visemes[name]
    if character.expressions:
        vrm = load_rig("vrm").apply(anim)
        driven: dict[tuple[int, int], np.ndarray] = {}
        for name, binds in character.expressions.items():
            for m, i, weight in binds:
                driven[(m, i)] = driven.get((m, i), 0.0) + weight * vrm[name]
        for (m, i), curve in driven.items():
            out[m][:, i] = curve
    return {m: np.clip(w, 0.0, 1.0).astype(np.float32) for m, w in out.items()}


def write(
    character: Plan,
    anim: Animation,
    out: str | os.PathLike,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write a copy of the character with `anim` added as the animation ``talkface``, atomically.

    The clip lasts as long as the animation (the audio): the last frame is held to its end.
    `metadata` (provenance) goes into the animation's ``extras``. An animation of no frames is a TalkfaceError:
    glTF has no empty clip (an accessor holds at least one value), and it was reported as the model's fault."""
    if not anim.num_frames:
        raise TalkfaceError(f"{out}: the animation has no frames: nothing to add to {character.path}")
    with _malformed(character.path):
        data = _with_animation(character, copy.deepcopy(character.doc), character.blob, anim, metadata)
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)


def _with_animation(character: Plan, doc: dict, blob: bytes, anim: Animation, metadata: dict[str, Any] | None) -> bytes:
    """The GLB bytes of `doc` and `blob` with the animation added (see `write`)."""
    buffers = doc.setdefault("buffers", [])
    weights = mesh_weights(character, doc, anim)
    times = np.append(anim.times, anim.duration).astype(np.float32)
    weights = {m: np.vstack([w, w[-1:]]) for m, w in weights.items()}
    data = bytearray(blob)
    views, accessors = doc.setdefault("bufferViews", []), doc.setdefault("accessors", [])

    def accessor(values: np.ndarray, bounds: bool = False) -> int:
        data.extend(b"\0" * (-len(data) % 4))
        views.append({"buffer": 0, "byteOffset": len(data), "byteLength": values.nbytes})
        data.extend(values.astype("<f4").tobytes())
        acc = {"bufferView": len(views) - 1, "componentType": _FLOAT, "count": len(values), "type": "SCALAR"}
        if bounds:
            acc |= {"min": [float(values.min())], "max": [float(values.max())]}
        accessors.append(acc)
        return len(accessors) - 1

    input_index = accessor(times, bounds=True)
    samplers, channels = [], []
    showing: dict[int, list[int]] = {}  # the nodes that show each mesh, found once (not per mesh: meshes × nodes)
    for n, node in enumerate(doc.get("nodes") or []):
        if node.get("mesh") in weights:
            showing.setdefault(node["mesh"], []).append(n)
    for m, w in weights.items():
        samplers.append({"input": input_index, "output": accessor(w.reshape(-1)), "interpolation": "LINEAR"})
        for n in showing.get(m, []):
            channels.append({"sampler": len(samplers) - 1, "target": {"node": n, "path": "weights"}})
    clip: dict[str, Any] = {"name": "talkface", "samplers": samplers, "channels": channels}
    if metadata:
        clip["extras"] = dict(metadata)
    doc.setdefault("animations", []).append(clip)
    data.extend(b"\0" * (-len(data) % 4))
    if buffers:
        buffers[0]["byteLength"] = len(data)
    else:
        buffers.append({"byteLength": len(data)})
    return _pack(doc, bytes(data))


def _pack(doc: dict, blob: bytes) -> bytes:
    """The GLB container: header, JSON chunk (space padded), BIN chunk (zero padded)."""
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(blob)
    header = struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(text), b"JSON")
    return header + text + struct.pack("<I4s", len(blob), b"BIN\0") + blob

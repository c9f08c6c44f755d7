"""glTF 2.0 binary (.glb): the talkface head with its 52 ARKit morph targets, animated by an `Animation`.

``glb`` writes the head mesh (vertex colours, morph targets named by ARKit in ``mesh.extras.targetNames``,
the convention Blender, three.js and Unity read) and one animation whose channel drives the node's
morph-target ``weights`` with linear interpolation. ``gltf-anim`` writes the same animation on a
placeholder node with a one-triangle mesh and 52 empty ARKit targets, to be applied to your own
ARKit-rigged model (in Blender the action keys the shape keys by name). Written by hand: the layout
is small and needs no dependency.

With a rig (``--rig``) the morph targets are the rig's, named by it: on the head each shows the
rig's preview pose of that target (`retarget.Rig.poses`). ``asset.generator`` names talkface and its
version; the output's metadata (provenance) is ``asset.extras``.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..animation import Animation
from ..files import atomic_path
from ..head import Head
from ..rig import ARKIT_NAMES
from .provenance import generator

FORMATS = ("glb", "gltf-anim")

_FLOAT, _USHORT, _UINT = 5126, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


class _Builder:
    """Collects binary data, buffer views and accessors for one GLB buffer."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def view(self, data: np.ndarray, target: int | None = None) -> int:
        self.blob += b"\0" * (-len(self.blob) % 4)  # every view starts 4-byte aligned
        view = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": data.nbytes}
        if target is not None:
            view["target"] = target
        self.blob += data.tobytes()
        self.views.append(view)
        return len(self.views) - 1

    def accessor(self, data: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        ctype = {np.dtype(np.float32): _FLOAT, np.dtype(np.uint16): _USHORT, np.dtype(np.uint32): _UINT}[data.dtype]
        acc = {"bufferView": self.view(data, target), "componentType": ctype, "count": len(data), "type": kind}
        if bounds:
            acc |= _bounds(data)
        self.accessors.append(acc)
        return len(self.accessors) - 1

    def sparse_vec3(self, dense: np.ndarray) -> int:
        """A float VEC3 accessor of `dense` stored sparsely: zeros plus the rows that are not zero."""
        rows = np.flatnonzero(np.abs(dense).max(axis=1) > 0)
        acc = {"componentType": _FLOAT, "count": len(dense), "type": "VEC3"} | _bounds(dense)
        if len(rows):
            index_type = np.uint16 if len(dense) < 65536 else np.uint32
            acc["sparse"] = {
                "count": len(rows),
                "indices": {
                    "bufferView": self.view(rows.astype(index_type)),
                    "componentType": _USHORT if index_type is np.uint16 else _UINT,
                },
                "values": {"bufferView": self.view(dense[rows].astype(np.float32))},
            }
        self.accessors.append(acc)
        return len(self.accessors) - 1


def _bounds(data: np.ndarray) -> dict:
    flat = data.reshape(len(data), -1).astype(np.float64)
    return {"min": flat.min(0).tolist(), "max": flat.max(0).tolist()}


def _mesh(b: _Builder, head: Head | None, names: tuple[str, ...], poses: np.ndarray | None) -> dict:
    """The head mesh, or (`head` None) a one-triangle placeholder carrying empty targets, with one morph
    target per name: the head's ARKit shapes, or with `poses` [names, 52] each name's ARKit pose."""
    if head is None:
        verts = np.array([[0, 0, 0], [0.01, 0, 0], [0, 0.01, 0]], np.float32)
        attributes = {"POSITION": b.accessor(verts, "VEC3", _ARRAY_BUFFER, bounds=True)}
        targets = [{"POSITION": b.sparse_vec3(np.zeros_like(verts))} for _ in names]
        primitive = {"attributes": attributes, "targets": targets}
        return {
            "name": "arkit_targets" if poses is None else "rig_targets",
            "primitives": [primitive],
            "weights": [0.0] * len(names),
            "extras": {"targetNames": list(names)},
        }
    linear = (head.colors.astype(np.float32) / 255) ** 2.2  # glTF vertex colours are linear
    attributes = {
        "POSITION": b.accessor(head.vertices, "VEC3", _ARRAY_BUFFER, bounds=True),
        "NORMAL": b.accessor(head.normals(head.vertices), "VEC3", _ARRAY_BUFFER),
        "COLOR_0": b.accessor(linear.astype(np.float32), "VEC3", _ARRAY_BUFFER),
    }
    indices = b.accessor(head.triangles.reshape(-1).astype(np.uint16), "SCALAR", _ELEMENT_ARRAY_BUFFER)
    offsets = head.targets if poses is None else np.einsum("kj,jvc->kvc", poses, head.targets).astype(np.float32)
    targets = [{"POSITION": b.sparse_vec3(t)} for t in offsets]
    primitive = {"attributes": attributes, "indices": indices, "material": 0, "targets": targets}
    return {
        "name": "talkface_head",
        "primitives": [primitive],
        "weights": [0.0] * len(names),
        "extras": {"targetNames": list(names)},
    }


def glb_bytes(
    anim: Animation | None,
    with_head: bool = True,
    *,
    metadata: Mapping[str, Any] | None = None,
    poses: np.ndarray | None = None,
) -> bytes:
    """A GLB of the head (or, without it, a placeholder with the targets) and `anim` if given.

    Without `poses` the targets are the 52 ARKit shapes; with them (a rig's, [targets, 52]) they are
    the first ``len(poses)`` channels of `anim`, shaped by those poses. `metadata` is ``asset.extras``."""
    b = _Builder()
    head = Head.load() if with_head else None
    names = ARKIT_NAMES if poses is None or anim is None else anim.names[: len(poses)]
    asset: dict = {"version": "2.0", "generator": generator()}
    if metadata:
        asset["extras"] = dict(metadata)
    mesh = _mesh(b, head, names, poses)
    doc: dict = {
        "asset": asset,
        "scene": 0,
        "scenes": [{"name": "talkface", "nodes": [0]}],
        "nodes": [{"name": mesh["name"], "mesh": 0}],
        "meshes": [mesh],
    }
    if head is not None:
        doc["materials"] = [
            {
                "name": "skin",
                "pbrMetallicRoughness": {
                    "baseColorFactor": [1, 1, 1, 1],
                    "metallicFactor": 0.0,
                    "roughnessFactor": 0.6,
                },
            }
        ]
    if anim is not None and anim.num_frames:
        weights = np.clip(anim.with_channels(names).weights, 0, 1)
        times = b.accessor(anim.times.astype(np.float32), "SCALAR", bounds=True)
        values = b.accessor(weights.reshape(-1), "SCALAR")
        doc["animations"] = [
            {
                "name": "talkface",
                "samplers": [{"input": times, "output": values, "interpolation": "LINEAR"}],
                "channels": [{"sampler": 0, "target": {"node": 0, "path": "weights"}}],
                "extras": {"fps": anim.fps},
            }
        ]
    doc["accessors"], doc["bufferViews"] = b.accessors, b.views
    doc["buffers"] = [{"byteLength": len(b.blob)}]
    return _pack(doc, bytes(b.blob))


def _pack(doc: dict, blob: bytes) -> bytes:
    """The GLB container: 12-byte header, a JSON chunk (space padded), a BIN chunk (zero padded)."""
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    blob += b"\0" * (-len(blob) % 4)
    total = 12 + 8 + len(text) + 8 + len(blob)
    return b"".join(
        [
            struct.pack("<4sII", b"glTF", 2, total),
            struct.pack("<I4s", len(text), b"JSON"),
            text,
            struct.pack("<I4s", len(blob), b"BIN\0"),
            blob,
        ]
    )


def write(
    anim: Animation,
    path: str | os.PathLike,
    fmt: str = "glb",
    *,
    metadata: Mapping[str, Any] | None = None,
    poses: np.ndarray | None = None,
) -> None:
    """Write `anim` as ``glb`` (head and animation) or ``gltf-anim`` (animation only), atomically
    (`metadata`, `poses`: see `glb_bytes`)."""
    data = glb_bytes(anim, with_head=fmt == "glb", metadata=metadata, poses=poses)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)

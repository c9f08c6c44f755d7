"""The talkface head: a compact CC0 MakeHuman head (skin, eyes, teeth, tongue) with the 52 ARKit shapes.

`Head.load()` reads ``head.npz`` (built by ``scripts/build_head.py``); `Head.apply` turns ARKit weights
into vertex positions for one frame or a whole animation at once. Metres, y up, facing +z, origin at
the centre of the neck cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import numpy as np

from ..animation import Animation
from ..errors import TalkfaceError
from ..rig import ARKIT_NAMES

#: Where the head turns (metres, in the head's frame): the top of the neck, as in the viewer.
NECK_PIVOT = np.array([0.0, 0.06, 0.0], np.float32)
#: The channels that turn the head, in radians.
HEAD_ANGLES: tuple[str, ...] = ("headYaw", "headPitch", "headRoll")


def head_rotations(angles: np.ndarray) -> np.ndarray:
    """Rotation matrices [n, 3, 3] for head angles [n, 3] (yaw, pitch, roll in radians), as the viewer turns
    the head: yaw > 0 to the head's left (+x), pitch > 0 up, roll > 0 tilting to its left; yaw applied last."""
    yaw, pitch, roll = (np.asarray(angles, np.float64)[:, i] for i in range(3))
    zero, one = np.zeros_like(yaw), np.ones_like(yaw)

    def matrix(*rows: tuple[np.ndarray, ...]) -> np.ndarray:
        return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)

    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    turn = matrix((cy, zero, sy), (zero, one, zero), (-sy, zero, cy))
    nod = matrix((one, zero, zero), (zero, cp, sp), (zero, -sp, cp))  # about x by -pitch
    tilt = matrix((cr, sr, zero), (-sr, cr, zero), (zero, zero, one))  # about z by -roll
    return turn @ nod @ tilt


@dataclass(frozen=True)
class Head:
    """Rest mesh, per-vertex colours and one vertex offset array per ARKit shape."""

    vertices: np.ndarray  #: [V, 3] float32 rest positions (metres)
    triangles: np.ndarray  #: [T, 3] uint32 vertex indices, counter-clockwise seen from outside
    triangle_part: np.ndarray  #: [T] uint8 index into `parts`; triangles are sorted by part
    parts: tuple[str, ...]  #: "skin", "eyes", "teeth", "tongue"
    colors: np.ndarray  #: [V, 3] uint8 sRGB vertex colours
    targets: np.ndarray  #: [52, V, 3] float32 offsets, in ARKit order (`rig.ARKIT_NAMES`)

    @staticmethod
    @cache
    def load() -> Head:
        """The bundled head (loaded once)."""
        with np.load(files("talkface") / "head" / "head.npz") as z:
            if tuple(z["target_names"]) != ARKIT_NAMES:
                raise TalkfaceError("head.npz: targets are not the 52 ARKit shapes in order; rebuild it")
            head = Head(z["vertices"], z["triangles"], z["triangle_part"], tuple(z["parts"]), z["colors"], z["targets"])
        for a in (head.vertices, head.triangles, head.colors, head.targets):
            a.flags.writeable = False
        return head

    @property
    def num_vertices(self) -> int:
        return len(self.vertices)

    @property
    def _flat_targets(self) -> np.ndarray:
        return self.targets.reshape(len(ARKIT_NAMES), -1)

    def apply(self, weights: np.ndarray | Animation) -> np.ndarray:
        """Vertex positions for ARKit weights: [52] gives [V, 3]; [frames, 52] or an Animation gives [frames, V, 3].

        An Animation's channels are matched by name (missing shapes count as 0, others are ignored).
        """
        if isinstance(weights, Animation):
            weights = weights.with_channels(ARKIT_NAMES).weights
        w = np.asarray(weights, dtype=np.float32)
        if w.shape[-1:] != (len(ARKIT_NAMES),) or w.ndim > 2:
            raise TalkfaceError(f"head weights need shape [52] or [frames, 52], got {list(w.shape)}")
        offsets = (w.reshape(-1, len(ARKIT_NAMES)) @ self._flat_targets).reshape(-1, self.num_vertices, 3)
        out = self.vertices + offsets
        return out[0] if w.ndim == 1 else out

    def normals(self, vertices: np.ndarray) -> np.ndarray:
        """Unit vertex normals (area-weighted) of posed `vertices` ([V, 3] or [frames, V, 3])."""
        v = np.asarray(vertices, dtype=np.float32)
        tri = v[..., self.triangles, :]  # [..., T, 3, 3]
        face = np.cross(tri[..., 1, :] - tri[..., 0, :], tri[..., 2, :] - tri[..., 0, :])
        flat = v.reshape(-1, self.num_vertices, 3)
        out = np.zeros_like(flat)
        corners = self.triangles.reshape(-1)
        face_rep = np.repeat(face.reshape(len(flat), -1, 3), 3, axis=1)  # one row per triangle corner
        for f in range(len(flat)):
            for c in range(3):
                out[f, :, c] = np.bincount(corners, face_rep[f, :, c], minlength=self.num_vertices)
        out /= np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
        return out.reshape(v.shape)

    def part_vertices(self, part: str) -> np.ndarray:
        """Indices of the vertices of one part ("skin", "eyes", "teeth", "tongue")."""
        if part not in self.parts:
            raise TalkfaceError(f"unknown head part {part!r}; the parts are {', '.join(self.parts)}")
        return np.unique(self.triangles[self.triangle_part == self.parts.index(part)])

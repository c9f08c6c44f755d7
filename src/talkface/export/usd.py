"""USD (.usda text, .usd/.usdc binary): the talkface head as a UsdSkel blend-shape animation.

Layout (metres, y up, one time code per frame at the animation's fps)::

    /Head            SkelRoot (default prim)
    /Head/Skel       Skeleton with a single root joint, animated by
    /Head/Skel/Anim  SkelAnimation: blendShapes = the 52 ARKit names, blendShapeWeights per frame
    /Head/Mesh       Mesh bound to /Head/Skel, vertex colours in primvars:displayColor
    /Head/Mesh/<ARKit name>  BlendShape: offsets of the vertices it moves

Omniverse, Houdini (Solaris), usdview and Blender's USD importer play it. Needs the ``usd`` extra
(``pip install 'talkface[usd]'``, Pixar's usd-core).

With a rig (``--rig``) the blend shapes are the rig's targets, each shaped by its preview pose
(`retarget.Rig.poses`); a name that is no valid prim name gets a valid one, the blend-shape list
keeps the rig's spelling. The root layer's documentation names talkface and its version; the
output's metadata (provenance) is the layer's ``customLayerData``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..animation import Animation
from ..errors import TalkfaceError, missing_module
from ..files import atomic_path
from ..head import Head
from ..rig import ARKIT_NAMES
from .provenance import generator

#: What a user without the usd extra is told, before any work (`check_extra`) or at the import.
NEEDS_EXTRA = "USD export needs the usd extra: pip install 'talkface[usd]'"
#: The extensions USD saves (and opens) a layer by: it picks the encoding by the extension.
SUFFIXES = (".usd", ".usda", ".usdc")


def check_extra() -> None:
    """TalkfaceError unless the usd extra (pxr) is installed: checked before the work, not after it."""
    if missing_module("pxr"):
        raise TalkfaceError(NEEDS_EXTRA)


def file_name(path: str | os.PathLike) -> str:
    """`path` as USD must be given it: the text whose UTF-8 is the file's name. USD encodes a name as
    UTF-8 whatever the locale: in a Latin-1 locale Python reads the UTF-8 name "é.usda" as "Ã©.usda",
    which USD wrote as another file, leaving the output empty. TalkfaceError for a name not in UTF-8."""
    try:
        return os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        raise TalkfaceError(f"{path}: the file name is not UTF-8, which USD writes names in; name it so") from None


def write(
    anim: Animation,
    path: str | os.PathLike,
    *,
    metadata: Mapping[str, Any] | None = None,
    poses: np.ndarray | None = None,
) -> None:
    """Write the head animated by `anim` as a USD stage, atomically (format by extension). Without
    `poses` the blend shapes are the 52 ARKit shapes; with them (a rig's, [targets, 52]) they are the
    first ``len(poses)`` channels of `anim`, shaped by those poses. `metadata`: the layer's custom data."""
    try:
        from pxr import Gf, Sdf, Tf, Usd, UsdGeom, UsdSkel, Vt
    except ImportError:
        raise TalkfaceError(NEEDS_EXTRA) from None
    head = Head.load()
    names = ARKIT_NAMES if poses is None else anim.names[: len(poses)]
    offsets = head.targets if poses is None else np.einsum("kj,jvc->kvc", poses, head.targets).astype(np.float32)
    weights = np.clip(anim.with_channels(names).weights, 0, 1)
    prims: list[str] = []
    for name in names:  # valid, distinct prim names
        prim = Tf.MakeValidIdentifier(name)
        while prim in prims:
            prim += "_"
        prims.append(prim)
    with atomic_path(path) as tmp:
        stage = Usd.Stage.CreateNew(file_name(tmp))
        layer = stage.GetRootLayer()
        layer.documentation = f"Made by {generator()}"
        if metadata:
            layer.customLayerData = _layer_data(metadata)
        UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
        UsdGeom.SetStageMetersPerUnit(stage, 1.0)
        stage.SetTimeCodesPerSecond(anim.fps)
        stage.SetFramesPerSecond(anim.fps)
        stage.SetStartTimeCode(0)
        stage.SetEndTimeCode(max(0, anim.num_frames - 1))

        root = UsdSkel.Root.Define(stage, "/Head")
        stage.SetDefaultPrim(root.GetPrim())
        skel = UsdSkel.Skeleton.Define(stage, "/Head/Skel")
        skel.CreateJointsAttr(["root"])
        skel.CreateJointNamesAttr(["root"])
        identity = Vt.Matrix4dArray([Gf.Matrix4d(1)])
        skel.CreateBindTransformsAttr(identity)
        skel.CreateRestTransformsAttr(identity)

        skel_anim = UsdSkel.Animation.Define(stage, "/Head/Skel/Anim")
        skel_anim.CreateJointsAttr(["root"])
        skel_anim.CreateTranslationsAttr(Vt.Vec3fArray([Gf.Vec3f(0)]))
        skel_anim.CreateRotationsAttr(Vt.QuatfArray([Gf.Quatf(1)]))
        skel_anim.CreateScalesAttr(Vt.Vec3hArray([Gf.Vec3h(1)]))
        skel_anim.CreateBlendShapesAttr(list(names))
        weights_attr = skel_anim.CreateBlendShapeWeightsAttr()
        for i, row in enumerate(weights):
            weights_attr.Set(Vt.FloatArray.FromNumpy(row), Usd.TimeCode(i))
        UsdSkel.BindingAPI.Apply(skel.GetPrim()).CreateAnimationSourceRel().SetTargets([skel_anim.GetPath()])

        mesh = UsdGeom.Mesh.Define(stage, "/Head/Mesh")
        mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(head.vertices))
        mesh.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(head.normals(head.vertices)))
        mesh.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
        mesh.CreateFaceVertexCountsAttr(Vt.IntArray([3] * len(head.triangles)))
        mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(head.triangles.reshape(-1).astype(np.int32)))
        mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
        mesh.CreateExtentAttr(UsdGeom.Boundable.ComputeExtentFromPlugins(mesh, Usd.TimeCode.Default()))
        color = mesh.CreateDisplayColorPrimvar(UsdGeom.Tokens.vertex)
        color.Set(Vt.Vec3fArray.FromNumpy(((head.colors / 255) ** 2.2).astype(np.float32)))

        binding = UsdSkel.BindingAPI.Apply(mesh.GetPrim())
        binding.CreateSkeletonRel().SetTargets([skel.GetPath()])
        binding.CreateJointIndicesPrimvar(True, 1).Set(Vt.IntArray([0]))
        binding.CreateJointWeightsPrimvar(True, 1).Set(Vt.FloatArray([1.0]))
        binding.CreateGeomBindTransformAttr(Gf.Matrix4d(1))
        binding.CreateBlendShapesAttr(list(names))
        shape_paths = []
        for prim, moves in zip(prims, offsets, strict=True):
            moved = np.flatnonzero(np.abs(moves).max(axis=1) > 0)
            shape = UsdSkel.BlendShape.Define(stage, mesh.GetPath().AppendChild(prim))
            shape.CreateOffsetsAttr(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(moves[moved])))
            shape.CreatePointIndicesAttr(Vt.IntArray.FromNumpy(moved.astype(np.int32)))
            shape_paths.append(shape.GetPath())
        binding.CreateBlendShapeTargetsRel().SetTargets([Sdf.Path(p) for p in shape_paths])
        try:
            layer.Save()
        except Tf.ErrorException as e:  # a full disk, a file size limit: USD's error, not an OSError
            raise TalkfaceError(f"{path}: cannot write ({_save_error(e)})") from None


def _save_error(error: Exception) -> str:
    """The reason in USD's error text, e.g. "File too large": the text names the C++ function and
    file of every error (a full disk gives dozens) before its message, quoted."""
    text = str(error)
    if found := re.search(r"writing file: ([^'\n]+)'", text):
        return found[1]
    messages = re.findall(r" : '([^'\n]+)'", text)
    return messages[0] if messages else "USD could not save it"


def _layer_data(value: Any) -> Any:
    """A JSON value as layer metadata holds it: an object as a dictionary; a string, a boolean or a number
    USD can store as itself; anything else (an array, null, an integer past 64 bits) as its JSON text.
    USD has no type for a list of mixed values: a .usda took it untyped and could not be read back, a
    .usdc refused it, and null and a huge integer were dropped."""
    if isinstance(value, Mapping):
        return {str(k): _layer_data(v) for k, v in value.items()}
    if isinstance(value, str | bool | float) or (isinstance(value, int) and -(2**63) <= value < 2**63):
        return value
    return json.dumps(value)

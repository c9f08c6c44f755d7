"""The bundled head: 52 ARKit targets that move the right parts, and a fast vectorised `apply`."""

import time
from importlib.resources import files

import numpy as np
import pytest

from talkface import Animation, TalkfaceError
from talkface.head import Head
from talkface.rig import ARKIT_NAMES, INDEX


@pytest.fixture(scope="module")
def head() -> Head:
    return Head.load()


def pose(head: Head, **weights: float) -> np.ndarray:
    w = np.zeros(len(ARKIT_NAMES), np.float32)
    for name, value in weights.items():
        w[INDEX[name]] = value
    return head.apply(w)


def test_asset_is_compact_and_complete(head):
    assert (files("talkface") / "head" / "head.npz").stat().st_size < 3_000_000
    assert head.targets.shape == (52, head.num_vertices, 3)
    assert set(head.parts) == {"skin", "eyes", "teeth", "tongue"}
    assert all(len(head.part_vertices(p)) > 100 for p in head.parts)
    # every ARKit shape moves something, by at least a millimetre
    assert (np.abs(head.targets).max(axis=(1, 2)) > 0.001).all()
    size = head.vertices.max(0) - head.vertices.min(0)
    assert 0.15 < size[0] < 0.2 and 0.22 < size[1] < 0.3  # a human head, in metres


def test_apply_is_vectorised_and_matches_frame_by_frame(head):
    w = np.random.default_rng(0).random((300, 52), dtype=np.float32)
    start = time.perf_counter()
    batch = head.apply(w)
    elapsed = time.perf_counter() - start
    assert batch.shape == (300, head.num_vertices, 3)
    assert np.allclose(batch[7], head.apply(w[7]), atol=1e-6)
    assert np.array_equal(head.apply(np.zeros(52)), head.vertices)
    assert elapsed < 1.0  # ten seconds of 30 fps animation; about 30 ms on a 2-core machine
    anim = Animation(w[:10], 30)
    assert np.allclose(head.apply(anim), batch[:10], atol=1e-6)


def test_apply_rejects_wrong_shapes(head):
    with pytest.raises(TalkfaceError, match="52"):
        head.apply(np.zeros(51))


def test_jaw_opens_downwards_with_teeth_and_tongue(head):
    rest, opened = head.vertices, pose(head, jawOpen=1)
    skin = head.part_vertices("skin")
    most = skin[np.argmax(np.linalg.norm(opened[skin] - rest[skin], axis=1))]  # the chin
    assert opened[most, 1] < rest[most, 1] - 0.02
    teeth = head.part_vertices("teeth")
    drop = rest[teeth, 1] - opened[teeth, 1]
    assert drop.max() > 0.01 and np.median(drop) > -1e-4  # lower teeth go down, upper teeth stay
    tongue = head.part_vertices("tongue")
    assert (rest[tongue, 1] - opened[tongue, 1]).mean() > 0.005


def test_tongue_out_moves_the_tongue_forward(head):
    tongue = head.part_vertices("tongue")
    assert (pose(head, tongueOut=1)[tongue, 2] - head.vertices[tongue, 2]).max() > 0.01


@pytest.mark.parametrize("shape", ["eyeBlink", "mouthSmile", "browOuterUp", "cheekSquint", "noseSneer"])
def test_left_shapes_move_the_subjects_left_side(head, shape):
    # the head faces +z, so the subject's left is +x
    for side, sign in (("Left", 1), ("Right", -1)):
        moved = np.linalg.norm(head.targets[INDEX[shape + side]], axis=1)
        centre = (head.vertices[:, 0] * moved).sum() / moved.sum()
        assert sign * centre > 0.01, (shape + side, centre)


def test_eyes_turn_with_eye_look(head):
    eyes = head.part_vertices("eyes")
    left_eye = eyes[head.vertices[eyes, 0] > 0]
    front = left_eye[np.argmax(head.vertices[left_eye, 2])]  # the pupil
    moved = pose(head, eyeLookOutLeft=1)[front] - head.vertices[front]
    assert moved[0] > 0.002  # looking out: the left pupil turns towards +x
    moved = pose(head, eyeLookUpLeft=1)[front] - head.vertices[front]
    assert moved[1] > 0.001


def test_normals_point_outwards(head):
    n = head.normals(head.vertices)
    skin = head.part_vertices("skin")
    nose_tip, crown = skin[np.argmax(head.vertices[skin, 2])], skin[np.argmax(head.vertices[skin, 1])]
    assert n[nose_tip, 2] > 0.7 and n[crown, 1] > 0.9
    assert np.allclose(np.linalg.norm(n, axis=1), 1, atol=1e-4)


def test_neck_is_cut_flat_and_closed(head):
    """The neck ends in a flat cap at y = 0 (the cut), facing down, not in the jagged open edge of whole
    quads: no skin below the cut and (vertices merged by position, as the cap has its own copies of the
    rim for sharp shading) every skin edge shared by exactly two triangles."""
    skin = head.triangles[head.triangle_part == head.parts.index("skin")]
    y = head.vertices[:, 1]
    assert y[np.unique(skin)].min() > -1e-6
    _, merged = np.unique(np.round(head.vertices / 1e-6).astype(np.int64), axis=0, return_inverse=True)
    corners = merged.reshape(-1)[skin]
    edges = np.sort(np.concatenate([corners[:, [0, 1]], corners[:, [1, 2]], corners[:, [2, 0]]]), axis=1)
    _, uses = np.unique(edges, axis=0, return_counts=True)
    assert (uses == 2).all(), f"{(uses == 1).sum()} open edges, {(uses > 2).sum()} shared by more than two"
    cap = skin[(np.abs(y[skin]) < 1e-6).all(axis=1)]
    assert len(cap) > 20 and (head.normals(head.vertices)[np.unique(cap), 1] < -0.99).all()  # facing down

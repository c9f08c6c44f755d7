from talkface import rig


def test_52_unique_names_in_apple_order():
    assert len(rig.ARKIT_NAMES) == 52 == len(set(rig.ARKIT_NAMES))
    assert rig.ARKIT_NAMES[0] == "eyeBlinkLeft" and rig.ARKIT_NAMES[-1] == "tongueOut"
    assert rig.ARKIT_NAMES.index("jawOpen") == 17 and rig.ARKIT_NAMES.index("mouthClose") == 18


def test_groups_partition_the_rig():
    members = [n for names in rig.GROUPS.values() for n in names]
    assert sorted(members) == sorted(rig.ARKIT_NAMES)
    assert rig.GROUPS["tongue"] == ("tongueOut",)
    assert "jawOpen" in rig.GROUPS["jaw"] and "browInnerUp" in rig.GROUPS["brows"]


def test_left_right_pairs_mirror():
    pairs = dict(rig.LEFT_RIGHT_PAIRS)
    assert len(pairs) == 20
    assert pairs["eyeBlinkLeft"] == "eyeBlinkRight" and pairs["mouthSmileLeft"] == "mouthSmileRight"
    assert all(r in rig.INDEX for r in pairs.values())


def test_live_link_order_and_spelling():
    header = rig.LIVE_LINK_HEADER
    assert header[:2] == ("Timecode", "BlendShapeCount") and len(header) == 63
    assert header.index("JawRight") < header.index("JawLeft")
    assert header.index("MouthRight") < header.index("MouthLeft")
    assert header[-9:] == (
        "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
        "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
    )  # fmt: skip
    assert sorted(rig.LIVE_LINK_ORDER[:52]) == sorted(rig.ARKIT_NAMES)

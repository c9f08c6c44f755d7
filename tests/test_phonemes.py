import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from talkface.phonemes import ARPABET, TARGETS, VISEME_OF, ipa_to_arpabet, merge_silences, normalize
from talkface.phonemes import TimedPhone as P


@pytest.mark.parametrize(
    ("raw", "phone"), [("AA1", "aa"), ("ax", "ah"), ("pau", "sil"), ("SIL", "sil"), ("hv", "hh"), ("B", "b")]
)
def test_normalize_spellings(raw, phone):
    assert normalize(raw) == phone


def test_normalize_rejects_unknown():
    with pytest.raises(KeyError):
        normalize("qq")


@pytest.mark.parametrize(
    ("ipa", "arpabet"),
    [
        ("ˈaɪ", ["ay"]), ("tʃ", ["ch"]), ("ð", ["dh"]), ("ɹ", ["r"]), ("oʊ", ["ow"]), ("ɜː", ["er"]),
        ("ʁ", ["r"]), ("y", ["uw"]), ("ø", ["ow"]), ("ɡ", ["g"]), ("ã", ["aa"]), ("", []),
        ("mb", ["m", "b"]),
    ],
)  # fmt: skip
def test_ipa_covers_english_and_other_languages(ipa, arpabet):
    assert ipa_to_arpabet(ipa) == arpabet


def test_every_phone_has_a_target_and_a_viseme():
    assert set(ARPABET) == set(TARGETS) == set(VISEME_OF)


def test_merge_silences_joins_neighbours_and_drops_empty():
    merged = merge_silences([P(0.1, 0.2, "sil"), P(0, 0.1, "sil"), P(0.2, 0.2, "b"), P(0.2, 0.3, "aa")])
    assert merged == [P(0, 0.2, "sil"), P(0.2, 0.3, "aa")]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=24))
def test_any_symbol_maps_to_arpabet_phones_only(symbol: str) -> None:
    assert all(phone in ARPABET for phone in ipa_to_arpabet(symbol))

import os
from pathlib import Path

import pytest
from hypothesis import settings

DATA = Path(__file__).parent / "data"

# Property tests try the same examples on every run, so that a suite that passed once passes in CI;
# HYPOTHESIS_PROFILE=explore draws new ones each run, to look for failures (then add them as examples).
settings.register_profile("fixed", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fixed"))


@pytest.fixture
def arctic_wav() -> Path:
    """CMU ARCTIC slt a0009 (real speech, 16 kHz, 3.1 s) with hand phone labels beside it."""
    return DATA / "arctic_a0009.wav"


ARCTIC_TRANSCRIPT = "He turned sharply, and faced Gregson across the table."

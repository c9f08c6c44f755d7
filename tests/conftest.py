from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def arctic_wav() -> Path:
    """CMU ARCTIC slt a0009 (real speech, 16 kHz, 3.1 s) with hand phone labels beside it."""
    return DATA / "arctic_a0009.wav"


ARCTIC_TRANSCRIPT = "He turned sharply, and faced Gregson across the table."

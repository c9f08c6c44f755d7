import os
import subprocess
import sys
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


@pytest.fixture(scope="session")
def latin1_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a process whose locale is Latin-1 (ISO-8859-1, made with localedef: few machines
    have one installed), where Python reads file names and arguments as Latin-1; skips where none can be made."""
    folder = tmp_path_factory.mktemp("locale")
    env = {**os.environ, "LOCPATH": str(folder), "LC_ALL": "en_US.ISO-8859-1"}
    try:
        subprocess.run(["localedef", "-i", "en_US", "-f", "ISO-8859-1", str(folder / "en_US.ISO-8859-1")],
                       capture_output=True, timeout=120)  # fmt: skip
        probe = [sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"]
        encoding = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        encoding = None
    if encoding != "iso8859-1":
        pytest.skip("no Latin-1 locale can be made here (localedef)")
    return env

"""Ten minutes of speech through every path (`benchmarks/long_files.py`, CI-sized): each ends within
a wall-clock guard and stays under the memory its 60-minute target allows."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import long_files  # noqa: E402

GUARD_S = 300  # a path that takes longer than this on ten minutes has hung


def test_ten_minutes_through_every_path_end_bounded(tmp_path):
    runs = long_files.run(10.0, GUARD_S, tmp_path)
    assert [r.path for r in runs] == ["say", "animate", "animate --text", "animate --engine phonetic",
                                      "serve: WebSocket stream", "serve: POST /v1/animate"]  # fmt: skip
    assert all(r.audio_s > 8 * 60 for r in runs), [(r.path, r.audio_s) for r in runs]
    memory = [m for m in long_files.misses(runs) if m.endswith("MB)")]
    assert not memory, memory
    # the stream and the POST used no more than a server's few workers need for ten minutes of audio
    assert all(r.peak_mb < 1500 for r in runs if r.path.startswith("serve")), runs

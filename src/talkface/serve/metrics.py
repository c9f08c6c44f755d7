"""Prometheus text-format metrics: counters, gauges and histograms, no client library needed."""

from __future__ import annotations

import bisect
from collections import defaultdict

#: Histogram bucket bounds (seconds) for latencies and tick times.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)
HELP = {
    "talkface_streams_active": ("gauge", "streams open now (WebSocket and gRPC)"),
    "talkface_streams_total": ("counter", "streams opened (WebSocket and gRPC)"),
    "talkface_frames_total": ("counter", "animation frames sent on streams"),
    "talkface_audio_seconds_total": ("counter", "seconds of audio received on streams"),
    "talkface_animations_total": ("counter", "files animated by POST /v1/animate"),
    "talkface_stream_errors_total": ("counter", "streams or messages refused, by kind"),
    "talkface_rejected_total": ("counter", "requests refused before they started, by reason"),
    "talkface_worker_restarts_total": ("counter", "model worker processes that died or got stuck and were replaced"),
    "talkface_workers_down": ("gauge", "model worker processes being replaced now (/healthz says degraded)"),
    "talkface_tick_seconds": ("histogram", "time of one batched model step over a worker's streams"),
    "talkface_frame_latency_seconds": (
        "histogram",
        "from the arrival of the audio that makes a frame final to the frame's hand-over to the socket",
    ),
}


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else ""


class Metrics:
    """The server's metrics; `text` renders them for ``GET /metrics``."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.histograms: dict[str, list[float]] = {}  # per name: bucket counts, then count and sum

    def count(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self.values[name][_labels(labels)] += amount

    def gauge(self, name: str, value: float) -> None:
        self.values[name][""] = value

    def observe(self, name: str, seconds: float) -> None:
        h = self.histograms.setdefault(name, [0.0] * (len(BUCKETS) + 3))
        h[bisect.bisect_left(BUCKETS, seconds)] += 1  # the first bucket whose bound is >= the value
        h[-2] += 1
        h[-1] += seconds

    def text(self) -> str:
        lines = []
        for name, (kind, text) in HELP.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            if kind == "histogram":
                h = self.histograms.get(name, [0.0] * (len(BUCKETS) + 3))
                running = 0.0
                for bound, n in zip((*BUCKETS, float("inf")), h, strict=False):
                    running += n
                    le = "+Inf" if bound == float("inf") else f"{bound:g}"
                    lines.append(f'{name}_bucket{{le="{le}"}} {running:g}')
                lines += [f"{name}_count {h[-2]:g}", f"{name}_sum {h[-1]:.6f}"]
                continue
            series = self.values.get(name) or {"": 0.0}
            lines += [f"{name}{labels} {value:g}" for labels, value in sorted(series.items())]
        return "\n".join(lines) + "\n"

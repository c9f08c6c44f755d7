"""Live Link Face over UDP: the packets Epic's iPhone app sends, so Unreal's Live Link drives a
MetaHuman from talkface with no plugin (add a "LiveLinkFace" source listening on the port).

A packet, all big-endian:

    uint8   version (6)
    int32   length, then the device id (UTF-8)
    int32   length, then the subject name (UTF-8)
    int32   frame number, float32 sub-frame, int32 rate numerator, int32 rate denominator
    uint8   value count (61)
    float32 × 61: the 52 shapes, head yaw/pitch/roll, left and right eye yaw/pitch/roll
            (rig.LIVE_LINK_ORDER: Live Link's order, with Right before Left for jaw and mouth sideways)

The frame number is a timecode frame count (frames since midnight at the animation's rate), as the
app sends it.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import socket
import struct
import time
import uuid
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .animation import Animation, checked_fps
from .errors import TalkfaceError, checked_number, shown
from .rig import LIVE_LINK_ORDER

VERSION = 6
PORT = 11111
_TIME = struct.Struct(">ifii")


@dataclass(frozen=True)
class Packet:
    """One decoded Live Link Face packet."""

    device_id: str
    subject: str
    frame: int
    sub_frame: float
    rate: Fraction
    values: np.ndarray  # [61] float32, in LIVE_LINK_ORDER
    version: int = VERSION

    def __getitem__(self, name: str) -> float:
        """A value by talkface channel name (e.g. "jawOpen", "headYaw")."""
        return float(self.values[LIVE_LINK_ORDER.index(name)])


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack(">i", len(data)) + data


def encode(packet: Packet) -> bytes:
    """The bytes of one packet."""
    values = np.asarray(packet.values, ">f4")
    if values.shape != (len(LIVE_LINK_ORDER),):
        raise TalkfaceError(f"a Live Link Face packet carries {len(LIVE_LINK_ORDER)} values, got {values.size}")
    rate = packet.rate
    return b"".join([
        struct.pack(">B", packet.version), _string(packet.device_id), _string(packet.subject),
        _TIME.pack(packet.frame, packet.sub_frame, rate.numerator, rate.denominator),
        struct.pack(">B", values.size), values.tobytes(),
    ])  # fmt: skip


def decode(data: bytes) -> Packet:
    """Parse one packet; TalkfaceError if it is not a well-formed Live Link Face packet."""
    try:
        version = data[0]
        pos, texts = 1, []
        for _ in range(2):
            (size,) = struct.unpack_from(">i", data, pos)
            if not 0 <= size <= 1024:
                raise ValueError(f"string length {size}")
            texts.append(data[pos + 4 : pos + 4 + size].decode("utf-8"))
            pos += 4 + size
        frame, sub_frame, num, den = _TIME.unpack_from(data, pos)
        pos += _TIME.size
        count = data[pos]
        values = np.frombuffer(data, ">f4", count, pos + 1).astype(np.float32)
        if pos + 1 + 4 * count != len(data) or den <= 0:
            raise ValueError("size or rate does not add up")
    except (IndexError, struct.error, ValueError, UnicodeDecodeError) as e:
        raise TalkfaceError(f"not a Live Link Face packet ({e})") from None
    return Packet(texts[0], texts[1], frame, sub_frame, Fraction(num, den), values, version)


def parse_address(spec: str) -> tuple[str, int]:
    """``"HOST:PORT"`` or ``"HOST"`` (port 11111) → (host, port), an IPv6 address in brackets
    (``[::1]:11111``, ``[::1]``); TalkfaceError if malformed. An IPv6 address without brackets is
    refused: its last group would be taken for the port (``fe80::1:2`` is not port 2 of ``fe80::1``)."""
    usage = f"--livelink {shown(spec, 100)}: expected HOST:PORT, e.g. 127.0.0.1:11111 (IPv6 in brackets: [::1]:11111)"
    if spec.startswith("["):  # [IPv6] or [IPv6]:PORT
        host, sep, rest = spec[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise TalkfaceError(usage)
        port = rest[1:] if rest else str(PORT)
    else:
        host, sep, port = spec.rpartition(":")
        if not sep:
            host, port = spec, str(PORT)
        elif ":" in host:
            raise TalkfaceError(usage)
    number = port.lstrip("0")  # (int() refuses text of over 4300 digits, leading zeros too)
    if not host or not (port.isascii() and port.isdigit()) or len(number) > 5 or not 0 < int(number or 0) < 65536:
        raise TalkfaceError(usage)
    return host, int(number)


def resolve(address: str | tuple[str, int]) -> tuple[socket.AddressFamily, tuple]:
    """The socket family and address that HOST:PORT (or (host, port)) names, looked up now: a server
    looks its --livelink up once, at start, not on its event loop for each stream. TalkfaceError if
    there is no such address."""
    host, port = parse_address(address) if isinstance(address, str) else address
    port = int(checked_number(port, "the --livelink port", 1, 65535, whole=True))  # (getaddrinfo sent 70000 to 4464)
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    except (OSError, UnicodeError) as e:  # (a label over 63 characters is a UnicodeError)
        raise TalkfaceError(f"--livelink {host[:100]}:{port}: unknown address ({e})") from None
    return info[0], info[4]


class LiveLinkSender:
    """Sends animation frames as Live Link Face packets to one UDP address.

    `send` sends frames as they come (for a stream, whose frames arrive in real time); `play`
    paces a whole animation at its frame rate.
    """

    def __init__(self, address: str | tuple[str, int], subject: str = "talkface", fps: float = 30.0) -> None:
        self.rate = Fraction(checked_fps(fps)).limit_denominator(1001)
        family, self.address = resolve(address)
        self.socket = socket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_INET:  # a broadcast address (every editor on the LAN) is taken, not refused
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.subject, self.device_id = subject, str(uuid.uuid4()).upper()
        midnight = datetime.datetime.now().replace(hour=0, minute=0, second=0, microsecond=0)
        elapsed = (datetime.datetime.now() - midnight).total_seconds()
        self.first_frame = int(elapsed * float(self.rate))  # timecode of the first frame
        self.sent = 0

    def packets(self, anim: Animation, first: int) -> list[bytes]:
        """Packets for `anim`'s frames, numbered from frame `first` of the take."""
        values = anim.with_channels(LIVE_LINK_ORDER).weights
        day = math.floor(86400 * self.rate)  # frames a day: the timecode is the time of day, and wraps at midnight
        return [
            encode(Packet(self.device_id, self.subject, (self.first_frame + first + i) % day, 0.0, self.rate, row))
            for i, row in enumerate(values)
        ]

    def send(self, anim: Animation) -> None:
        """Send `anim`'s frames now, continuing the take's frame numbers."""
        for data in self.packets(anim, self.sent):
            with contextlib.suppress(OSError):  # nobody listening (ICMP refusal) or no network: drop the frame
                self.socket.sendto(data, self.address)
        self.sent += anim.num_frames

    def play(self, anim: Animation) -> None:
        """Send a whole animation in real time, one packet every 1/fps seconds."""
        start = time.monotonic()
        for i in range(anim.num_frames):
            delay = start + i / anim.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.send(Animation(anim.weights[i : i + 1], anim.fps, anim.names))

    def close(self) -> None:
        self.socket.close()

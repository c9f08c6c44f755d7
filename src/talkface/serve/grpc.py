"""NVIDIA Audio2Face-3D's gRPC API on `talkface serve --grpc-port`: its clients move to a CPU by an address.

Two services on one plaintext HTTP/2 port: ``grpc.health.v1.Health`` (SERVING for ``""`` and the
controller) and ``nvidia_ace.services.a2f_controller.v1.A2FControllerService/ProcessAudioStream``,
a bidirectional stream, as the NIM serves them (PyPI ``nvidia-audio2face-3d`` 1.3.0 holds the messages):

- in: an ``audio_stream_header`` (16-bit mono PCM at any rate; face, emotion and blendshape
  parameters, mapped onto talkface's `Style` by `header_settings`), then ``audio_with_emotion``
  messages (little-endian int16 PCM of any length, even none; emotions with time codes), then
  ``end_of_audio``, or the end of the request stream (a half-close) instead;
- out: an animation data stream header (the echoed audio's header, the 52 ARKit names spelt as A2F
  spells them, ``EyeBlinkLeft``), then animation data as frames become final (blendshape weights
  with time codes at ``fps``, the slice of input audio those frames cover, and in
  ``metadata["emotion_aggregate"]`` the input emotions and the smoothed emotion of every frame;
  ``a2e_output`` stays empty: talkface infers no emotion from audio), then the end-of-processing
  event and a SUCCESS status, and the call ends OK.

Bad input (a header that is not 16-bit mono PCM, no header, audio before it, an odd byte count, an
unreadable message, a parameter out of range) ends the call with INVALID_ARGUMENT. A stream is one
of the server's streams: the same model workers, limits and metrics as the WebSocket
(`connections.Conn`); the close codes map to gRPC status codes (`_STATUS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from nvidia_ace import animation_pb2, audio_pb2, status_pb2
from nvidia_audio2face_3d import messages_pb2

from ..animation import Animation
from ..errors import TalkfaceError
from ..post import EmotionSettings, EmotionTrack
from ..post.emotion import ease_towards, settle
from ..post.settings import EMOTIONS
from .a2f import A2F_NAMES, EMOTION_AGGREGATE_URL, Emotions, emotion_weights, header_settings
from .connections import Conn
from .settings import ERROR_CHARS
from .workers import Item, new_session

if TYPE_CHECKING:
    from .server import Server

SERVICE = "nvidia_ace.services.a2f_controller.v1.A2FControllerService"
_STATUS = {1000: grpc.StatusCode.OK, 1001: grpc.StatusCode.UNAVAILABLE, 1007: grpc.StatusCode.INVALID_ARGUMENT,
           1008: grpc.StatusCode.RESOURCE_EXHAUSTED, 1009: grpc.StatusCode.OUT_OF_RANGE,
           1011: grpc.StatusCode.INTERNAL}  # fmt: skip
_UNREADABLE = object()  # a request message that does not parse
log = logging.getLogger("talkface.serve")


#: The most ignored header parameters the server names in its log, at all and in one line, and the
#: characters of each: a client may send any number of names of any length.
_IGNORED_KEPT, _IGNORED_NAMED, _NAME_CHARS = 256, 20, 64
#: Calls at once beyond `--max-streams`: health checks and watches, and streams before their header.
_SPARE_CALLS = 64
#: The most bytes of frames and echoed audio in one answer message (the input emotions of the first one add at most
#: 3 MB: MAX_EMOTIONS_SENT of at most 11 names each), and about what one frame's weights and emotion take in it.
_MESSAGE_BYTES, _FRAME_BYTES = 1 << 19, 400


class A2FConn(Conn):
    """A ProcessAudioStream call as a server stream: A2F messages out, its audio echoed, the emotion reported."""

    def __init__(self, ident: int, worker: Any, settings: dict[str, Any], context: grpc.aio.ServicerContext,
                 emotions: Emotions) -> None:  # fmt: skip
        super().__init__(ident, worker, settings)
        self.context, self.emotions = context, emotions
        self.audio = bytearray()  # input PCM not yet echoed
        self.echoed = 0  # samples echoed so far
        self.inputs: list[Any] = []  # input emotions not yet reported (at most MAX_EMOTIONS_SENT)
        self.track = settings["emotion"] or EmotionTrack.constant({})  # (the header's: `emotions.track()`)
        self.stale = False  # emotions came since `track` was made
        self.emotion_settings: EmotionSettings = settings["emotion_settings"]
        self.fps: float = settings["fps"]
        self.emotion_state: np.ndarray | None = None  # the last frame's smoothed emotion
        self.status: tuple[grpc.StatusCode, str] = (grpc.StatusCode.OK, "")
        self.reader: asyncio.Task | None = None  # the task reading the client's messages

    def take_emotions(self, timed: Any) -> None:
        """New input emotions, to report with the next frames; the worker gets the track they make at
        its next tick (made once a tick, however many messages brought emotions)."""
        self.emotions.forget(self.frames / self.fps)  # (the frames made from here on, here and in the worker)
        self.emotions.add(timed)
        self.inputs.extend(timed)
        self.stale = True
        self.control(("emotion", None))

    def current_track(self) -> EmotionTrack:
        """The track of the emotions received so far."""
        if self.stale:
            self.track, self.stale = self.emotions.track() or EmotionTrack.constant({}), False
        return self.track

    def work(self) -> list[Item]:
        items = super().work()
        return [("emotion", self.current_track()) if item[0] == "emotion" else item for item in items]

    def encode(self, anim: Animation, first: int) -> list[messages_pb2.A2F3DAnimationDataStream]:
        """Frames with their time codes, the audio they cover (all that is left, at the end), the emotion: in
        messages of at most `_MESSAGE_BYTES` of frames and audio (one chunk of audio may cover minutes of
        frames, and a gRPC client takes 4 MiB in a message by default); the input emotions come with the first."""
        weights = anim.weights[:, : len(A2F_NAMES)]  # the 52 shapes come first (then head and eye angles)
        times = (first + np.arange(anim.num_frames)) / anim.fps
        targets = settle(self.current_track().sample(times), self.emotion_settings)
        state = ease_towards(targets, self.emotion_settings, anim.fps, self.emotion_state)
        if len(state):
            self.emotion_state = state[-1]
        inputs, self.inputs = self.inputs, []
        step = max(1, int(_MESSAGE_BYTES // (_FRAME_BYTES + 2 * self.sample_rate / anim.fps)))
        out = []
        for start in range(0, anim.num_frames, step):
            stop = min(start + step, anim.num_frames)
            data = animation_pb2.AnimationData()
            for t, row in zip(times[start:stop].tolist(), weights[start:stop].tolist(), strict=True):
                data.skel_animation.blend_shape_weights.add(time_code=t, values=row)
            last = stop == anim.num_frames
            self._echo(data, None if self.ended and last else round((first + stop) / anim.fps * self.sample_rate))
            aggregate = messages_pb2.EmotionAggregate(input_emotions=inputs if start == 0 else ())
            for t, row in zip(times[start:stop].tolist(), state[start:stop].tolist(), strict=True):
                aggregate.a2f_smoothed_output.add(time_code=t, emotion=dict(zip(EMOTIONS, row, strict=True)))
            packed = data.metadata["emotion_aggregate"]
            packed.type_url, packed.value = EMOTION_AGGREGATE_URL, aggregate.SerializeToString()
            out.append(messages_pb2.A2F3DAnimationDataStream(animation_data=data))
        return out

    def _echo(self, data: animation_pb2.AnimationData, until: int | None) -> None:
        """The input audio from what was echoed to sample `until` (None: all received) into `data`."""
        count = len(self.audio) // 2 if until is None else max(0, min(until - self.echoed, len(self.audio) // 2))
        data.audio.time_code = self.echoed / self.sample_rate
        data.audio.audio_buffer = bytes(self.audio[: 2 * count])
        del self.audio[: 2 * count]
        self.echoed += count

    def end_messages(self) -> list[messages_pb2.A2F3DAnimationDataStream]:
        out = []
        if self.audio:  # audio past the last frame
            data = animation_pb2.AnimationData()
            self._echo(data, None)
            out.append(messages_pb2.A2F3DAnimationDataStream(animation_data=data))
        event = messages_pb2.Event(event_type=messages_pb2.END_OF_A2F_AUDIO_PROCESSING)
        status = status_pb2.Status(code=status_pb2.Status.SUCCESS, message=f"{self.frames} frames")
        return [*out, messages_pb2.A2F3DAnimationDataStream(event=event),
                messages_pb2.A2F3DAnimationDataStream(status=status)]  # fmt: skip

    async def send(self, message: Any) -> None:
        """One message, or the messages `encode` made of one step's frames, in order."""
        for one in message if isinstance(message, list) else [message]:
            if self.context.done():
                raise ConnectionResetError
            try:
                await self.context.write(one)
            except (grpc.RpcError, asyncio.InvalidStateError, RuntimeError):  # the call has ended
                raise ConnectionResetError from None

    async def close(self, code: int, message: str) -> None:
        """Record the call's status (the handler ends the call with it); an error stops the reading."""
        self.status = (_STATUS[code], message[:ERROR_CHARS])
        if code != 1000 and self.reader is not None:
            self.reader.cancel()


async def _read(context: grpc.aio.ServicerContext, timeout: float) -> Any:
    """The call's next message (`_UNREADABLE` if it did not parse, grpc.aio.EOF after a half-close), or
    None after `timeout` s without one."""
    try:
        async with asyncio.timeout(timeout):
            return await context.read()
    except TimeoutError:
        return None


async def _refuse(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str, seconds: float = 2.0) -> None:
    """End the call with an error status (this raises), after reading and dropping what the client still
    sends up to its end (end_of_audio or a half-close), for `seconds` at most: grpcio's asyncio client
    reports INTERNAL, not the server's status, when one of its writes finds the call ended (grpc/grpc#36066)."""
    deadline = time.monotonic() + seconds
    with contextlib.suppress(Exception):  # the client is gone
        while (left := deadline - time.monotonic()) > 0:
            request = await _read(context, left)
            if request is None or request is grpc.aio.EOF:
                break
            if request is not _UNREADABLE and request.WhichOneof("stream_part") == "end_of_audio":
                break
    await context.abort(code, message[:ERROR_CHARS])


def _log_name(name: str) -> str:
    """A parameter name a client sent, as the log names it: cut short, its line breaks and control characters
    escaped (a client would write lines of its own into the server's log)."""
    name = name[:_NAME_CHARS]
    return name if name.isprintable() else name.encode("unicode_escape").decode("ascii")


def _parse(data: bytes) -> Any:
    """A request message, or `_UNREADABLE` (answered INVALID_ARGUMENT, not gRPC's INTERNAL)."""
    try:
        return messages_pb2.AudioWithEmotionStream.FromString(data)
    except DecodeError:
        return _UNREADABLE


class A2FServer:
    """The gRPC server of a `Server`: the A2F controller and the health service, in the server's event loop."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.port = 0  # the bound port, once started
        self.ignored: set[str] = set()  # header parameters ignored (and logged) so far
        self.health = health.aio.HealthServicer()
        config = server.config
        options = [("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", config.max_message_bytes)]
        # every call at once, of any method, bounded: health Watch streams and calls that have not sent their
        # header yet count toward no stream limit, and each holds the server's memory (RESOURCE_EXHAUSTED past it)
        self.grpc = grpc.aio.server(options=options, maximum_concurrent_rpcs=config.max_streams + _SPARE_CALLS)
        handler = grpc.stream_stream_rpc_method_handler(
            self.process_audio_stream,
            request_deserializer=_parse,
            response_serializer=messages_pb2.A2F3DAnimationDataStream.SerializeToString,
        )
        self.grpc.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"ProcessAudioStream": handler}),)
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)

    async def start(self) -> None:
        """Listen on the configured host and gRPC port; TalkfaceError if that fails."""
        config = self.server.config
        host = f"[{config.host}]" if ":" in config.host else config.host
        try:
            self.port = self.grpc.add_insecure_port(f"{host}:{config.grpc_port}")
        except RuntimeError:
            self.port = 0
        if not self.port:
            raise TalkfaceError(f"cannot listen on {config.host}:{config.grpc_port} for gRPC (in use?)")
        await self.grpc.start()
        for service in ("", SERVICE):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self) -> None:
        """Stop taking calls (the server has ended its streams by now); a second at most for the rest."""
        await self.health.enter_graceful_shutdown()
        await self.grpc.stop(1.0)

    async def process_audio_stream(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        """One ProcessAudioStream call (see the module doc)."""
        server, config = self.server, self.server.config
        if config.token is not None:
            given = dict(context.invocation_metadata() or ()).get("authorization", "")
            if not hmac.compare_digest(str(given).encode(), f"Bearer {config.token}".encode()):
                server.metrics.count("talkface_rejected_total", reason="unauthorised")
                await _refuse(context, grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        if server.stopping:
            await _refuse(context, grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
        first = await _read(context, config.idle_timeout)
        if first is None:
            server.metrics.count("talkface_stream_errors_total", kind="idle")
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"no audio_stream_header in {config.idle_timeout:g} s")
        try:
            kind = None if first is _UNREADABLE or first is grpc.aio.EOF else first.WhichOneof("stream_part")
            if kind != "audio_stream_header":
                raise TalkfaceError("the first message must be an audio_stream_header")
            header = first.audio_stream_header
            settings, ignored = header_settings(header, config.fps)
            emotions = Emotions(emotion_weights(header.emotion_params.beginning_emotion, "beginning_emotion"))
            settings["emotion"] = emotions.track()
            probe = new_session(server.engine, settings)  # checks what only a session can
        except TalkfaceError as e:
            server.metrics.count("talkface_stream_errors_total", kind="bad_message")
            await _refuse(context, grpc.StatusCode.INVALID_ARGUMENT, str(e))
        if server.full():
            await _refuse(
                context, grpc.StatusCode.RESOURCE_EXHAUSTED, f"too many streams (at most {config.max_streams})"
            )
        c = A2FConn(next(server.ids), server.least_busy(), settings, context, emotions)
        c.latency = probe.latency
        new = list(dict.fromkeys(name for name in map(_log_name, ignored) if name not in self.ignored))
        if new and len(self.ignored) < _IGNORED_KEPT:  # each one logged once, the first few hundred at all
            more = f" and {len(new) - _IGNORED_NAMED} more" if len(new) > _IGNORED_NAMED else ""
            log.warning("gRPC: ignoring Audio2Face parameters talkface does not have: %s%s",
                        ", ".join(new[:_IGNORED_NAMED]), more)  # fmt: skip
            self.ignored.update(new[: _IGNORED_KEPT - len(self.ignored)])
        server.start_livelink(c, None, settings["fps"])
        audio = audio_pb2.AudioHeader(audio_format=audio_pb2.AudioHeader.AUDIO_FORMAT_PCM, channel_count=1,
                                      samples_per_second=c.sample_rate, bits_per_sample=16)  # fmt: skip
        head = messages_pb2.A2F3DAnimationDataStreamHeader(
            audio_header=audio,
            skel_animation_header=animation_pb2.SkelAnimationHeader(blend_shapes=A2F_NAMES),
            start_time_code_since_epoch=time.time(),
        )
        c.outbox.append((messages_pb2.A2F3DAnimationDataStream(animation_data_stream_header=head), 0))
        c.wake_sender.set()
        await server.run_stream(c, lambda: self._receive(c))
        if c.status[0] != grpc.StatusCode.OK:
            await _refuse(context, *c.status)

    async def _receive(self, c: A2FConn) -> None:
        """Read the call's messages into the stream (in a task of its own, which a close by the server cancels)."""
        c.reader = asyncio.ensure_future(self._read_all(c))
        try:
            await c.reader
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # the call was cancelled, not the reading
                raise

    async def _read_all(self, c: A2FConn) -> None:
        """The call's messages into the stream until its end (end_of_audio or a half-close)."""
        server = self.server
        while not c.closed:
            message = await c.heard(c.context.read())
            kind = None if message is _UNREADABLE or message is grpc.aio.EOF else message.WhichOneof("stream_part")
            if message is grpc.aio.EOF or kind == "end_of_audio":
                await server.finish(c)
                return
            if kind != "audio_with_emotion":
                server.metrics.count("talkface_stream_errors_total", kind="bad_message")
                what = "an unreadable message" if message is _UNREADABLE else f"a message with {kind or 'nothing'}"
                server.end(c, 1007, f"{what}: after the header, send audio_with_emotion, then end_of_audio")
                return
            part = message.audio_with_emotion
            if part.emotions:
                try:
                    c.take_emotions(part.emotions)
                except TalkfaceError as e:
                    server.metrics.count("talkface_stream_errors_total", kind="bad_message")
                    server.end(c, 1007, str(e))
                    return
            if part.audio_buffer:
                if not server.take_audio(c, part.audio_buffer):
                    return
                c.audio += part.audio_buffer
                await server.hold_back(c)

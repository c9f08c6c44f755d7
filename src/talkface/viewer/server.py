"""The viewer's server: `ViewerServer` holds the current clip, the animator and its style, and knows
which Host names are its own; `serve` loads a clip and serves it until Ctrl-C."""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import threading
import webbrowser
from collections.abc import Sequence
from http.server import ThreadingHTTPServer

from ..animator import Animator
from ..errors import TalkfaceError
from ..export.gltf import glb_bytes
from ..post import Style
from .clip import Clip, load_clip
from .handler import REQUEST_TIMEOUT, Conflict, Handler

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?")  # a Host header: name or [IPv6], port


class ViewerServer(ThreadingHTTPServer):
    """HTTP server holding the current clip and the animator (with the style the panel set) that
    animates dropped audio and restyles clips; `port` 0 picks a free port. It answers only requests
    whose Host names it (see the package's docstring; `allowed_hosts` adds names, e.g. the machine's
    name on the LAN) and drops requests not sent whole within `request_timeout` seconds."""

    daemon_threads = True

    def __init__(
        self,
        clip: Clip | None,
        host: str = "127.0.0.1",
        port: int = 8765,
        animator: Animator | None = None,
        allowed_hosts: Sequence[str] = (),
        request_timeout: float = REQUEST_TIMEOUT,
    ):
        try:
            super().__init__((host, port), Handler)
        except OSError as e:
            raise TalkfaceError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
        self.clip = clip
        self.animator = animator or Animator()  # its models loaded once, whatever the style
        self.style = self.animator.style  # the style the panel last set
        self.style_values: dict[str, object] = {}  # what the page last set; {}: the animator's style
        self.head = glb_bytes(None)
        self.lock = threading.Lock()
        self.request_timeout = request_timeout
        self.any_address = host in ("", "0.0.0.0", "::")
        names = {*_LOOPBACK, *allowed_hosts, self.server_address[0]} | (set() if self.any_address else {host})
        self.host_names = {name.lower().strip("[]") for name in names}

    def own_host(self, host: str) -> bool:
        """Whether a request's Host header names this server: one of its names with its port, or any IP
        address when it listens on all of them (a DNS-rebinding page's requests carry the page's name)."""
        match = _HOST.fullmatch(host.lower())
        if not match or int(match[2] or 80) != self.server_address[1]:
            return False
        name = match[1].strip("[]")
        if name in self.host_names:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return self.any_address

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that went away mid-answer is no error worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def restyle(self, values: dict[str, object]) -> Clip | None:
        """Parse style option `values` (TalkfaceError if bad), restyle the clip with them and keep
        them for clips to come; the clip (None when there is none yet)."""
        style = Style.from_options(values)
        with self.lock:
            clip = self.clip
            if clip is not None and clip.speech is None:
                raise Conflict("this clip came as a finished animation without its phones; it cannot be restyled")
            self.style, self.style_values = style, values
            if clip is not None and clip.speech is not None:
                clip = self.clip = Clip(clip.speech.animate(self.animator, style), clip.audio, clip.title, clip.speech)
        return clip

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


def serve(
    source: str | os.PathLike | None,
    text: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    open_browser: bool = True,
    animator: Animator | None = None,
    allowed_hosts: Sequence[str] = (),
) -> None:
    """Load `source` (see `load_clip`; None starts empty, waiting for a dropped file) and serve until Ctrl-C;
    `allowed_hosts`: more names the page may be opened by (see `ViewerServer`)."""
    animator = animator or Animator()
    clip = load_clip(source, text, animator) if source is not None else None
    server = ViewerServer(clip, host, port, animator, allowed_hosts)
    print(f"talkface viewer: {server.url}  (Ctrl-C to stop)", flush=True)
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

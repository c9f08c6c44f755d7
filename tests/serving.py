"""A talkface server on a free loopback port in a background thread, for the server tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from talkface.serve import ServerConfig
from talkface.serve.app import close, make_runner
from talkface.serve.http import SERVER_KEY
from talkface.serve.server import Server


@contextmanager
def running(config: ServerConfig | None = None) -> Iterator[tuple[str, Server]]:
    """Yield (base URL, server state); the server stops gracefully on exit."""
    loop = asyncio.new_event_loop()
    runner = make_runner(config or ServerConfig())  # the runner `talkface serve` runs, with its timeouts
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", runner.app[SERVER_KEY]
    finally:
        asyncio.run_coroutine_threadsafe(close(runner), loop).result(10)  # as `talkface serve` stops
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()

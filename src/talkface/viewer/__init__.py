"""`talkface view`: a local web page that plays speech on the talkface head, in sync, with three.js.

The server is the standard library's ThreadingHTTPServer bound to 127.0.0.1 by default. It serves the
page and the bundled three.js from ``static/`` (no CDN), the head as GLB, and the current clip
(animation JSON + audio). A WAV dropped on the page is POSTed to ``/api/animate`` and animated here.
The clip keeps what it was animated from (audio, timed phones), so the page's emotion and face
panel restyles it (``/api/style``) without aligning the audio again.

    GET  /                  the page            GET /head.glb      head with the 52 ARKit targets
    GET  /api/clip          talkface JSON of the clip (plus "title", "audio", the audio's URL, and
                            "restyle", whether /api/style can restyle it)
    GET  /api/clip/audio    the clip's audio     POST /api/animate  body: audio file; ?text= transcript
    GET  /api/style         the emotions, the face parameters' [min, max, default] and the values in use
    POST /api/style         body: style options as JSON, named and parsed as on the command line
                            ({"emotion": "joy=0.8", "face": "jawStrength=1.2", "no-blink": true});
                            restyles the clip (and later ones) and answers with its JSON like /api/clip
Every error answer is {"error": "one line"} with its status (400, 403, 404, 408, 409: a clip that
cannot be restyled, 411, 413, 415, 501, ...).

The server is for this machine's browser, so it answers only requests naming it in their Host header
(127.0.0.1, localhost or [::1] with its port, the host it was bound to, or one it was told to allow;
any IP address when bound to all interfaces): a page of another site that rebinds its DNS name to
127.0.0.1 is refused. POSTs must be same-origin (an Origin header, when sent, is this server's) and
typed as no HTML form can type them: /api/style takes application/json, /api/animate audio/* or
application/octet-stream; so a cross-site form or text/plain POST is refused. A request must arrive
whole within `request_timeout` seconds (its body gets one more second per MB; an answer is read in as
long), so half-sent requests and clients that stop reading do not hold connections. Each connection
has its own thread: a long animation holds only the POSTs waiting for the animator, never the page,
the clip or the head.

    clip      the `Clip` the page plays and the `Speech` it came from: `load_clip`, `analyse`
    handler   the HTTP `Handler`: the routes, the request guards and limits, JSON errors
    server    `ViewerServer` (the clip, the animator, its style, its Host names) and `serve`
"""

from .clip import Clip, Speech, analyse, load_clip
from .handler import LINGER, MAX_STYLE, MAX_UPLOAD, MIN_RATE, REQUEST_TIMEOUT, STATIC
from .server import ViewerServer, serve

__all__ = [
    "LINGER",
    "MAX_STYLE",
    "MAX_UPLOAD",
    "MIN_RATE",
    "REQUEST_TIMEOUT",
    "STATIC",
    "Clip",
    "Speech",
    "ViewerServer",
    "analyse",
    "load_clip",
    "serve",
]

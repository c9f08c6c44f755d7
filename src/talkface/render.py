"""Offscreen video preview of the talkface head: OpenGL through moderngl (EGL, so no display), ffmpeg muxing.

`Renderer` draws the head for ARKit weights and head angles; `render_video` writes an MP4 (H.264 + AAC) with the speech.
Needs the ``render`` extra (``pip install 'talkface[render]'``: moderngl and imageio-ffmpeg) and an
EGL-capable OpenGL driver (Mesa's llvmpipe does it on a CPU; Debian: libegl1 libegl-mesa0 libgl1-mesa-dri).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import numpy as np

from .animation import Animation
from .errors import TalkfaceError, missing_module
from .files import atomic_path
from .head import HEAD_ANGLES, NECK_PIVOT, Head, head_rotations
from .rig import ARKIT_NAMES

_VERTEX = """
#version 330
uniform mat4 mvp;
in vec3 position;
in vec3 normal;
in vec3 color;
out vec3 v_normal;
out vec3 v_color;
void main() {
    gl_Position = mvp * vec4(position, 1.0);
    v_normal = normal;
    v_color = color;
}
"""
# Two soft lights and an ambient term; back faces (the inside of the lips and the throat) are shaded dark.
_FRAGMENT = """
#version 330
in vec3 v_normal;
in vec3 v_color;
out vec4 frag;
void main() {
    vec3 n = normalize(v_normal);
    float key = max(dot(n, normalize(vec3(0.4, 0.5, 1.0))), 0.0);
    float fill = max(dot(n, normalize(vec3(-0.6, 0.1, 0.6))), 0.0);
    vec3 lit = v_color * (0.28 + 0.62 * key + 0.22 * fill);
    frag = vec4(pow(gl_FrontFacing ? lit : v_color * 0.18, vec3(1.0 / 2.2)), 1.0);
}
"""
BACKGROUND = (0.16, 0.17, 0.19)


def _look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    f = (target - eye) / np.linalg.norm(target - eye)
    s = np.cross(f, [0.0, 1.0, 0.0])
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = s, u, -f
    m[:3, 3] = -m[:3, :3] @ eye
    return m


def _perspective(fov_y_deg: float, aspect: float, near: float, far: float) -> np.ndarray:
    f = 1 / np.tan(np.radians(fov_y_deg) / 2)
    m = np.zeros((4, 4))
    m[0, 0], m[1, 1] = f / aspect, f
    m[2, 2], m[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
    m[3, 2] = -1
    return m


#: What a user without the render extra is told, before any work (`check_extra`) or at the import.
NEEDS_EXTRA = "rendering needs the render extra: pip install 'talkface[render]'"


def check_extra() -> None:
    """TalkfaceError unless moderngl and an ffmpeg are there: checked before the speech is animated."""
    if missing_module("moderngl"):
        raise TalkfaceError(NEEDS_EXTRA)
    ffmpeg_exe()


class Renderer:
    """Draws the head for ARKit weights into `width`×`height` RGB images, front view, offscreen."""

    def __init__(self, width: int = 512, height: int = 512, head: Head | None = None) -> None:
        try:
            import moderngl
        except ImportError:
            raise TalkfaceError(NEEDS_EXTRA) from None
        try:
            self._ctx = moderngl.create_standalone_context(backend="egl")
        except Exception as e:  # no EGL driver: moderngl raises plain Exceptions
            raise TalkfaceError(
                f"cannot open an offscreen OpenGL context ({e}); install Mesa's EGL driver "
                "(Debian: libegl1 libegl-mesa0 libgl1-mesa-dri)"
            ) from None
        self.head = head or Head.load()
        self.width, self.height = width, height
        rest = self.head.vertices
        lo, hi = rest.min(0), rest.max(0)
        target = np.array([0.0, lo[1] + 0.55 * (hi[1] - lo[1]), 0.0])  # between the eyes and the mouth
        eye = target + np.array([0.0, 0.03, 0.75])
        #: model-view-projection matrix: world metres → clip space (for projecting points in tests)
        self.mvp = (_perspective(24.0, width / height, 0.1, 10.0) @ _look_at(eye, target)).astype(np.float32)
        ctx = self._ctx
        self._prog = ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        self._prog["mvp"].write(self.mvp.T.copy().tobytes())
        n = self.head.num_vertices
        self._pos = ctx.buffer(reserve=n * 12)
        self._nrm = ctx.buffer(reserve=n * 12)
        self._col = ctx.buffer((self.head.colors.astype(np.float32) / 255) ** 2.2)  # sRGB → linear
        ibo = ctx.buffer(self.head.triangles.astype(np.uint32))
        self._vao = ctx.vertex_array(
            self._prog,
            [(self._pos, "3f", "position"), (self._nrm, "3f", "normal"), (self._col, "3f", "color")],
            index_buffer=ibo,
            index_element_size=4,
        )
        self._fbo = ctx.simple_framebuffer((width, height), samples=4)
        self._out = ctx.simple_framebuffer((width, height))

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates (x right, y down) of world points [..., 3] in the rendered image."""
        p = np.asarray(points, np.float64)
        clip = np.concatenate([p, np.ones((*p.shape[:-1], 1))], -1) @ self.mvp.T
        ndc = clip[..., :2] / clip[..., 3:]
        return np.stack([(ndc[..., 0] + 1) / 2 * self.width, (1 - ndc[..., 1]) / 2 * self.height], -1)

    def frame(self, vertices: np.ndarray, normals: np.ndarray) -> np.ndarray:
        """One [height, width, 3] uint8 sRGB image of the head posed at `vertices`."""
        ctx = self._ctx
        self._pos.write(np.ascontiguousarray(vertices, np.float32))
        self._nrm.write(np.ascontiguousarray(normals, np.float32))
        self._fbo.use()
        ctx.enable(ctx.DEPTH_TEST)
        self._fbo.clear(*BACKGROUND, 1.0)
        self._vao.render()
        ctx.copy_framebuffer(self._out, self._fbo)  # resolve the multisampling
        img = np.frombuffer(self._out.read(components=3), np.uint8).reshape(self.height, self.width, 3)
        return img[::-1]

    def frames(self, anim: Animation, batch: int = 64) -> Iterator[np.ndarray]:
        """Images of every frame of `anim`, in order, the head turned by its head angles (if it has them)
        about the top of the neck, as the viewer turns it."""
        weights = anim.with_channels(ARKIT_NAMES).weights
        turns = head_rotations(anim.with_channels(HEAD_ANGLES).weights).astype(np.float32)
        for start in range(0, anim.num_frames, batch):
            verts = self.head.apply(weights[start : start + batch])
            normals = self.head.normals(verts)
            for v, n, turn in zip(verts, normals, turns[start : start + batch], strict=True):
                yield self.frame((v - NECK_PIVOT) @ turn.T + NECK_PIVOT, n @ turn.T)

    def close(self) -> None:
        """Free the OpenGL context."""
        self._ctx.release()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ffmpeg_exe() -> str:
    """The ffmpeg program: one on PATH, else the one the imageio-ffmpeg wheel ships."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        raise TalkfaceError("video needs ffmpeg: pip install 'talkface[render]' or install ffmpeg") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg_path(path: str | os.PathLike) -> str:
    """`path` as ffmpeg takes it literally: absolute, after ``file:``, so that a name such as ``pipe:0.wav``,
    ``cache:speech.wav`` or ``-`` is that file, not one of ffmpeg's protocols or standard input."""
    return "file:" + os.path.abspath(os.fsdecode(path))


def render_video(
    anim: Animation, audio: str | os.PathLike | None, out: str | os.PathLike, width: int = 512, height: int = 512
) -> int:
    """Render `anim` to an MP4 (H.264, yuv420p) at its fps with `audio` muxed in (AAC); returns frames written."""
    if anim.num_frames == 0:
        raise TalkfaceError("nothing to render: the animation has no frames")
    if not np.isfinite(anim.weights).all():
        raise TalkfaceError("nothing to render: the animation has weights that are not finite numbers")
    for side in (width, height):
        if isinstance(side, bool) or not isinstance(side, int) or side < 2 or side > 8192 or side % 2:
            raise TalkfaceError(f"the video's width and height must be even whole numbers from 2 to 8192, got {side!r}")
    with Renderer(width, height) as renderer, atomic_path(out) as tmp, tempfile.TemporaryFile() as log:
        cmd = [ffmpeg_exe(), "-y", "-nostdin", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24"]
        cmd += ["-s", f"{width}x{height}", "-r", f"{anim.fps:g}", "-i", "pipe:0"]
        if audio is not None:
            cmd += ["-i", _ffmpeg_path(audio), "-map", "0:v", "-map", "1:a", "-c:a", "aac", "-b:a", "128k"]
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p"]
        cmd += ["-movflags", "+faststart", "-f", "mp4", _ffmpeg_path(tmp)]
        try:  # ffmpeg's messages go to a file: a pipe nobody reads while the frames are written would fill and stall it
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=log)
        except OSError as e:
            raise TalkfaceError(f"cannot run ffmpeg ({cmd[0]}: {e.strerror or e})") from None
        count = 0
        try:
            for image in renderer.frames(anim):
                proc.stdin.write(image.tobytes())
                count += 1
        except BrokenPipeError:
            pass
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            proc.wait()
        if proc.returncode != 0:
            log.seek(0)
            err = log.read().decode(errors="replace").strip()
            raise TalkfaceError(f"ffmpeg failed: {err.splitlines()[-1] if err else f'exit {proc.returncode}'}")
        if not tmp.is_file() or not tmp.stat().st_size:  # (an empty .mp4 is no video: nothing is kept)
            raise TalkfaceError("ffmpeg ended without writing the video")
    return count

"""A stream fed from two threads at once refuses rather than interleaving their chunks."""

import threading

import numpy as np
import pytest

from talkface import Animator, FaceParams, TalkfaceError


def test_a_second_thread_cannot_feed_a_stream_while_the_first_is_inside_it():
    stream = Animator().stream(fps=30)
    inside, release = threading.Event(), threading.Event()
    stream._post.set_face = lambda face: (inside.set(), release.wait(5))  # hold the first thread inside
    first = threading.Thread(target=stream.set_face, args=(FaceParams(),))
    first.start()
    assert inside.wait(5)
    try:
        with pytest.raises(TalkfaceError, match="another thread"):
            stream.push(np.zeros(320, np.float32))
        with pytest.raises(TalkfaceError, match="another thread"):
            stream.flush()
    finally:
        release.set()
        first.join(5)
    # once the first thread is out, the other may go on, and `push` (which calls `write`) still works
    frames = stream.push(np.zeros(16000, np.float32)).num_frames
    assert frames + stream.flush().num_frames == 30

"""ONNX files shipped with a ``.json`` of metadata beside them: checked against the SHA-256 it gives,
then opened with onnxruntime. The face models and the speech encoder are loaded this way."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .errors import TalkfaceError


def open_checked(path: Path, fmt: str, what: str, threads: int = 1) -> tuple[dict, Any]:
    """(metadata, onnxruntime session) of the `what` file at `path`, whose ``.json`` says it is of
    format `fmt` and gives its SHA-256. Raises TalkfaceError (one line) for a missing, unreadable,
    altered or invalid file.

    The session keeps onnxruntime's memory arena but plans no memory pattern: a pattern is one block
    per input shape, and the models here see many shapes (the speech encoder's last window, the
    head's every call), so each new one would take another block; without it the arena's freed
    chunks serve the next call whatever its shape. The same outputs, the same speed, and 60 MB less
    at the peak of a long file."""
    import onnxruntime as ort

    meta_path = path.with_suffix(".json") if path.name else path  # ("" and "/" have no name to give a .json)
    if not path.is_file() or not meta_path.is_file():
        raise TalkfaceError(f"{path}: no such {what} (it needs its .json beside it)")
    try:
        meta = json.loads(meta_path.read_text())
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except (OSError, ValueError) as e:
        raise TalkfaceError(f"{meta_path}: unreadable {what} metadata ({e})") from None
    except RecursionError:
        raise TalkfaceError(f"{meta_path}: unreadable {what} metadata (nested too deeply)") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt or digest != meta.get("sha256"):
        raise TalkfaceError(f"{path}: corrupt or mismatched {what} file (checksum differs)")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_mem_pattern = False
    try:
        return meta, ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for invalid graphs
        raise TalkfaceError(f"{path}: not a valid ONNX model ({e})") from None

"""Safe output and bounded input.

Output is atomic: written to a temporary file beside the target, then renamed over it, so a failed
run leaves no half-written file and never clobbers an existing good one. Only a regular file (or
nothing) is replaced: a device, named pipe, socket or folder at the path is refused, never turned
into a regular file; a symbolic link is written through (the file it points to is replaced, the
link stays). An existing file keeps its permission bits (and, where allowed, its owner); a new one
gets them from the umask, as any program's new file does.

Input text files are read up to a size limit, so an endless file (``/dev/zero``) or a huge one ends
with one clear error instead of filling memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import TalkfaceError, shown

#: What each kind of non-regular file is called in the refusal.
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
)
#: Largest text file `read_text` takes by default: a transcript of many hours is a few hundred kB.
TEXT_LIMIT = 1 << 20
#: The temporary files `atomic_path` writes: `.NAME.XXXXXXXX.partSUFFIX` beside NAME (`temp_base`).
_TEMP = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}\.part(?P<suffix>\.[^.]*)?")
_NAME_MAX = 255  # bytes in a file name (Linux, macOS and Windows file systems alike)
#: USD's own temporary file, beside the one it is asked to save (`.NAME.XXXXXXXX.part.usda` saved through
#: `.NAME.XXXXXXXX.part.Ab12Cd`, then renamed): left behind too when a kill comes mid-save.
_USD_TEMP = re.compile(r"\.[A-Za-z0-9]{6}")
_USD_SUFFIXES = (".usd", ".usda", ".usdc")


def special_kind(mode: int) -> str | None:
    """What a file of this `st_mode` is called when it is not a regular file ("a device", …); None if it is one."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def file_key(path: str | os.PathLike) -> tuple:
    """What tells files apart: an existing file's device and inode (links followed), else its name
    with links resolved; two paths with one key are one file."""
    try:
        found = os.stat(path)
        return (found.st_dev, found.st_ino)
    except OSError:  # not there yet: its name, links resolved
        return (os.path.realpath(path),)


def distinct_outputs(inputs: Iterable[str | os.PathLike | None], outputs: Iterable[str | os.PathLike | None]) -> None:
    """TalkfaceError (one line) if an output is an input, or two outputs are one file (through links too):
    a run must never write over what it reads, nor write one of its results over another."""

    read = {file_key(p): p for p in inputs if p is not None and p != "-"}
    written: dict[tuple, str | os.PathLike] = {}
    for path in (p for p in outputs if p is not None and p != "-"):
        k = file_key(path)
        if k in read:
            raise TalkfaceError(f"{path}: is the input {read[k]}; refusing to write over it")
        if k in written:
            raise TalkfaceError(f"{path}: two of this run's outputs would be this one file; give each its own name")
        written[k] = path


def output_target(path: str | os.PathLike) -> Path:
    """The file that writing `path` replaces: `path` itself, or the file a symbolic link there points to.

    TalkfaceError (one line) if that is something other than a regular file (a device, named pipe,
    socket or folder), a link loop, in a place no file can be written, or not named in UTF-8. Checks
    only; creates nothing.
    """
    given = Path(path)
    if isinstance(path, str) and path.endswith(("/", os.sep)):  # (Path drops it: "out.csv/" was written as a file)
        raise TalkfaceError(f"{path}: ends in a slash, so it names a folder, not an output file")
    target = Path(os.path.realpath(given)) if given.is_symlink() else given
    try:  # a name of other bytes is kept in surrogates, which no writer (USD, libsndfile) can pass on
        os.fspath(target).encode("utf-8")
    except UnicodeEncodeError:
        raise TalkfaceError(f"{given}: the file name is not UTF-8; name the output in UTF-8") from None
    try:
        mode: int | None = target.lstat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as e:
        raise TalkfaceError(f"{given}: cannot write here ({e.strerror or e})") from None
    if mode is not None and stat.S_ISLNK(mode):
        raise TalkfaceError(f"{given}: a symbolic link loop; refusing to write through it")
    if mode is not None and (kind := special_kind(mode)):
        raise TalkfaceError(f"{given}: is {kind}, not a regular file; refusing to replace it")
    folder = target.parent
    try:
        while not folder.exists():  # the folders atomic_path would create
            folder = folder.parent
    except OSError as e:
        raise TalkfaceError(f"{given}: cannot write here ({e.strerror or e})") from None
    if not folder.is_dir():
        raise TalkfaceError(f"{given}: cannot write here ({folder} is not a folder)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise TalkfaceError(f"{given}: cannot write here ({folder} is not writable)")
    return target


def temp_base(name: str) -> str:
    """The NAME in the names of `atomic_path`'s temporary files for the file `name`: `name` itself,
    or with its stem cut short where the temporary name would be too long for the file system."""
    path = Path(name)
    room = _NAME_MAX - len(f"..{'0' * 8}.part".encode()) - 2 * len(path.suffix.encode())
    stem = path.stem.encode()
    if len(stem) <= room or room < 1:
        return name
    return stem[:room].decode(errors="ignore") + path.suffix


def temp_target(name: str) -> str | None:
    """The `temp_base` of the file that the temporary file `name` (one of `atomic_path`'s) was to
    replace, or None if `name` is not one: what a writer killed mid-write leaves behind, to be cleared."""
    match = _TEMP.fullmatch(name)
    if not match:
        return None
    suffix, own = match["suffix"] or "", Path(match["name"]).suffix
    usd = own.lower() in _USD_SUFFIXES and _USD_TEMP.fullmatch(suffix) is not None
    return match["name"] if suffix == own or usd else None


def clear_temps(folder: str | os.PathLike, names: Iterable[str]) -> None:
    """Remove from `folder` the temporary files a killed writer left for the files `names` (their
    `temp_base`s): a resumed run's own debris, never anyone else's files."""
    wanted = {temp_base(name) for name in names}
    with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(folder) as entries:
        for entry in entries:
            if temp_target(entry.name) in wanted:
                Path(entry.path).unlink(missing_ok=True)


def lock_folder(folder: str | os.PathLike, busy: str) -> int:
    """An exclusive lock on `folder` (made if missing), held until the descriptor returned is closed,
    so that two runs never write one folder's shared state (a batch's report, a corpus's manifest and
    shards, a training run's log and checkpoint) at once; TalkfaceError "`folder`: `busy`" at once if
    another process holds it. The lock goes with the process: a killed run never leaves it locked."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise TalkfaceError(f"{folder}: cannot make or open the folder ({e.strerror or e})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise TalkfaceError(f"{folder}: {busy}") from None
    return fd


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, busy: str) -> Iterator[None]:
    """`lock_folder` while the block runs."""
    fd = lock_folder(folder, busy)
    try:
        yield
    finally:
        os.close(fd)


def _new_temp(target: Path, old: os.stat_result | None) -> tuple[Path, int]:
    """A new empty file beside `target`, and the permission bits the result should get: the old
    file's, or (for a new file) those the umask leaves of rw-rw-rw-, read back from the temp file."""
    # never more open than the old file while it is being written
    create_mode = stat.S_IMODE(old.st_mode) & 0o666 if old else 0o666
    for _ in range(100):
        tmp = target.with_name(f".{temp_base(target.name)}.{secrets.token_hex(4)}.part{target.suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, create_mode)
        except FileExistsError:
            continue
        try:
            return tmp, stat.S_IMODE(old.st_mode) if old else stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
    raise FileExistsError(f"no free temporary name beside {target}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside the file `path` names; on success it replaces that file.

    What may be replaced, and the mode the result gets, as the module says; TalkfaceError otherwise.
    """
    target = output_target(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        old = target.stat() if target.exists() else None
        tmp, mode = _new_temp(target, old)
    except OSError as e:
        raise TalkfaceError(f"{path}: cannot write here ({e.strerror or e})") from None
    try:
        yield tmp
        now = tmp.stat()
        if old is not None and (now.st_uid, now.st_gid) != (old.st_uid, old.st_gid):
            with contextlib.suppress(PermissionError):  # only root may give a file away
                os.chown(tmp, old.st_uid, old.st_gid)
        os.chmod(tmp, mode)  # after chown, which clears set-id bits; also undoes a writer's own mode
        os.replace(tmp, target)
    except OSError as e:
        raise TalkfaceError(f"{path}: cannot write ({e.strerror or e})") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str | Iterable[str]) -> None:
    """Write a text file atomically (UTF-8), from one string or from pieces written as they come."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.writelines([text] if isinstance(text, str) else text)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def refuse_nul(path: str | os.PathLike) -> None:
    """TalkfaceError (one line) for a name that holds a NUL, which no file's name can (os calls raise ValueError)."""
    if "\0" in os.fsdecode(path):
        raise TalkfaceError(f"{shown(os.fsdecode(path), 200)}: a file name cannot hold a NUL character")


@contextlib.contextmanager
def opened(path: str | os.PathLike, what: str) -> Iterator[BinaryIO]:
    """The `what` file at `path` open for reading bytes; a missing, folder, device or unreadable path,
    or a failed read, as one `TalkfaceError` line that says which file and why.

    A pipe is opened without waiting for a writer (a named pipe no one writes to reads as empty,
    never blocks), then read as any file: ``<(command)`` works."""
    a = _article(what)
    refuse_nul(path)  # (os.open's ValueError, which a caller's own would be mistaken for)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            os.close(fd)
            raise IsADirectoryError
        if (kind := special_kind(mode)) and not stat.S_ISFIFO(mode):  # /dev/zero would never end
            os.close(fd)
            raise TalkfaceError(f"{path}: is {kind}, not {a} {what} file")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as f:
            yield f
    except FileNotFoundError:
        raise TalkfaceError(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise TalkfaceError(f"{path}: is a folder, not {a} {what} file") from None
    except OSError as e:
        raise TalkfaceError(f"{path}: cannot read the {what} file ({e.strerror or e})") from None


def read_text(path: str | os.PathLike, what: str = "text", limit: int = TEXT_LIMIT) -> str:
    """The UTF-8 text of the `what` file at `path` (a leading byte-order mark dropped).

    Reads at most `limit` + 1 bytes, so an endless source (``/dev/zero``, a pipe) ends too;
    TalkfaceError (one line) if the file is missing, unreadable, larger than `limit` or not UTF-8.
    """
    with opened(path, what) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        size = f"{limit / (1 << 20):g} MB"
        raise TalkfaceError(f"{path}: larger than {size}; not {_article(what)} {what} file talkface reads")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TalkfaceError(f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None

"""Safe checkpoint loading and atomic file writing, shared by every part of the package."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pickle
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from regnet_explore.errors import RegNetExploreError


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors naming the file.

    A checkpoint is untrusted input: weights-only loading never runs code from the pickle, and anything that is
    not tensors and plain containers is refused.
    """
    path = Path(path)
    if not path.exists():
        raise RegNetExploreError(f"{path}: no such file")
    if path.is_dir():
        raise RegNetExploreError(f"{path}: is a directory, not a checkpoint file")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        raise RegNetExploreError(f"{path}: empty file, not a checkpoint")
    # torch.save writes a zip archive (PK..), older versions a pickle (protocol byte 0x80)
    if not (head.startswith(b"PK\x03\x04") or head[0] == 0x80):
        kind = "a text file?" if all(32 <= b < 127 or b in b"\t\r\n" for b in head) else "unknown format"
        raise RegNetExploreError(f"{path}: not a PyTorch checkpoint (it starts with {head!r}: {kind})")
    try:
        # zip checkpoints are memory-mapped: tensors are read on demand, so peak memory stays near one copy
        return torch.load(path, map_location=map_location, weights_only=True, mmap=head.startswith(b"PK"))
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "Weights only load failed" in msg:
            found = re.search(r"(Unsupported global: GLOBAL [\w.]+|[Uu]nsupported [^\n.]+)", msg)
            what = found.group(1) if found else "objects that are not tensors"
            raise RegNetExploreError(
                f"{path}: refused to load: the pickle asks for {what}; a checkpoint may only hold tensors and plain "
                "containers (nothing in it was executed)") from None
        raise RegNetExploreError(f"{path}: not a PyTorch checkpoint ({msg.splitlines()[0] if msg else 'bad pickle'})") \
            from None
    except EOFError:
        raise RegNetExploreError(f"{path}: truncated checkpoint (unexpected end of file)") from None
    except RuntimeError as e:
        first = str(e).splitlines()[0].split(". ")[0] if str(e) else type(e).__name__
        if "zip archive" in first or "central directory" in first or "file not found" in first:
            raise RegNetExploreError(f"{path}: truncated or corrupt checkpoint ({first})") from None
        raise RegNetExploreError(f"{path}: cannot load checkpoint ({first})") from None
    except (ValueError, TypeError, OSError, AttributeError, IndexError, KeyError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RegNetExploreError(f"{path}: cannot load checkpoint ({type(e).__name__}: {first})") from None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is flushed to disk (fsync) and replaces ``path`` in
    one rename, and the rename itself is made durable (fsync of the folder).

    On any error the temporary file is removed and ``path`` is left as it was (absent or the old file).
    """
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise RegNetExploreError(f"{path}: output folder {path.parent} does not exist")
    if path.is_dir():
        raise RegNetExploreError(f"{path}: is a folder; give the name of the file to write")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        fd = os.open(tmp_path, os.O_RDONLY)
        try:  # the data on disk before the name points at it: a crash leaves the old file or the whole new one
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_path, path)
        with contextlib.suppress(OSError):  # not every filesystem lets a folder be opened for fsync
            dir_fd = os.open(path.parent or ".", os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    finally:
        tmp_path.unlink(missing_ok=True)


def save_checkpoint_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`atomic_write`: never a half-written checkpoint."""
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` to ``path`` (parent folders made as needed) through :func:`atomic_write`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return path


def write_json_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    return write_text_atomic(json.dumps(obj), path)


def _fsync_tree(root: Path) -> None:
    """Every file and folder under ``root`` (and ``root``) on disk."""
    for folder, _, files in os.walk(root):
        for name in [*files, "."]:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, marker: str) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success its files are flushed to disk and it replaces
    ``path`` whole (an earlier folder of the same kind, recognised by its ``marker`` file, is removed after).

    ``path`` may not be a file or a non-empty folder without ``marker``: nothing of the user's is overwritten. On
    any error the temporary folder goes and ``path`` is left as it was.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RegNetExploreError(f"{path}: exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not (path / marker).is_file():
        raise RegNetExploreError(f"{path}: a non-empty folder without {marker}; choose a new or empty folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; give the folder the usual permissions
    old = None
    try:
        yield tmp
        _fsync_tree(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def jsonl_appender(path: str | os.PathLike, busy: str) -> Iterator[Callable[[dict], None]]:
    """Yield ``write(row)``, which appends ``row`` to the JSON-lines file ``path`` as one line, on disk (flush +
    fsync) before it returns, so a kill leaves a whole row or none. The file is locked against a second writer
    (``busy``: the error's text then) and a line torn by an earlier kill is cut off first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RegNetExploreError(f"{path}: {busy}") from None
        f.seek(0)
        text = f.read()
        if text and not text.endswith(b"\n"):
            f.truncate(text.rfind(b"\n") + 1)

        def write(row: dict) -> None:
            f.write((json.dumps(row) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())

        yield write

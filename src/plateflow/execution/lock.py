"""One run per output folder: an exclusive lock with the holder's PID in it.

``OutputLock(out)`` takes ``fcntl.flock`` on ``out/.plateflow.lock`` (the
kernel drops it when the holding process dies, however it dies) and writes
the holder's PID, host, start time and command into the same file. A second
run into the folder is refused with a message naming that process. A lock
file left by a process that is gone is simply taken over: the kernel has
already released its lock, and the takeover is reported in ``lock.stale``.

The file itself stays: removing it on release would let a waiting run lock
a file that a third run then replaces (the classic unlink race).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["LOCK_NAME", "OutputLock", "OutputLockedError"]

LOCK_NAME = ".plateflow.lock"


class OutputLockedError(RuntimeError):
    """Another run holds the output folder."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _describe(holder: dict[str, Any]) -> str:
    parts = [f"pid {holder.get('pid', '?')}"]
    if holder.get("host") and holder.get("host") != socket.gethostname():
        parts.append(f"on {holder['host']}")
    if holder.get("started"):
        parts.append(f"started {holder['started']}")
    text = ", ".join(parts)
    if holder.get("command"):
        text += f": {holder['command']}"
    return text


class OutputLock:
    """The exclusive lock of one output folder; a context manager.

    Raises:
        OutputLockedError: another live process holds it (the message names it).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None
        #: The holder a stale lock file named (a process that is gone), when one was taken over.
        self.stale: dict[str, Any] | None = None

    def _read_holder(self, fd: int) -> dict[str, Any]:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            text = os.read(fd, 65536).decode("utf-8", "replace")
            holder = json.loads(text) if text.strip() else {}
        except (OSError, ValueError):
            return {}
        return holder if isinstance(holder, dict) else {}

    def acquire(self) -> "OutputLock":
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise type(error)(error.errno, f"cannot write {self.path} (the output folder's lock file): {error.strerror or error}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read_holder(fd)
            os.close(fd)
            raise OutputLockedError(
                f"another plateflow run is writing to {self.folder} ({_describe(holder)}); "
                "wait for it to finish, stop it, or choose another output folder",
                holder,
            ) from None
        except OSError:
            os.close(fd)
            raise
        previous = self._read_holder(fd)
        pid = previous.get("pid")
        if isinstance(pid, int) and pid != os.getpid():
            # Its lock is released, so its process is gone (or on another host's lost mount).
            self.stale = {**previous, "alive": _pid_alive(pid) if previous.get("host") == socket.gethostname() else None}
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)[:500],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        import fcntl

        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

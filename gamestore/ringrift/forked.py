"""A helper process forked from this one, with the part of :class:`subprocess.Popen`'s interface an import uses.

An import's helper processes (:class:`gamestore.ringrift.workers.ImportProcesses`) are forked once this
process has imported everything they need and before it opens the store: a forked helper starts at
once, where an interpreter started with ``python -m`` paid about 0.45 s of CPU (interpretation, imports)
before its first game.  The helper runs ``target(lines, tasks)`` with its own pipes (a text stream to
write request/progress/report lines to, a binary stream to read its tasks from) and its stderr (fd 2)
going to a third pipe, then ends with ``os._exit``: nothing of this process (atexit handlers, buffered
output, open files and handles) is run or flushed twice.

:func:`fork_is_safe` says when forking is sound: only when the calling thread is the process's only
Python thread (a lock held by another thread at the fork, such as a logging or stdio lock, would stay
held for ever in the child).  Native threads of pyarrow (its thread pools, jemalloc) re-create their
state in a forked child; the helper opens its own SQLite connection and store (a DuckDB database of its
own), never one of this process's.
"""
from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import traceback
from contextlib import suppress
from typing import IO, Callable

__all__ = ["ForkedHelper", "fork_is_safe", "exit_reason"]


def fork_is_safe() -> bool:
    """True when this process can fork a helper (POSIX, and no other Python thread running)."""
    return hasattr(os, "fork") and threading.active_count() == 1


def exit_reason(returncode: int | None) -> str:
    """``exited with code N`` or ``was killed by signal SIGNAME`` (``Popen.returncode`` convention)."""
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"was killed by signal {name}"
    return f"exited with code {returncode}"


class ForkedHelper:
    """A child process running ``target(lines, tasks)``; ``stdin``/``stdout``/``stderr`` are this side's pipe ends.

    ``close_in_child``: descriptors of this process the child must not keep (the pipe ends of helpers
    forked before it: a helper holding another's task pipe would keep it from seeing its end).
    """

    def __init__(self, target: Callable[[IO[str], IO[bytes]], None], *, close_in_child: list[int]) -> None:
        task_r, task_w = os.pipe()
        line_r, line_w = os.pipe()
        err_r, err_w = os.pipe()
        for stream in (sys.stdout, sys.stderr):  # nothing buffered here is written twice
            with suppress(Exception):
                stream.flush()
        gc.freeze()  # the child's collections (if any) leave this process's objects (and their pages) alone
        try:
            pid = os.fork()
        except BaseException:
            gc.unfreeze()
            for fd in (task_r, task_w, line_r, line_w, err_r, err_w):
                os.close(fd)
            raise
        if pid == 0:  # pragma: no cover - the child (its coverage is not collected); tests check what it does
            _child(target, task_r, line_w, err_w, [task_w, line_r, err_r, *close_in_child])
        gc.unfreeze()
        os.close(task_r)
        os.close(line_w)
        os.close(err_w)
        self.pid = pid
        self.returncode: int | None = None
        self.stdin: IO[bytes] = os.fdopen(task_w, "wb")
        self.stdout: IO[bytes] = os.fdopen(line_r, "rb")
        self.stderr: IO[bytes] = os.fdopen(err_r, "rb")

    def fds(self) -> list[int]:
        """This side's pipe descriptors (for :class:`ForkedHelper`'s ``close_in_child`` of a later helper)."""
        return [f.fileno() for f in (self.stdin, self.stdout, self.stderr) if not f.closed]

    def _reap(self, flags: int) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, flags)
            except ChildProcessError:  # reaped elsewhere (a SIGCHLD handler of the caller's)
                self.returncode = 255
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self) -> int | None:
        """The exit code (negative: the signal) once the child ended, else None."""
        return self._reap(os.WNOHANG)

    def wait(self) -> int:
        """Wait for the child to end; its exit code."""
        code = self._reap(0)
        assert code is not None
        return code

    def kill(self) -> None:
        if self.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


def _child(target: Callable[[IO[str], IO[bytes]], None], task_r: int, line_w: int, err_w: int,
           close: list[int]) -> None:  # pragma: no cover - runs in the child
    code = 1
    try:
        os.dup2(err_w, 2)
        os.close(err_w)
        for fd in close:
            with suppress(OSError):
                os.close(fd)
        gc.unfreeze()
        with os.fdopen(line_w, "w", encoding="utf-8") as lines, os.fdopen(task_r, "rb") as tasks:
            target(lines, tasks)
        code = 0
    except BaseException:  # noqa: BLE001 - everything reaches the caller through the exit code and stderr
        with suppress(BaseException):
            os.write(2, traceback.format_exc().encode("utf-8", "replace"))
    finally:
        os._exit(code)

"""fsync off the event loop, in batches.

An fsync can block for milliseconds, so it must not run on the event loop; but handing
each file to a worker thread and back costs more CPU than a small file's whole download.
One thread per process takes every file waiting to be synced at once, syncs and closes
each, and wakes each waiting event loop once per batch.

Invariant: from the moment ``sync_and_close`` is called, the descriptor belongs to the
syncer, which closes it exactly once, even when the caller is cancelled while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading

__all__ = ["sync_and_close"]

_Job = tuple[int, asyncio.AbstractEventLoop, "asyncio.Future[OSError | None]"]

_jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
_start_lock = threading.Lock()
_thread: threading.Thread | None = None


async def sync_and_close(fd: int) -> None:
    """fsync ``fd``, close it, and raise the ``OSError`` of the fsync if there was one."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[OSError | None] = loop.create_future()
    _ensure_thread()
    _jobs.put((fd, loop, done))
    error = await done
    if error is not None:
        raise error


def _ensure_thread() -> None:
    global _thread
    if _thread is not None:
        return
    with _start_lock:
        if _thread is None:
            thread = threading.Thread(target=_run, name="aiotts-fsync", daemon=True)
            thread.start()
            _thread = thread


def _run() -> None:
    while True:
        batch = [_jobs.get()]
        with contextlib.suppress(queue.Empty):
            while len(batch) < 256:
                batch.append(_jobs.get_nowait())
        answers: dict[
            asyncio.AbstractEventLoop, list[tuple[asyncio.Future[OSError | None], OSError | None]]
        ] = {}
        for fd, loop, done in batch:
            error: OSError | None = None
            try:
                os.fsync(fd)
            except OSError as exc:
                error = exc
            finally:
                with contextlib.suppress(OSError):
                    os.close(fd)
            answers.setdefault(loop, []).append((done, error))
        for loop, results in answers.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_deliver, results)


def _deliver(results: list[tuple[asyncio.Future[OSError | None], OSError | None]]) -> None:
    for done, error in results:
        if not done.done():  # a waiter that was cancelled left a cancelled future
            done.set_result(error)

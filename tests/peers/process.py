"""The lifecycle both test peers share: a process group started with a hard deadline, polled until
ready (blocking or from a running event loop), and always killable, so no peer outlives a test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from types import TracebackType
from typing import Self


class PeerProcess:
    """Mixin for a peer with a ``_proc`` (``subprocess.Popen`` or None) that implements
    :meth:`_check_ready` (True once usable; raises if the process died) and :meth:`_not_ready`
    (the TimeoutError message)."""

    _proc: subprocess.Popen[bytes] | None

    def _check_ready(self) -> bool:
        raise NotImplementedError

    def _not_ready(self, timeout: float) -> str:
        raise NotImplementedError

    def start(self) -> Self:
        raise NotImplementedError

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait_ready(self, timeout: float = 5.0) -> Self:
        end = time.monotonic() + timeout
        while not self._check_ready():
            if time.monotonic() > end:
                self.kill()
                raise TimeoutError(self._not_ready(timeout))
            time.sleep(0.02)
        return self

    async def await_ready(self, timeout: float = 5.0) -> Self:
        """:meth:`wait_ready` that polls without blocking the event loop."""
        end = time.monotonic() + timeout
        while not self._check_ready():
            if time.monotonic() > end:
                self.kill()
                raise TimeoutError(self._not_ready(timeout))
            await asyncio.sleep(0.02)
        return self

    def kill(self) -> None:
        """Terminate the whole process group now: SIGTERM, then SIGKILL (idempotent)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=1.0)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.kill()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.kill()

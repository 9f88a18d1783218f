"""A child process of ``api-router dev`` whose output goes to a log file, and which dies
with its parent."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


class ManagedProcess:
    """A child process whose output goes to a log file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        env: Mapping[str, str],
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ):
        """``user``: run as this user (we are root); ``stop_signal``: what ``stop`` sends."""
        self.name = name
        self._stop_signal = stop_signal
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self._process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
                user=user,  # switched before preexec_fn, so the death signal stays set
                preexec_fn=_die_with_parent,
            )

    def alive(self) -> bool:
        return self._process.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        if not self.alive():
            return
        self._process.send_signal(self._stop_signal)
        try:
            self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the dev process dies, even by SIGKILL."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

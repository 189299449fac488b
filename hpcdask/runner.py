"""The one place hpcdask starts processes.

Commands are argv lists, never shell strings. :class:`SubprocessRunner` runs them;
:class:`FakeRunner` answers from saved output so unit tests need no processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import psutil

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Completed:
    """A finished command."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Runner(Protocol):
    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Completed:
        """Run ``argv`` to completion (in ``cwd``, with ``env`` added to the
        environment); a timeout or a missing program is reported as a failed
        :class:`Completed` (return code 124 or 127). A command that times out,
        or whose caller is cancelled, is killed: it never runs on unseen."""
        ...


class SubprocessRunner:
    """Runs commands with asyncio's subprocess support.

    ``env``, when given, replaces this process's environment for every command;
    a call's own ``env`` is added on top.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(env) if env is not None else None
        #: every argv run, in order, for tests and for counting controller load.
        self.calls: list[tuple[str, ...]] = []

    def _environment(self, extra: Mapping[str, str] | None) -> dict[str, str] | None:
        if not extra:
            return self.env
        return {**(self.env if self.env is not None else os.environ), **extra}

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Completed:
        argv = tuple(argv)
        self.calls.append(argv)
        logger.debug("running %s", " ".join(argv))
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._environment(env),
                cwd=cwd,
            )
        except FileNotFoundError:
            return Completed(argv, 127, "", f"{argv[0]}: command not found")
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            await _kill(proc)
            return Completed(argv, 124, "", f"{argv[0]}: timed out after {timeout} s")
        except BaseException:  # cancelled: no command runs on unseen
            await _kill(proc)
            raise
        return Completed(
            argv,
            proc.returncode if proc.returncode is not None else -1,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
        )


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    await proc.wait()


def host_name() -> str:
    """This host's name, as cluster tags carry it (letters, digits, ``.-``)."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "localhost"


def current_user() -> str:
    """The name of the user this process runs as."""
    return pwd.getpwuid(os.getuid()).pw_name


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (POSIX time), ``None`` when there is none."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # dead, not yet reaped
            return None
        return float(process.create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:  # another user's: it exists
        return 0.0


def process_alive(pid: int, group: bool = False) -> bool:
    """Whether process ``pid`` (with ``group``, any process of the process group
    ``pid``) exists; a process of another user counts as alive."""
    try:
        if group:
            os.killpg(pid, 0)
        else:
            os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def spawn_detached(
    argv: Sequence[str], env: Mapping[str, str]
) -> asyncio.subprocess.Process:
    """Start ``argv`` in its own session (so it can be killed as a group)."""
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, **env},
        start_new_session=True,
    )


Responder = Callable[[tuple[str, ...]], Completed]


@dataclass
class FakeRunner:
    """Answers commands by program name from saved output, and records them.

    ``responses[program]`` is a list of :class:`Completed` (used in turn, the last
    one repeated) or a function of the argv.
    """

    responses: dict[str, list[Completed] | Responder] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    #: each call's ``env`` additions
    environments: list[dict[str, str]] = field(default_factory=list)

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Completed:
        argv = tuple(argv)
        self.calls.append(argv)
        self.environments.append(dict(env or {}))
        answer = self.responses.get(argv[0])
        if answer is None:
            return Completed(argv, 127, "", f"{argv[0]}: no fake response")
        if callable(answer):
            return answer(argv)
        result = answer.pop(0) if len(answer) > 1 else answer[0]
        return Completed(argv, result.returncode, result.stdout, result.stderr)

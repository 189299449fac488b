"""The one place hpcdask starts processes.

Commands are argv lists, never shell strings. :class:`SubprocessRunner` runs them;
:class:`FakeRunner` answers from saved output so unit tests need no processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

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
        self, argv: Sequence[str], *, timeout: float = 60.0, cwd: str | None = None
    ) -> Completed:
        """Run ``argv`` to completion (in ``cwd``); a timeout or a missing program
        is reported as a failed :class:`Completed` (return code 124 or 127)."""
        ...


class SubprocessRunner:
    """Runs commands with asyncio's subprocess support."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(env) if env is not None else None
        #: every argv run, in order, for tests and for counting controller load.
        self.calls: list[tuple[str, ...]] = []

    async def run(
        self, argv: Sequence[str], *, timeout: float = 60.0, cwd: str | None = None
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
                env=self.env,
                cwd=cwd,
            )
        except FileNotFoundError:
            return Completed(argv, 127, "", f"{argv[0]}: command not found")
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            return Completed(argv, 124, "", f"{argv[0]}: timed out after {timeout} s")
        return Completed(
            argv,
            proc.returncode if proc.returncode is not None else -1,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
        )


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

    async def run(
        self, argv: Sequence[str], *, timeout: float = 60.0, cwd: str | None = None
    ) -> Completed:
        argv = tuple(argv)
        self.calls.append(argv)
        answer = self.responses.get(argv[0])
        if answer is None:
            return Completed(argv, 127, "", f"{argv[0]}: no fake response")
        if callable(answer):
            return answer(argv)
        result = answer.pop(0) if len(answer) > 1 else answer[0]
        return Completed(argv, result.returncode, result.stdout, result.stderr)

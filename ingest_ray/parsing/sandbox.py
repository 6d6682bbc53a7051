"""Run the CPU parser in a child process, so a hostile PDF can only ever kill the child.

The child is ``python -m ingest_ray.parsing.worker`` (a plain subprocess: no fork of a Ray
worker with its threads, works the same inside an actor). It caps its own address space and CPU
time; here we hold the wall clock, kill its whole process group when time is up or when the
caller is cancelled, and turn whatever came back into a typed error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from ingest_ray.parsing.errors import (
    BrokenPdfError,
    EncryptedPdfError,
    ParseError,
    ParseMemoryError,
    ParserCrashedError,
    ParseTimeoutError,
    TooManyPagesError,
)
from ingest_ray.parsing.settings import ParseSettings

Operation = Literal["parse", "probe", "split"]

_ERRORS: dict[str, type[ParseError]] = {
    "encrypted": EncryptedPdfError,
    "broken": BrokenPdfError,
    "too_many_pages": TooManyPagesError,
    "memory": ParseMemoryError,
}
_MEMORY_MARKERS = ("memoryerror", "cannot allocate memory", "out of memory", "bad_alloc")
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True, slots=True)
class SandboxAnswer:
    """What the child found: the page count, for ``parse`` the content list, for ``split``
    the page-range files it wrote (``(start, end, path)``; empty when short enough)."""

    pages: int
    items: list[dict[str, Any]] | None
    repaired: bool
    parts: tuple[tuple[int, int, Path], ...] = ()


async def run_sandboxed(
    op: Operation,
    pdf: Path,
    settings: ParseSettings,
    *,
    split_pages: int = 0,
    out: Path | None = None,
) -> SandboxAnswer:
    """Probe, parse or split ``pdf`` in a fresh child under the settings' limits (``split``
    writes its page ranges of at most ``split_pages`` pages into ``out``)."""
    command = _command(op, pdf, settings)
    if op == "split":
        command += ["--split-pages", str(split_pages), "--out", str(out or pdf.parent)]
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_child_env(),
        start_new_session=True,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), settings.timeout_s)
    except TimeoutError:
        raise ParseTimeoutError(
            f"parsing took longer than {settings.timeout_s:g} s; the parser was killed"
        ) from None
    finally:
        if proc.returncode is None:
            _kill_group(proc.pid)
            await proc.wait()
    return _answer(proc.returncode, stdout, stderr, settings)


class Prober:
    """Probes PDFs (page count, encrypted, damaged, too long) in a few long-lived sandboxed
    children (:class:`ProbeChild`) instead of a fresh child per PDF, which costs a Python start
    and a pdfium load each time. ``children`` probes run at once, each in a child of its own,
    so a PDF that takes long (a damaged one is rebuilt) does not hold up the others."""

    def __init__(
        self, settings: ParseSettings, *, children: int = 2, max_probes: int = 200
    ) -> None:
        if children < 1:
            raise ValueError("a prober needs at least one child")
        self._all = [ProbeChild(settings, max_probes=max_probes) for _ in range(children)]
        self._idle: asyncio.Queue[ProbeChild] = asyncio.Queue()
        for child in self._all:
            self._idle.put_nowait(child)

    async def probe(self, pdf: Path) -> SandboxAnswer:
        """What a child found in ``pdf``; a typed :class:`ParseError` when it is unusable."""
        child = await self._idle.get()
        try:
            return await child.probe(pdf)
        finally:
            self._idle.put_nowait(child)

    async def aclose(self) -> None:
        """Stop every child (each starts again with the next probe it gets)."""
        for child in self._all:
            await child.aclose()


class ProbeChild:
    """One long-lived sandboxed probing child, started on first use.

    The child is :func:`run_sandboxed`'s, under the same limits, taking one PDF per line. A
    probe that runs out of time or kills the child fails as it would there, and the next probe
    starts a fresh child; so does the probe after ``max_probes`` (which bounds what pdfium may
    leak; the child's CPU limit is ``max_probes`` probes' worth). Probes run one at a time."""

    def __init__(self, settings: ParseSettings, *, max_probes: int = 200) -> None:
        self._settings, self._max = settings, max_probes
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr: IO[bytes] | None = None
        self._done = 0
        self._lock = asyncio.Lock()

    async def probe(self, pdf: Path) -> SandboxAnswer:
        """What the child found in ``pdf``; a typed :class:`ParseError` when it is unusable."""
        async with self._lock:
            proc = self._proc
            if proc is None or proc.returncode is not None:  # not started, or died since
                proc = await self._start()
            assert proc.stdin is not None
            assert proc.stdout is not None
            try:
                proc.stdin.write(json.dumps({"path": str(pdf)}).encode() + b"\n")
                await proc.stdin.drain()
                line = await asyncio.wait_for(proc.stdout.readline(), self._settings.timeout_s)
            except TimeoutError:
                await self._stop()
                raise ParseTimeoutError(
                    f"probing took longer than {self._settings.timeout_s:g} s; the prober was "
                    "killed"
                ) from None
            except (BrokenPipeError, ConnectionResetError):
                line = b""
            except BaseException:  # cancelled mid-probe: the child's next answer is this one's
                await self._stop()
                raise
            if not line:
                returncode = await proc.wait()
                stderr = self._stderr_tail()
                await self._stop()
                raise _crash(returncode, stderr, self._settings)
            self._done += 1
            try:
                return _answer(0, line, b"", self._settings)
            except ParseMemoryError:
                await self._stop()  # a child out of memory stops after its answer
                raise
            finally:
                if self._done >= self._max:
                    await self._stop()

    async def aclose(self) -> None:
        """Stop the child (it is started again by the next probe)."""
        async with self._lock:
            await self._stop()

    async def _start(self) -> asyncio.subprocess.Process:
        await self._stop()  # a child that died between probes
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - kept for the child's life
        self._proc = await asyncio.create_subprocess_exec(
            *_command("probes", None, self._settings, probes=self._max),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr,
            env=_child_env(),
            start_new_session=True,
        )
        self._done = 0
        return self._proc

    def _stderr_tail(self) -> bytes:
        if self._stderr is None:
            return b""
        self._stderr.seek(0)
        return self._stderr.read()[-4096:]

    async def _stop(self) -> None:
        proc, stderr, self._proc, self._stderr = self._proc, self._stderr, None, None
        if proc is not None:
            if proc.returncode is None:
                _kill_group(proc.pid)
            if proc.stdin is not None:
                proc.stdin.close()
            await proc.wait()
        if stderr is not None:
            stderr.close()


def _command(
    op: Operation | Literal["probes"], pdf: Path | None, settings: ParseSettings, *, probes: int = 1
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ingest_ray.parsing.worker",
        op,
        *([str(pdf)] if pdf is not None else []),
        "--max-pages",
        str(settings.max_pages),
        "--memory-mb",
        str(settings.memory_mb),
        "--cpu-s",
        str((math.ceil(settings.timeout_s) + 5) * probes),
    ]


def _child_env() -> dict[str, str]:
    """The parent's environment, with this package importable even when not installed."""
    env = dict(os.environ)
    paths = [_PACKAGE_ROOT, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _answer(
    returncode: int | None, stdout: bytes, stderr: bytes, settings: ParseSettings
) -> SandboxAnswer:
    # a complete answer counts even if the child died afterwards (e.g. aborting at teardown)
    answer = _decode(stdout)
    if answer is not None and answer.get("ok") is True:
        return SandboxAnswer(
            pages=int(answer["pages"]),
            items=answer.get("items"),
            repaired=bool(answer.get("repaired")),
            parts=tuple((int(a), int(b), Path(p)) for a, b, p in answer.get("parts") or ()),
        )
    if answer is not None and answer.get("error") in _ERRORS:
        raise _ERRORS[answer["error"]](str(answer.get("message") or answer["error"]))
    raise _crash(returncode, stderr, settings)


def _decode(stdout: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _crash(returncode: int | None, stderr: bytes, settings: ParseSettings) -> ParseError:
    text = stderr.decode("utf-8", "replace")
    tail = text.strip().splitlines()[-1:] or [""]
    if any(marker in text.lower() for marker in _MEMORY_MARKERS):
        return ParseMemoryError(
            f"the parser ran out of memory ({settings.memory_mb} MiB): {tail[0]}"
        )
    if returncode is not None and returncode < 0:
        sig = -returncode
        if sig == signal.SIGXCPU:
            return ParseTimeoutError("the parser used up its CPU time and was stopped")
        if sig == signal.SIGABRT:
            # pdfium's answer to a failed allocation is abort() (FX_OutOfMemoryTerminate);
            # its internal checks trap instead, so an abort under our limit means memory
            return ParseMemoryError(
                f"the parser aborted on a failed allocation (limit {settings.memory_mb} MiB)"
            )
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return ParserCrashedError(f"the parser died of signal {name}: {tail[0]}")
    return ParserCrashedError(f"the parser exited with status {returncode}: {tail[0]}")

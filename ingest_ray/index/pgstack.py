"""A throw-away PostgreSQL cluster for tests and local runs (``initdb`` + ``pg_ctl``).

PostgreSQL refuses to run as root, so when this process is root the server runs as the
``postgres`` OS user (``runuser -u postgres --``) in a temporary directory it owns. The cluster
listens on a free loopback port only, trusts local connections, trades durability for speed
(``fsync=off``; ``durable=True`` keeps PostgreSQL's defaults) and has the ``vector`` extension
created (``extensions=()`` for none), so it is ready for the pgvector sink. For fault tests,
:meth:`TempPostgres.kill` kills the postmaster with SIGKILL (and what it leaves behind) and
:meth:`TempPostgres.restart` starts it again on the same data directory and port.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

from ingest_ray.errors import StackError
from ingest_ray.ports import free_port

_PG_ROOT = Path("/usr/lib/postgresql")


def find_pg_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` live: ``$PG_BINDIR``, the newest Debian
    ``/usr/lib/postgresql/N/bin``, or ``PATH``; None when PostgreSQL is not installed."""
    candidates: list[Path] = []
    if env := os.environ.get("PG_BINDIR"):
        candidates.append(Path(env))
    if _PG_ROOT.is_dir():
        versions = [p for p in _PG_ROOT.iterdir() if re.fullmatch(r"\d+(\.\d+)?", p.name)]
        versions.sort(key=lambda p: float(p.name), reverse=True)
        candidates.extend(p / "bin" for p in versions)
    if found := shutil.which("initdb"):
        candidates.append(Path(found).resolve().parent)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    return None


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc; empty where /proc is absent)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields and int(fields[1]) == pid:
            found.append(int(entry.parent.name))
    return found


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:  # a zombie (killed, not yet reaped by its parent) is gone for our purpose
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


class TempPostgres:
    """Start with :meth:`start` (or ``with``); :attr:`dsn` then points at a fresh cluster whose
    ``postgres`` database has the ``vector`` extension. :meth:`stop` removes everything.

    When running as root, ``base_dir`` (default: the system temp dir) and its parents must be
    traversable by the ``postgres`` user.
    """

    def __init__(
        self,
        *,
        bindir: Path | None = None,
        base_dir: Path | None = None,
        timeout: float = 60.0,
        extensions: Sequence[str] = ("vector",),
        durable: bool = False,
    ) -> None:
        self.bindir = bindir or find_pg_bindir()
        self.base_dir = base_dir
        self.timeout = timeout
        self.extensions = tuple(extensions)
        self.durable = durable
        self.root: Path | None = None
        self.port: int | None = None

    @property
    def dsn(self) -> str:
        """The libpq URL of the running cluster."""
        if self.port is None:
            raise StackError("temporary PostgreSQL is not running")
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres?sslmode=disable"

    def _as_server_user(self, args: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return args
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise StackError("running as root and there is no 'postgres' OS user") from None
        runuser = shutil.which("runuser")
        if runuser is None:
            raise StackError("running as root and 'runuser' is missing (util-linux)")
        return [runuser, "-u", "postgres", "--", *args]

    def _run(self, args: list[str]) -> None:
        result = subprocess.run(
            self._as_server_user(args),
            capture_output=True,
            text=True,
            timeout=self.timeout,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"{Path(args[0]).name} failed: {result.stderr.strip()[-2000:]}")

    def start(self) -> str:
        """Create and start the cluster; return its DSN."""
        if self.bindir is None:
            raise StackError("PostgreSQL is not installed (no initdb/pg_ctl found)")
        bindir = self.bindir
        self.root = Path(tempfile.mkdtemp(prefix="ingest-ray-pg-", dir=self.base_dir))
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        data = self.root / "data"
        try:
            self._run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ]
            )
            self._start_server(bindir, data)
            self._create_extension()
        except BaseException:
            self.stop()
            raise
        return self.dsn

    def _pg_ctl_start(self, bindir: Path, data: Path, port: int) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {self.root}"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                f"{self.root}/log",
                "-w",
                "-t",
                str(int(self.timeout)),
                "-o",
                options,
                "start",
            ]
        )

    def _start_server(self, bindir: Path, data: Path) -> None:
        last: StackError | None = None
        for _ in range(3):  # another process may take the free port before the server does
            port = free_port()
            try:
                self._pg_ctl_start(bindir, data, port)
            except StackError as exc:
                last = exc
                continue
            self.port = port
            return
        raise last or StackError("PostgreSQL did not start")

    def _create_extension(self) -> None:
        for name in self.extensions:
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(
                        sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(name))
                    )
            except psycopg.Error as exc:
                what = "pgvector" if name == "vector" else name
                raise StackError(
                    f"PostgreSQL started but the {what} extension is unavailable: {exc}"
                ) from exc

    # --- faults -------------------------------------------------------------------------------

    def postmaster_pid(self) -> int | None:
        """The running postmaster's pid (first line of ``postmaster.pid``), or None."""
        if self.root is None:
            return None
        try:
            return int((self.root / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill(self, timeout: float = 30.0) -> None:
        """``kill -9`` the postmaster, as a crash would; its backends are killed the same way
        once it is gone (they exit by themselves soon after, but a restart must not wait)."""
        pid = self.postmaster_pid()
        if pid is None:
            raise StackError("temporary PostgreSQL is not running")
        children = _children(pid)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        for child in [pid, *children]:
            while _alive(child) and time.monotonic() < deadline:
                if child != pid:
                    _signal(child, signal.SIGKILL)
                time.sleep(0.05)

    def restart(self) -> str:
        """Start the server again on the same data directory and port (crash recovery runs
        from the WAL); return the DSN, which has not changed."""
        if self.root is None or self.port is None or self.bindir is None:
            raise StackError("temporary PostgreSQL was never started")
        self._clear_dead_lock_file()
        self._pg_ctl_start(self.bindir, self.root / "data", self.port)
        return self.dsn

    def _clear_dead_lock_file(self) -> None:
        # a SIGKILLed postmaster stays a zombie until its parent (often init) reaps it, and
        # PostgreSQL takes a pid that still answers kill(pid, 0) for a running server
        pid = self.postmaster_pid()
        if pid is None or self.root is None:
            return
        deadline = time.monotonic() + 5.0
        while _exists(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _alive(pid):
            (self.root / "data" / "postmaster.pid").unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop the server (if this object started it) and delete its directory."""
        if self.root is None:
            return
        data = self.root / "data"
        pid = self.postmaster_pid()
        if self.port is not None and self.bindir is not None and pid and _alive(pid):
            try:
                self._run(
                    [str(self.bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
                )
            except (StackError, subprocess.TimeoutExpired):
                self._run([str(self.bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
        self.port = None

    def __enter__(self) -> TempPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

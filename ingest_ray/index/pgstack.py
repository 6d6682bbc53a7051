"""A throw-away PostgreSQL cluster for tests and local runs (``initdb`` + ``pg_ctl``).

PostgreSQL refuses to run as root, so when this process is root the server runs as the
``postgres`` OS user (``runuser -u postgres --``) in a temporary directory it owns. The cluster
listens on a free loopback port only, trusts local connections, trades durability for speed
(``fsync=off``) and has the ``vector`` extension created, so it is ready for the pgvector sink.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import psycopg

from ingest_ray.errors import StackError

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TempPostgres:
    """Start with :meth:`start` (or ``with``); :attr:`dsn` then points at a fresh cluster whose
    ``postgres`` database has the ``vector`` extension. :meth:`stop` removes everything.

    When running as root, ``base_dir`` (default: the system temp dir) and its parents must be
    traversable by the ``postgres`` user.
    """

    def __init__(
        self, *, bindir: Path | None = None, base_dir: Path | None = None, timeout: float = 60.0
    ) -> None:
        self.bindir = bindir or find_pg_bindir()
        self.base_dir = base_dir
        self.timeout = timeout
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

    def _start_server(self, bindir: Path, data: Path) -> None:
        last: StackError | None = None
        for _ in range(3):  # another process may take the free port before the server does
            port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {port} -k {self.root} -c fsync=off"
                " -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
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
            except StackError as exc:
                last = exc
                continue
            self.port = port
            return
        raise last or StackError("PostgreSQL did not start")

    def _create_extension(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as exc:
            raise StackError(
                f"PostgreSQL started but the pgvector extension is unavailable: {exc}"
            ) from exc

    def stop(self) -> None:
        """Stop the server (if this object started it) and delete its directory."""
        if self.root is None:
            return
        data = self.root / "data"
        if self.port is not None and self.bindir is not None and (data / "postmaster.pid").exists():
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

"""A throwaway PostgreSQL server for the tests, the benchmarks and `.ci/run`: the
machine's own server binaries (`initdb`, `pg_ctl`), a data folder in a temporary
directory, a free loopback port, run as a non-root user (PostgreSQL refuses root), and
a fresh database per test.

    python -m bot.standins.postgres start DIR   # prints `export TEST_DATABASE_URL=...`
    python -m bot.standins.postgres stop DIR

Not a stand-in of a remote service like its neighbours: a real server, started here.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

USER = "usagebot"
RUN_AS = "nobody"  # when started as root: initdb and postgres refuse to run as root
# Durability off: a test server is thrown away, and fsync costs seconds over a suite.
FAST = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")


@dataclass(frozen=True)
class Server:
    url: str  # the admin database (`postgres`) as USER, password included
    folder: Path

    def database(self, prefix: str = "t") -> str:
        """A new empty database on this server: its URL."""
        return create_database(self.url, prefix)

    def stop(self) -> None:
        stop(self.folder)


def binary(name: str) -> str:
    """`initdb`/`pg_ctl` from PATH, else from Debian's versioned folder."""
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise RuntimeError(
            f"PostgreSQL's {name} was not found (install the PostgreSQL 15 server, or set "
            "TEST_DATABASE_URL to a server the tests may create databases on)"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(args: list[str], *, as_user: bool) -> None:
    if as_user:
        args = ["runuser", "-u", RUN_AS, "--", *args]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed: {done.stderr.strip() or done.stdout}")


def start(folder: Path, *, fast: bool = True) -> Server:
    """initdb into `folder`/data and start the server on a free loopback port."""
    folder.mkdir(parents=True, exist_ok=True)
    root = os.geteuid() == 0
    password = secrets.token_hex(8)
    (folder / "pw").write_text(password + "\n")
    if root:  # the server's files belong to the user it runs as
        shutil.chown(folder, RUN_AS)
        shutil.chown(folder / "pw", RUN_AS)
    data = folder / "data"
    _run(
        [
            binary("initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            "--pwfile",
            str(folder / "pw"),
            "-A",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        as_user=root,
    )
    port = free_port()
    options = ["-c", "listen_addresses=127.0.0.1", "-p", str(port), "-k", str(folder)]
    if fast:
        options += FAST
    _run(
        [
            binary("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(folder / "server.log"),
            "-o",
            " ".join(options),
            "-w",
            "start",
        ],
        as_user=root,
    )
    (folder / "port").write_text(f"{port}\n")
    return Server(f"postgresql://{USER}:{password}@127.0.0.1:{port}/postgres", folder)


def stop(folder: Path) -> None:
    data = folder / "data"
    if (data / "postmaster.pid").exists():
        _run(
            [binary("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            as_user=os.geteuid() == 0,
        )


@contextmanager
def admin_url(variable: str = "BENCH_DATABASE_URL", *, fast: bool = False) -> Iterator[str]:
    """A server to create databases on: the one `variable` names, or a throwaway one
    started here (durable settings unless `fast`) and stopped on the way out."""
    given = os.environ.get(variable)
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)  # the server's user must reach its folder
        server = start(folder / "server", fast=fast)
        try:
            yield server.url
        finally:
            server.stop()


def create_database(admin_url: str, prefix: str = "t") -> str:
    """CREATE DATABASE with a unique name; its URL (the admin URL's user and password)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print(__doc__, file=sys.stderr)
        return 2
    folder = Path(argv[1])
    if argv[0] == "start":
        server = start(folder)
        print(f"export TEST_DATABASE_URL={server.url}")
    else:
        stop(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A private PostgreSQL cluster for ``api-router dev`` and the tests: ``initdb`` into a
directory of its own, served on one loopback port by a child process.

PostgreSQL refuses to run as root, so when we are root the cluster belongs to the
``postgres`` user (which Debian's ``postgresql`` package creates) and its processes run as
that user; otherwise as ourselves. The binaries are found on PATH or, as Debian installs
them, under ``/usr/lib/postgresql/<version>/bin`` (the newest).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import psycopg

_DEBIAN_BINARIES = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"


class PostgresMissing(Exception):
    """No PostgreSQL server binaries here (``make bootstrap`` installs them)."""


def binary(name: str) -> str:
    """The full path of a PostgreSQL server binary (``initdb``, ``postgres``)."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(
        (p for p in _DEBIAN_BINARIES.glob("*/bin") if (p / name).exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        raise PostgresMissing(
            f"PostgreSQL's {name} was not found on PATH nor under {_DEBIAN_BINARIES}; "
            "install Debian's postgresql package (make bootstrap does)"
        )
    return str(versions[-1] / name)


def cluster_user() -> str | None:
    """The user the cluster runs as: ``postgres`` when we are root, else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise PostgresMissing(
            "PostgreSQL refuses root and there is no postgres user; install Debian's "
            "postgresql package (it creates one) or run as an unprivileged user"
        ) from None
    return SUPERUSER


def init_cluster(data: Path) -> None:
    """``initdb`` into ``data`` unless a cluster is there already; trust on loopback only."""
    if (data / "PG_VERSION").exists():
        return
    data.mkdir(parents=True, exist_ok=True)
    user = cluster_user()
    if user is not None:
        _check_reachable(data)
        shutil.chown(data, user, user)
    data.chmod(0o700)
    subprocess.run(
        [
            binary("initdb"),
            "--pgdata",
            str(data),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        ],
        user=user,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _check_reachable(data: Path) -> None:
    """The postgres user must be able to walk down to ``data`` (root's own 0700 folders,
    like pytest's temporary ones, would stop it with an unhelpful error later)."""
    for parent in data.resolve().parents:
        if not parent.stat().st_mode & 0o001:
            raise PostgresMissing(
                f"the {SUPERUSER} user cannot reach {data}: {parent} is closed to other "
                "users; put the run directory elsewhere"
            )


def server_argv(data: Path, port: int, *settings: str) -> list[str]:
    """The ``postgres`` command serving ``data`` on 127.0.0.1:``port`` (socket file in
    ``data``); ``settings``: more ``name=value`` server settings."""
    argv = [binary("postgres"), "-D", str(data), "-p", str(port)]
    for setting in ("listen_addresses=127.0.0.1", f"unix_socket_directories={data}", *settings):
        argv += ["-c", setting]
    return argv


def url(port: int, database: str) -> str:
    return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{database}"


def answers(port: int) -> bool:
    try:
        with psycopg.connect(url(port, "postgres"), connect_timeout=1):
            return True
    except psycopg.OperationalError:
        return False


def ensure_database(port: int, name: str) -> str:
    """Create database ``name`` if missing; returns its URL."""
    with psycopg.connect(url(port, "postgres"), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if found is None:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    return url(port, name)

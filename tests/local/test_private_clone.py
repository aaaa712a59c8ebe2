"""A clone in a folder only its owner can enter (a root's mode-700 home, a ``mktemp -d``):
``make infra-up`` starts Kafka, PostgreSQL and FerretDB from it.

The clone is the working tree's tracked files, so the test checks the code under test, not the
last commit. It runs on ports of its own (never the shared 9092/27017/54329), reuses the
installed Kafka jars and FerretDB binary (linked in, nothing is rebuilt) and stops and deletes
what it started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient

from lienthong_local.platform import free_port

ROOT = Path(__file__).resolve().parents[2]
INSTALLED = Path(os.environ.get("LIENTHONG_DATA_DIR", ROOT / "deploy" / "local" / ".data"))


def copy_tracked_files(source: Path, target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z"],
        cwd=source,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        origin = source / name
        if origin.is_file():  # a tracked file deleted in the working tree is left out
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / name)


@pytest.fixture
def private_clone(infra: None, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o700)
    clone = home / "lienthong"
    copy_tracked_files(ROOT, clone)
    data = clone / "deploy" / "local" / ".data"
    data.mkdir()
    # the installs infra-up would otherwise redo (minutes): the same jars and binary
    (data / "kafka-libs").symlink_to(INSTALLED / "kafka-libs")
    (data / "bin").symlink_to(INSTALLED / "bin")
    return clone


@pytest.fixture
def own_ports() -> dict[str, str]:
    names = ("KAFKA", "KAFKA_CONTROLLER", "MONGO", "PG")
    return {f"LIENTHONG_{name}_PORT": str(free_port()) for name in names}


@pytest.fixture
def clone_env(own_ports: dict[str, str]) -> dict[str, str]:
    inherited = {
        key: value
        for key, value in os.environ.items()
        # not the outer make's (make test runs pytest) nor a data or PostgreSQL dir set for
        # the shared infrastructure
        if key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "LIENTHONG_DATA_DIR", "LIENTHONG_PG_DIR"}
    }
    return {**inherited, **own_ports, "KAFKA_HEAP": "256m", "LIENTHONG_STORE_BACKEND": "postgresql"}


@pytest.fixture
def started_in_clone(
    private_clone: Path, clone_env: dict[str, str], own_ports: dict[str, str]
) -> Iterator[Path]:
    try:
        yield private_clone
    finally:
        # stops Kafka, FerretDB and PostgreSQL and deletes their data (PostgreSQL's may live
        # outside the clone); the linked installs are left alone
        subprocess.run(
            [str(private_clone / "deploy" / "local" / "infra.sh"), "purge"],
            env=clone_env,
            capture_output=True,
            check=False,
        )
    still_open = [port for port in own_ports.values() if listening(int(port))]
    assert not still_open, f"still listening after infra.sh purge: {still_open}"


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def run_make(clone: Path, env: dict[str, str], target: str) -> str:
    done = subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, f"make {target} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_infra_up_works_from_a_folder_only_its_owner_can_enter(
    started_in_clone: Path, clone_env: dict[str, str], own_ports: dict[str, str]
) -> None:
    clone = started_in_clone
    run_make(clone, clone_env, "infra-up")

    # the store answers on its own port, on PostgreSQL, and keeps what it is given
    mongo_port = int(own_ports["LIENTHONG_MONGO_PORT"])
    with MongoClient("127.0.0.1", mongo_port, serverSelectionTimeoutMS=10_000) as client:
        collection = client["private_clone"]["probe"]
        collection.insert_one({"_id": "clone", "where": str(clone)})
        assert collection.find_one({"_id": "clone"}) == {"_id": "clone", "where": str(clone)}

    status = run_make(clone, clone_env, "infra-status")
    assert f"Kafka: answering on 127.0.0.1:{own_ports['LIENTHONG_KAFKA_PORT']}" in status
    assert f"store: answering on 127.0.0.1:{mongo_port}" in status
    pg_data = next(line for line in status.splitlines() if "PostgreSQL:" in line)
    if os.getuid() == 0:
        # the postgres user cannot enter the clone: its data must live elsewhere
        assert str(clone.parent) not in pg_data, pg_data

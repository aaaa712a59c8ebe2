"""The README's examples, run as written against a platform started as ``make run`` starts it.

Every ```sh block of README.md runs command by command (a command is the lines up to where
bash can parse it; comment lines are left out), in order, in bash with pipefail, each one
having to succeed. What the test changes, and only this:

* the ports: the platform runs on free ports, written in place of 127.0.0.1:50051-50055 and
  127.0.0.1:9101-9105 (``make replay`` gets them as ``--document``/``--reporting``);
* ``<id from submit>``: the ``document_id`` the block's ``SubmitDocument`` answered, as the
  README tells the user to paste it;
* a streaming call (``/Watch…``) must still be streaming after a few seconds; it is then stopped
  as the user stops it (the README says "until Ctrl-C");
* a variable a block assigns (``month=$(…)``) is kept for the commands after it, as in the
  user's shell.

A block right after ``<!-- readme-test: skip: <reason> -->`` is reported as skipped with the
reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lienthong_local.platform import DEFAULT_PORTS, Platform
from lienthong_local.run import local_platform
from lienthong_testing.cleanup import remove_namespace

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip:\s*(.+?)\s*-->")
ASSIGNMENT = re.compile(r"[A-Za-z_]\w*=(\$\(.*\)|\S+)")
ID_PLACEHOLDER = "<id from submit>"
STREAM_SECONDS = 5.0


@dataclass(frozen=True)
class Block:
    line: int
    text: str
    skip: str | None


def readme_blocks() -> list[Block]:
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        if lines[index].strip() != "```sh":
            index += 1
            continue
        before = [line for line in lines[:index] if line.strip()]
        marker = SKIP.search(before[-1]) if before else None
        end = lines.index("```", index + 1)
        blocks.append(Block(index + 1, "\n".join(lines[index + 1 : end]), marker and marker[1]))
        index = end + 1
    return blocks


def commands(block: str) -> list[str]:
    """Split a block into whole commands: lines are added until bash can parse the result."""
    found: list[str] = []
    pending: list[str] = []
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending.append(line)
        text = "\n".join(pending)
        parses = subprocess.run(["bash", "-n", "-c", text], capture_output=True, check=False)
        if not line.endswith("\\") and parses.returncode == 0:
            found.append(text)
            pending = []
    assert not pending, f"an unfinished command at the end of a block: {pending}"
    return found


@dataclass
class Session:
    """The user's terminal: where the services are, what they were told, what they assigned."""

    platform: Platform
    env: dict[str, str]
    assignments: list[str] = field(default_factory=list)
    document_id: str | None = None

    def as_written(self, command: str) -> str:
        for name, (grpc_port, metrics_port) in DEFAULT_PORTS.items():
            service = self.platform.processes[name]
            command = command.replace(f"127.0.0.1:{grpc_port}", service.endpoint)
            command = command.replace(
                f"127.0.0.1:{metrics_port}", f"127.0.0.1:{service.metrics_port}"
            )
        if ID_PLACEHOLDER in command:
            assert self.document_id, "no SubmitDocument answered before this command"
            command = command.replace(ID_PLACEHOLDER, self.document_id)
        if command.startswith("make replay"):
            document = self.platform.endpoint("document-service")
            reporting = self.platform.endpoint("reporting-service")
            command = command.replace(
                "make replay",
                f"make --no-print-directory replay "
                f"REPLAY_ARGS='--document {document} --reporting {reporting}'",
                1,
            )
        return "\n".join([*self.assignments, command])

    def run(self, command: str) -> None:
        script = self.as_written(command)
        if "/Watch" in command:
            self.stream(script, command)
            return
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", script],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        assert done.returncode == 0, (
            f"README command failed ({done.returncode}):\n{command}\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
        if ASSIGNMENT.fullmatch(command.strip()):
            self.assignments.append(command.strip())
        if "/SubmitDocument" in command:
            answer = json.loads(done.stdout)
            self.document_id = answer.get("document", {}).get("document_id")
            assert self.document_id, f"SubmitDocument answered no document_id:\n{done.stdout}"

    def stream(self, script: str, command: str) -> None:
        process = subprocess.Popen(
            ["bash", "-o", "pipefail", "-c", script],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            process.wait(STREAM_SECONDS)
        except subprocess.TimeoutExpired:
            process.terminate()  # the user's Ctrl-C
            process.communicate(timeout=30)
            return
        stdout, stderr = process.communicate()
        pytest.fail(
            f"a streaming README command ended by itself ({process.returncode}):\n{command}\n"
            f"--- stdout\n{stdout}\n--- stderr\n{stderr}"
        )


def user_env() -> dict[str, str]:
    gopath = subprocess.run(
        ["go", "env", "GOPATH"], capture_output=True, text=True, check=True
    ).stdout.strip()
    # the README tells the user to put the Go bin folder on PATH; make adds the project's own
    path = os.pathsep.join(
        [f"{gopath}/bin", str(ROOT / ".venv" / "bin"), str(ROOT / ".tools" / "bin")]
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}
    }
    env["PATH"] = f"{path}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def session(infra: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    env = user_env()
    missing = [
        tool for tool in ("grpcurl", "promtool", "curl") if not shutil.which(tool, path=env["PATH"])
    ]
    if missing:
        pytest.fail(f"the README's examples need {missing}: make example-tools installs them")
    prefix = f"readme{uuid.uuid4().hex[:8]}_"
    log_dir = tmp_path_factory.mktemp("readme-platform")
    # environ={}: make run's defaults, whatever switches this test run was started with
    with local_platform(log_dir=log_dir, environ={}, prefix=prefix, fixed_ports=False) as running:
        yield Session(running, env)
    remove_namespace(prefix, kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")


BLOCKS = readme_blocks()


@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{block.line}" for block in BLOCKS])
def test_readme_block_runs_as_written(block: Block, request: pytest.FixtureRequest) -> None:
    if block.skip:
        pytest.skip(block.skip)
    session: Session = request.getfixturevalue("session")
    for command in commands(block.text):
        session.run(command)


def test_the_readme_has_runnable_blocks() -> None:
    # a parser that found nothing would pass every block
    runnable = [block for block in BLOCKS if not block.skip]
    assert runnable
    assert sum(len(commands(block.text)) for block in runnable) >= 20


def test_the_reporting_examples_ask_for_this_month() -> None:
    # a literal month is empty on any later date
    for block in BLOCKS:
        # JSON ("period": "2026-11") and command-line (--period 2026-11) forms
        assert not re.search(r'period\\?": \\?"\d{4}|--period[ =]"?\d{4}', block.text), block.text

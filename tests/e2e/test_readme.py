"""The README's examples, run as written against a platform started as ``make run`` starts it.

Every ```sh block of README.md runs command by command (a command is the lines up to where
bash can parse it; comment lines are left out), in order, in bash with pipefail, each one
having to succeed, in a folder of its own that sees the clone's files (what a command writes,
``bao-cao.xlsx``, ``received.edxml``, stays there). The platform trusts make run's demo PKI
(``deploy/local/.data/demo-pki``, written once). What the test changes, and only this:

* the ports: the platform runs on free ports, written in place of 127.0.0.1:50051-50055,
  127.0.0.1:9101-9105 and the gateway's 127.0.0.1:8480 (``make replay`` gets them as
  ``--document``/``--reporting``; the ``lienthong`` command finds them in the current profile
  of a config file of the test's own, ``LIENTHONG_CONFIG``, as a user's profile would say);
* ``<id from submit>``: the ``document_id`` the block's ``SubmitDocument`` answered, and
  ``<document_id>``: the one the gateway answered, as the README tells the user to paste them;
* a streaming call (``/Watch…``, ``inbox watch``) must still be streaming after a few seconds;
  it is then stopped as the user stops it (the README says "until Ctrl-C");
* a variable a block assigns (``month=$(…)``) is kept for the commands after it, as in the
  user's shell.

An answer the README shows after a command (``# -> "verdict": "VERDICT_ACCEPTED"``; ``...``
stands for anything, spaces are not compared) must be in what the command printed; the command
is repeated for up to a minute until it is (a document reaches an inbox "a moment later").

A block right after ``<!-- readme-test: skip: <reason> -->`` is reported as skipped with the
reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lienthong_cli.connection import LOCAL_PORTS
from lienthong_local.platform import DEFAULT_PORTS, Platform
from lienthong_local.run import DEMO_PKI_FOLDER, GATEWAY_HTTP_PORT, local_platform
from lienthong_testing.cleanup import remove_namespace
from lienthong_testing.pki import demo_pki

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip:\s*(.+?)\s*-->")
ASSIGNMENT = re.compile(r"""[A-Za-z_]\w*=(\$\(.*\)|'[^']*'|"[^"]*"|\S+)""")
ID_PLACEHOLDER = "<id from submit>"
GATEWAY_ID_PLACEHOLDER = "<document_id>"
STREAMING = re.compile(r"/Watch|\binbox watch\b")
ANSWER = re.compile(r"#\s*->\s*(.+)$")
STREAM_SECONDS = 5.0
ANSWER_SECONDS = 60.0


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
    folder: Path
    assignments: list[str] = field(default_factory=list)
    document_id: str | None = None
    gateway_document_id: str | None = None

    def as_written(self, command: str) -> str:
        """The command with this platform's ports and the answered ids in place."""
        for name, (grpc_port, metrics_port) in DEFAULT_PORTS.items():
            service = self.platform.processes[name]
            command = command.replace(f"127.0.0.1:{grpc_port}", service.endpoint)
            command = command.replace(
                f"127.0.0.1:{metrics_port}", f"127.0.0.1:{service.metrics_port}"
            )
        gateway_port = self.platform.env["LIENTHONG_GATEWAY_HTTP_PORT"]
        command = command.replace(f"127.0.0.1:{GATEWAY_HTTP_PORT}", f"127.0.0.1:{gateway_port}")
        if ID_PLACEHOLDER in command:
            assert self.document_id, "no SubmitDocument answered before this command"
            command = command.replace(ID_PLACEHOLDER, self.document_id)
        if GATEWAY_ID_PLACEHOLDER in command:
            assert self.gateway_document_id, "no gateway POST answered a document_id before this"
            command = command.replace(GATEWAY_ID_PLACEHOLDER, self.gateway_document_id)
        if command.startswith("make replay"):
            document = self.platform.endpoint("document-service")
            reporting = self.platform.endpoint("reporting-service")
            command = command.replace(
                "make replay",
                f"make --no-print-directory replay "
                f"REPLAY_ARGS='--document {document} --reporting {reporting}'",
                1,
            )
        return command

    def run(self, command: str) -> None:
        written = self.as_written(command)
        script = "\n".join([*self.assignments, written])
        if STREAMING.search(command):
            self.stream(script, command)
            return
        shown = ANSWER.search(command.splitlines()[-1])
        deadline = time.monotonic() + ANSWER_SECONDS
        while True:
            done = subprocess.run(
                ["bash", "-o", "pipefail", "-c", script],
                cwd=self.folder,
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
            if shown is None or shows(done.stdout, shown[1]):
                break
            assert time.monotonic() < deadline, (
                f"README command did not answer what the README shows ({shown[1]}):\n{command}\n"
                f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
            )
            time.sleep(1.0)
        if ASSIGNMENT.fullmatch(command.strip()):
            self.assignments.append(written.strip())
        if "/SubmitDocument" in command:
            answer = json.loads(done.stdout)
            self.document_id = answer.get("document", {}).get("document_id")
            assert self.document_id, f"SubmitDocument answered no document_id:\n{done.stdout}"
        if "/v1/documents " in command and "-X POST" in command:
            self.gateway_document_id = json.loads(done.stdout).get("document_id")
            assert self.gateway_document_id, f"the gateway answered no document_id:\n{done.stdout}"

    def stream(self, script: str, command: str) -> None:
        process = subprocess.Popen(
            ["bash", "-o", "pipefail", "-c", script],
            cwd=self.folder,
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


def shows(printed: str, answer: str) -> bool:
    """Whether ``printed`` has each part of ``answer`` around its ``...`` (spaces ignored)."""
    flat = re.sub(r"\s+", "", printed)
    return all(re.sub(r"\s+", "", part) in flat for part in answer.split("...") if part.strip())


def user_folder(folder: Path) -> Path:
    """A working folder that sees every file of the clone (links), where commands write."""
    for entry in ROOT.iterdir():
        (folder / entry.name).symlink_to(entry)
    return folder


def profile(env: dict[str, str], platform: Platform) -> None:
    """The user's current ``lienthong`` profile, naming where this platform's services are."""
    endpoints = [f"--endpoint={key}={platform.endpoint(f'{key}-service')}" for key in LOCAL_PORTS]
    subprocess.run(
        ["lienthong", "profile", "add", "readme-test", *endpoints, "--use"],
        env=env,
        check=True,
        capture_output=True,
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
    env["LIENTHONG_CONFIG"] = str(tmp_path_factory.mktemp("readme-config") / "config.toml")
    folder = user_folder(tmp_path_factory.mktemp("readme-user"))
    demo = demo_pki(ROOT / DEMO_PKI_FOLDER)
    # environ={}: make run's defaults, whatever switches this test run was started with
    # six services and their validation workers starting at once on a shared machine
    with local_platform(
        log_dir=log_dir, environ={}, prefix=prefix, fixed_ports=False, demo=demo, timeout=300
    ) as running:
        profile(env, running)
        yield Session(running, env, folder)
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


def test_only_what_needs_a_cluster_or_runs_the_test_is_skipped() -> None:
    # the CLI, signature and gateway examples run too (issues #17, #21)
    skipped = [block for block in BLOCKS if block.skip]
    assert all("make test" in block.text or "kubectl" in block.text for block in skipped), [
        block.text.splitlines()[0] for block in skipped
    ]
    text = "\n".join(block.text for block in BLOCKS if not block.skip)
    for needed in ("lienthong ", "/VerifyDocument", "/ValidateCertificate", "$GW/v1/documents"):
        assert needed in text, needed


def test_a_quoted_assignment_is_kept_for_the_commands_after_it() -> None:
    for kept in ("month=$(date +%Y-%m)", "GW=http://127.0.0.1:8480", "SENDER='x: unit/1'"):
        assert ASSIGNMENT.fullmatch(kept), kept
    assert not ASSIGNMENT.fullmatch("SENDER=x curl -s $GW")


def test_an_answer_the_readme_shows_is_compared_without_spaces() -> None:
    # what the runner relies on to fail a command that answers something else
    printed = '{\n  "accepted": true,\n  "reason": "2 valid signature(s)"\n}'
    assert shows(printed, '"accepted": true')
    assert shows('{"ids":["a"],"next":""}', '{"ids": [...], ...}')
    assert not shows(printed, '"accepted": false')
    assert not shows('{"failed_rule": "signatures-valid"}', '"accepted": true ... revoked')


def test_the_reporting_examples_ask_for_this_month() -> None:
    # a literal month is empty on any later date
    for block in BLOCKS:
        # JSON ("period": "2026-11") and command-line (--period 2026-11) forms
        assert not re.search(r'period\\?": \\?"\d{4}|--period[ =]"?\d{4}', block.text), block.text

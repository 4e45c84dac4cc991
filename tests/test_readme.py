"""README's quickstart works exactly as printed (issue 15 §1).

The first ``sh`` block under "## Using it" is parsed out of README.md and its commands run
as written, from the repository root, with only the per-user directories moved to a
temporary place (``XDG_RUNTIME_DIR`` for the socket, ``XDG_STATE_HOME`` for the journal) so
the test touches nothing of the user's: ``execd run`` in the background, every other line in
order, each expected to exit 0. When the README drifts from what works, this fails.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 60.0
COMMAND_SECONDS = 150.0


def quickstart_commands(readme: str, heading: str = "## Using it") -> list[list[str]]:
    """The commands of the first ``sh`` block after `heading`, comments stripped."""
    section = readme.split(heading, 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"README's {heading!r} has no ```sh block"
    commands = []
    for line in match.group(1).splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(words)
    return commands


def test_quickstart_block_is_the_one_documented() -> None:
    """The block has the shape the issue asks for: install, the daemon on the sim, submit
    the sample plan following it, then look at it (a guard for the runner below)."""
    commands = quickstart_commands((REPO / "README.md").read_text(encoding="utf-8"))
    assert commands[0] == ["make", "install"]
    assert commands[1] == [".venv/bin/execd", "run", "--venue", "sim"]
    assert commands[2] == [".venv/bin/execd", "submit", "config/sample-plan.json", "--follow"]
    assert all(c[0] == ".venv/bin/execd" for c in commands[1:])


@pytest.fixture
def user_dirs() -> Iterator[dict[str, str]]:
    """The environment of a user with nothing configured, in a throwaway home."""
    with tempfile.TemporaryDirectory(prefix="xq", dir="/tmp") as tmp:
        runtime = Path(tmp) / "run"
        runtime.mkdir(mode=0o700)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("APCA_", "EXECD_"))
            and "__" not in key  # no SECTION__KEY override leaks in
        }
        env.update(
            XDG_RUNTIME_DIR=str(runtime),
            XDG_STATE_HOME=str(Path(tmp) / "state"),
            HOME=tmp,
            COLUMNS="160",
        )
        yield env


def _wait_socket(path: Path, daemon: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not path.exists():
        assert daemon.poll() is None, "execd run exited during startup"
        assert time.monotonic() < deadline, f"no socket at {path}"
        time.sleep(0.1)


def test_readme_quickstart_runs_as_printed(user_dirs: dict[str, str]) -> None:
    """Every command of the quickstart exits 0, as printed, on the shipped configuration;
    the plan it submits completes; every command of "Post-trade reports" then exits 0 on
    it; and the daemon stops cleanly on SIGTERM."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = quickstart_commands(readme)
    install, run, *clients = commands
    html = REPO / "report.html"  # written by the reports block's --html line
    assert not html.exists(), "a report.html is already in the repository root"
    assert install == ["make", "install"]  # the test's own venv is that install
    socket = Path(user_dirs["XDG_RUNTIME_DIR"]) / "execd" / "execd.sock"
    log = Path(user_dirs["HOME"]) / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(run, cwd=REPO, env=user_dirs, stdout=out, stderr=out)
        try:
            _wait_socket(socket, daemon)
            for command in clients:
                done = subprocess.run(
                    command,
                    cwd=REPO,
                    env=user_dirs,
                    capture_output=True,
                    text=True,
                    timeout=COMMAND_SECONDS,
                    check=False,
                )
                assert done.returncode == 0, (
                    f"{shlex.join(command)} exited {done.returncode}:\n{done.stdout}\n"
                    f"{done.stderr}\n--- daemon log tail ---\n{log.read_text()[-3000:]}"
                )
            again = subprocess.run(
                clients[0][:-1], cwd=REPO, env=user_dirs, capture_output=True, text=True
            )
            assert again.returncode == 0
            assert "already submitted, nothing sent" in again.stderr
            # README's "Post-trade reports" block, as printed, on the plan just run.
            for command in quickstart_commands(readme, "## Post-trade reports"):
                done = subprocess.run(
                    command,
                    cwd=REPO,
                    env=user_dirs,
                    capture_output=True,
                    text=True,
                    timeout=COMMAND_SECONDS,
                    check=False,
                )
                assert done.returncode == 0, (
                    f"{shlex.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
                )
            assert "<svg" in html.read_text(encoding="utf-8")
        finally:
            html.unlink(missing_ok=True)
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(timeout=60)
    assert code == 0


def test_execd_sim_says_which_key_and_secret_it_accepts(user_dirs: dict[str, str]) -> None:
    """`execd sim` prints its URLs (stdout, JSON) and the key and secret it accepts (stderr),
    in the environment variables' names the daemon reads."""
    with subprocess.Popen(
        [str(REPO / ".venv/bin/execd"), "sim", "--key", "K1", "--secret", "S1"],
        cwd=REPO,
        env=user_dirs,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as sim:
        try:
            assert sim.stdout is not None
            assert sim.stderr is not None
            assert "trading_url" in sim.stdout.readline()
            assert sim.stderr.readline().strip() == (
                "execd sim: accepting APCA_API_KEY_ID=K1 APCA_API_SECRET_KEY=S1"
            )
        finally:
            sim.send_signal(signal.SIGTERM)
            assert sim.wait(timeout=30) == 0

"""`ami COMMAND` builds only that command's parser; each one alone parses as it does
beside the others."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

import pytest

from amimesh.cli import main


@pytest.mark.parametrize("name", main.COMMANDS)
def test_each_command_parses_alone(name: str) -> None:
    word = name.replace("_", "-")
    assert main._command([word]) == name
    alone = main.parser(main._command([word]))
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        alone.parse_args([word, "--help"])
    assert done.value.code == 0
    full = io.StringIO()
    with contextlib.redirect_stdout(full), pytest.raises(SystemExit):
        main.parser().parse_args([word, "--help"])
    assert out.getvalue() == full.getvalue()


def test_running_a_command_imports_no_other() -> None:
    # In a fresh interpreter: the node agent, started by every `ami up`.
    code = (
        "import sys; from amimesh.cli import main; main.parser('node'); "
        "print(sorted(n for n in main.COMMANDS if 'amimesh.cli.cmd_' + n in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["['node']"]


def test_anything_else_gets_the_whole_command_line() -> None:
    assert main._command(["--help"]) is None
    assert main._command(["no-such-command"]) is None
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit) as done:
        main.main(["no-such-command"])
    assert done.value.code == 2


def test_the_mesh_processes_skip_the_search_for_pydantic_plugins() -> None:
    # In a fresh interpreter: once skipped, building a model never looks at the
    # installed packages' entry points (made to fail here), and the environment that
    # apps inherit is untouched.
    code = (
        "import importlib.metadata, os, pydantic\n"
        "from amimesh.cli import main\n"
        "main.without_pydantic_plugins()\n"
        "def boom(*a, **k): raise AssertionError('entry points scanned')\n"
        "importlib.metadata.entry_points = boom\n"
        "class M(pydantic.BaseModel):\n    x: int = 1\n"
        "print(M(x=2).x, 'PYDANTIC_DISABLE_PLUGINS' in os.environ)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "False"]
    assert "controlplane" in main.MESH_PROCESSES and "node" in main.MESH_PROCESSES


def test_the_mesh_processes_start_without_the_cyclic_collector_until_started() -> None:
    # In a fresh interpreter: `ami node` turns the collector off before anything loads
    # (here it stops at --help), and `gcstart.started()` turns it on again, with what
    # lived until then frozen out of its sight; elsewhere `started()` changes nothing.
    code = (
        "import gc\n"
        "from amimesh import gcstart\n"
        "from amimesh.cli import main\n"
        "gcstart.started(); print('@', gc.isenabled(), gc.get_freeze_count() == 0)\n"
        "try:\n    main.main(['node', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('@', gc.isenabled())\n"
        "gcstart.started(); print('@', gc.isenabled(), gc.get_freeze_count() > 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    said = [line.split()[1:] for line in out.stdout.splitlines() if line.startswith("@ ")]
    assert said == [["True", "True"], ["False"], ["True", "True"]]

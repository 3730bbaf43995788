"""`ledger` loads its public names on first use, and every one of them is still `from ledger import X`-able.

Method: a fresh interpreter imports the bare package (nothing heavy may load); in this process each name
of `ledger.__all__` must be the very object its defining submodule holds.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ledger

REPO_ROOT = Path(__file__).resolve().parents[3]
COMMAND_TIMEOUT_S = 60.0


def test_importing_the_package_loads_no_submodule_and_no_dependency() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    script = "import sys, ledger; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
    )
    assert done.returncode == 0, done.stderr
    modules = set(done.stdout.split())
    assert "ledger" in modules
    heavy = {"sqlalchemy", "pydantic", "sqlmodel", "alembic"}
    assert sorted(m for m in modules if m.startswith("ledger.") or m.split(".")[0] in heavy) == []


def test_every_public_name_resolves_to_its_defining_module() -> None:
    names = ledger.__all__
    assert sorted(names) == sorted(ledger._MODULE_BY_NAME)
    for name in names:
        module = importlib.import_module(ledger._MODULE_BY_NAME[name])
        assert getattr(ledger, name) is getattr(module, name), name
    assert set(names) <= set(dir(ledger))


def test_submodules_and_unknown_names_behave_as_in_a_plain_package() -> None:
    from ledger import chart

    assert chart is importlib.import_module("ledger.chart")
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = ledger.nope
    with pytest.raises(ImportError):
        from ledger import nope  # noqa: F401

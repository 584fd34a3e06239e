"""Importing pylstm from a folder without its compiled extension says what happened and what to do.

The usual way there: ``python -m pytest`` run from the source checkout puts the
checkout first on sys.path, so ``import pylstm`` finds the sources, which hold
no ``_core``. Python's own message ("partially initialized module ... circular
import") points the wrong way.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

import pylstm
from pylstm import _core


def test_a_package_folder_without_the_extension_explains_itself(tmp_path):
    if os.path.dirname(os.path.abspath(_core.__file__)) != os.path.dirname(os.path.abspath(pylstm.__file__)):
        pytest.skip("editable install: its import hook finds the extension for any copy of the sources")
    copy = tmp_path / "pylstm"
    shutil.copytree(os.path.dirname(pylstm.__file__), copy,
                    ignore=shutil.ignore_patterns("_core*", "__pycache__"))
    run = subprocess.run([sys.executable, "-c", "import pylstm"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode != 0
    assert "pylstm's compiled extension (pylstm._core) is not in" in run.stderr
    assert str(copy) in run.stderr
    assert "python -m pytest" in run.stderr and "pip install -e ." in run.stderr

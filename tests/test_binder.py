"""binder/ as repo2docker (mybinder.org) reads it: its own build pack renders the Dockerfile Binder would build."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from repo2docker.buildpacks import PythonBuildPack

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def dockerfile(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(ROOT)  # build packs look at the current directory, as repo2docker runs them
    pack = PythonBuildPack(base_image="docker.io/library/buildpack-deps:jammy")
    pack.platform = "linux/amd64"
    assert pack.detect(), "repo2docker does not recognise binder/ as a Python environment"
    assert pack.python_version == "3.11"  # binder/runtime.txt: the version CI tests
    return str(pack.render())


def test_repo2docker_installs_the_requirements_then_runs_post_build(dockerfile: str) -> None:
    install = dockerfile.index('pip install --no-cache-dir -r "binder/requirements.txt"')
    post_build = dockerfile.index("RUN ./binder/postBuild")
    assert install < post_build


def test_post_build_installs_sora_nb_from_the_checkout() -> None:
    script = ROOT / "binder" / "postBuild"
    assert os.access(script, os.X_OK)
    lines = script.read_text().splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "python -m pip install --no-cache-dir ." in lines


def test_requirements_are_valid_and_bring_jupyterlab() -> None:
    lines = [line.strip() for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()]
    names = {Requirement(line).name for line in lines if line and not line.startswith("#")}
    assert {"jupyterlab", "notebook"} <= names

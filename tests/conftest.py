"""Shared fixtures: the project's own server on a free loopback port, and engines."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from manyget import ENGINES
from manyget._server import Faults, Server

# The engines that run in this process tree; dask needs a cluster, which tests/test_dask.py
# starts once and runs the same contract tests on.
ALL_ENGINES = [name for name in ENGINES if name != "dask"]


def need_program(name: str) -> str:
    """The path of an outside server or tool a test needs.

    On a developer's machine a missing one skips the test; under `.ci/run` (MANYGET_CI=1),
    which installs them all, a missing one is a failure.
    """
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if found is None:
        if os.environ.get("MANYGET_CI") == "1":
            pytest.fail(f"{name} is not installed, and CI must run this test")
        pytest.skip(f"{name} is not installed")
    return found


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """The embedded flag server, shared by the whole session."""
    with Server(faults=Faults()) as srv:
        yield srv


@pytest.fixture(params=ALL_ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each engine by name: end-to-end tests run once per engine."""
    name: str = request.param
    return name


# Property tests (tests/test_properties.py): "ci", the default, keeps the whole file fast;
# HYPOTHESIS_PROFILE=nightly runs 10^5 examples a test, for a nightly or manual run.
for _name, _examples in (("ci", 300), ("nightly", 100_000)):
    settings.register_profile(
        _name,
        max_examples=_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for this test (needs root, as on CI), unmounted after."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + made.stderr.decode(errors="replace"))
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)

"""A generator of 200,000 URLs keeps peak memory flat (real server, real files on tmpfs)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)
@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a tmpfs at /dev/shm")
def test_200k_url_generator_keeps_memory_flat() -> None:
    """Peak RSS grows by at most 32 MB from 20,000 to 200,000 URLs (keeping results would not)."""
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "memory.py"),
            "--urls",
            "200000",
            "--max-growth-mb",
            "32",
        ],
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
    )
    print(proc.stdout, proc.stderr)
    match = re.search(r"200,000 ok .*\(growth ([+-][\d.]+) MB", proc.stdout)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) <= 32
    assert proc.returncode == 0

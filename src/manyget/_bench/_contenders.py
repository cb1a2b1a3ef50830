"""Who ``manyget bench`` races: manyget's engines and the outside tools, as command lines.

Every contender is one whole process (interpreter start and imports count, as they do for
a user), given the same URL list, the same empty folder and the same number of downloads
at once. Outside tools run with options that favour them where a choice exists (aria2c
skips preallocation; curl reuses connections) and that keep their file names the URL's.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PEERS", "Contender", "engine_contender", "peer_contender"]

PEERS = ("aria2c", "curl", "wget2", "parfive")

# parfive is a library: a few lines drive it the way its documentation shows.
_PARFIVE = """\
import sys
from parfive import Downloader
listing, dest, conc, splits = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
dl = Downloader(max_conn=conc, max_splits=splits, progress=False)
with open(listing) as f:
    for url in f.read().split():
        dl.enqueue_file(url, path=dest)
sys.exit(1 if dl.download().errors else 0)
"""


@dataclass(frozen=True)
class Contender:
    """A named way to download a list; ``missing`` says why it cannot run here."""

    name: str
    peer: bool
    missing: str = ""
    concurrency: int = 1
    split: int = 1  # connections per file (each tool's own ranges option)
    size: int = 0  # the largest file, for options given in bytes (wget2's chunk size)
    engine: str = ""  # manyget's engine (peers: none)
    tree: str = ""  # manyget's source folder to run instead of the installed one

    def environment(self) -> dict[str, str]:
        """What the run's environment adds: a source tree goes first on the path."""
        return {"PYTHONPATH": self.tree} if self.tree else {}

    def command(self, urls: Sequence[str], names: Sequence[str], work: Path) -> list[str]:
        """The argv downloading ``urls`` into ``work/out`` (input files go in ``work``)."""
        out = work / "out"
        listing = work / "urls.txt"
        listing.write_text("".join(u + "\n" for u in urls))
        conc = str(self.concurrency)
        split = self.split
        if not self.peer:
            engine = self.engine
            ranges = ["--split", str(split), "--min-split-size", "1M"] if split > 1 else []
            return [sys.executable, "-m", "manyget", "get", "-i", str(listing), "-d", str(out),
                    "-q", "--engine", engine, "-j", conc, "--per-host", conc, *ranges]  # fmt: skip
        if self.name == "curl":
            config = work / "curl.cfg"
            pairs = zip(urls, names, strict=True)
            lines = (f'url = "{url}"\noutput = "{out / name}"\n' for url, name in pairs)
            config.write_text("".join(lines))
            return ["curl", "--parallel", "--parallel-max", conc, "-s", "-K", str(config)]
        if self.name == "wget2":
            chunk = [f"--chunk-size={-(-self.size // split)}"] if split > 1 else []
            return ["wget2", "-q", "--no-config", f"--max-threads={conc}", "-P", str(out),
                    *chunk, "-i", str(listing)]  # fmt: skip
        if self.name == "aria2c":
            ranges = [f"--split={split}", f"--max-connection-per-server={split}",
                      "--min-split-size=1M"] if split > 1 else ["--split=1"]  # fmt: skip
            return ["aria2c", "-q", "-i", str(listing), "-d", str(out), "-j", conc,
                    *ranges, "--file-allocation=none", "--auto-file-renaming=false",
                    "--console-log-level=error", "--summary-interval=0"]  # fmt: skip
        if self.name == "parfive":
            return [sys.executable, "-c", _PARFIVE, str(listing), str(out), conc, str(split)]
        raise ValueError(f"no command for {self.name!r}")

    def at(self, concurrency: int, split: int = 1, size: int = 0) -> Contender:
        """This contender running ``concurrency`` downloads at once, a file of up to
        ``size`` bytes over ``split`` connections."""
        return dataclasses.replace(self, concurrency=concurrency, split=split, size=size)


def engine_contender(engine: str, tree: tuple[str, str] | None = None) -> Contender:
    """manyget's ``engine``; with ``tree`` (its name, a source folder), that version of it."""
    if tree is None:
        return Contender(f"manyget {engine}", peer=False, engine=engine)
    label, source = tree
    return Contender(f"manyget {engine} ({label})", peer=False, engine=engine, tree=source)


def peer_contender(name: str) -> Contender:
    if name == "parfive":
        found = importlib.util.find_spec("parfive") is not None
        missing = "" if found else "not importable (pip install parfive)"
    else:
        found = shutil.which(name) is not None
        missing = "" if found else "not on PATH"
    return Contender(name, peer=True, missing=missing)

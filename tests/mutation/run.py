"""Apply each deliberate break to a copy of the project and check that its tests fail.

A green suite proves a promise only if breaking the promise turns it red. Each break in
:data:`breaks.BREAKS` is a small text edit of the source (or Makefile, dvc.yaml ...); this script copies
the project (tracked and untracked, not ignored files, as CI sees them) into a temporary folder,
applies one break at a time, runs the break's tests there with pytest and records whether they
failed. A break *survives* when its tests still pass: the promise is then not proved.

    python tests/mutation/run.py            # the fast breaks (what the suite runs)
    python tests/mutation/run.py --all      # every break, the slow ones included (tens of minutes)
    python tests/mutation/run.py --list     # the breaks, their promise and their tests
    python tests/mutation/run.py cloudpickle sentiment_boundaries   # chosen breaks

Exit status 0 only when every chosen break was caught. A break whose text no longer occurs in the
source is an error, never a pass: edit the break together with the code it targets.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from conftest import copy_project  # noqa: E402  (one way to copy the project, shared with the tests)
from mutation.breaks import BREAKS, Break  # noqa: E402


class BreakDoesNotApply(RuntimeError):
    """The text a break replaces is not (exactly once) in the file any more."""


@dataclass(frozen=True)
class Outcome:
    name: str
    caught: bool
    returncode: int
    seconds: float
    tail: str

    @property
    def verdict(self) -> str:
        if self.caught:
            return "caught"
        return "SURVIVED" if self.returncode == 0 else f"ERROR (pytest exit {self.returncode})"


def apply(root: Path, brk: Break) -> dict[Path, str]:
    """Apply ``brk`` under ``root``; return the original text of every edited file."""
    originals: dict[Path, str] = {}
    for edit in brk.edits:
        path = root / edit.file
        text = originals.get(path, path.read_text(encoding="utf-8"))
        originals.setdefault(path, text)
        current = path.read_text(encoding="utf-8")
        n = current.count(edit.old)
        if n != 1:
            raise BreakDoesNotApply(f"{brk.name}: {edit.old!r} occurs {n} times in {edit.file} "
                                    "(expected exactly once): update the break with the code")
        path.write_text(current.replace(edit.old, edit.new), encoding="utf-8")
    return originals


def restore(originals: dict[Path, str]) -> None:
    for path, text in originals.items():
        path.write_text(text, encoding="utf-8")


def run_tests(root: Path, tests: Sequence[str], timeout: int) -> tuple[int, str]:
    """pytest on ``tests`` in the copy at ``root`` (its own src first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "DVC_NO_ANALYTICS": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg",
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    for var in ("MLFLOW_TRACKING_URI", "SCRM_ROOT", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--no-header",
           "-W", "ignore", *tests]
    try:
        r = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return 124, out + f"\n[timed out after {timeout} s]"
    return r.returncode, r.stdout + r.stderr


def check(root: Path, brk: Break, timeout: int = 900) -> Outcome:
    """Apply ``brk`` in the copy at ``root``, run its tests, undo it. Caught = pytest exit 1
    (tests ran and failed); 0 is a surviving break, anything else (no tests collected, an import
    error, a time-out) an error that proves nothing."""
    t0 = time.perf_counter()
    originals = apply(root, brk)
    try:
        rc, out = run_tests(root, brk.tests, timeout)
    finally:
        restore(originals)
    return Outcome(brk.name, rc == 1, rc, time.perf_counter() - t0, out[-3000:])


def select(names: Iterable[str], everything: bool) -> list[Break]:
    names = list(names)
    unknown = sorted(set(names) - {b.name for b in BREAKS})
    if unknown:
        raise SystemExit(f"unknown break(s): {unknown}; see --list")
    if names:
        return [b for b in BREAKS if b.name in names]
    return [b for b in BREAKS if everything or b.fast]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="breaks to run (default: the fast ones)")
    ap.add_argument("--all", action="store_true", help="every break, slow ones included")
    ap.add_argument("--list", action="store_true", help="list the breaks and exit")
    ap.add_argument("--baseline", action="store_true",
                    help="first run each break's tests on the unbroken copy (they must pass)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per break")
    args = ap.parse_args(argv)
    chosen = select(args.names, args.all)
    if args.list:
        for b in chosen:
            print(f"{b.name:34} {'fast' if b.fast else 'slow'}  {b.promise}\n{'':40}{' '.join(b.tests)}")
        return 0
    with tempfile.TemporaryDirectory(prefix="scrm-mutation-") as tmp:
        root = copy_project(Path(tmp))
        bad = 0
        for b in chosen:
            if args.baseline:
                rc, out = run_tests(root, b.tests, args.timeout)
                if rc != 0:
                    print(f"{b.name}: its tests fail WITHOUT the break (exit {rc}):\n{out[-2000:]}")
                    bad += 1
                    continue
            try:
                o = check(root, b, args.timeout)
            except BreakDoesNotApply as exc:
                print(f"{b.name:34} ERROR  {exc}")
                bad += 1
                continue
            print(f"{o.name:34} {o.verdict:10} {o.seconds:6.1f} s  {b.promise}", flush=True)
            if not o.caught:
                bad += 1
                print(o.tail)
    print(f"{len(chosen) - bad} of {len(chosen)} breaks caught")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

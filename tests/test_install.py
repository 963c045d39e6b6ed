"""The pinned install is the CPU-only PyTorch build, never the CUDA build and its nvidia packages.

requirements.lock.txt pins ``torch==2.13.0``; on an ordinary Linux machine PyPI serves that version as
the CUDA build (several GB of nvidia-* wheels). constraints-cpu.txt narrows it to ``+cpu``, served by
the PyTorch CPU index (README "Two commands"); `make venv` installs with both, and `make test` (CI)
builds that environment first, so the environment the tests run in is the install being checked.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as _norm

from scrm.config import PROJECT_ROOT

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
NVIDIA = re.compile(r"^(nvidia-|triton$|cuda-)", re.I)


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def test_constraints_pin_the_cpu_build_of_the_locked_torch():
    lock = _pins(PROJECT_ROOT / "requirements.lock.txt")
    cpu = _pins(PROJECT_ROOT / "constraints-cpu.txt")
    assert cpu == {"torch": f"{lock['torch']}+cpu"}
    assert not [p for p in lock if NVIDIA.match(p)], "the lock itself names no CUDA package"
    env = (PROJECT_ROOT / "environment.yml").read_text(encoding="utf-8")
    assert "-c constraints-cpu.txt" in env and TORCH_CPU_INDEX in env  # conda installs the same
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert (f"pip install -r requirements.lock.txt -c constraints-cpu.txt --extra-index-url "
            f"{TORCH_CPU_INDEX}") in " ".join(readme.split())


def unmet_requirements(pins: dict[str, str],
                       requires: dict[str, list[str]]) -> list[str]:
    """Each requirement of a pinned package (``requires``: its Requires-Dist lines) that no pin
    meets on this platform: a dependency outside the lock, or a pin outside its specifier. Markers
    are evaluated here; an extra's requirements count once a requirement asks for that extra
    (``jsonschema[format-nongpl]``), as pip would install them."""
    pins = {_norm(k): v for k, v in pins.items()}
    reqs = {_norm(k): [Requirement(line) for line in v] for k, v in requires.items()}
    extras: dict[str, set[str]] = {name: {""} for name in reqs}
    out: list[str] = []
    todo = list(reqs)
    while todo:  # until no requirement asks for an extra not yet followed
        name = todo.pop()
        for req in reqs.get(name, []):
            if req.marker is not None and not any(req.marker.evaluate({"extra": e})
                                                  for e in extras[name]):
                continue
            dep = _norm(req.name)
            have = pins.get(dep)
            if have is None or not req.specifier.contains(have, prereleases=True):
                text = (f"{name} requires {str(req)!r}; the lock has {req.name}=={have}" if have
                        else f"{name} requires {str(req)!r}, which is not in the lock")
                if text not in out:
                    out.append(text)
            elif dep in extras and not req.extras <= extras[dep]:
                extras[dep] |= req.extras
                todo.append(dep)
    return out


def test_the_environment_is_the_lock_with_the_cpu_torch_build():
    """The environment these tests run in (`make venv`, CI's first step) is the lock, with torch
    from constraints-cpu.txt (+cpu): every pin installed at its version, no nvidia-* package, and
    every locked package's requirements met by the lock itself (the lock is the whole transitive
    set, so the documented install pulls nothing else; PyPI's CUDA torch would require nvidia-*
    packages: the next test)."""
    lock = _pins(PROJECT_ROOT / "requirements.lock.txt")
    wanted = {**lock, **_pins(PROJECT_ROOT / "constraints-cpu.txt")}
    installed = {_norm(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = {n: (v, have) for n, v in wanted.items() if (have := installed.get(_norm(n))) != v}
    assert not wrong, f"not the lock's environment (pin, installed): {wrong}; run `make venv`"
    assert installed["torch"].endswith("+cpu")
    assert not [n for n in installed if NVIDIA.match(n)], "an nvidia package is installed"
    requires = {n: metadata.requires(n) or [] for n in wanted}
    # pip freeze leaves setuptools out of a lock; the install brings it (torch requires it)
    assert not unmet_requirements({**wanted, "setuptools": installed["setuptools"]}, requires)


def test_the_cuda_build_of_torch_would_be_caught():
    """The check above on the lock as if PyPI's default torch were in it: the CUDA build's
    Requires-Dist names nvidia-* packages (these lines are from torch 2.x's wheel on PyPI), which
    the lock does not hold."""
    lock = _pins(PROJECT_ROOT / "requirements.lock.txt")
    cuda_torch = [*(metadata.requires("torch") or []),
                  'nvidia-cuda-runtime-cu12==12.8.90; platform_system == "Linux" and '
                  'platform_machine == "x86_64"',
                  'nvidia-cublas-cu12==12.8.4.1; platform_system == "Linux" and '
                  'platform_machine == "x86_64"',
                  'triton==3.5.0; platform_system == "Linux" and platform_machine == "x86_64"']
    unmet = unmet_requirements({**lock, "setuptools": "80.9.0"}, {"torch": cuda_torch})
    import platform
    if platform.system() == "Linux" and platform.machine() == "x86_64":
        assert len(unmet) == 3 and all("not in the lock" in u for u in unmet), unmet
    assert unmet_requirements(lock, {"torch": ["numpy>=99"]}) == [
        f"torch requires 'numpy>=99'; the lock has numpy=={lock['numpy']}"]
    # an extra asked for by another package is followed: its requirements must be in the lock too
    assert unmet_requirements({"a": "1", "b": "1"}, {"a": ["b[x]"], "b": [
        'c; extra == "x"', 'd; extra == "y"']}) == [
        "b requires 'c; extra == \"x\"', which is not in the lock"]

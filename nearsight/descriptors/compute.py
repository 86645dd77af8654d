"""One entry point for descriptors: the chosen backend, serial or split over MPI ranks.

Under ``mpirun -n N`` the grid's flat point range (C order, x slowest) is cut into N nearly
equal contiguous pieces, any N, each rank computes its piece with nearsight's kernel, and
rank 0 gathers them in order: the result is the serial one, bit for bit (each point is
computed by the same code on the same inputs). The LAMMPS backend spreads its own work over
the ranks instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
from ase import Atoms

from nearsight import __version__
from nearsight.config import DescriptorsConfig
from nearsight.descriptors.params import BispectrumParams

Progress = Callable[[int, int], None]


def bispectrum_params(config: DescriptorsConfig) -> BispectrumParams:
    """The SNAP parameters of a ``[descriptors]`` config section."""
    return BispectrumParams(
        twojmax=config.twojmax,
        rcutfac=config.rcutfac,
        elements=tuple(config.elements),
        radii=tuple(config.radii),
        weights=tuple(config.weights),
        rfac0=config.rfac0,
        rmin0=config.rmin0,
        switchflag=config.switchflag,
        bzeroflag=config.bzeroflag,
        wselfallflag=config.wselfallflag,
    )


def metadata(config: DescriptorsConfig) -> dict[str, Any]:
    """What a stored descriptor array records about how it was made."""
    p = bispectrum_params(config)
    return {
        "kind": "bispectrum",
        "twojmax": p.twojmax,
        "rcutfac": p.rcutfac,
        "elements": list(p.elements),
        "radii": list(p.radii),
        "weights": list(p.weights),
        "rfac0": p.rfac0,
        "rmin0": p.rmin0,
        "switchflag": p.switchflag,
        "bzeroflag": p.bzeroflag,
        "wselfallflag": p.wselfallflag,
        "features": p.n_features,
        "backend": config.backend,
        "dtype": config.dtype,
        "nearsight_version": __version__,
    }


def split(n_points: int, size: int, rank: int) -> slice:
    """The contiguous share of ``rank`` among ``size`` ranks of ``n_points`` (any size)."""
    return slice(rank * n_points // size, (rank + 1) * n_points // size)


def compute_descriptors(
    atoms: Atoms,
    shape: tuple[int, int, int],
    config: DescriptorsConfig,
    *,
    comm: Any = None,
    progress: Progress | None = None,
) -> np.ndarray | None:
    """Bispectrum descriptors [nx, ny, nz, F] of ``atoms`` on a grid of ``shape``.

    Args:
        atoms: periodic structure, Å.
        shape: grid points per cell vector.
        config: parameters, backend, dtype, device and chunk size.
        comm: an mpi4py communicator to split the grid over; None computes serially.
        progress: called with (points done, points in all) by the nearsight backend.

    Returns:
        The descriptors in float64 (float32 with ``dtype = "float32"``), on every rank for
        the LAMMPS backend and on rank 0 only (None elsewhere) for nearsight's kernel.
    """
    params = bispectrum_params(config)
    shape = tuple(int(n) for n in shape)
    if config.backend == "lammps":
        from nearsight.descriptors.lammps_backend import bispectrum_lammps

        out = bispectrum_lammps(atoms, shape, params, comm=comm)
        return out.astype(np.float32) if config.dtype == "float32" else out
    from nearsight.descriptors.bispectrum import bispectrum

    kwargs = {
        "dtype": config.dtype,
        "device": config.device,
        "chunk_points": config.chunk_points,
        "progress": progress,
    }
    if comm is None or comm.Get_size() == 1:
        return bispectrum(atoms, shape, params, **kwargs)
    n_points = int(np.prod(shape))
    size, rank = comm.Get_size(), comm.Get_rank()
    mine = np.ascontiguousarray(
        bispectrum(atoms, shape, params, points=split(n_points, size, rank), **kwargs)
    )
    counts = [split(n_points, size, r).stop - split(n_points, size, r).start for r in range(size)]
    features = mine.shape[1]
    out = np.empty((n_points, features), dtype=mine.dtype) if rank == 0 else None
    from mpi4py import MPI

    kind = MPI.DOUBLE if mine.dtype == np.float64 else MPI.FLOAT
    sizes = [c * features for c in counts]
    comm.Gatherv(mine, [out, sizes, kind] if rank == 0 else None, root=0)
    return None if out is None else out.reshape(*shape, features)


def mpi_world() -> Any:
    """COMM_WORLD when this process was started by mpirun with more than one rank, else None.

    mpi4py is imported only then: importing it initialises MPI, which a serial run need not.
    """
    size = os.environ.get("PMI_SIZE") or os.environ.get("OMPI_COMM_WORLD_SIZE")
    if size is None or int(size) < 2:
        return None
    from mpi4py import MPI

    return MPI.COMM_WORLD

"""Descriptors of the atomic neighbourhood of every real-space grid point.

- :mod:`~nearsight.descriptors.params`: the bispectrum (SNAP) parameters, LAMMPS's order.
- :mod:`~nearsight.descriptors.bispectrum`: nearsight's kernel (torch, CPU or CUDA), with
  :mod:`~nearsight.descriptors.neighbors` (cell lists).
- :mod:`~nearsight.descriptors.gaussian`: the Gaussian atomic-density descriptor.
- :mod:`~nearsight.descriptors.lammps_backend`: LAMMPS as backend and test oracle.
- :mod:`~nearsight.descriptors.compute`: backend choice and MPI splitting.
- :mod:`~nearsight.descriptors.acsd`: choosing descriptor parameters without training.
"""

"""Descriptors of the atomic neighbourhood of every real-space grid point.

- :mod:`~nearsight.descriptors.params`: the bispectrum (SNAP) parameters, LAMMPS's order.
"""

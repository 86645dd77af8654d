"""Readers and writers of files: QE input and output, cube, UPF, the HDF5 dataset.

Native units of the files (Ry, Bohr) are converted here, at the boundary, to eV and Å.
This package knows no physics, model or CLI.
"""

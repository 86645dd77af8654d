"""Physics from the LDOS and the density, with Quantum ESPRESSO's conventions.

- :mod:`~nearsight.physics.fermi`: DOS integrals against the Fermi function, Fermi level.
- :mod:`~nearsight.physics.hartree`, :mod:`~nearsight.physics.xc`,
  :mod:`~nearsight.physics.core_density`, :mod:`~nearsight.physics.ewald`: the density and
  ion terms, with :mod:`~nearsight.physics.structure_factor` for linear scaling.
- :mod:`~nearsight.physics.energy`: the total free energy (Harris-Foulkes form).
- :mod:`~nearsight.physics.system`: atoms, pseudopotentials and settings, checked once.
- :mod:`~nearsight.physics.reference`: QE's values to compare with.

Inputs and outputs are in eV, Å and K; kernels may compute in atomic units inside.
"""

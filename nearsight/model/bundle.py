"""A trained model in one file: weights, scalers and everything prediction needs.

The file is a standard safetensors file (readable by any safetensors tool; never a pickle):

- tensors ``network.<name>`` hold the weights, ``pseudo.<element>`` the UPF text (uint8),
  so a bundle predicts energies without the pseudopotential files at hand;
- the metadata entry ``nearsight`` holds JSON: format and versions, the network layout, both
  scalers, the descriptor parameters, the LDOS energy grid, the electronic temperature, the
  valence electrons per element, the pseudopotential names and SHA-256 hashes, the training
  grid spacing, QE's density cutoff and free-form provenance (config, history, data);
- the metadata entry ``content_sha256`` hashes the tensors and that JSON, so a damaged or
  edited file is refused instead of predicting nonsense.

Loading checks every piece against every other (layer widths against scalers, energy grid
and descriptor count; hashes of the pseudopotentials) and names what is wrong.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms

from nearsight import __version__
from nearsight.config import DescriptorsConfig, config_from_dict
from nearsight.data.scaling import Scaler
from nearsight.errors import InputError
from nearsight.grid import EnergyGrid
from nearsight.io.atomic import atomic_path
from nearsight.io.dataset import PseudoRecord
from nearsight.model.network import FeedForward

FORMAT = "nearsight.model"
FORMAT_VERSION = 1
"""Bump when a reader of the previous version could not read the new files."""

_FIX_RETRAIN = "retrain the model, or re-export it with `nearsight import-mala`"


@dataclass(frozen=True, eq=False)
class Bundle:
    """A trained model and what it was trained for.

    Attributes:
        network: descriptors (scaled) -> LDOS (scaled), [n, F] -> [n, E].
        input_scaler, output_scaler: fitted scalers of descriptors and LDOS.
        descriptors: the descriptor parameters the network expects.
        energy_grid: LDOS energies, eV.
        temperature_k: electronic temperature of the training data, K.
        electrons_per_atom: valence electrons of each element (from its pseudopotential).
        pseudopotentials: element -> the UPF the training data was made with.
        grid_spacing: training grid spacing along each cell vector, Å; a new cell gets
            the grid that keeps it.
        ecutrho_ry: QE's density cutoff of the training data, Ry (None if unknown).
        provenance: JSON-ready record of how the model was made.
        nearsight_version: the version that wrote the bundle.
    """

    network: FeedForward
    input_scaler: Scaler
    output_scaler: Scaler
    descriptors: DescriptorsConfig
    energy_grid: EnergyGrid
    temperature_k: float
    electrons_per_atom: dict[str, float]
    pseudopotentials: dict[str, PseudoRecord]
    grid_spacing: tuple[float, float, float]
    ecutrho_ry: float | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    nearsight_version: str = __version__

    def __post_init__(self) -> None:
        _check_consistent(self, None)

    @property
    def n_features(self) -> int:
        return self.network.widths[0]

    def grid_shape(self, atoms: Atoms) -> tuple[int, int, int]:
        """The grid of ``atoms``'s cell with the training spacing (at least 1 per axis)."""
        lengths = np.linalg.norm(np.asarray(atoms.cell[:]), axis=1)
        return tuple(
            max(1, int(round(length / h)))
            for length, h in zip(lengths, self.grid_spacing, strict=True)
        )

    def number_of_electrons(self, atoms: Atoms) -> float:
        """Valence electrons of ``atoms``.

        Raises:
            InputError: an element the model was not trained on.
        """
        symbols = atoms.get_chemical_symbols()
        unknown = sorted(set(symbols) - set(self.electrons_per_atom))
        if unknown:
            raise InputError(
                f"the model knows {', '.join(sorted(self.electrons_per_atom))}, not "
                f"{', '.join(unknown)}",
                field="atoms",
                fix="predict structures of the elements the model was trained on",
            )
        return float(sum(self.electrons_per_atom[s] for s in symbols))

    def metadata(self) -> dict[str, Any]:
        """Everything but the tensors, JSON-ready."""
        from nearsight.config import config_to_dict

        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "nearsight_version": self.nearsight_version,
            "network": {**self.network.layout(), "dtype": _dtype_name(self.network)},
            "input_scaler": self.input_scaler.to_dict(),
            "output_scaler": self.output_scaler.to_dict(),
            "descriptors": config_to_dict(_Wrap(self.descriptors))["descriptors"],
            "energy_grid": {
                "e_min": self.energy_grid.e_min,
                "de": self.energy_grid.de,
                "n": self.energy_grid.n,
            },
            "temperature_k": self.temperature_k,
            "electrons_per_atom": dict(self.electrons_per_atom),
            "pseudopotentials": {
                el: {"filename": rec.filename, "sha256": rec.sha256}
                for el, rec in self.pseudopotentials.items()
            },
            "grid_spacing_angstrom": list(self.grid_spacing),
            "ecutrho_ry": self.ecutrho_ry,
            "provenance": self.provenance,
        }

    def save(self, path: str | PathLike[str]) -> Path:
        """Write the bundle atomically (a crash leaves any previous file as it was)."""
        from safetensors.numpy import save_file

        tensors = _tensors(self)
        meta = json.dumps(self.metadata(), sort_keys=True)
        header = {"nearsight": meta, "content_sha256": _content_hash(tensors, meta)}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=header)
        return Path(path)

    @classmethod
    def load(cls, path: str | PathLike[str]) -> Bundle:
        """Read and check a bundle.

        Raises:
            InputError: not a bundle, damaged or edited (hash mismatch), written by a newer
                nearsight or format, or inconsistent in itself.
        """
        path = Path(path)
        meta_json, tensors = _read(path)
        meta = json.loads(meta_json)
        _check_version(meta, path)
        try:
            return _build(meta, tensors, path)
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(
                f"model bundle is incomplete ({type(err).__name__}: {err})",
                path=path,
                fix=_FIX_RETRAIN,
            ) from None


@dataclass(frozen=True)
class _Wrap:
    descriptors: DescriptorsConfig


def _dtype_name(network: FeedForward) -> str:
    return str(next(network.parameters()).dtype).removeprefix("torch.")


def _tensors(bundle: Bundle) -> dict[str, np.ndarray]:
    out = {
        f"network.{k}": v.detach().cpu().contiguous().numpy()
        for k, v in bundle.network.state_dict().items()
    }
    for el, rec in bundle.pseudopotentials.items():
        out[f"pseudo.{el}"] = np.frombuffer(rec.text.encode(), dtype=np.uint8).copy()
    return out


def _content_hash(tensors: dict[str, np.ndarray], meta: str) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    h.update(meta.encode())
    return h.hexdigest()


def _read(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    from safetensors import SafetensorError, safe_open
    from safetensors.numpy import load_file

    if not path.is_file():
        raise InputError(
            "model file not found", path=path, fix="give the path of a .safetensors model"
        )
    try:
        with safe_open(str(path), framework="np") as fh:
            header = fh.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError(
            f"not a safetensors model bundle ({err})",
            path=path,
            fix="give a model written by `nearsight train` or `nearsight import-mala`",
        ) from None
    if "nearsight" not in header:
        raise InputError(
            "a safetensors file without nearsight metadata (weights alone are not a model)",
            path=path,
            field="nearsight",
            fix="give a model written by `nearsight train` or `nearsight import-mala`",
        )
    if _content_hash(tensors, header["nearsight"]) != header.get("content_sha256"):
        raise InputError(
            "content hash does not match: the file is damaged or was edited",
            path=path,
            field="content_sha256",
            fix=_FIX_RETRAIN + ", or restore the original file",
        )
    return header["nearsight"], tensors


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for p in str(text).split(".")[:3]:
        digits = "".join(c for c in p if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _check_version(meta: dict[str, Any], path: Path) -> None:
    if meta.get("format") != FORMAT:
        raise InputError(
            f"metadata format is {meta.get('format')!r}, not {FORMAT!r}",
            path=path,
            field="format",
            fix="give a nearsight model bundle",
        )
    version = meta.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise InputError(
            f"bundle format version {version} is not one this nearsight ({__version__}) reads "
            f"(1..{FORMAT_VERSION})",
            path=path,
            field="format_version",
            fix="upgrade nearsight to the version that wrote the model",
        )
    written = str(meta.get("nearsight_version", "0"))
    # Before 1.0 a minor release may change what a model means; after, a major one.
    ours, theirs = _version_tuple(__version__), _version_tuple(written)
    digits = 2 if ours[0] == 0 else 1
    if theirs[:digits] > ours[:digits]:
        raise InputError(
            f"written by nearsight {written}, newer than this nearsight {__version__}",
            path=path,
            field="nearsight_version",
            fix=f"upgrade nearsight to {'.'.join(map(str, theirs[:digits]))} or later",
        )
    if theirs[:digits] < ours[:digits]:
        raise InputError(
            f"written by nearsight {written}, which this nearsight {__version__} no longer reads",
            path=path,
            field="nearsight_version",
            fix=_FIX_RETRAIN + " with this version",
        )


def _build(meta: dict[str, Any], tensors: dict[str, np.ndarray], path: Path) -> Bundle:
    layout = meta["network"]
    dtype = getattr(torch, layout.get("dtype", "float32"))
    network = FeedForward(layout["widths"], layout["activations"], dtype=dtype)
    state = {
        k.removeprefix("network."): torch.from_numpy(v.copy())
        for k, v in tensors.items()
        if k.startswith("network.")
    }
    expected = network.state_dict()
    if set(state) != set(expected) or any(
        tuple(state[k].shape) != tuple(expected[k].shape) for k in expected
    ):
        raise InputError(
            f"weights do not fit the layout {layout['widths']}",
            path=path,
            field="network",
            fix=_FIX_RETRAIN,
        )
    network.load_state_dict(state)
    network.eval()
    pseudos = {}
    for el, rec in meta["pseudopotentials"].items():
        key = f"pseudo.{el}"
        if key not in tensors:
            raise InputError(
                f"the {el} pseudopotential is missing", path=path, field=key, fix=_FIX_RETRAIN
            )
        text = tensors[key].tobytes().decode()
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest != rec["sha256"]:
            raise InputError(
                f"the {el} pseudopotential {rec['filename']} has SHA-256 {digest[:12]}..., the "
                f"model was trained with {rec['sha256'][:12]}...",
                path=path,
                field=f"pseudopotentials.{el}",
                fix=_FIX_RETRAIN,
            )
        pseudos[el] = PseudoRecord(el, rec["filename"], rec["sha256"], text)
    descriptors = config_from_dict({"descriptors": meta["descriptors"]}, source=path).descriptors
    grid = meta["energy_grid"]
    fields = dict(
        network=network,
        input_scaler=Scaler.from_dict(meta["input_scaler"], source=path),
        output_scaler=Scaler.from_dict(meta["output_scaler"], source=path),
        descriptors=descriptors,
        energy_grid=EnergyGrid(float(grid["e_min"]), float(grid["de"]), int(grid["n"])),
        temperature_k=float(meta["temperature_k"]),
        electrons_per_atom={k: float(v) for k, v in meta["electrons_per_atom"].items()},
        pseudopotentials=pseudos,
        grid_spacing=tuple(float(h) for h in meta["grid_spacing_angstrom"]),
        ecutrho_ry=None if meta.get("ecutrho_ry") is None else float(meta["ecutrho_ry"]),
        provenance=meta.get("provenance", {}),
        nearsight_version=str(meta["nearsight_version"]),
    )
    try:
        return Bundle(**fields)
    except InputError as err:
        if err.path is not None:
            raise
        raise InputError(err.message, path=path, field=err.field, fix=err.fix) from None


def _check_consistent(bundle: Bundle, path: Path | None) -> None:
    """Every piece must fit the network's input and output widths."""
    n_in, n_out = bundle.network.widths[0], bundle.network.widths[-1]
    checks = [
        ("energy_grid", bundle.energy_grid.n, n_out, "LDOS energies"),
        ("descriptors", _descriptor_count(bundle.descriptors), n_in, "descriptor features"),
    ]
    for name, scaler, width in (
        ("input_scaler", bundle.input_scaler, n_in),
        ("output_scaler", bundle.output_scaler, n_out),
    ):
        if not scaler.fitted:
            raise InputError("scaler is not fitted", path=path, field=name, fix=_FIX_RETRAIN)
        if scaler.per_feature and scaler.kind != "none":
            size = (scaler.mean if scaler.mean is not None else scaler.minimum).size
            checks.append((name, size, width, "scaled columns"))
    for name, got, want, what in checks:
        if got != want:
            raise InputError(
                f"{got} {what}, but the network has {want}",
                path=path,
                field=name,
                fix=_FIX_RETRAIN,
            )
    missing = sorted(set(bundle.electrons_per_atom) - set(bundle.pseudopotentials))
    if missing:
        raise InputError(
            f"no pseudopotential for {', '.join(missing)}",
            path=path,
            field="pseudopotentials",
            fix=_FIX_RETRAIN,
        )
    if len(bundle.grid_spacing) != 3 or min(bundle.grid_spacing) <= 0:
        raise InputError(
            f"grid spacing must be 3 positive lengths, got {bundle.grid_spacing}",
            path=path,
            field="grid_spacing_angstrom",
            fix=_FIX_RETRAIN,
        )


def _descriptor_count(config: DescriptorsConfig) -> int:
    from nearsight.descriptors.compute import bispectrum_params

    return bispectrum_params(config).n_features

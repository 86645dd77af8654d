"""Config: TOML -> frozen dataclasses; every bad key or value is a precise error."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from nearsight.config import Config, config_from_dict, config_to_dict, dumps_toml, load_config
from nearsight.errors import InputError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "al"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_defaults_are_written_once_and_frozen() -> None:
    cfg = config_from_dict({})
    assert cfg == Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3  # type: ignore[misc]


@pytest.mark.parametrize("name", ["al4.toml", "al8.toml"])
def test_bundled_configs_load(name: str) -> None:
    cfg, base = load_config(EXAMPLES / name)
    assert base == EXAMPLES
    assert cfg.dft.pseudopotentials == {"Al": "Al.pbe-nlcc-rrkj.UPF"}
    assert isinstance(cfg.dft.kpoints, tuple)


def test_values_are_coerced(tmp_path: Path) -> None:
    cfg, _ = load_config(write(tmp_path, "[dft]\necutwfc_ry = 25\nkpoints = [2, 3, 4]\n"))
    assert cfg.dft.ecutwfc_ry == 25.0 and isinstance(cfg.dft.ecutwfc_ry, float)
    assert cfg.dft.kpoints == (2, 3, 4)


def test_unknown_key_names_file_key_and_closest(tmp_path: Path) -> None:
    path = write(tmp_path, "[dft]\necutwf_ry = 30.0\n")
    with pytest.raises(InputError) as err:
        load_config(path)
    text = str(err.value)
    assert str(path) in text and "dft.ecutwf_ry" in text and "dft.ecutwfc_ry" in text


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="did you mean 'ldos'"):
        load_config(write(tmp_path, "[ldoss]\nde_ev = 0.1\n"))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("seed = 'seven'\n", "seed"),
        ("[dft]\nkpoints = [4, 4]\n", "dft.kpoints"),
        ("[dft]\nkpoints = [4, 4, 4.5]\n", "dft.kpoints[2]"),
        ("[dft]\nkeep_workdir = 1\n", "dft.keep_workdir"),
        ("[dft]\npseudopotentials = { Al = 3 }\n", "dft.pseudopotentials.Al"),
        ("[snapshots]\nsource = 'mdd'\n", "snapshots.source"),
        ("[ldos]\nde_ev = -0.1\n", "ldos.de_ev"),
        ("[ldos]\ncount = 0\n", "ldos.count"),
        ("[dft]\nkpoints = [0, 4, 4]\n", "dft.kpoints"),
        ("[snapshots]\nsource = 'files'\n", "snapshots.files"),
        ("[snapshots]\nsource = 'thermal'\n", "snapshots.debye_temperature_k"),
        ("dft = 3\n", "dft"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as err:
        load_config(path)
    assert f"[{key}]" in str(err.value) and str(path) in str(err.value)
    assert err.value.fix


def test_literal_suggests_closest(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="did you mean 'md'"):
        load_config(write(tmp_path, "[snapshots]\nsource = 'mdd'\n"))


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(InputError, match="not valid TOML"):
        load_config(write(tmp_path, "[dft\n"))


def test_defaults_round_trip_through_toml() -> None:
    text = dumps_toml(config_to_dict(Config()))
    assert config_from_dict(tomllib.loads(text)) == Config()


def test_example_round_trips_through_toml() -> None:
    cfg, _ = load_config(EXAMPLES / "al4.toml")
    assert config_from_dict(tomllib.loads(dumps_toml(config_to_dict(cfg)))) == cfg

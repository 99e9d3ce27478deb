"""The config schema packaged with the library: one method list, one home of every default."""

import dataclasses
import tomllib
from pathlib import Path

import yaml

from grpo_prm import config as config_module
from grpo_prm.checkpoints import TINY_DATA
from grpo_prm.config import schema_defaults
from grpo_prm.math_rl import MathRunConfig
from grpo_prm.methods import METHODS
from grpo_prm.toy import ToyConfig

ROOT = Path(__file__).resolve().parents[1]


def _schema() -> dict:
    return yaml.safe_load(config_module.SCHEMA.read_text(encoding="utf-8"))


def _field_defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def test_schema_is_package_data_not_a_repository_path():
    """The installed library finds its schema beside its modules (pyproject's package-data ships it)."""
    assert Path(str(config_module.SCHEMA)).parent == Path(config_module.__file__).parent
    assert config_module.SCHEMA.is_file()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert config_module.SCHEMA.name in package_data["grpo_prm"]
    assert not (ROOT / "workflow" / "schemas").exists()


def test_schema_methods_are_weights_methods():
    """toy.methods, math.methods and overlap.method all name grpo_prm.methods.METHODS (one YAML anchor)."""
    props = _schema()["properties"]
    assert props["toy"]["properties"]["methods"]["items"]["enum"] == list(METHODS)
    assert props["math"]["properties"]["methods"]["items"]["enum"] == list(METHODS)
    assert props["overlap"]["properties"]["method"]["enum"] == list(METHODS)
    assert config_module.SCHEMA.read_text(encoding="utf-8").count("lambda_explicit_prm_exact") == 1


def test_run_dataclasses_take_the_schema_defaults():
    """Every ToyConfig / MathRunConfig field the schema gives a default has that default, value and type."""
    for cls, section in ((ToyConfig, ("toy",)), (MathRunConfig, ("math", "train"))):
        fields, schema = _field_defaults(cls), schema_defaults(*section)
        shared = set(fields) & set(schema)
        assert shared, cls
        for name in shared:
            assert (fields[name], type(fields[name])) == (schema[name], type(schema[name])), (cls.__name__, name)
    assert set(schema_defaults("math", "train")) <= set(_field_defaults(MathRunConfig))


def test_tiny_build_generates_with_the_offline_defaults():
    offline = schema_defaults("math", "data")["offline"]
    assert {k: TINY_DATA[k] for k in ("n_train", "min_steps", "max_steps", "max_operand")} == {
        k: offline[k] for k in ("n_train", "min_steps", "max_steps", "max_operand")}
    assert TINY_DATA["data_seed"] == offline["seed"]


def test_schema_defaults_are_fresh_copies():
    first = schema_defaults("toy")
    first["tiny_model"]["n_layer"] = 99
    assert schema_defaults("toy")["tiny_model"]["n_layer"] == 2
    assert ToyConfig().tiny_model is not ToyConfig().tiny_model

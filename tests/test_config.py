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
from grpo_prm.trainer import LambdaGRPOConfig

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
        k: offline[k] for k in ("n_train", "min_steps", "max_steps", "max_operand")
    }
    assert TINY_DATA["data_seed"] == offline["seed"]


def test_schema_defaults_are_fresh_copies():
    first = schema_defaults("toy")
    first["tiny_model"]["n_layer"] = 99
    assert schema_defaults("toy")["tiny_model"]["n_layer"] == 2
    assert ToyConfig().tiny_model is not ToyConfig().tiny_model


def test_trainer_config_takes_the_schema_default_of_mc_continuations():
    field = LambdaGRPOConfig.__dataclass_fields__["mc_continuations"]
    assert field.default == schema_defaults("toy")["mc_continuations"] == ToyConfig().mc_continuations


def _key_rows() -> dict[str, list[str]]:
    rows = [line.split(" | ") for line in config_module.keys_table(ROOT / "config").splitlines()[2:]]
    return {r[0].strip("| `"): r[1:] for r in rows}


def test_key_table_lists_every_schema_key_with_default_and_profile_values():
    rows = _key_rows()

    def keys(node, prefix=""):
        for key, sub in node.get("properties", {}).items():
            yield prefix + key
            yield from keys(sub, prefix + key + ".")

    assert set(keys(_schema())) <= set(rows)
    # type, schema default, config.yaml where it differs from the default, paper.yaml where it differs from config.yaml
    assert rows["toy.mc_continuations"][:4] == ["integer ≥ 1", "`8`", "", ""]
    assert rows["toy.learning_rate"][:4] == ["number > 0", "*required*", "`0.0001`", "`1.0e-05`"]
    assert rows["math.data.offline.n_train"][1:4] == ["`2000`", "`4000`", ""]
    assert rows["math.train.use_vllm"][1:4] == ["`false`", "", "`true`"]
    assert rows["math.models.<name>.learning_rates[].lr"][0] == "number > 0"
    assert "1/\\|λ\\|" in rows["toy.methods"][4]  # a bar inside a cell is escaped


def test_key_table_follows_the_schema(tmp_path, monkeypatch):
    """A changed schema default shows in the table, so config/README.md (tests/test_readme.py) goes stale."""
    schema = _schema()
    schema["properties"]["toy"]["properties"]["depth"]["default"] = 5
    monkeypatch.setattr(config_module, "_schema", lambda: schema)
    assert _key_rows()["toy.depth"][1:3] == ["`5`", "`4`"]  # config.yaml still sets 4

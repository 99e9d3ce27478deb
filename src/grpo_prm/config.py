"""Experiment configuration: validate against workflow/schemas/config.schema.yaml and fill in its defaults.

Snakemake's own `validate` reports a failing key in a multi-line dump; here the first error becomes one line that
names the key, e.g. `config error: toy.methods[0]: 'ppo' is not one of ['grpo', ...]`.

    python -m grpo_prm.config config/config.yaml [--set toy.steps=10 ...]
"""

import argparse
import copy
import sys
from pathlib import Path

import jsonschema
import yaml

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value that the schema or a cross-field rule refuses."""


def _where(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".") or "<top level>"


def _fill_defaults(node: dict, schema: dict) -> None:
    for key, sub in schema.get("properties", {}).items():
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if isinstance(node.get(key), dict):
            _fill_defaults(node[key], sub)


def validate_config(config: dict, schema_path: Path = SCHEMA) -> dict:
    """Return a validated copy of `config` with defaults filled in; raise `ConfigError` naming the culprit."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    config = copy.deepcopy(config)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        if e.validator == "additionalProperties":
            unknown = sorted(set(e.instance) - set(e.schema.get("properties", {})))
            where = ".".join(str(p) for p in [*e.path, unknown[0]])
            raise ConfigError(f"unknown config key {where!r}")
        raise ConfigError(f"{_where(e.path)}: {e.message}")
    _fill_defaults(config, schema)
    toy = config["toy"]
    if max(toy["n"]) >= toy["depth"]:
        raise ConfigError(f"toy.n: {max(toy['n'])} must be smaller than toy.depth ({toy['depth']})")
    _check_math(config["math"])
    _check_overlap(config["overlap"], config["math"])
    _check_eval(config["eval"])
    return config


def _check_eval(ev: dict) -> None:
    """Every evaluated protocol is defined."""
    for name in ev["protocol"]:
        if name not in ev["protocols"]:
            raise ConfigError(f"eval.protocol: {name!r} is not a key of eval.protocols ({', '.join(ev['protocols'])})")


def _check_math(math: dict) -> None:
    """Cross-field rules of the math section the schema cannot state."""
    for name in math["run_models"]:
        if name not in math["models"]:
            raise ConfigError(f"math.run_models: {name!r} is not a key of math.models")
    for name, model in math["models"].items():
        if model["source"] == "hub" and not (model.get("hub_id") and model.get("revision")):
            raise ConfigError(f"math.models.{name}: source hub needs hub_id and a pinned revision")
    for name in math["run_models"]:
        lrs = [entry["beta"] for entry in math["models"][name]["learning_rates"]]
        for beta in math["betas"]:
            if beta not in lrs:
                raise ConfigError(f"math.models.{name}.learning_rates: no lr for beta {beta}")
    train = math["train"]
    if (train["use_vllm"] and train["vllm_importance_sampling_correction"] and train["temperature"] != 1.0
            and train["logprob_temperature"] == "raw"):
        raise ConfigError("math.train.vllm_importance_sampling_correction: needs logprob_temperature sampling "
                          "(vLLM's sampling log-probs are temperature-scaled)")
    offline = math["data"]["offline"]
    if offline["min_steps"] > offline["max_steps"]:
        raise ConfigError("math.data.offline: min_steps must not exceed max_steps")


def _check_overlap(overlap: dict, math: dict) -> None:
    """The overlap runs start from a math checkpoint, one run per k, and draw their tree from one of them."""
    if overlap["model"] not in math["models"]:
        raise ConfigError(f"overlap.model: {overlap['model']!r} is not a key of math.models")
    ks = [run["group_size"] for run in overlap["runs"]]
    if len(set(ks)) != len(ks):
        raise ConfigError(f"overlap.runs: group sizes {ks} repeat; one run per k")
    if overlap["tree"]["group_size"] not in ks:
        raise ConfigError(f"overlap.tree.group_size: {overlap['tree']['group_size']} is not the k of a run in {ks}")


def math_learning_rate(math: dict, model: str, beta: float) -> float:
    """The configured Adam learning rate of `model` at `beta`."""
    return next(e["lr"] for e in math["models"][model]["learning_rates"] if e["beta"] == beta)


def load_config(path: str | Path, overrides: list[str] = ()) -> dict:
    """Read a YAML config, apply `key.sub=value` overrides (values parsed as YAML), validate."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    config = yaml.safe_load(path.read_text()) or {}
    for item in overrides:
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    return validate_config(config)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Validate a config file and print it with defaults filled in.")
    parser.add_argument("config")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        print(yaml.safe_dump(load_config(args.config, args.set), sort_keys=False), end="")
    except ConfigError as e:
        sys.exit(f"config error: {e}")


if __name__ == "__main__":
    main()

"""Experiment configuration: validate against the schema packaged here (config.schema.yaml) and fill in its defaults.

The schema is the one home of every default: the workflow validates against it, and the run dataclasses
(`grpo_prm.toy.ToyConfig`, `grpo_prm.math_rl.MathRunConfig`) take their field defaults from it (`schema_defaults`).
Snakemake's own `validate` reports a failing key in a multi-line dump; here the first error becomes one line that
names the key, e.g. `error: toy.methods[0]: 'ppo' is not one of ['grpo', ...]`.

    python -m grpo_prm.config config/config.yaml [--set toy.steps=10 ...]

`keys_table` writes config/README.md's key table from the schema (its `<!-- numbers:config_keys -->` block, kept
current by `make readme` and tests/test_readme.py).
"""

import copy
import functools
import importlib.resources
import math
from pathlib import Path

import jsonschema
import yaml

from grpo_prm.cli import InputError, OneLineParser, exit_on_error
from grpo_prm.methods import resolve

SCHEMA = importlib.resources.files("grpo_prm") / "config.schema.yaml"  # package data (pyproject.toml)


@functools.cache
def _schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))


def schema_defaults(*section: str) -> dict:
    """The schema's default of every key of one section that has one, e.g. `schema_defaults("math", "train")`; a
    fresh copy, so callers may keep or change the mutable ones."""
    node = _schema()
    for key in section:
        node = node["properties"][key]
    return {key: copy.deepcopy(sub["default"]) for key, sub in node["properties"].items() if "default" in sub}


NO_TRAILING_NEWLINE = "(?!\\n)"  # ends the schema's name patterns: Python's "$" also matches before a final newline


class ConfigError(InputError):
    """A configuration value that the schema or a cross-field rule refuses."""


def _where(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".") or "<top level>"


def _is_integer(checker, instance) -> bool:
    """Integers only: JSON Schema's `integer` also admits 2.0, which a step count must not be (it reaches int())."""
    return isinstance(instance, int) and not isinstance(instance, bool)


# Draft 2020-12 with a strict `integer` type.
Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


def _non_finite(node, path=()):
    """Path of the first NaN or infinite number in `node` (the schema's bounds let NaN through), else None."""
    if isinstance(node, float) and not math.isfinite(node):
        return path
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        found = _non_finite(value, (*path, key))
        if found is not None:
            return found
    return None


def _non_string_key(node, path=()):
    """(path, key) of the first mapping key that is not a string, else None: YAML 1.1 (PyYAML, Snakemake) reads an
    unquoted on/off/yes/no/y/n key as a boolean and a number as a number, which no config key is."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        if isinstance(node, dict) and not isinstance(key, str):
            return path, key
        found = _non_string_key(value, (*path, key))
        if found is not None:
            return found
    return None


def _check_keys(config, source: str = "") -> None:
    bad_key = _non_string_key(config)
    if bad_key is not None:
        where, key = bad_key
        raise ConfigError(
            f"{source}{_where(where)}: key {key!r} is not a name (YAML reads unquoted on/off/yes/no as "
            "booleans and digits as numbers); quote it"
        )


def _get(node, path):
    for key in path:
        node = node[key]
    return node


def _fill_defaults(node: dict, schema: dict) -> None:
    for key, sub in schema.get("properties", {}).items():
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if isinstance(node.get(key), dict):
            _fill_defaults(node[key], sub)


def validate_config(config: dict) -> dict:
    """Return a validated copy of `config` with defaults filled in; raise `ConfigError` naming the culprit."""
    schema = _schema()
    config = copy.deepcopy(config)
    if not isinstance(config, dict):
        raise ConfigError(f"the config must be a mapping of keys, got {type(config).__name__}")
    _check_keys(config)
    bad = _non_finite(config)
    if bad is not None:
        raise ConfigError(f"{_where(bad)}: {_get(config, bad)} is not a finite number")
    errors = sorted(Validator(schema).iter_errors(config), key=lambda e: [str(p) for p in e.path])
    if errors:
        e = errors[0]
        if e.validator == "additionalProperties":
            unknown = sorted(set(e.instance) - set(e.schema.get("properties", {})))
            where = ".".join(str(p) for p in [*e.path, unknown[0]])
            raise ConfigError(f"unknown config key {where!r}")
        if e.validator == "pattern":  # the lookahead that keeps a trailing newline out is noise in a message
            pattern = e.validator_value.removesuffix(NO_TRAILING_NEWLINE)
            raise ConfigError(f"{_where(e.path)}: {e.instance!r} does not match {pattern}")
        raise ConfigError(f"{_where(e.path)}: {e.message}")
    _fill_defaults(config, schema)
    toy = config["toy"]
    if max(toy["n"]) >= toy["depth"]:
        raise ConfigError(f"toy.n: {max(toy['n'])} must be smaller than toy.depth ({toy['depth']})")
    shared = sorted(set(toy["sweep"]["seeds"]) & set(toy["seeds"]))
    if shared:
        raise ConfigError(
            f"toy.sweep.seeds: {shared[0]} is also a reporting seed (toy.seeds); tuning seeds must differ"
        )
    if bool(toy["sweep"]["learning_rates"]) != bool(toy["sweep"]["seeds"]):
        raise ConfigError("toy.sweep: give both learning_rates and seeds, or neither")
    _check_math(config["math"])
    _check_overlap(config["overlap"], config["math"])
    _check_eval(config["eval"])
    return config


def _check_eval(ev: dict) -> None:
    """Every evaluated protocol is defined."""
    for name in ev["protocol"]:
        if name not in ev["protocols"]:
            raise ConfigError(f"eval.protocol: {name!r} is not a key of eval.protocols ({', '.join(ev['protocols'])})")


def _check_trainable(method: str, where: str) -> None:
    """The math runs cannot train a toy-only method (`Base.toy_only`, e.g. the explicit PRM's V of every prefix)."""
    toy_only = resolve(method)[0].toy_only
    if toy_only:
        raise ConfigError(f"{where}: {method!r} is toy-only ({toy_only})")


def _check_math(math: dict) -> None:
    """Cross-field rules of the math section the schema cannot state."""
    for i, method in enumerate(math["methods"]):
        _check_trainable(method, f"math.methods[{i}]")
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
    if (
        train["use_vllm"]
        and train["vllm_importance_sampling_correction"]
        and train["temperature"] != 1.0
        and train["logprob_temperature"] == "raw"
    ):
        raise ConfigError(
            "math.train.vllm_importance_sampling_correction: needs logprob_temperature sampling "
            "(vLLM's sampling log-probs are temperature-scaled)"
        )
    offline = math["data"]["offline"]
    if offline["min_steps"] > offline["max_steps"]:
        raise ConfigError("math.data.offline: min_steps must not exceed max_steps")


def _check_overlap(overlap: dict, math: dict) -> None:
    """The overlap runs start from a math checkpoint, one run per k, and draw their tree from one of them."""
    _check_trainable(overlap["method"], "overlap.method")
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
    config = _read_yaml(path.read_bytes(), str(path)) or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: not a mapping of config keys")
    _check_keys(config, f"{path}: ")
    for item in overrides:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"--set {item!r}: use KEY.SUB=VALUE")
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {p} is not a section")
        node[leaf] = _read_yaml(value.encode(), f"--set {key}")
    return validate_config(config)


def _read_yaml(data: bytes, source: str):
    """YAML from bytes; undecodable or malformed text becomes one line naming the source and position."""
    try:
        return yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{source}: not UTF-8 text (byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ConfigError(f"{source}:{where}: malformed YAML ({problem})") from None


def merge_configs(base: dict, over: dict) -> dict:
    """`over` merged over `base` key by key, nested mappings included, lists replaced: Snakemake's `--configfile`."""
    return {
        k: merge_configs(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
        for k, v in (base | over).items()
    }


# ---- config/README.md's key table, generated from the schema

_NONE = object()  # no value at this key (a per-name or per-item field, or a key the profile lacks)


def _md_value(value) -> str:
    if value is _NONE:
        return "—"
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False, allow_unicode=True)
    return "`" + text.removesuffix("\n").removesuffix("\n...").replace("|", "\\|") + "`"


def _md_text(text: str) -> str:
    """One table cell of prose: whitespace collapsed, `|` escaped, `<` outside code spans kept from being HTML."""
    parts = " ".join(text.split()).replace("|", "\\|").split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;") for i, p in enumerate(parts))


def _md_type(node: dict) -> str:
    if "$ref" in node or "allOf" in node:
        return "protocol"
    if "enum" in node:
        return "one of " + ", ".join(_md_value(v) for v in node["enum"])
    if "anyOf" in node:
        return " or ".join(_md_type(sub) for sub in node["anyOf"])
    kinds = node.get("type", "object")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    out = " or ".join(
        f"list of {_md_type(node.get('items', {}))}" if k == "array" else "mapping" if k == "object" else k
        for k in kinds
    )
    bounds = [
        f"{sign} {node[bound]}"
        for bound, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))
        if bound in node
    ]
    return " ".join([out, ", ".join(bounds)]) if bounds else out


def _at(config, path):
    for key in path:
        if not isinstance(config, dict) or key not in config:
            return _NONE
        config = config[key]
    return config


def keys_table(config_dir: str | Path = "config") -> str:
    """config/README.md's key table: every key of the schema with its type, the schema's default, the value of
    `config.yaml` where it differs from that default and of `paper.yaml` (resolved over `config.yaml`) where it differs
    from `config.yaml`'s, and the schema's description."""
    config_dir = Path(config_dir)
    base = yaml.safe_load((config_dir / "config.yaml").read_text(encoding="utf-8"))
    default = validate_config(base)
    paper = yaml.safe_load((config_dir / "paper.yaml").read_text(encoding="utf-8"))
    paper = validate_config(merge_configs(base, paper))
    schema, rows = _schema(), []

    def row(path: list[str], node: dict, fallback, required: bool) -> None:
        key = ".".join(path).replace(".[]", "[]")
        has_value = not any(p.startswith("<") or p == "[]" for p in path)
        ours, theirs = (_at(default, path), _at(paper, path)) if has_value else (_NONE, _NONE)
        schema_default = node.get("default", fallback)
        if schema_default is _NONE and "default" not in node:
            default_cell = "*required*" if required else "—"
        else:
            default_cell = _md_value(schema_default)
        if (
            isinstance(ours, dict)
            and ("additionalProperties" in node or "properties" in node)
            and node.get("type", "object") == "object"
            and "propertyNames" in node
            and "enum" not in node["propertyNames"]
        ):
            ours, theirs = list(ours), list(theirs)  # a mapping of named entries: their names
        shown = (
            _md_value(ours) if ours is not _NONE and ours != schema_default else "",
            _md_value(theirs) if theirs is not _NONE and theirs != ours else "",
        )
        if "properties" in node and "allOf" not in node and "propertyNames" not in node:
            shown = ("", "")  # a section: its keys carry the values
        rows.append([f"`{key}`", _md_type(node), default_cell, *shown, _md_text(node.get("description", ""))])

    def walk(node: dict, path: list[str], fallback) -> None:
        for key, sub in node.get("properties", {}).items():
            sub_fallback = fallback.get(key, _NONE) if isinstance(fallback, dict) else _NONE
            row([*path, key], sub, sub_fallback, key in node.get("required", ()))
            if "allOf" not in sub:
                walk(sub, [*path, key], sub.get("default", sub_fallback))
        entry = node.get("additionalProperties")
        if isinstance(entry, dict) and ("properties" in entry or "$ref" in entry):
            entry = schema["$defs"][entry["$ref"].split("/")[-1]] if "$ref" in entry else entry
            for key, sub in entry["properties"].items():
                row([*path, "<name>", key], sub, _NONE, key in entry.get("required", ()))
                walk(sub, [*path, "<name>", key], sub.get("default", _NONE))
        if node.get("type") == "array" and "properties" in node.get("items", {}):
            items = node["items"]
            for key, sub in items["properties"].items():
                row([*path, "[]", key], sub, _NONE, key in items.get("required", ()))

    walk(schema, [], _NONE)
    header = ["Key", "Type", "Default (schema)", "`config.yaml`", "`paper.yaml`", "Meaning"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def main(argv=None) -> None:
    parser = OneLineParser(description="Validate a config file and print it with defaults filled in.")
    parser.add_argument("config")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    print(yaml.safe_dump(exit_on_error(lambda: load_config(args.config, args.set)), sort_keys=False), end="")


if __name__ == "__main__":
    main()

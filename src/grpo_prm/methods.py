"""The trainer's methods, one registry: a method is a base (`BASES`) × a weighting (`WEIGHTINGS`), orthogonal.

A base sets the advantage (and, where its paper fixes them, TRL's normaliser and reward scaling); a weighting sets
the per-token weight w(i,t) of the λ-GRPO objective (§4, arXiv 2509.21154; `grpo_prm.weights.token_weights`):

- `grpo`: GRPO's group-normalised advantage (r − mean)/(std + 1e-4), the configured normaliser (the paper's).
- `dr_grpo`: Dr. GRPO (Liu et al. 2025, arXiv 2503.20783): advantage r − mean (no std), constant normaliser
  (batch size × max completion length); TRL's `scale_rewards="none"`, `loss_type="dr_grpo"`.
- `reinforce_rej`: Reinforce-Rej (Xiong et al. 2025, arXiv 2504.11343): advantage = the raw reward r (REINFORCE,
  no baseline), 0 in groups whose rewards are all equal; as in its released code those groups stay in the normaliser
  and the KL term (`grpo_prm.loss.reinforce_rej_advantage`).
- `rloo`: REINFORCE leave-one-out, RLOO (Ahmadian et al. 2024, arXiv 2402.14740): advantage r_i − the mean of the
  group's other k − 1 rewards (no std scaling), the configured normaliser.
- `explicit_prm_mc`: an explicit Monte-Carlo process reward as in VinePPO (Kazemnejad et al. 2024, arXiv
  2410.01679): token t's advantage is V(y_{:t+1}) − V(y_{:t}) (γ = 1, the outcome reward at the end), V(prefix)
  the mean reward of K fresh continuations of the prefix, whitened over the batch as VinePPO's released code does
  (`explicit_prm_normalization`, `grpo_prm.loss.explicit_prm_advantage`).
- `explicit_prm_exact`: the same with V exact (only where the policy's leaves can be enumerated: the toy).

Weightings: `none` (weight 1), `lambda` (1/|λ(i,t)|, so every process step counts once whatever its frequency;
Eq. 9) and `lambda_scaled` (1/|λ| rescaled per group to sum to the group's token count: λ-GRPO shrinks the gradient
and the KL term; this ablation, absent from the paper, keeps the overall scale and changes only its spread).

Method names (`METHODS`, the config's values) are a base, or `lambda_<base>` for λ weighting; `lambda_grpo_scaled`
is GRPO with scaled λ weighting (the only base that names that weighting). Any base takes any weighting through
`LambdaGRPOConfig.weighting`. The weight multiplies the whole per-token loss term (policy and KL); the normaliser is
the base's.

The advantage functions are pure (tensors in, tensors out); `LambdaGRPOTrainer` calls its base's on every generated
batch. Adding a baseline: one `Base` in `BASES`, its advantage function here, a gradient test against its paper's
formula (tests/test_methods.py), and its names in the config schema's method enum (tests/test_config.py checks).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from grpo_prm.errors import SettingError
from grpo_prm.loss import explicit_prm_advantage, reinforce_rej_advantage
from grpo_prm.weights import WEIGHTINGS

DEFAULT_METHOD = "lambda_grpo"


class Advantage(NamedTuple):
    """What a base's advantage function returns for a whole generated batch (all processes, generation order)."""

    advantages: torch.Tensor  # (B,) per completion or (B, T) per token
    metrics: dict[str, float] | None = None  # logged with the step's metrics


# An advantage function: (rewards (B,), group size k, completion mask (B, T) bool, V (B, T + 1) or None, the
# LambdaGRPOConfig) -> Advantage. Rows come in consecutive groups of k; a NaN reward means none (TRL's mark);
# V[:, t] is the value of a row's first t tokens (given when the base asks).
AdvantageFn = Callable[[torch.Tensor, int, torch.Tensor, torch.Tensor | None, object], Advantage]


def reinforce_rej(rewards, k, mask, values, args) -> Advantage:
    """Xiong et al. 2025 (`grpo_prm.loss.reinforce_rej_advantage`); logs the share of groups not rejected."""
    advantages, kept = reinforce_rej_advantage(rewards, k)
    return Advantage(advantages, {"rej/kept_frac": kept.float().mean().item()})


def rloo_advantage(rewards, k, mask, values=None, args=None) -> Advantage:
    """Ahmadian et al. 2024 (RLOO): r_i − (1/(k−1)) Σ_{j≠i} r_j. An unscored completion (reward NaN, as TRL marks
    it) gets advantage 0 and leaves the other rows' baselines, as in TRL's GRPO; so does a row with no scored
    neighbour."""
    grouped = rewards.reshape(-1, k)
    scored = ~grouped.isnan()
    r = grouped.nan_to_num()
    others = scored.sum(1, keepdim=True) - scored.long()  # scored rewards besides row i
    baseline = (r.sum(1, keepdim=True) - r) / others.clamp(min=1)
    return Advantage(torch.where(scored & (others > 0), r - baseline, 0.0).reshape(-1))


def explicit_prm(rewards, k, mask, values, args) -> Advantage:
    """VinePPO (Kazemnejad et al. 2024; `grpo_prm.loss.explicit_prm_advantage`): A(i,t) = V(y_{:t+1}) − V(y_{:t})."""
    return Advantage(explicit_prm_advantage(values, mask, rewards, args.explicit_prm_normalization))


@dataclass(frozen=True)
class Base:
    """One base method: what it changes in GRPO's loss (Eq. 2a) besides the weight."""

    name: str
    label: str  # tables and figures
    tex_label: str  # LaTeX tables (shortened where the label is long)
    # None: TRL's own group advantage, computed before the trainer sees the batch ((r − mean)/(std + 1e-4), or
    # r − mean with `scale_rewards="none"`); else the function that replaces it
    advantage: AdvantageFn | None = None
    prefix_values: str | None = None  # "exact" or "mc": needs V(prefix) of every prefix (the trainer's prefix_values)
    toy_only: str | None = None  # why the math runs cannot train it (None: they can)
    trl_overrides: dict = field(default_factory=dict)  # GRPOConfig fields its paper fixes (and the config requires)
    weightings: tuple[str, ...] = ("none", "lambda")  # the weightings that have a method name (`METHODS`)


PRM_TOY_ONLY = "the explicit PRM needs V(prefix) of every prefix"
BASES = {
    b.name: b
    for b in (
        Base("grpo", "GRPO", "GRPO", weightings=("none", "lambda", "lambda_scaled")),
        Base("dr_grpo", "Dr. GRPO", "Dr. GRPO", trl_overrides={"loss_type": "dr_grpo", "scale_rewards": "none"}),
        Base("reinforce_rej", "Reinforce-Rej", "Reinforce-Rej", reinforce_rej),
        Base("rloo", "RLOO", "RLOO", rloo_advantage),
        Base(
            "explicit_prm_mc",
            "explicit PRM (MC)",
            "PRM (MC)",
            explicit_prm,
            prefix_values="mc",
            toy_only=PRM_TOY_ONLY,
        ),
        Base(
            "explicit_prm_exact",
            "explicit PRM (exact)",
            "PRM (exact)",
            explicit_prm,
            prefix_values="exact",
            toy_only=PRM_TOY_ONLY,
        ),
    )
}

# weighting (`grpo_prm.weights.WEIGHTINGS`) -> (method name, label, TeX label) of a base with it. The TeX label of a
# λ-weighted method is formed from the base's full label, as the toy tables have always printed it (labels hold no
# TeX special characters).
NAMES = {
    "none": ("{}", "{}", None),  # the base's own TeX label
    "lambda": ("lambda_{}", "λ-{}", r"$\lambda$-{}"),
    "lambda_scaled": ("lambda_{}_scaled", "λ-{} (scale-matched)", r"$\lambda$-{} (scale-m.)"),
}


def _named(base: Base, weighting: str) -> tuple[str, str, str]:
    name, label, tex = NAMES[weighting]
    return name.format(base.name), label.format(base.label), base.tex_label if tex is None else tex.format(base.label)


# method name -> (base, weighting), in the tables' and figures' order
RESOLVE = {_named(b, w)[0]: (b, w) for b in BASES.values() for w in b.weightings}
METHODS = tuple(RESOLVE)
METHOD_LABELS = {m: _named(b, w)[1] for m, (b, w) in RESOLVE.items()}
TEX_LABELS = {METHOD_LABELS[m]: _named(b, w)[2] for m, (b, w) in RESOLVE.items()}  # label -> its LaTeX


def method_order(methods) -> list[str]:
    """Known methods first, in `METHODS` order (the tables' and figures' order), then any others alphabetically."""
    known = [m for m in METHODS if m in set(methods)]
    return known + sorted(set(methods) - set(known))


def check_method(method: str) -> str:
    """Return `method` if known, else raise a one-line error naming it."""
    if method not in RESOLVE:
        raise SettingError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return method


def resolve(method: str, weighting: str | None = None) -> tuple[Base, str]:
    """(base, weighting) of a method name; `weighting`, if given, must agree with the name's unless the name has
    none (one-line errors)."""
    base, own = RESOLVE[check_method(method)]
    if weighting is not None and weighting not in WEIGHTINGS:
        raise SettingError(f"unknown weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
    if own != "none" and weighting not in (None, own):
        raise SettingError(f"method {method!r} already sets weighting {own!r}; got weighting={weighting!r}")
    return base, weighting or own

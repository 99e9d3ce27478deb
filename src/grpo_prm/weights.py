"""Methods of the trainer and their per-token loss weights (the λ-GRPO objective (§4), arXiv 2509.21154).

A method is an advantage/normaliser choice (`BASES`) and a weighting (`WEIGHTINGS`), orthogonal to each other:

- `grpo`: GRPO's group-normalised advantage (r − mean)/(std + 1e-4), the configured normaliser (the paper's).
- `dr_grpo`: Dr. GRPO (Liu et al. 2025, arXiv 2503.20783): advantage r − mean (no std), constant normaliser
  (batch size × max completion length); TRL's `scale_rewards="none"`, `loss_type="dr_grpo"`.
- `reinforce_rej`: Reinforce-Rej (Xiong et al. 2025, arXiv 2504.11343): advantage = the raw reward r (REINFORCE,
  no baseline), 0 in groups whose rewards are all equal; as in its released code those groups stay in the normaliser
  and the KL term (`grpo_prm.loss.reinforce_rej_advantage`).
- `explicit_prm_mc`: an explicit Monte-Carlo process reward as in VinePPO (Kazemnejad et al. 2024, arXiv
  2410.01679): token t's advantage is V(y_{:t+1}) − V(y_{:t}) (γ = 1, the outcome reward at the end), V(prefix)
  the mean reward of K fresh continuations of the prefix, whitened over the batch as VinePPO's released code does
  (`explicit_prm_normalization`, `grpo_prm.loss.explicit_prm_advantage`).
- `explicit_prm_exact`: the same with V exact (only where the policy's leaves can be enumerated: the toy).

Weightings: `none` (weight 1), `lambda` (1/|λ(i,t)|, so every process step counts once whatever its frequency;
Eq. 9) and `lambda_scaled` (1/|λ| rescaled per group to sum to the group's token count: λ-GRPO shrinks the gradient
and the KL term; this ablation, absent from the paper, keeps the overall scale and changes only its spread).

Method names (`METHODS`, the config's values) are a base, or `lambda_<base>` for λ weighting; `lambda_grpo` and
`lambda_grpo_scaled` keep their meaning (GRPO advantage with λ / scaled λ weighting). The weight multiplies the
whole per-token loss term (policy and KL); the normaliser is the base's.
"""

import torch

from grpo_prm.errors import SettingError

BASES = ("grpo", "dr_grpo", "reinforce_rej", "explicit_prm_mc", "explicit_prm_exact")
WEIGHTINGS = ("none", "lambda", "lambda_scaled")
METHODS = ("grpo", "lambda_grpo", "lambda_grpo_scaled", "dr_grpo", "lambda_dr_grpo", "reinforce_rej",
           "lambda_reinforce_rej", "explicit_prm_mc", "lambda_explicit_prm_mc", "explicit_prm_exact",
           "lambda_explicit_prm_exact")
BASE_LABELS = {"grpo": "GRPO", "dr_grpo": "Dr. GRPO", "reinforce_rej": "Reinforce-Rej",
               "explicit_prm_mc": "explicit PRM (MC)", "explicit_prm_exact": "explicit PRM (exact)"}
METHOD_LABELS = {"grpo": "GRPO", "lambda_grpo": "λ-GRPO", "lambda_grpo_scaled": "λ-GRPO (scale-matched)",
                 **{b: BASE_LABELS[b] for b in BASES[1:]}, **{f"lambda_{b}": f"λ-{BASE_LABELS[b]}" for b in BASES[1:]}}


def method_order(methods) -> list[str]:
    """Known methods first, in `METHODS` order (the tables' and figures' order), then any others alphabetically."""
    known = [m for m in METHODS if m in set(methods)]
    return known + sorted(set(methods) - set(known))


def check_method(method: str) -> str:
    """Return `method` if known, else raise a one-line error naming it."""
    if method not in METHODS:
        raise SettingError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return method


def split_method(method: str, weighting: str | None = None) -> tuple[str, str]:
    """(base, weighting) of a method name; `weighting`, if given, must agree with the name (one-line error)."""
    check_method(method)
    if method == "lambda_grpo_scaled":
        base, own = "grpo", "lambda_scaled"
    elif method.startswith("lambda_"):
        base, own = method.removeprefix("lambda_"), "lambda"
    else:
        base, own = method, None
    if weighting is not None and weighting not in WEIGHTINGS:
        raise SettingError(f"unknown weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
    if own is not None and weighting not in (None, own):
        raise SettingError(f"method {method!r} already sets weighting {own!r}; got weighting={weighting!r}")
    return base, own or weighting or "none"


def token_weights(n_shared: torch.Tensor, group_size: int, method: str) -> torch.Tensor:
    """Per-token weights from process-set sizes.

    Args:
        n_shared (`torch.LongTensor` of shape `(B, T)`): |λ(i,t)| from `process_set_sizes`, 0 on padding.
        group_size (`int`): k; rows come in consecutive groups of k.
        method (`str`): one of `WEIGHTINGS`, or a method name (its weighting is used).

    Returns:
        `torch.FloatTensor` of shape `(B, T)`: the weight w(i,t), 0 on padding.
    """
    weighting = method if method in WEIGHTINGS else split_method(method)[1]
    valid = n_shared > 0
    if weighting == "none":
        return valid.float()
    w = torch.where(valid, 1.0 / n_shared.clamp(min=1).float(), torch.zeros((), dtype=torch.float))
    if weighting == "lambda_scaled":
        per_group = (-1, group_size * n_shared.shape[1])  # one row per group
        scale = valid.reshape(per_group).sum(1) / w.reshape(per_group).sum(1).clamp(min=1e-12)  # (G,)
        w = w * scale.repeat_interleave(group_size)[:, None]
    return w


"""The λ-GRPO loss and the group advantage, written once (Eq. 2a (DAPO normalisation, μ = 1) and the λ-GRPO
objective (§4), arXiv 2509.21154).

    ℓ(i,t) = −min(P·a_i, clip(P, 1−ε, 1+ε)·a_i) + β·k3(i,t)          (minimised; P = π_θ/π_old)
    L      = Σ_{i,t} w(i,t)·ℓ(i,t) / Σ_i len(y_i)                    ("token":    DAPO, the paper's equations)
    L      = mean_i Σ_t w(i,t)·ℓ(i,t) / len(y_i)                     ("sequence": the authors' code default)
    L      = Σ_{i,t} w(i,t)·ℓ(i,t) / (B · max_len)                   (Dr. GRPO's constant: "token" with n_tokens)

w = 1 gives GRPO; w = 1/|λ| gives λ-GRPO. Because w > 0 it factors out of the min, so the weight can act on the
whole term. The normaliser counts tokens, never Σw: λ-GRPO's loss is smaller than GRPO's on purpose.

The advantage a_i = (r_i − mean(r)) / (std(r) + eps) of the authors' code and TRL is `group_advantage`; the same
normalisation of a step reward R̂(λ) gives the step advantage Â(λ) of Eq. 5–6 (`grpo_prm.prefix_tree`).
"""

import torch

from grpo_prm.errors import SettingError

NORMALIZATIONS = ("token", "sequence")


def kl_k3(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(π_θ || π_ref) per token: π_ref/π_θ − log(π_ref/π_θ) − 1."""
    d = ref_logps - logps
    return torch.exp(d) - d - 1


def per_token_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    ref_logps: torch.Tensor | None = None,
    beta: float = 0.0,
    epsilon_low: float = 0.2,
    epsilon_high: float = 0.2,
    is_ratio: torch.Tensor | None = None,
    kl_bias_correction: bool = False,
) -> torch.Tensor:
    """ℓ(i,t), the unweighted per-token GRPO loss (to be minimised).

    Args:
        logps (`torch.Tensor` of shape `(B, T)`): log π_θ of the sampled tokens (with grad).
        old_logps (`torch.Tensor` of shape `(B, T)`): log π_old (no grad); equal to `logps` in value when μ = 1.
        advantages (`torch.Tensor` of shape `(B,)` or `(B, T)`): a_i = (r_i − mean) / (std + 1e-4) per group.
        ref_logps (`torch.Tensor` of shape `(B, T)`, *optional*): log π_ref; needed when `beta != 0`.
        beta (`float`, defaults to 0.0): KL coefficient β.
        epsilon_low, epsilon_high (`float`, default 0.2): clip range [1 − ε_low, 1 + ε_high].
        is_ratio (`torch.Tensor`, *optional*): vLLM-vs-trainer importance-sampling correction (TRL), policy term only.
        kl_bias_correction (`bool`, defaults to False): multiply k3 by the differentiable ratio P (TRL's default, not
            the paper's).
    """
    if advantages.dim() == 1:
        advantages = advantages[:, None]
    ratio = torch.exp(logps - old_logps)
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    loss = -torch.min(ratio * advantages, clipped * advantages)
    if is_ratio is not None:
        loss = loss * is_ratio
    if beta != 0.0:
        kl = kl_k3(logps, ref_logps)
        loss = loss + beta * (kl * ratio if kl_bias_correction else kl)
    return loss


def aggregate(
    loss: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor, normalization: str, n_tokens=None, n_rows=None
):
    """Weighted sum of `loss` (B, T) normalised by token counts.

    Args:
        loss (`torch.Tensor` of shape `(B, T)`): ℓ(i,t).
        weights (`torch.Tensor` of shape `(B, T)`): w(i,t), 0 on padding.
        mask (`torch.Tensor` of shape `(B, T)`): 1 on completion tokens.
        normalization (`str`): "token" (÷ total tokens) or "sequence" (÷ each length, then mean over sequences).
        n_tokens (`torch.Tensor`, *optional*): the token-level normaliser when it spans more than this micro-batch
            (TRL passes the generation batch's count); defaults to `mask.sum()`.
        n_rows (`torch.Tensor`, *optional*): the sequence-level mean's count when rows were dropped (weight 0 on
            every token, Reinforce-Rej); defaults to B.
    """
    if normalization == "token":
        denom = mask.sum() if n_tokens is None else n_tokens
        return (loss * weights).sum() / denom.clamp(min=1)
    if normalization == "sequence":
        per_row = (loss * weights).sum(-1) / mask.sum(-1).clamp(min=1)
        return per_row.mean() if n_rows is None else per_row.sum() / n_rows.clamp(min=1)
    raise SettingError(f"unknown loss normalization {normalization!r}; choose one of {', '.join(NORMALIZATIONS)}")


def group_advantage(value, rewards: torch.Tensor, eps: float = 1e-4, scale: bool = True):
    """(value − mean(r)) / (std_unbiased(r) + eps) over one group's outcome rewards r (authors' code, TRL).

    `value = r` gives GRPO's advantages a_i; a step reward R̂(λ) (Eq. 5–6) gives the step advantage Â(λ). `value`
    may be any shape (or a float) that broadcasts with a 0-d tensor; `rewards` is 1-d, one group. `scale=False`:
    value − mean(r), Dr. GRPO's advantage (TRL's `scale_rewards="none"`).
    """
    centred = value - rewards.mean()
    return centred / (rewards.std() + eps) if scale else centred


def reinforce_rej_advantage(rewards: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reinforce-Rej's advantage (Xiong et al. 2025, arXiv 2504.11343), as its released code computes it
    (github.com/RLHFlow/Minimal-RL): the raw reward r (REINFORCE, no baseline), set to 0 in every group whose scored
    rewards are all equal ("rejected"). A rejected group's rows stay in the batch: in the loss's normaliser and, with
    β > 0, in its KL term (only their policy-gradient term vanishes). A missing reward (NaN: no reward function
    scored the completion) gives advantage 0 and is left out of the all-equal test, as TRL treats it.

    Args:
        rewards (`torch.Tensor` of shape `(B,)`): outcome rewards in consecutive groups of `group_size`; NaN = none.

    Returns:
        `(advantages (B,), kept (B // group_size,))`: `kept` marks the groups not rejected.
    """
    grouped = rewards.reshape(-1, group_size)
    scored = ~grouped.isnan()
    low = grouped.masked_fill(~scored, float("inf")).amin(1)
    high = grouped.masked_fill(~scored, float("-inf")).amax(1)
    kept = high > low  # False for all-equal and for all-missing groups
    advantages = torch.where(scored & kept[:, None], grouped, torch.zeros((), dtype=grouped.dtype))
    return advantages.reshape(-1), kept


# explicit_prm_normalization: "vineppo" whitens the step advantages over the batch, as VinePPO's released code
# does by default (github.com/McGill-NLP/VinePPO, PPO trainer `whiten_advantages: True`); "none" uses them raw.
PRM_NORMALIZATIONS = ("vineppo", "none")


def explicit_prm_advantage(
    values: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor, normalization: str = "vineppo"
) -> torch.Tensor:
    """The explicit PRM's per-token advantage A(i,t) = V(y_{:t+1}) − V(y_{:t}) (VinePPO, Kazemnejad et al. 2024,
    arXiv 2410.01679; γ = 1, V of a whole completion its reward), optionally whitened over the batch's tokens.

    Args:
        values (`torch.Tensor` of shape `(B, T + 1)`): V of every prefix (see `LambdaGRPOTrainer`'s `prefix_values`).
        mask (`torch.Tensor` of shape `(B, T)`): True on completion tokens.
        rewards (`torch.Tensor` of shape `(B,)`): outcome rewards; a NaN (missing) reward gives the row advantage 0.
        normalization (`str`): one of `PRM_NORMALIZATIONS`. "vineppo": (A − mean) / sqrt(var + 1e-8) over the
            valid tokens of the rows that have a reward (unbiased variance), VinePPO's masked whitening.
    """
    if normalization not in PRM_NORMALIZATIONS:
        raise ValueError(
            f"unknown explicit_prm_normalization {normalization!r}; choose {' or '.join(PRM_NORMALIZATIONS)}"
        )
    valid = mask.bool() & ~rewards.isnan()[:, None]
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    step = torch.where(valid, values[:, 1:] - values[:, :-1], zero)
    if normalization == "vineppo":
        n = valid.sum()
        mean = step.sum() / n.clamp(min=1)
        var = torch.where(valid, (step - mean) ** 2, zero).sum() / (n - 1).clamp(min=1)
        step = torch.where(valid, (step - mean) * torch.rsqrt(var + 1e-8), zero)
    return step

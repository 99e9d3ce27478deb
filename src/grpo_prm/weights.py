"""Per-token loss weights w(i,t) of the λ-GRPO objective (§4, arXiv 2509.21154), one per weighting.

- `none`: weight 1 (GRPO and the other baselines as published).
- `lambda`: 1/|λ(i,t)|, so every process step counts once whatever its frequency (Eq. 9).
- `lambda_scaled`: 1/|λ| rescaled per group to sum to the group's token count: λ-GRPO shrinks the gradient and the
  KL term; this ablation, absent from the paper, keeps the overall scale and changes only its spread.

Which method uses which weighting is `grpo_prm.methods`.
"""

import torch

from grpo_prm.errors import SettingError

WEIGHTINGS = ("none", "lambda", "lambda_scaled")


def token_weights(n_shared: torch.Tensor, group_size: int, weighting: str) -> torch.Tensor:
    """Per-token weights from process-set sizes.

    Args:
        n_shared (`torch.LongTensor` of shape `(B, T)`): |λ(i,t)| from `process_set_sizes`, 0 on padding.
        group_size (`int`): k; rows come in consecutive groups of k.
        weighting (`str`): one of `WEIGHTINGS` (a method's: `grpo_prm.methods.resolve`).

    Returns:
        `torch.FloatTensor` of shape `(B, T)`: the weight w(i,t), 0 on padding.
    """
    if weighting not in WEIGHTINGS:
        raise SettingError(f"unknown weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
    valid = n_shared > 0
    if weighting == "none":
        return valid.float()
    w = torch.where(valid, 1.0 / n_shared.clamp(min=1).float(), torch.zeros((), dtype=torch.float))
    if weighting == "lambda_scaled":
        per_group = (-1, group_size * n_shared.shape[1])  # one row per group
        scale = valid.reshape(per_group).sum(1) / w.reshape(per_group).sum(1).clamp(min=1e-12)  # (G,)
        w = w * scale.repeat_interleave(group_size)[:, None]
    return w

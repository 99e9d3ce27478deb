"""Per-token loss weights of the three trainers (paper §7, arXiv 2509.21154).

- `grpo`: weight 1 on every completion token (the baseline).
- `lambda_grpo`: weight 1/|λ(i,t)|, so every process step counts once whatever its frequency (Eq. 9).
- `lambda_grpo_scaled`: 1/|λ| rescaled per group so that the group's weights sum to its token count. λ-GRPO shrinks
  the gradient and the KL term; this ablation (absent from the paper, §15) keeps GRPO's overall scale and changes
  only how the scale is spread over the tree.

The weight multiplies the whole per-token loss term (policy and KL); the normaliser is left as it is.
"""

import torch

from grpo_prm.process_sets import process_set_sizes_grouped

METHODS = ("grpo", "lambda_grpo", "lambda_grpo_scaled")
METHOD_LABELS = {"grpo": "GRPO", "lambda_grpo": "λ-GRPO", "lambda_grpo_scaled": "λ-GRPO (scale-matched)"}


def method_order(methods) -> list[str]:
    """Known methods first, in `METHODS` order (the tables' and figures' order), then any others alphabetically."""
    known = [m for m in METHODS if m in set(methods)]
    return known + sorted(set(methods) - set(known))


def check_method(method: str) -> str:
    """Return `method` if known, else raise a one-line error naming it."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return method


def token_weights(n_shared: torch.Tensor, group_size: int, method: str) -> torch.Tensor:
    """Per-token weights from process-set sizes.

    Args:
        n_shared (`torch.LongTensor` of shape `(B, T)`): |λ(i,t)| from `process_set_sizes`, 0 on padding.
        group_size (`int`): k; rows come in consecutive groups of k.
        method (`str`): one of `METHODS`.

    Returns:
        `torch.FloatTensor` of shape `(B, T)`: the weight w(i,t), 0 on padding.
    """
    check_method(method)
    valid = n_shared > 0
    if method == "grpo":
        return valid.float()
    w = torch.where(valid, 1.0 / n_shared.clamp(min=1).float(), torch.zeros((), dtype=torch.float))
    if method == "lambda_grpo_scaled":
        per_group = (-1, group_size * n_shared.shape[1])  # one row per group
        scale = valid.reshape(per_group).sum(1) / w.reshape(per_group).sum(1).clamp(min=1e-12)  # (G,)
        w = w * scale.repeat_interleave(group_size)[:, None]
    return w


def group_token_weights(token_ids: torch.Tensor, mask: torch.Tensor, group_size: int, method: str) -> torch.Tensor:
    """Weights straight from completions laid out in consecutive groups of `group_size` rows."""
    if method == "grpo":  # no tree needed
        return mask.float()
    return token_weights(process_set_sizes_grouped(token_ids, mask, group_size), group_size, method)

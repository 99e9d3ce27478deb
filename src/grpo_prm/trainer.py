"""λ-GRPO as a TRL trainer: `LambdaGRPOConfig` + `LambdaGRPOTrainer` (Sullivan & Koller, arXiv 2509.21154).

One trainer serves the three methods of `grpo_prm.weights.METHODS`; `method="grpo"` is plain GRPO (weight 1).
"""

from dataclasses import dataclass, field

import torch
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import add_fused_lm_head, disable_dropout_in_model

from grpo_prm.loss import aggregate, kl_k3, per_token_loss
from grpo_prm.prefix_tree import size_statistics
from grpo_prm.process_sets import process_set_sizes_grouped
from grpo_prm.recording import record_batch, trl_rewards
from grpo_prm.weights import check_method, token_weights

# TRL's loss_type names for the two normalisers of grpo_prm.loss.
NORMALIZATION = {"dapo": "token", "grpo": "sequence"}
LOSS_TYPE = {v: k for k, v in NORMALIZATION.items()}


def check_run_settings(method: str, group_size: int, loss_normalization: str) -> None:
    """The checks every training run shares (toy and math), as one-line ValueErrors naming the value."""
    check_method(method)
    if group_size < 2:
        raise ValueError(f"group_size must be at least 2, got {group_size}")
    if loss_normalization not in LOSS_TYPE:
        raise ValueError(f"unknown loss_normalization {loss_normalization!r}; choose token or sequence")


@dataclass
class LambdaGRPOConfig(GRPOConfig):
    """`GRPOConfig` plus the λ-GRPO method. Only the fields added or changed are documented here.

    Parameters:
        method (`str`, defaults to `"lambda_grpo"`):
            `"grpo"` (weight 1), `"lambda_grpo"` (weight 1/|λ(i,t)|, paper Eq. 9) or `"lambda_grpo_scaled"` (1/|λ|
            rescaled per group to sum to the group's token count; a scale-matched ablation).
        loss_type (`str`, defaults to `"dapo"`):
            Only `"dapo"` (token-level over the batch: the paper's equations) and `"grpo"` (per-sequence: the
            authors' code default) are supported.
        use_bias_correction_kl (`bool`, defaults to `False`, TRL: `True`):
            The paper and the authors' code use the plain k3 KL term; TRL ≥ 1.x multiplies it by the (differentiable)
            importance ratio, which changes the KL gradient even on-policy.
    """

    method: str = field(default="lambda_grpo", metadata={"help": "grpo, lambda_grpo or lambda_grpo_scaled."})
    use_bias_correction_kl: bool = field(default=False, metadata={"help": "Multiply k3 by the IS ratio (TRL)."})

    def __post_init__(self):
        super().__post_init__()
        check_method(self.method)
        unsupported = {
            "loss_type": self.loss_type not in NORMALIZATION,
            "use_liger_kernel": self.use_liger_kernel,  # its fused loss takes (B,) advantages only
            "importance_sampling_level": self.importance_sampling_level != "token",
            "top_entropy_quantile": self.top_entropy_quantile < 1.0,
            "off_policy_mask_threshold": self.off_policy_mask_threshold is not None,
            "delta": self.delta is not None,
            "entropy_coef": bool(self.entropy_coef),
        }
        bad = [k for k, v in unsupported.items() if v]
        if bad:
            raise ValueError(f"LambdaGRPOConfig does not support {bad[0]}={getattr(self, bad[0])!r}")


def authors_grpo_config(loss_normalization: str = "token", **fields) -> LambdaGRPOConfig:
    """`LambdaGRPOConfig` with the authors' optimiser set-up (paper.md §8), shared by the toy and the math runs.

    Adam with a constant lr, no warm-up, no gradient clipping (TRL clips at 1.0 by default) and no weight decay; one
    optimiser step per generated batch (μ = 1); metrics every step and no external loggers. `fields` set the rest
    and may override any of these.
    """
    authors = {
        "loss_type": LOSS_TYPE[loss_normalization],
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "max_grad_norm": 0.0,
        "weight_decay": 0.0,
        "optim": "adamw_torch",
        "gradient_accumulation_steps": 1,
        "logging_steps": 1,
        "report_to": "none",
        "use_cpu": not torch.cuda.is_available(),
    }
    return LambdaGRPOConfig(**(authors | fields))


class LambdaGRPOTrainer(GRPOTrainer):
    """GRPO with every token's loss term divided by the size of its process set |λ(i,t)| (arXiv 2509.21154, Eq. 9).

    Two methods of `GRPOTrainer` are overridden:
    - `_generate_and_score_completions` adds `lambda_weights` (B, T) to the batch, computed on whole groups (gathered
      across processes when a group is split over them) before TRL shuffles and splits the batch.
    - `_compute_loss` multiplies the *whole* per-token term by the weight, KL included. TRL adds β·KL unweighted, so
      scaling the advantages alone would be exact only at β = 0. The normaliser stays TRL's token count.

    `ref_model` (optional): TRL builds the β-reference from the policy's Hub id or folder; a policy built in memory
    (the toy's masked head, the tests) has neither, so it may be passed here. It is set up the way TRL sets up its own.
    """

    args: LambdaGRPOConfig
    recorder = None  # a grpo_prm.recording.GroupRecorder: every training group is written for the §3 analyses

    def __init__(self, *posargs, ref_model=None, **kwargs):
        if ref_model is None:
            super().__init__(*posargs, **kwargs)
            return
        args = kwargs["args"]
        beta, args.beta = args.beta, 0.0  # keep TRL from loading a reference of its own
        try:
            super().__init__(*posargs, **kwargs)
        finally:
            args.beta = beta
        self.beta = beta
        if args.disable_dropout:
            disable_dropout_in_model(ref_model)
        add_fused_lm_head(ref_model, temperature=self.temperature, cast_lm_head_to_fp32=args.cast_lm_head_to_fp32)
        self.ref_model = self.accelerator.prepare_model(ref_model, evaluation_mode=True)

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        k = self.num_generations if self.model.training else self.num_generations_eval
        ids, mask = self._gather_rows(out["completion_ids"]), self._gather_rows(out["completion_mask"]).bool()
        if self.recorder is not None and self.model.training and self.accelerator.is_main_process:
            rewards, advantages = trl_rewards(self, len(ids))  # TRL's output dict lacks the raw rewards
            batch = {"completion_ids": ids, "completion_mask": mask, "advantages": advantages}
            record_batch(self.recorder, batch, self.state.global_step, k, rewards)
        n_shared = process_set_sizes_grouped(ids, mask, k)  # (B_all, T)
        weights = token_weights(n_shared, k, self.args.method)
        self._log_tree_metrics(n_shared, mask, weights, k)
        n_local, t_local = out["completion_ids"].shape
        start = self.accelerator.process_index * n_local
        out["lambda_weights"] = weights[start : start + n_local, :t_local]
        return out

    def _gather_rows(self, x: torch.Tensor) -> torch.Tensor:
        """All processes' rows in process order (groups may straddle processes), padded to one length."""
        if self.accelerator.num_processes == 1:
            return x
        return self.accelerator.gather(self.accelerator.pad_across_processes(x, dim=1, pad_index=0))

    def _log_tree_metrics(self, n_shared, mask, weights, k):
        mode = "train" if self.model.training else "eval"
        stats = size_statistics(n_shared, k)
        valid = mask.float()
        metrics = {
            "lambda/weight_mean": (weights * valid).sum() / valid.sum().clamp(min=1),
            "lambda/shared_token_frac": ((n_shared > 1) & mask).sum() / valid.sum().clamp(min=1),
            "tree/flat_frac": stats["flat"].float().mean(),
            "tree/path_depth": stats["path_depth"].float().mean(),
            "tree/intermediate_proportion": stats["intermediate_proportion"].mean(),
        }
        for name, value in metrics.items():
            self._metrics[mode][name].append(value.item())

    def _compute_loss(self, model, inputs):
        prompt_ids, completion_ids = inputs["prompt_ids"], inputs["completion_ids"]
        mask = inputs["completion_mask"].float()
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        logps, entropies, _ = self._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, completion_ids.size(1), compute_entropy=True
        )
        old_logps = inputs.get("old_per_token_logps")
        old_logps = logps.detach() if old_logps is None else old_logps  # μ = 1: P = 1 in value, ∇ = ∇log π
        loss_terms = per_token_loss(
            logps,
            old_logps,
            inputs["advantages"],
            ref_logps=inputs.get("ref_per_token_logps"),
            beta=self.beta,
            epsilon_low=self.epsilon_low,
            epsilon_high=self.epsilon_high,
            is_ratio=inputs.get("importance_sampling_ratio") if self.vllm_importance_sampling_correction else None,
            kl_bias_correction=self.args.use_bias_correction_kl,
        )
        mode = "train" if self.model.training else "eval"
        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1
        if self.loss_type == "dapo":
            # TRL's normaliser: the generation batch's token count, rescaled to one accumulation window.
            n_tokens = inputs["num_items_in_batch"].clamp(min=1) / self.accelerator.num_processes
            if mode == "train":
                n_tokens = n_tokens * accumulation / self.args.steps_per_generation
            loss = aggregate(loss_terms, inputs["lambda_weights"], mask, "token", n_tokens)
        else:
            loss = aggregate(loss_terms, inputs["lambda_weights"], mask, "sequence") / accumulation
        self._log_loss_metrics(mode, logps, old_logps, inputs, entropies, mask)
        return loss

    def _log_loss_metrics(self, mode, logps, old_logps, inputs, entropies, mask):
        def masked_mean(x):
            totals = self.accelerator.reduce(torch.stack([(x * mask).sum(), mask.sum()]), reduction="sum")
            return (totals[0] / totals[1].clamp(min=1.0)).item()

        if self.beta != 0.0:
            self._metrics[mode]["kl"].append(masked_mean(kl_k3(logps.detach(), inputs["ref_per_token_logps"])))
        self._metrics[mode]["entropy"].append(masked_mean(entropies.detach()))
        ratio = torch.exp(logps.detach() - old_logps)
        adv = inputs["advantages"] if inputs["advantages"].dim() == 2 else inputs["advantages"][:, None]
        clipped = ((ratio < 1 - self.epsilon_low) & (adv < 0)) | ((ratio > 1 + self.epsilon_high) & (adv > 0))
        self._metrics[mode]["clip_ratio/region_mean"].append(masked_mean(clipped.float()))

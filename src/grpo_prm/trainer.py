"""λ-GRPO as a TRL trainer: `LambdaGRPOConfig` + `LambdaGRPOTrainer` (Sullivan & Koller, arXiv 2509.21154).

One trainer serves every method of `grpo_prm.methods.METHODS` (an advantage/normaliser base × a weighting);
`method="grpo"` is plain GRPO (weight 1).
"""

from dataclasses import dataclass, field

import torch
from accelerate.utils import is_peft_model
from transformers.utils import is_torch_bf16_gpu_available
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import add_fused_lm_head, disable_dropout_in_model, get_config_model_id

from grpo_prm.errors import SettingError
from grpo_prm.loss import PRM_NORMALIZATIONS
from grpo_prm.methods import DEFAULT_METHOD, check_method, resolve
from grpo_prm.process_sets import process_set_sizes_grouped
from grpo_prm.weights import token_weights

# The vision-language fields TRL's `_compute_loss` passes from the batch to the log-prob call.
MULTIMODAL_INPUTS = (
    "pixel_values",
    "image_grid_thw",
    "num_images",
    "pixel_attention_mask",
    "spatial_shapes",
    "num_tiles",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
)
# TRL's loss_type names for the run configs' loss_normalization ("constant": Dr. GRPO's B × max_completion_length).
NORMALIZATION = {"dapo": "token", "grpo": "sequence", "dr_grpo": "constant"}
LOSS_TYPE = {v: k for k, v in NORMALIZATION.items()}
# Weights and optimiser state stay float32 under both: "fp32" is the authors' (float32 throughout), "mixed" computes
# the forward/backward in bf16 under autocast. Plain AdamW on bf16 weights is not offered: at lr 1e-6 most updates
# fall below bf16's resolution and are lost.
PRECISIONS = ("fp32", "mixed")
# Log-probs of the loss (policy, old and reference): "raw" from the unscaled logits (the authors'; the temperature
# acts on sampling only) or "sampling" from logits / temperature (TRL's).
LOGPROB_TEMPERATURES = ("raw", "sampling")


def _is_dropout_name(name: str) -> bool:
    return "dropout" in name or name.endswith("pdrop")


def disable_numeric_dropout(model: torch.nn.Module) -> None:
    """Zero the dropout rates that models keep as numbers, not `nn.Dropout` modules (which TRL's `disable_dropout`
    covers): Llama/Qwen attention passes `self.attention_dropout` to the attention function in train mode, and other
    configs carry `hidden_dropout`, `attn_pdrop`, ... . Set to 0.0 on every module attribute and on the config, so a
    user's model with `attention_dropout: 0.1` samples and scores deterministically, as the authors' eval-mode
    sampling does."""
    configs = [getattr(model, "config", None)]
    configs += [getattr(configs[0], k, None) for k in ("text_config", "decoder")] if configs[0] is not None else []
    for config in (c for c in configs if c is not None and hasattr(c, "to_dict")):
        for key, value in config.to_dict().items():
            if _is_dropout_name(key) and isinstance(value, float | int) and not isinstance(value, bool):
                setattr(config, key, 0.0)
    for module in model.modules():
        for key, value in list(vars(module).items()):
            if _is_dropout_name(key) and isinstance(value, float | int) and not isinstance(value, bool):
                setattr(module, key, 0.0)


def check_run_settings(
    method: str, group_size: int, loss_normalization: str, precision: str = "fp32", logprob_temperature: str = "raw"
) -> None:
    """The checks every training run shares (toy and math), as one-line SettingErrors naming the value."""
    check_method(method)
    if group_size < 2:
        raise SettingError(f"group_size must be at least 2, got {group_size}")
    if loss_normalization not in LOSS_TYPE:
        raise SettingError(f"unknown loss_normalization {loss_normalization!r}; choose token or sequence")
    if precision not in PRECISIONS:
        raise SettingError(f"unknown precision {precision!r}; choose {' or '.join(PRECISIONS)}")
    if logprob_temperature not in LOGPROB_TEMPERATURES:
        raise SettingError(
            f"unknown logprob_temperature {logprob_temperature!r}; choose {' or '.join(LOGPROB_TEMPERATURES)}"
        )


def cpu_attention(bf16: bool):
    """The attention kernels of a training run: on a CPU in bf16 (`precision: mixed`), SDPA's math backend.

    PyTorch's CPU flash attention packs bf16 blocks with AVX-512 code (`pack_vnni2`) on machines with AMX and refuses
    under the capability every command pins (`ATEN_CPU_CAPABILITY=avx2`, `grpo_prm.cli.CPU_ENV`): "pack_vnni2 is only
    supported when avx512 is supported". The math backend computes the same attention with matmuls and a softmax on
    every machine. Elsewhere (float32, or a GPU) nothing changes, so fp32 results keep their kernels."""
    from contextlib import nullcontext

    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH]) if bf16 and not torch.cuda.is_available() else nullcontext()


@dataclass
class LambdaGRPOConfig(GRPOConfig):
    """`GRPOConfig` plus the λ-GRPO method. Only the fields added or changed are documented here.

    Parameters:
        method (`str`, defaults to `"lambda_grpo"`):
            One of `grpo_prm.methods.METHODS`: the advantage/normaliser base (`grpo`, `dr_grpo`, `reinforce_rej`,
            `rloo`, `explicit_prm_mc`, `explicit_prm_exact`; papers cited in `grpo_prm.methods`), prefixed `lambda_`
            for weight 1/|λ(i,t)| (paper Eq. 9); `"lambda_grpo_scaled"` is the scale-matched ablation. Resolved once,
            here: `base` is its `grpo_prm.methods.Base` entry and `weighting` its weighting.
        weighting (`str` or `None`, defaults to `None`):
            `"none"`, `"lambda"` or `"lambda_scaled"`, to put the weight on a base method without renaming it
            (e.g. `method="dr_grpo", weighting="lambda"`); `None` takes the method name's. A weighting that
            contradicts the name is refused.
        mc_continuations (`int`, defaults to `8`):
            K, the fresh continuations per prefix that estimate V(prefix) for `explicit_prm_mc`. Every one is extra
            sampling (the cost λ-GRPO avoids); the sampled-token count is logged as `prm/extra_sampled_tokens`.
        explicit_prm_normalization (`str`, defaults to `"vineppo"`):
            `"vineppo"` whitens the explicit PRM's step advantages over the batch's tokens, as VinePPO's released
            code does by default; `"none"` uses them raw (`grpo_prm.loss.explicit_prm_advantage`).
        loss_type (`str`, defaults to `"dapo"`):
            Every TRL loss type; the run configs use `"dapo"` (token-level over the batch: the paper's equations),
            `"grpo"` (per-sequence: the authors' code default) or `"dr_grpo"` (constant B × max_completion_length).
            With a weighting, `importance_sampling_level` must be `"token"` (see `LambdaGRPOTrainer`).
            `method="dr_grpo"` needs `loss_type="dr_grpo"` and `scale_rewards="none"` (TRL's Dr. GRPO).
        logprob_temperature (`str`, defaults to `"sampling"`):
            `"sampling"`: policy, old and reference log-probs from `logits / temperature`, as TRL computes them.
            `"raw"`: from the unscaled logits, as in the authors' loss (the temperature shapes sampling only). The two
            differ whenever `temperature != 1` (the paper's math runs sample at 0.75).

    Every `GRPOConfig` field keeps TRL's default, so `method="grpo"` is TRL's GRPO field for field; the one default
    that differs is the weighting, `method="lambda_grpo"` (the point of this class). The authors' settings (plain k3
    KL, `use_bias_correction_kl=False`; `logprob_temperature="raw"`; `disable_dropout=True`, as they sample in eval
    mode; no `vllm_importance_sampling_correction`, as they sample with HF `generate`; their optimiser) are the
    preset `authors_grpo_config`, which every run of this project uses. `vllm_importance_sampling_correction`
    compares against temperature-scaled log-probs, so it requires `logprob_temperature="sampling"` when
    `temperature != 1`.
    """

    method: str = field(default=DEFAULT_METHOD, metadata={"help": "One of grpo_prm.methods.METHODS."})
    weighting: str | None = field(default=None, metadata={"help": "none, lambda or lambda_scaled (None: the name's)."})
    mc_continuations: int = field(default=8, metadata={"help": "K continuations per prefix (explicit_prm_mc)."})
    explicit_prm_normalization: str = field(default="vineppo", metadata={"help": "vineppo (batch whitening) or none."})
    logprob_temperature: str = field(default="sampling", metadata={"help": "sampling (TRL's) or raw (authors')."})

    def __post_init__(self):
        super().__post_init__()
        self.base, self.weighting = resolve(self.method, self.weighting)  # not a field: TRL's to_dict skips it
        base, fixed = self.base, self.base.trl_overrides
        if any(getattr(self, key) != value for key, value in fixed.items()):
            raise SettingError(
                f"method {base.name} needs {' and '.join(f'{k}={v!r}' for k, v in fixed.items())} "
                f"({base.label}), got {', '.join(f'{k}={getattr(self, k)!r}' for k in fixed)}"
            )
        if self.explicit_prm_normalization not in PRM_NORMALIZATIONS:
            raise SettingError(
                f"unknown explicit_prm_normalization {self.explicit_prm_normalization!r}; "
                f"choose {' or '.join(PRM_NORMALIZATIONS)}"
            )
        if self.mc_continuations < 1:
            raise SettingError(f"mc_continuations must be at least 1, got {self.mc_continuations}")
        if self.logprob_temperature not in LOGPROB_TEMPERATURES:
            raise SettingError(
                f"unknown logprob_temperature {self.logprob_temperature!r}; choose {' or '.join(LOGPROB_TEMPERATURES)}"
            )
        if (
            self.use_vllm
            and self.vllm_importance_sampling_correction
            and self.temperature != 1.0
            and self.logprob_temperature == "raw"
        ):
            raise SettingError(
                "vllm_importance_sampling_correction needs logprob_temperature='sampling': vLLM's "
                "sampling log-probs are temperature-scaled, the raw ones are not"
            )
        if self.weighting != "none" and self.importance_sampling_level != "token":
            # GSPO's ratio is one per row, shared by all its tokens: the backward seam (LambdaGRPOTrainer) would
            # weight its gradient by each token's own w, not by the row's Σ_t w(i,t) the divided terms sum to
            raise SettingError(
                f"LambdaGRPOConfig does not support importance_sampling_level={self.importance_sampling_level!r} "
                f"with weighting {self.weighting!r}: the sequence ratio couples a row's tokens, and 1/|λ| is per token"
            )


# The authors' loss where TRL's defaults differ (see `authors_grpo_config`).
AUTHORS_LOSS_FIELDS = {
    "use_bias_correction_kl": False,
    "logprob_temperature": "raw",
    "disable_dropout": True,
    "vllm_importance_sampling_correction": False,
}


def authors_grpo_config(loss_normalization: str = "token", precision: str = "fp32", **fields) -> LambdaGRPOConfig:
    """`LambdaGRPOConfig` with the authors' settings (their code, github.com/coli-saar/grpo-prm), the preset every run
    of this project (toy, math, benchmarks) builds its config with.

    The loss as theirs: plain k3 KL (TRL multiplies it by the importance ratio), log-probs from the raw logits
    (TRL's divide by the temperature), dropout off (they sample in eval mode), no vLLM importance-sampling
    correction (they sample with HF `generate`). Their optimiser: Adam with a constant lr, no warm-up, no gradient
    clipping (TRL clips at 1.0 by default) and no weight decay; one
    optimiser step per generated batch (μ = 1); metrics every step and no external loggers. `precision` (one of
    `PRECISIONS`) maps to TRL's autocast flag. `fields` set the rest and may override any of these. A method whose
    paper fixes TRL settings (`Base.trl_overrides`: Dr. GRPO's `loss_type="dr_grpo"`, `scale_rewards="none"`) brings
    them in place of `loss_normalization`.
    """
    if precision not in PRECISIONS:
        raise SettingError(f"unknown precision {precision!r}; choose {' or '.join(PRECISIONS)}")
    fields = resolve(fields.get("method", DEFAULT_METHOD))[0].trl_overrides | fields
    authors = {
        **AUTHORS_LOSS_FIELDS,
        "loss_type": LOSS_TYPE[loss_normalization],
        "bf16": precision == "mixed",
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
    """Trainer for λ-GRPO (https://huggingface.co/papers/2509.21154): GRPO with every token's loss term divided by the
    size of its process set |λ(i,t)| (Eq. 9), and the baselines of `grpo_prm.methods` that change the same terms
    (advantage, normaliser, weight). The weight itself is `grpo_prm.weights.token_weights`.

    The changes w.r.t. `GRPOTrainer` are in these methods; everything else (generation, rewards, weight syncing,
    logging) is inherited unchanged:
    - `_generate_and_score_completions` adds `lambda_weights` (B, T) to the batch, computed on whole groups (gathered
      across processes when a group is split over them) before TRL shuffles and splits the batch. A base with an
      advantage function (`grpo_prm.methods.Base.advantage`) replaces TRL's advantage by its own, computed on the
      whole batch: Reinforce-Rej's raw reward (0 in groups whose rewards are all equal, which stay in the normaliser
      and the KL term, as in its released code), RLOO's leave-one-out baseline, the explicit PRM's
      V(y_{:t+1}) − V(y_{:t}) per token (whitened over the batch, VinePPO's default). A completion without reward
      gets advantage 0 (TRL's rule). Here the `on_batch` hook sees each whole batch.
    - `_compute_loss` is TRL's, with the weight at one seam: the per-token log-probs and entropies of the loss's
      forward pass go through `ScaleTokenGradient`, identity forward, gradient of token (i,t) times w(i,t) backward.
      Why this is the paper's loss (§4: each token's whole term, policy and KL, divided by |λ(i,t)|, normaliser
      unchanged): let TRL's loss be L = Σ_{i,t} ℓ(i,t)/N, where ℓ(i,t) depends on θ only through token (i,t)'s own
      log-prob (its ratio, clip, k3 KL and IS terms) or entropy (the bonus). Everything else TRL multiplies in (the
      vLLM IS ratio, off-policy and entropy masks, vespo's φ, cispo's clipped ratio, the clip *decision*) is a
      constant in backward. Then ∂/∂θ Σ w·ℓ/N = Σ w·(∂ℓ/∂logp)(∂logp/∂θ)/N, which is exactly the scaled backward:
      d(w·ℓ)/dθ = w·dℓ/dθ for a constant w. So every loss type at token level (grpo, dapo, dr_grpo, bnpo, luspo,
      cispo, sapo, vespo), `delta`, the entropy bonus and filter, the off-policy mask, the vLLM IS correction, tool
      masks (TRL's mask) and the MoE aux loss (unweighted: it is no token's term) come from TRL unchanged.
      Sequence-level importance sampling (GSPO, luspo's recommended set-up) is refused with a weighting: its ratio
      couples a row's tokens, so a token's gradient is not its own term's (see `LambdaGRPOConfig`).
      The forward value is TRL's: the logged `loss` is the *unweighted* objective (λ acts on the gradient only);
      `lambda/weight_mean` (mean w over loss tokens, < 1 where λ acts) and `lambda/shared_token_frac` (share of
      tokens with |λ| > 1) show the weighting (logged here, or by `BatchRecorder` when it is the `on_batch`).
    - `__init__` takes `prefix_values`, `on_batch` and `ref_model`; refuses trainable weights in bf16/fp16 unless
      DeepSpeed keeps float32 master weights (see `PRECISIONS`); and, with `logprob_temperature="raw"`, replaces
      the fused log-prob heads that TRL puts on the policy and its reference by ones at temperature 1, so that
      policy, old and reference log-probs all come from the raw logits as in the authors' loss, while generation
      keeps `temperature`.

    `prefix_values` (optional): `f(model, completion_ids, completion_mask, rewards) -> (V, n_sampled)` with V of shape
    (B, T + 1), V[:, t] the value of the first t completion tokens (V at a row's length is its reward), and
    n_sampled the tokens sampled to estimate it. Required by the bases with `Base.prefix_values`: `explicit_prm_exact`
    (the toy enumerates its leaves) and `explicit_prm_mc`, whose K = `mc_continuations` continuations only the
    caller can score.

    `ref_model` (optional): the β-reference as a model in memory (the toy's masked head, the tests'). TRL builds its
    reference from the policy's Hub id or folder, which such a model lacks (and which would lose the masked head), so
    with `ref_model` TRL builds none (it is built at β = 0) and this one is set up as TRL sets up its own: dropout
    off, prepared for evaluation, a fused log-prob head at the log-prob temperature.

    `on_batch` (optional): called once per generated batch, on every process and in training and evaluation alike,
    as `on_batch(trainer, completion_ids, completion_mask, process_set_sizes, weights, group_size)` with all
    processes' rows in generation order (whole groups, unshuffled) and the (B, T) |λ| and weights. Metrics it appends
    to `trainer._metrics` are logged with the step's. The runs pass `grpo_prm.recording.BatchRecorder` (tree
    statistics, recorded groups); `logged_rewards` gives it the batch's rewards.

    Design note (issue 27, not implemented): λ at one seam of TRL's own `_compute_loss` instead of a second loss.
    Every term of TRL's per-token loss ℓ(i,t) (clipped policy term of any loss type, k3 KL with or without bias
    correction, IS and off-policy masks, tool masks) reaches the parameters only through the per-token log-prob
    logps[i, t], or the entropy H[i, t] for the entropy bonus. Since w(i,t) is a constant,
    ∇(w·ℓ)(i,t) = w(i,t)·∂ℓ/∂logps[i,t]·∇logps[i,t], so a backward hook `logps.register_hook(lambda g: g * w)` (and
    one on H) gives exactly the gradient of Σ w·ℓ / normaliser with TRL's normaliser, for every option at once. The
    seam: `_compute_loss` keeps `inputs["lambda_weights"]` of its micro-batch, then calls TRL's; the override of
    `_get_per_token_logps_and_entropies` registers the hooks when its output requires grad (the old and reference
    passes run without). The advantages stay in `_generate_and_score_completions` (the bases' functions; TRL takes
    (B, T) advantages), and rows a base drops leave through `completion_mask` (out of loss and normaliser, as now).
    Not exact where a loss couples a sequence's tokens (`importance_sampling_level="sequence"`, `luspo`, `vespo`'s
    sequence weight): there the hook scales token t's share of a sequence-level factor, so derive "divide the
    token's term by |λ|" for it or refuse it. TRL's logged loss is then unweighted; log the weighted one beside it.
    """

    args: LambdaGRPOConfig

    def __init__(
        self, model, reward_funcs=None, args=None, *posargs, prefix_values=None, on_batch=None, ref_model=None, **kwargs
    ):
        if args is None:  # TRL's default config, named as TRL names it, with this trainer's fields; where TRL's
            # would refuse to build (bf16 on a machine without an accelerator), on the CPU instead
            name = model if isinstance(model, str) else get_config_model_id(model.config)
            cpu_only = not (torch.cuda.is_available() or is_torch_bf16_gpu_available())
            args = LambdaGRPOConfig(f"{name.split('/')[-1]}-GRPO", use_cpu=cpu_only)
        if args.base.prefix_values and prefix_values is None:
            raise SettingError(f"method {args.method!r} needs prefix_values (V of every prefix); see LambdaGRPOTrainer")
        self.prefix_values, self.on_batch = prefix_values, on_batch
        beta = args.beta
        if ref_model is not None:
            args.beta = 0.0  # TRL then builds no reference of its own
        try:
            super().__init__(model, reward_funcs, args, *posargs, **kwargs)
        finally:
            args.beta = beta
        if ref_model is not None:  # set up as TRL sets up its own (its fused head below)
            self.beta = beta
            if args.disable_dropout:
                disable_dropout_in_model(ref_model)
            self.ref_model = self.accelerator.prepare_model(ref_model, evaluation_mode=True)
        self._check_master_weights()
        if args.disable_dropout:  # TRL zeroes nn.Dropout modules only
            disable_numeric_dropout(self.model)
            if self.ref_model is not None:
                disable_numeric_dropout(self.accelerator.unwrap_model(self.ref_model))
        # TRL gave the policy (and its own reference) fused log-prob heads at the sampling temperature; a second
        # patch wraps the first and answers every fused call itself (Eq. 2a: log-probs of the raw logits).
        self.logprob_temperature = self.temperature if args.logprob_temperature == "sampling" else 1.0
        heads = []
        if self.logprob_temperature != self.temperature:
            policy = self.model.get_base_model() if is_peft_model(self.model) else self.model
            heads.append((policy, ("log_probs", "entropy")))
        if self.ref_model is not None and (ref_model is not None or self.logprob_temperature != self.temperature):
            heads.append((self.accelerator.unwrap_model(self.ref_model), ("log_probs",)))  # a given ref has none yet
        for m, outputs in heads:
            add_fused_lm_head(m, self.logprob_temperature, args.cast_lm_head_to_fp32, outputs)

    def train(self, *posargs, **kwargs):
        """`Trainer.train`; under `precision: mixed` on a CPU, attention takes SDPA's math backend (`cpu_attention`)."""
        with cpu_attention(self.args.bf16):
            return super().train(*posargs, **kwargs)

    def _check_master_weights(self) -> None:
        low = sorted({str(p.dtype) for p in self.model.parameters() if p.requires_grad} - {"torch.float32"})
        if low and not self.is_deepspeed_enabled:
            raise SettingError(
                f"trainable weights are {low[0]}: AdamW on them drops updates below their resolution; "
                "load the policy in float32 (precision fp32 or mixed) or use DeepSpeed's fp32 master weights"
            )

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        k = self.num_generations if self.model.training else self.num_generations_eval
        ids, mask = self._gather_rows(out["completion_ids"]), self._gather_rows(out["completion_mask"]).bool()
        # (B_all, T); a group of one (num_generations_eval=1) shares no token: |λ| = 1
        n_shared = process_set_sizes_grouped(ids, mask, k) if k > 1 else mask.long()
        weights = token_weights(n_shared, k, self.args.weighting)
        if self.on_batch is not None:
            self.on_batch(self, ids, mask, n_shared, weights, k)
        n_local, t_local = out["completion_ids"].shape
        start = self.accelerator.process_index * n_local
        local = slice(start, start + n_local)
        base = self.args.base
        if base.advantage is not None:  # else TRL's group advantage stands (GRPO, Dr. GRPO)
            metrics = self._metrics["train" if self.model.training else "eval"]
            rewards = self.logged_rewards(len(ids))[0].to(ids.device, torch.float32)  # NaN: no reward
            values = None
            if base.prefix_values:
                with torch.no_grad():
                    values, n_sampled = self.prefix_values(self.model, ids, mask, rewards.nan_to_num(0.0))
                values = values.to(rewards.device)
                metrics["prm/extra_sampled_tokens"].append(n_sampled)
            adv = base.advantage(rewards, k, mask, values, self.args)
            a = adv.advantages
            out["advantages"] = (a[local] if a.dim() == 1 else a[local, :t_local]).to(out["advantages"].dtype)
            for name, value in (adv.metrics or {}).items():
                metrics[name].append(value)
        out["lambda_weights"] = weights[local, :t_local]
        return out

    def _gather_rows(self, x: torch.Tensor) -> torch.Tensor:
        """All processes' rows in process order (groups may straddle processes), padded to one length."""
        if self.accelerator.num_processes == 1:
            return x
        return self.accelerator.gather(self.accelerator.pad_across_processes(x, dim=1, pad_index=0))

    def logged_rewards(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rewards and advantages of the last `n` completions scored, gathered over processes (float64, shape (n,)).

        TRL's batch dict lacks the raw rewards: `_generate_and_score_completions` logs every reward function's column
        to `self._logs["rewards"]` and the advantages to `self._logs["advantages"]` (deques of the generation batch
        size), in generation order. The reward is combined as TRL logs it: Σ_f w_f·r_f over the functions that scored
        (NaN if none did).
        """
        logs = self._logs
        if len(logs["advantages"]) < n:
            raise ValueError(f"trainer logged {len(logs['advantages'])} completions, fewer than the {n} asked for")
        per_func = torch.tensor(
            [list(logs["rewards"][name])[-n:] for name in self.reward_func_names], dtype=torch.float64
        ).T  # (n, F)
        rewards = (per_func * self.reward_weights.detach().cpu().double()).nansum(1)
        rewards[per_func.isnan().all(1)] = float("nan")
        return rewards, torch.tensor(list(logs["advantages"])[-n:], dtype=torch.float64)

    def _compute_loss(self, model, inputs):
        """TRL's `_compute_loss`, with the λ weight at one seam: the per-token log-probs and entropies it computes
        pass through `ScaleTokenGradient` (see the class docstring)."""
        mask = inputs["completion_mask"] * inputs.get("tool_mask", 1)
        weights = inputs["lambda_weights"].to(mask.device, torch.float32) * mask
        if self.on_batch is None:  # λ shows in the logs by default; a BatchRecorder logs these names per batch
            mode = "train" if self.model.training else "eval"
            w = inputs["lambda_weights"]
            self._metrics[mode]["lambda/weight_mean"].append(self._global_mean(w, mask))
            self._metrics[mode]["lambda/shared_token_frac"].append(self._global_mean(w < 1, mask))
        self._token_weights = weights
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._token_weights = None

    def _get_per_token_logps_and_entropies(self, *posargs, **kwargs):
        logps, entropies, *rest = super()._get_per_token_logps_and_entropies(*posargs, **kwargs)
        weights = getattr(self, "_token_weights", None)
        if weights is not None and torch.is_grad_enabled():  # the loss's call, not the old/ref log-probs'
            logps = ScaleTokenGradient.apply(logps, weights)
            if entropies is not None:
                entropies = ScaleTokenGradient.apply(entropies, weights)
        return logps, entropies, *rest

    def _global_mean(self, x: torch.Tensor, mask: torch.Tensor) -> float:
        mask = mask.float()
        totals = self.accelerator.reduce(torch.stack([(x * mask).sum(), mask.sum()]), reduction="sum")
        return (totals[0] / totals[1].clamp(min=1.0)).item()


class ScaleTokenGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient of entry (i, t) by `weights[i, t]` (the λ seam)."""

    @staticmethod
    def forward(ctx, x, weights):
        ctx.save_for_backward(weights)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        (weights,) = ctx.saved_tensors
        return grad * weights.to(grad.dtype), None

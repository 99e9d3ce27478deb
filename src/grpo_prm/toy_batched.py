"""The toy experiment (paper §4.3) for many runs of one method at once: seeds, cells and their shared settings.

`grpo_prm.toy` trains one run through `LambdaGRPOTrainer` (the integration path: TRL's sampling, logging and
optimiser loop; the paper profile's GPT-2 runs use it). Most of a 4-token toy step there is the trainer's overhead.
Here R independent policies are stacked along a leading batch dimension (one GPT-2 parameter set per run, trained
by one AdamW over the stacked tensors: AdamW is elementwise, so each run's update is its own) and every step does,
for all runs together, what the trainer does for one:

1. the exact leaf distribution π(path) of each policy (one forward pass over the 2^(depth−1) path prefixes);
2. a group of k paths per run from it (the trainer's `leaves` sampler; each run draws from its own generator, so a
   run's samples do not depend on which runs share its batch);
3. the method's pieces from the library: `process_set_sizes_grouped`, `token_weights`, the advantage
   (`group_advantage`, `reinforce_rej_advantage`, `explicit_prm_advantage`), `per_token_loss` and `aggregate`,
   with the settings `LambdaGRPOConfig` gives the trainer (`grpo_args`).

`tests/test_toy_batched.py` checks that on the same groups each run's gradient equals the trainer's.

    python -m grpo_prm.toy_batched --method grpo --learning_rate 1e-4 --cells 1,-1.0,0 1,-1.0,1 --out a.csv b.csv

The policy is written out (a GPT-2 block: layer norm, causal attention, tanh-GELU MLP) because HF's module cannot
run R parameter sets in one call (`torch.func.vmap` over it falls back to a per-run loop in its attention kernel).
"""

import math
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from grpo_prm.cli import dataclass_parser, exit_on_error, finite_float, reproducible
from grpo_prm.io import write_atomic
from grpo_prm.loss import aggregate, explicit_prm_advantage, group_advantage, per_token_loss, reinforce_rej_advantage
from grpo_prm.methods import resolve, rloo_advantage
from grpo_prm.process_sets import process_set_sizes_grouped
from grpo_prm.toy import MOVES, ToyConfig, grpo_args, load_policy, path_reward, target_path, toy_cell
from grpo_prm.toy_runs import selected_learning_rate
from grpo_prm.trainer import NORMALIZATION
from grpo_prm.weights import token_weights

MC_STREAM = 2**32  # the explicit PRM's continuations draw from generator seed + MC_STREAM, apart from the rollouts


class StackedGPT2:
    """R GPT-2 policies (`GPT2LMHeadModel`, masked head of `grpo_prm.toy.restrict_to_tokens`) as stacked tensors.

    `params[name]` has shape (R, *shape of the model's parameter `name`), for the trainable parameters in
    `named_parameters` order (the tied LM head is `transformer.wte.weight`)."""

    def __init__(self, models, move_ids: list[int]):
        config = models[0].config
        if (
            config.model_type != "gpt2"
            or config.activation_function not in ("gelu_new", "gelu_pytorch_tanh")
            or not config.scale_attn_weights
            or config.scale_attn_by_inverse_layer_idx
            or config.reorder_and_upcast_attn
        ):
            raise ValueError(
                f"the batched toy runs GPT-2 policies with their default attention and GELU; got "
                f"{config.model_type!r}: use grpo_prm.toy"
            )
        self.config, self.move_ids = config, torch.tensor(move_ids)
        names = [n for n, p in models[0].named_parameters() if p.requires_grad]
        self.params = {
            n: torch.stack([m.get_parameter(n).detach().float() for m in models]).requires_grad_() for n in names
        }
        # the frozen head bias is 0 on the moves and -1e4 elsewhere: exp(-1e4) is 0 in float32, so the softmax over
        # the vocabulary equals the one over the moves
        self.head_bias = models[0].get_output_embeddings().bias.detach().float()[self.move_ids]

    def move_logits(self, ids: torch.Tensor, params: dict | None = None) -> torch.Tensor:
        """Logits of the moves after every position of `ids` (N, T), for every run: (R, N, T, len(MOVES))."""
        p, c = params or self.params, self.config
        heads, width = c.n_head, c.n_embd
        T = ids.shape[1]
        wte = p["transformer.wte.weight"]
        x = wte[:, ids] + p["transformer.wpe.weight"][:, None, :T]  # (R, N, T, E)
        R, N = x.shape[:2]
        causal = torch.ones(T, T, dtype=torch.bool).tril()

        def norm(x, name):
            return (
                F.layer_norm(x, (width,), eps=c.layer_norm_epsilon) * p[f"{name}.weight"][:, None, None]
                + p[f"{name}.bias"][:, None, None]
            )

        def conv1d(x, name):  # GPT-2's Conv1D: x @ W + b, W of shape (in, out)
            w = p[f"{name}.weight"]
            return (
                torch.bmm(x.reshape(R, -1, w.shape[1]), w).reshape(*x.shape[:-1], w.shape[2])
                + p[f"{name}.bias"][:, None, None]
            )

        for i in range(c.n_layer):
            h = f"transformer.h.{i}"
            q, k, v = conv1d(norm(x, f"{h}.ln_1"), f"{h}.attn.c_attn").split(width, -1)
            q, k, v = (t.reshape(R, N, T, heads, -1).transpose(2, 3) for t in (q, k, v))  # (R, N, H, T, D)
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
            attn = scores.masked_fill(~causal, float("-inf")).softmax(-1) @ v
            x = x + conv1d(attn.transpose(2, 3).reshape(R, N, T, width), f"{h}.attn.c_proj")
            mlp = F.gelu(conv1d(norm(x, f"{h}.ln_2"), f"{h}.mlp.c_fc"), approximate="tanh")
            x = x + conv1d(mlp, f"{h}.mlp.c_proj")
        x = norm(x, "transformer.ln_f")
        return torch.einsum("rnte,rme->rntm", x, wte[:, self.move_ids]) + self.head_bias


@dataclass
class Tree:
    """The 2^depth leaves in `itertools.product(MOVES)` order: leaf l's move t is bit (depth−1−t) of l."""

    depth: int

    def __post_init__(self):
        d = self.depth
        self.moves = torch.tensor([[(leaf >> (d - 1 - t)) & 1 for t in range(d)] for leaf in range(2**d)])
        self.prefixes = self.moves[::2, : d - 1]  # every path's first d−1 moves, once per sibling pair

    def leaf_logits(self, policy: StackedGPT2, bos_id: int, params=None) -> torch.Tensor:
        """(R, 2^(d−1), d, 2): the move logits after each of the 2^(d−1) path prefixes (BOS + d−1 moves)."""
        ids = torch.cat([torch.full((len(self.prefixes), 1), bos_id), policy.move_ids[self.prefixes]], 1)
        return policy.move_logits(ids, params)

    def leaf_logps(self, logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """(R, 2^d, d): log π(move t of leaf l | its first t moves), from `leaf_logits` / temperature."""
        logps = torch.log_softmax(logits / temperature, -1)
        rows = logps[:, torch.arange(2**self.depth) // 2]  # each leaf reads its sibling pair's prefix row
        return rows.gather(-1, self.moves.expand(rows.shape[0], -1, -1)[..., None])[..., 0]


def inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index drawn from each row of `probs` (..., L) for each uniform of `u` (..., S): (..., S)."""
    cdf = probs.cumsum(-1)
    return torch.searchsorted(cdf, u * cdf[..., -1:]).clamp(max=probs.shape[-1] - 1)


def prefix_values(
    leaf_probs_cond: list[torch.Tensor],
    leaf_rewards: torch.Tensor,
    draws: torch.Tensor,
    depth: int,
    k_mc: int | None,
    generators: list[torch.Generator],
) -> tuple[torch.Tensor, torch.Tensor]:
    """V(y_{:t}) of every completion prefix (R, k, depth + 1) and the extra sampled tokens per run (R,).

    `leaf_probs_cond[t]` (R, 2^t, 2^(d−t)): π(leaf | prefix) within each prefix's subtree. Exact (`k_mc` None):
    V = Σ π(leaf | prefix)·r(leaf). MC: the mean reward of `k_mc` leaves drawn from π(· | prefix), i.e. K fresh
    continuations, counted as K·(depth − t) sampled tokens per distinct prefix of the group (as `toy.TreeValues`).
    """
    R, k = draws.shape
    values = torch.zeros(R, k, depth + 1)
    extra = torch.zeros(R)
    for t in range(depth):
        cond = leaf_probs_cond[t]
        block = leaf_rewards.reshape(R, 2**t, -1)
        if k_mc is None:
            v = (cond * block).sum(-1) / cond.sum(-1)
        else:
            u = torch.stack([torch.rand(2**t * k_mc, generator=g) for g in generators]).reshape(R, 2**t, k_mc)
            v = block.gather(-1, inverse_cdf(cond, u)).mean(-1)
            node = draws >> (depth - t)
            distinct = torch.zeros(R, 2**t).scatter_(1, node, 1.0).sum(1)
            extra += distinct * k_mc * (depth - t)
        values[:, :, t] = v.gather(1, draws >> (depth - t))
    values[:, :, depth] = leaf_rewards.gather(1, draws)
    return values, extra


class BatchedToy:
    """R toy runs of one method and learning rate (`cfgs` differ only in n, r_neg and seed)."""

    def __init__(self, cfgs: list[ToyConfig]):
        first = cfgs[0]
        shared = {k: v for k, v in vars(first).items() if k not in ("n", "r_neg", "seed")}
        for cfg in cfgs[1:]:
            if {k: v for k, v in vars(cfg).items() if k not in ("n", "r_neg", "seed")} != shared:
                raise ValueError("the runs of one batch share every setting but n, r_neg and seed")
        self.cfgs, self.k, self.depth = cfgs, first.group_size, first.depth
        self.args = grpo_args(first, "unused")  # the trainer's settings, so that both read the same ones
        if first.sampler != "leaves":
            raise ValueError(f"the batched toy samples whole leaves (sampler leaves), got sampler {first.sampler!r}")
        if self.args.max_grad_norm:
            raise ValueError("the batched toy has no gradient clipping (the authors' set-up has none)")
        base, self.weighting = resolve(self.args.method, self.args.weighting)
        self.base = base.name
        models, self.move_ids, self.bos_id = [], None, None
        for cfg in cfgs:
            model, tokenizer, self.move_ids = load_policy(cfg)
            models.append(model)
            self.bos_id = tokenizer.bos_token_id
        self.policy = StackedGPT2(models, self.move_ids)
        self.tree = Tree(self.depth)
        leaves = ["".join(MOVES[m] for m in row) for row in self.tree.moves.tolist()]
        self.targets = [target_path(c.seed, c.depth) for c in cfgs]
        self.target_leaf = torch.tensor([leaves.index(t) for t in self.targets])
        self.leaf_rewards = torch.tensor(
            [
                [path_reward(p, tgt, c.n, c.r_neg, c.r_target, c.r_other) for p in leaves]
                for c, tgt in zip(cfgs, self.targets)
            ]
        )
        self.penalised = torch.tensor(
            [[p != tgt and p[: c.n] == tgt[: c.n] for p in leaves] for c, tgt in zip(cfgs, self.targets)]
        )
        self.rollouts = [torch.Generator().manual_seed(c.seed) for c in cfgs]
        self.mc = [torch.Generator().manual_seed(c.seed + MC_STREAM) for c in cfgs]
        self.ref_logps = None
        if self.args.beta:  # the reference is the initial policy (as grpo_prm.toy gives the trainer)
            with torch.no_grad():
                self.ref_logps = self.tree.leaf_logps(self.tree.leaf_logits(self.policy, self.bos_id))
        a = self.args
        self.optimizer = torch.optim.AdamW(
            self.policy.params.values(),
            lr=a.learning_rate,
            betas=(a.adam_beta1, a.adam_beta2),
            eps=a.adam_epsilon,
            weight_decay=a.weight_decay,
            foreach=True,
        )

    def sample(self, probs: torch.Tensor) -> torch.Tensor:
        """k leaf indices per run (R, k), each run from its own generator."""
        u = torch.stack([torch.rand(self.k, generator=g) for g in self.rollouts])
        return inverse_cdf(probs, u)

    def loss(self, draws: torch.Tensor, values: torch.Tensor | None = None, logits: torch.Tensor | None = None):
        """Per-run loss (R,) of the groups `draws` (R, k) under the current policy (what the trainer's loss is for
        one run); `values` (R, k, depth + 1) V of every prefix for the explicit PRM; `logits` the policy's
        `leaf_logits` if already computed."""
        R, k, d = *draws.shape, self.depth
        if logits is None:
            logits = self.tree.leaf_logits(self.policy, self.bos_id)
        logps = self.tree.leaf_logps(logits)  # the authors' log-probs: of the raw logits
        rows = logps.gather(1, draws[..., None].expand(-1, -1, d))  # (R, k, d)
        ids = self.tree.moves[draws]
        mask = torch.ones(R, k, d, dtype=torch.bool)
        n_shared = process_set_sizes_grouped(ids.reshape(R * k, d), mask.reshape(R * k, d), k)
        weights = token_weights(n_shared, k, self.weighting).reshape(R, k, d)
        rewards = self.leaf_rewards.gather(1, draws)
        if self.base in ("grpo", "dr_grpo"):
            adv = torch.vmap(partial(group_advantage, scale=self.base == "grpo"))(rewards, rewards)[..., None]
        elif self.base == "reinforce_rej":
            adv = reinforce_rej_advantage(rewards.reshape(-1), k)[0].reshape(R, k, 1)
        elif self.base == "rloo":
            adv = rloo_advantage(rewards.reshape(-1), k, None).advantages.reshape(R, k, 1)
        else:
            adv = torch.vmap(partial(explicit_prm_advantage, normalization=self.args.explicit_prm_normalization))(
                values, mask, rewards
            )
        ref = None if self.ref_logps is None else self.ref_logps.gather(1, draws[..., None].expand(-1, -1, d))
        a = self.args
        terms = per_token_loss(
            rows,
            rows.detach(),
            adv.to(rows.dtype),
            ref_logps=ref,
            beta=a.beta,
            epsilon_low=a.epsilon,
            epsilon_high=a.epsilon_high or a.epsilon,
            kl_bias_correction=a.use_bias_correction_kl,
        )
        normalization = NORMALIZATION[a.loss_type]
        if normalization == "constant":  # Dr. GRPO: rows × max_completion_length
            n_tokens = torch.tensor(float(k * a.max_completion_length))
            return torch.vmap(lambda l, w, m: aggregate(l, w, m, "token", n_tokens))(terms, weights, mask.float())
        return torch.vmap(lambda l, w, m: aggregate(l, w, m, normalization))(terms, weights, mask.float())

    def step(self) -> dict[str, torch.Tensor]:
        """One training step of every run; the step's metrics per run (R,)."""
        logits = self.tree.leaf_logits(self.policy, self.bos_id)  # one forward for sampling and loss (μ = 1)
        with torch.no_grad():
            sample_logps = self.tree.leaf_logps(logits.detach(), self.cfgs[0].temperature)
            probs = sample_logps.sum(-1).exp()  # (R, 2^d)
            draws = self.sample(probs)
            values, extra = None, torch.zeros(len(self.cfgs))
            if self.base.startswith("explicit_prm"):
                d = self.depth
                cond = [(sample_logps[:, :, t:].sum(-1).exp()).reshape(len(self.cfgs), 2**t, -1) for t in range(d)]
                k_mc = None if self.base == "explicit_prm_exact" else self.args.mc_continuations
                values, extra = prefix_values(cond, self.leaf_rewards, draws, d, k_mc, self.mc)
        self.optimizer.zero_grad()
        losses = self.loss(draws, values, logits)
        losses.sum().backward()  # the runs share no parameter: each gets its own loss's gradient
        self.optimizer.step()
        return {
            "target_freq": (draws == self.target_leaf[:, None]).float().mean(1),
            "loss": losses.detach(),
            "prm/extra_sampled_tokens": extra,
            "mass_target": probs.gather(1, self.target_leaf[:, None])[:, 0],
            "mass_penalised": (probs * self.penalised).sum(1),
            "mass_other": probs.sum(1)
            - probs.gather(1, self.target_leaf[:, None])[:, 0]
            - (probs * self.penalised).sum(1),
        }

    def train(self) -> list[pd.DataFrame]:
        """Every run's steps, one frame per run (the columns of `grpo_prm.toy.run_toy`, plus the probability mass
        the policy puts on T, on T's penalised subtree and on the rest, and the learning rate)."""
        start = time.perf_counter()
        history = [self.step() for _ in range(self.cfgs[0].steps)]
        wall = (time.perf_counter() - start) / len(self.cfgs)  # the batch's wall time, shared by its runs
        runs = []
        for r, (cfg, target) in enumerate(zip(self.cfgs, self.targets)):
            run = pd.DataFrame({key: [float(h[key][r]) for h in history] for key in history[0]})
            run.insert(0, "step", range(1, len(run) + 1))
            ident = {"method": cfg.method, "n": cfg.n, "r_neg": cfg.r_neg, "seed": cfg.seed, "target": target}
            runs.append(
                run.assign(learning_rate=cfg.learning_rate, wall_s=wall, **ident)[
                    [*ident, *run.columns, "learning_rate", "wall_s"]
                ]
            )
        return runs


def main(argv=None) -> None:
    parser = dataclass_parser(ToyConfig, __doc__)
    parser.add_argument(
        "--cells", nargs="+", type=toy_cell, required=True, metavar="N,R_NEG,SEED", help="the runs to train together"
    )
    parser.add_argument(
        "--learning_rates",
        "--learning-rates",
        nargs="+",
        type=finite_float,
        metavar="LR",
        help="a sweep: every cell at each rate (one batch per rate); --out lists rate by rate",
    )
    parser.add_argument(
        "--learning_rate_from",
        "--learning-rate-from",
        metavar="CSV",
        help="the method's rate selected by a sweep (table_toy_lr.csv)",
    )
    parser.add_argument("--out", required=True, nargs="+", help="CSV file to write, one per cell (and rate)")
    parser.set_defaults(n=None, r_neg=None, seed=None)
    args = vars(parser.parse_args(argv))
    outs, cells = [Path(p) for p in args.pop("out")], args.pop("cells")
    rates, rate_from = args.pop("learning_rates"), args.pop("learning_rate_from")
    if any(args.pop(key) is not None for key in ("n", "r_neg", "seed")):
        parser.error("--cells replaces --n, --r_neg and --seed")
    if rates and rate_from:
        parser.error("give --learning_rates or --learning_rate_from, not both")
    if rate_from:
        rates = [exit_on_error(lambda: selected_learning_rate(rate_from, args["method"]))]
    rates = rates or [args.pop("learning_rate")]
    args.pop("learning_rate", None)
    if len(outs) != len(cells) * len(rates):
        parser.error(f"--out: {len(outs)} files for {len(cells) * len(rates)} runs")
    reproducible(0)
    runs = []
    for lr in rates:
        cfgs = exit_on_error(
            lambda lr=lr: [ToyConfig(n=n, r_neg=r, seed=s, learning_rate=lr, **args) for n, r, s in cells]
        )
        runs += exit_on_error(lambda cfgs=cfgs: BatchedToy(cfgs).train())
    for run, out in zip(runs, outs):
        write_atomic(out, {"": partial(run.to_csv, index=False)})


if __name__ == "__main__":
    main()

"""The toy L/R tree: rewards, the masked policy, Hub-style loading from a local folder, a short run, bad input."""

import itertools
import math
import subprocess
import sys

import pytest
import torch

from grpo_prm.toy import MOVES, ToyConfig, TreeSampler, TreeValues, load_policy, path_reward, run_toy, target_path


def test_rewards_follow_the_paper():
    T = "LRRL"
    assert path_reward(T, T, n=1, r_neg=-1.0) == 1.0
    assert path_reward("LLLL", T, n=1, r_neg=-1.0) == -1.0  # shares T's first move
    assert path_reward("LLLL", T, n=2, r_neg=-1.0) == 0.7  # shares only one of T's first two moves
    assert path_reward("LRLL", T, n=2, r_neg=-1.5) == -1.5
    assert path_reward("RRRL", T, n=1, r_neg=-0.5) == 0.7
    assert target_path(3, 4) == target_path(3, 4) and set(target_path(3, 4)) <= set(MOVES)
    assert len({target_path(s, 4) for s in range(20)}) > 4


def sampled_moves(model, tokenizer, move_ids, n=64):
    prompt = torch.tensor([[tokenizer.bos_token_id]] * n)
    out = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        do_sample=True,
        max_new_tokens=4,
        pad_token_id=tokenizer.pad_token_id,
    )
    return out[:, 1:]


def test_policy_only_emits_L_or_R_and_its_probabilities_sum_to_one():
    model, tokenizer, move_ids = load_policy(ToyConfig(model="tiny"))
    completions = sampled_moves(model, tokenizer, move_ids)
    assert completions.shape == (64, 4) and set(completions.flatten().tolist()) <= set(move_ids)
    probs = torch.softmax(model(completions).logits, -1)
    assert torch.allclose(probs[..., move_ids].sum(-1), torch.ones(()))


def test_hub_style_loading_from_a_local_folder(tmp_path):
    """The paper profile loads `gpt2` with from_pretrained; the same code path loads a saved folder offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    vocab = {"<|endoftext|>": 0, "L": 1, "R": 2, "Hello": 3}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    GPT2TokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>").save_pretrained(
        tmp_path
    )
    GPT2LMHeadModel(GPT2Config(vocab_size=4, n_positions=8, n_embd=16, n_layer=1, n_head=1)).save_pretrained(tmp_path)
    model, tokenizer, move_ids = load_policy(ToyConfig(model=str(tmp_path)))
    assert move_ids == [1, 2] and tokenizer.pad_token == tokenizer.eos_token
    assert set(sampled_moves(model, tokenizer, move_ids).flatten().tolist()) <= {1, 2}


def test_missing_tokens_are_refused(tmp_path):
    from tokenizers import Tokenizer, models
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    tok = Tokenizer(models.WordLevel({"<|endoftext|>": 0, "X": 1}, unk_token="<|endoftext|>"))
    GPT2TokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>").save_pretrained(tmp_path)
    GPT2LMHeadModel(GPT2Config(vocab_size=2, n_positions=8, n_embd=16, n_layer=1, n_head=1)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no single tokens"):
        load_policy(ToyConfig(model=str(tmp_path)))


def test_short_run_moves_the_policy_and_logs_per_step():
    run = run_toy(ToyConfig(model="tiny", method="lambda_grpo", steps=8, learning_rate=1e-2, seed=1))
    assert list(run.step) == list(range(1, 9)) and run.target.iloc[0] == target_path(1, 4)
    assert run["entropy"].iloc[-1] < run["entropy"].iloc[0]  # a large lr visibly sharpens the policy
    assert (run["lambda/weight_mean"] < 1).all() and (run["tree/path_depth"] >= 1).all()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "ppo"], "unknown method 'ppo'"),
        (["--group_size", "1"], "group_size must be at least 2"),
        (["--n", "4"], "n must be in [0, depth)"),
    ],
)
def test_cli_refuses_bad_input_with_one_line(tmp_path, args, message):
    out = tmp_path / "run.csv"
    result = subprocess.run(
        [sys.executable, "-m", "grpo_prm.toy", "--model", "tiny", "--out", str(out), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == f"error: {result.stderr.strip().splitlines()[-1][7:]}"
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def without_timings(csv_text: str) -> list[list[str]]:
    """A run's CSV rows without its wall-clock columns (the only ones that differ between identical runs)."""
    rows = [line.split(",") for line in csv_text.splitlines()]
    keep = [i for i, name in enumerate(rows[0]) if name not in ("wall_s", "step_time")]
    return [[row[i] for i in keep] for row in rows]


def test_cli_cells_in_one_process_match_separate_runs(tmp_path):
    """`--cells` (the train_toy rule) trains runs one after another in one process, each as its own process would."""
    toy = [sys.executable, "-m", "grpo_prm.toy", "--model", "tiny", "--steps", "2", "--group_size", "4"]
    outs = [tmp_path / "a.csv", tmp_path / "b.csv"]
    subprocess.run([*toy, "--cells", "1,-1.0,0", "2,-0.5,3", "--out", *map(str, outs)], check=True, capture_output=True)
    subprocess.run(
        [*toy, "--n", "2", "--r-neg", "-0.5", "--seed", "3", "--out", str(tmp_path / "alone.csv")],
        check=True,
        capture_output=True,
    )
    assert without_timings(outs[1].read_text()) == without_timings((tmp_path / "alone.csv").read_text())
    first = without_timings(outs[0].read_text())
    assert first[1][:4] == ["lambda_grpo", "1", "-1.0", "0"] and len(first) == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--cells", "1,-1.0,0", "--seed", "1", "--out", "a.csv"], "--cells replaces --n, --r_neg and --seed"),
        (["--cells", "1,-1.0,0", "1,-1.0,1", "--out", "a.csv"], "--out: 1 files for 2 runs"),
        (["--cells", "1,x,0", "--out", "a.csv"], "'1,x,0' is not n,r_neg,seed"),
    ],
)
def test_cli_refuses_bad_cells_with_one_line(tmp_path, args, message):
    result = subprocess.run(
        [sys.executable, "-m", "grpo_prm.toy", *args], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "a.csv").exists()


def test_kl_reference_is_the_initial_masked_policy():
    """With β > 0 the toy's reference is its own initial policy (masked head included), not a Hub download: at the
    first step the policy equals it, so the KL starts at 0 and then grows."""
    run = run_toy(ToyConfig(model="tiny", steps=3, group_size=4, beta=0.04, learning_rate=1e-2))
    assert run["kl"].iloc[0] == pytest.approx(0.0, abs=1e-6) and run["kl"].iloc[-1] > 0


def brute_force_value(model, bos_id, move_ids, prefix, cfg):
    """V(prefix): every leaf extending it, its probability by chaining single-step softmaxes, times its reward."""
    target = target_path(cfg.seed, cfg.depth)
    total = 0.0
    for rest in itertools.product(MOVES, repeat=cfg.depth - len(prefix)):
        path, p = prefix + "".join(rest), 1.0
        for t in range(len(prefix), cfg.depth):
            ids = torch.tensor([[bos_id] + [move_ids[MOVES.index(m)] for m in path[:t]]])
            probs = torch.softmax(model(ids).logits[0, -1] / cfg.temperature, -1)
            p *= float(probs[move_ids[MOVES.index(path[t])]])
        total += p * path_reward(path, target, cfg.n, cfg.r_neg, cfg.r_target, cfg.r_other)
    return total


def toy_group(cfg, move_ids, paths):
    ids = torch.tensor([[move_ids[MOVES.index(m)] for m in p] for p in paths])
    target = target_path(cfg.seed, cfg.depth)
    rewards = torch.tensor([path_reward(p, target, cfg.n, cfg.r_neg) for p in paths])
    return ids, torch.ones_like(ids, dtype=torch.bool), rewards


@torch.no_grad()
def test_exact_prefix_values_match_brute_force():
    cfg = ToyConfig(model="tiny", method="explicit_prm_exact", seed=2, group_size=4, temperature=0.8)
    model, tokenizer, move_ids = load_policy(cfg)
    model.eval()  # built in train mode; no dropout (the trainer removes it too)
    paths = ["LLLL", "LLRR", "RLRL", "LLLL"]
    ids, mask, rewards = toy_group(cfg, move_ids, paths)
    values, n_sampled = TreeValues(cfg, move_ids, tokenizer.bos_token_id, exact=True)(model, ids, mask, rewards)
    assert n_sampled == 0
    for i, path in enumerate(paths):
        expected = [brute_force_value(model, tokenizer.bos_token_id, move_ids, path[:t], cfg) for t in range(4)]
        assert values[i, :4].tolist() == pytest.approx(expected, abs=1e-5)
        assert values[i, 4] == rewards[i]


@torch.no_grad()
def test_mc_prefix_values_converge_to_exact():
    """Hoeffding: a mean of K rewards in [r_neg, 1] is within (1 − r_neg)·sqrt(ln(2m/δ)/(2K)) of V for all m prefixes
    with probability ≥ 1 − δ; δ = 1e-6 and a fixed seed make a failure a real bug, not chance."""
    paths = ["LLLL", "LRRL", "RRLR", "RLLL", "LLRL", "RRRR", "LRLR", "RLRR"]
    exact_cfg = ToyConfig(model="tiny", method="explicit_prm_exact", seed=3, group_size=len(paths), r_neg=-1.0)
    model, tokenizer, move_ids = load_policy(exact_cfg)
    model.eval()
    ids, mask, rewards = toy_group(exact_cfg, move_ids, paths)
    exact, _ = TreeValues(exact_cfg, move_ids, tokenizer.bos_token_id, exact=True)(model, ids, mask, rewards)
    n_prefixes = len({p[:t] for p in paths for t in range(4)})
    errors = []
    for K in (16, 256, 4096, 65536):
        cfg = ToyConfig(**{**exact_cfg.__dict__, "method": "explicit_prm_mc", "mc_continuations": K})
        mc, n_sampled = TreeValues(cfg, move_ids, tokenizer.bos_token_id, exact=False)(model, ids, mask, rewards)
        assert n_sampled == K * sum(4 - len(p) for p in {p[:t] for p in paths for t in range(4)})
        bound = (1.0 - cfg.r_neg) * math.sqrt(math.log(2 * n_prefixes / 1e-6) / (2 * K))
        errors.append(float((mc - exact).abs().max()))
        assert errors[-1] <= bound, (K, errors[-1], bound)
    assert errors[-1] < 0.02 and errors[-1] < errors[0]


@pytest.mark.parametrize(
    "method", ["dr_grpo", "reinforce_rej", "lambda_rloo", "explicit_prm_mc", "lambda_explicit_prm_exact"]
)
def test_every_method_runs_on_the_toy_and_reports_its_cost(method):
    run = run_toy(ToyConfig(model="tiny", method=method, steps=3, group_size=8, seed=1, mc_continuations=2))
    assert list(run.step) == [1, 2, 3] and (run.wall_s > 0).all()
    extra = run["prm/extra_sampled_tokens"]
    if method == "explicit_prm_mc":
        assert (extra >= 2 * 4).all() and (extra <= 2 * (4 + 2 * 3 + 4 * 2 + 8 * 1)).all()
    else:
        assert (extra == 0).all()


@torch.no_grad()
def test_leaf_sampler_draws_paths_with_the_policys_probabilities():
    """Each path's frequency over N draws is within Hoeffding's sqrt(ln(2·16/δ)/(2N)) of its probability by chained
    single-step softmaxes (δ = 1e-6), the law `generate` samples move by move."""
    cfg = ToyConfig(model="tiny", seed=4, temperature=0.7)
    model, tokenizer, move_ids = load_policy(cfg)
    model.eval()
    sampler = TreeSampler(cfg, move_ids, tokenizer.bos_token_id)
    trainer = type("T", (), {"model": model})()
    torch.manual_seed(0)
    N = 20000
    out = sampler([tokenizer.bos_token] * N, trainer)
    assert out["prompt_ids"] == [[tokenizer.bos_token_id]] * N
    paths = ["".join(MOVES[move_ids.index(i)] for i in ids) for ids in out["completion_ids"]]
    bound = math.sqrt(math.log(2 * 16 / 1e-6) / (2 * N))
    for path in map("".join, itertools.product(MOVES, repeat=4)):
        p = 1.0
        for t in range(4):
            ids = torch.tensor([[tokenizer.bos_token_id] + [move_ids[MOVES.index(m)] for m in path[:t]]])
            p *= float(torch.softmax(model(ids).logits[0, -1] / cfg.temperature, -1)[move_ids[MOVES.index(path[t])]])
        assert abs(paths.count(path) / N - p) <= bound, (path, paths.count(path) / N, p)
    first = paths.index(paths[0])
    assert sum(out["logprobs"][first]) == pytest.approx(math.log(sum(1 for q in paths if q == paths[0]) / N), abs=0.1)

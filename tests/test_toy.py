"""The toy L/R tree: rewards, the masked policy, Hub-style loading from a local folder, a short run, bad input."""

import subprocess
import sys

import pytest
import torch

from grpo_prm.toy import MOVES, ToyConfig, load_policy, path_reward, run_toy, target_path


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
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, max_new_tokens=4,
                         pad_token_id=tokenizer.pad_token_id)
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
        tmp_path)
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


@pytest.mark.parametrize("args, message", [
    (["--method", "ppo"], "unknown method 'ppo'"),
    (["--group_size", "1"], "group_size must be at least 2"),
    (["--n", "4"], "n must be in [0, depth)"),
])
def test_cli_refuses_bad_input_with_one_line(tmp_path, args, message):
    out = tmp_path / "run.csv"
    result = subprocess.run([sys.executable, "-m", "grpo_prm.toy", "--model", "tiny", "--out", str(out), *args],
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == f"error: {result.stderr.strip().splitlines()[-1][7:]}"
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()

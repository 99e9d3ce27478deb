"""One λ-GRPO step on one group, run as N processes by tests/test_multiprocess.py (torchrun, gloo).

Each process holds `--per-device` rows of the group, so with 2 processes of 2 rows the group of 4 straddles them and
the trainer must gather it before computing |λ|. The main process writes to `--out` (torch.save) per setting: every
row's λ weights (gathered), the loss averaged over processes and the gradient averaged over processes (what DDP
applies), so a 1-process run of the same script is the reference.
"""

import argparse
import tempfile

import torch
from accelerate import PartialState
from accelerate.utils import gather_object, reduce

from tests.conftest import EXAMPLE, EXAMPLE_REWARDS, make_tiny_model, make_tokenizer, make_trainer

# The worked example without its disjoint row: a duplicate pair, a branch and a strict prefix, all sharing "A B".
TEXTS, REWARDS = EXAMPLE[:4], EXAMPLE_REWARDS[:4]
SETTINGS = [("lambda_grpo", "token"), ("lambda_grpo_scaled", "sequence"), ("grpo", "token")]


def one_step(method: str, normalization: str, per_device: int, tmp: str) -> dict:
    tokenizer = make_tokenizer()
    trainer = make_trainer(
        make_tiny_model(0),
        tokenizer,
        method,
        0.04,
        normalization,
        ref_model=make_tiny_model(1),
        texts=TEXTS,
        rewards=REWARDS,
        tmp=tmp,
        per_device=per_device,
    )
    inputs = trainer._prepare_inputs([{"prompt": "Q"}] * per_device)
    model = trainer.model
    model.zero_grad()
    loss = trainer.compute_loss(model, inputs)
    loss.backward()
    grad = torch.cat([p.grad.flatten() for p in model.parameters()])
    mask = inputs["completion_mask"].bool()
    rows = [(r[m].tolist(), w[m].tolist()) for r, m, w in zip(inputs["completion_ids"], mask, inputs["lambda_weights"])]
    return {
        "rows": sorted(gather_object(rows)),
        "loss": reduce(loss.detach(), "mean").item(),
        "grad": reduce(grad, "mean"),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-device", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        results = {f"{m}/{n}": one_step(m, n, args.per_device, tmp) for m, n in SETTINGS}
    if PartialState().is_main_process:
        torch.save({"num_processes": PartialState().num_processes, **results}, args.out)

# λ-GRPO with your own reward, as TRL's docs show GRPO; offline unless --model_name_or_path (any config field: --flag)
import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from trl import ModelConfig, TrlParser

from grpo_prm.recording import BatchRecorder
from grpo_prm.trainer import LambdaGRPOConfig, LambdaGRPOTrainer


def distinct_words(completions, **kwargs):  # your reward: one float per completion
    return [float(len(set(c.split()))) for c in completions]


parser = TrlParser((LambdaGRPOConfig, ModelConfig))
small = {"num_generations": 4, "per_device_train_batch_size": 4, "max_steps": 10, "max_completion_length": 12}
parser.set_defaults(output_dir="lambda-grpo-example", report_to="none", use_cpu=not torch.cuda.is_available(), **small)
args, model_args = parser.parse_args_and_config()
model, tokenizer = model_args.model_name_or_path, None  # a folder or Hub id: TRL loads model and tokenizer
if model is None:  # offline stand-in: a tiny random Llama over seven words
    tok = Tokenizer(models.WordLevel({"<end>": 0, "the": 1, "cat": 2, "dog": 3, "sat": 4, "ran": 5, "on": 6}, "<end>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<end>", pad_token="<end>")
    torch.manual_seed(args.seed)  # the policy's initialisation (TRL seeds only after it)
    sizes = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    model = LlamaForCausalLM(LlamaConfig(vocab_size=7, eos_token_id=0, pad_token_id=0, **sizes))
dataset = Dataset.from_dict({"prompt": ["the cat sat on", "the dog ran on"] * 6})
trainer = LambdaGRPOTrainer(model, distinct_words, args, dataset, processing_class=tokenizer, on_batch=BatchRecorder())
trainer.train()  # on_batch logs λ's weights (lambda/*) and the groups' prefix trees (tree/*)

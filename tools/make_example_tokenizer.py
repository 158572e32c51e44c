#!/usr/bin/env python3
"""Writes configs/chat-example/tokenizer/: a small Qwen2-style byte-level BPE tokenizer with Qwen2's ChatML
chat template, trained with the Hugging Face `tokenizers` library on the built-in benchmark's text, for
the README's worked example (a Llama-architecture model, a BPE tokenizer, conversational data). It is
committed, so running the example needs no Python; rerun this to remake it.

The tokenizer: NFC, Qwen2's pre-tokenizer pattern (single digits), 1 500 merges, special tokens
<|endoftext|>, <|im_start|>, <|im_end|>; tokenizer_config.json names eos <|im_end|> (the end of an
assistant turn, where generation stops), pad <|endoftext|>, and the chat template.
Usage: python3 tools/make_example_tokenizer.py [BALLAST_BIN]
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "configs" / "chat-example" / "tokenizer"
QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                 r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are "
          "a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / ".build" / "release" / "ballast")
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([binary, "data", "generate", "--out", d, "--sft-train", "6000", "--rl-prompts", "10", "--test-prompts", "10",
                        "--forget", "10", "--pref-prompts", "10", "--pref-test-prompts", "10"], check=True, capture_output=True)
        texts = []
        for line in open(Path(d) / "sft_train.jsonl", encoding="utf-8"):
            row = json.loads(line)
            texts += [row["prompt"], row["completion"]]
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=256 + 1500 + len(SPECIAL), special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    OUT.mkdir(parents=True, exist_ok=True)
    tok.save(str(OUT / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
              "bos_token": None, "model_max_length": 512, "clean_up_tokenization_spaces": False, "chat_template": CHATML}
    (OUT / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: vocabulary {tok.get_vocab_size()}")


if __name__ == "__main__":
    main()

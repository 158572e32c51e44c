#!/usr/bin/env python3
"""The `tokenizers` side of `ballast bench tokenize`: encodes every line of a corpus with a tokenizer folder
and prints one JSON line: tokens, the median tokens/s of `encode` one line at a time (one thread) and of
`encode_batch` (Rust threads, TOKENIZERS_PARALLELISM on), each with a freshly loaded tokenizer per repeat.
"""
import argparse
import json
import os
import statistics
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(a.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    from tokenizers import Tokenizer
    path = os.path.join(a.tokenizer, "tokenizer.json")
    with open(a.corpus, encoding="utf-8") as f:
        lines = f.read().split("\n")[:-1]
    single, batch, tokens = [], [], 0
    for _ in range(a.repeats):
        tok = Tokenizer.from_file(path)
        t0 = time.perf_counter()
        tokens = sum(len(tok.encode(line).ids) for line in lines)
        single.append(tokens / (time.perf_counter() - t0))
        tok = Tokenizer.from_file(path)
        t0 = time.perf_counter()
        n = sum(len(e.ids) for e in tok.encode_batch(lines))
        batch.append(n / (time.perf_counter() - t0))
    import tokenizers
    print(json.dumps({"tokens": tokens, "encode_tokens_per_s": statistics.median(single),
                      "encode_batch_tokens_per_s": statistics.median(batch), "version": tokenizers.__version__}))


if __name__ == "__main__":
    main()

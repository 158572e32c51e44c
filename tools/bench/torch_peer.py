#!/usr/bin/env python3
"""PyTorch side of `ballast bench`: the same GPT-2, Llama or Qwen2 config, batch and threads, timed the same way.

Prints exactly one JSON line on stdout (anything else, including library output, goes to stderr), which
`ballast bench` parses. Exits 2 with a message on stderr on bad arguments or when torch/transformers
is missing.

  python3 tools/bench/torch_peer.py train --n-layer 4 --n-head 4 --n-embd 256 --n-positions 256 \
      --vocab-size 259 --seq 128 --batch 16 --threads 2 --steps 20 --warmup 3
  python3 tools/bench/torch_peer.py generate --n-layer 4 --n-head 4 --n-embd 256 --n-positions 256 \
      --vocab-size 259 --batch 32 --prompt-len 16 --new-tokens 64 --threads 2 --repeats 5

train: transformers.GPT2LMHeadModel + torch.optim.AdamW (decay on matrices only); one step is
zero_grad, forward with labels, backward, clip_grad_norm_(1.0), optimizer.step().
generate: greedy `model.generate` with the KV cache, exactly --new-tokens tokens per row.
"""
import argparse
import contextlib
import json
import resource
import statistics
import sys
import time


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build(args, torch, transformers):
    """Random-init GPT2LMHeadModel, LlamaForCausalLM or Qwen2ForCausalLM (--architecture); returns (model,
    attention implementation actually in use)."""
    torch.manual_seed(args.seed)
    if args.architecture == "gpt2":
        kw = dict(n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, n_positions=args.n_positions,
                  vocab_size=args.vocab_size, activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                  attn_pdrop=0.0, bos_token_id=256, eos_token_id=257, pad_token_id=258)
        config_class, model_class = transformers.GPT2Config, transformers.GPT2LMHeadModel
    else:  # as `ballast init --architecture` makes it: tied embeddings, theta 10000
        kw = dict(num_hidden_layers=args.n_layer, num_attention_heads=args.n_head, num_key_value_heads=args.n_kv_head,
                  hidden_size=args.n_embd, intermediate_size=args.intermediate_size, max_position_embeddings=args.n_positions,
                  vocab_size=args.vocab_size, rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=True,
                  bos_token_id=256, eos_token_id=257, pad_token_id=258)
        config_class, model_class = {"llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
                                     "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM)}[args.architecture]
    try:  # PyTorch's scaled_dot_product_attention: a little faster than "eager" on CPU here
        model = model_class(config_class(**kw, attn_implementation="sdpa"))
    except (TypeError, ValueError, ImportError):
        model = model_class(config_class(**kw))
    attn = getattr(model.config, "_attn_implementation", None) or "eager"
    return model, attn


def bench_train(args, torch, transformers, rss_import):
    model, attn = build(args, torch, transformers)
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-4)
    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, 256, (args.batch, args.seq), generator=g)
    times = []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            times.append(dt * 1000)
    med = statistics.median(times)
    return {"impl": "pytorch", "torch": torch.__version__, "transformers": transformers.__version__, "attn": attn,
            "threads": torch.get_num_threads(), "step_ms_median": med, "step_ms_all": times,
            "tokens_per_s": args.batch * args.seq / (med / 1000), "peak_rss_mb": peak_rss_mb(),
            "rss_after_import_mb": rss_import, "params": sum(p.numel() for p in model.parameters())}


def bench_generate(args, torch, transformers, rss_import):
    model, attn = build(args, torch, transformers)
    model.eval()
    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, 256, (args.batch, args.prompt_len), generator=g)
    ids[:, 0] = 256
    mask = torch.ones_like(ids)
    kw = dict(attention_mask=mask, do_sample=False, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
              pad_token_id=258, eos_token_id=257, use_cache=True)
    times = []
    with torch.inference_mode():
        out = model.generate(ids, **kw)
        assert out.shape[1] == args.prompt_len + args.new_tokens, out.shape
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model.generate(ids, **kw)
            times.append((time.perf_counter() - t0) * 1000)
    med = statistics.median(times)
    return {"impl": "transformers", "torch": torch.__version__, "transformers": transformers.__version__, "attn": attn,
            "threads": torch.get_num_threads(), "ms_median": med, "ms_all": times,
            "new_tokens_per_s": args.batch * args.new_tokens / (med / 1000), "peak_rss_mb": peak_rss_mb(),
            "rss_after_import_mb": rss_import}


def bench_sample(args, torch, transformers, rss_import):
    """Sampling at temperature 1 (no top-k/top-p) with EOS stopping from a trained checkpoint; prompts left-padded
    as transformers needs for batched decoder-only generation. Counts each row's new tokens up to its first EOS."""
    model = transformers.AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32)
    model.eval()
    prompts = json.load(open(args.prompts_json))
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), 258, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    kw = dict(attention_mask=mask, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=args.max_new_tokens,
              pad_token_id=258, eos_token_id=257, use_cache=True)
    rates, lengths = [], []
    with torch.inference_mode():
        for r in range(args.repeats + 1):
            torch.manual_seed(r)
            t0 = time.perf_counter()
            out = model.generate(ids, **kw)
            dt = time.perf_counter() - t0
            new = out[:, width:]
            n = 0
            for row in new.tolist():
                n += row.index(257) + 1 if 257 in row else len(row)
            if r > 0:
                rates.append(n / dt)
                lengths.append(n / len(prompts))
    return {"impl": "transformers", "torch": torch.__version__, "transformers": transformers.__version__,
            "threads": torch.get_num_threads(), "new_tokens_per_s": statistics.median(rates),
            "mean_new_tokens": statistics.median(lengths), "peak_rss_mb": peak_rss_mb(), "rss_after_import_mb": rss_import}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["train", "generate", "sample"])
    ap.add_argument("--model", help="sample: checkpoint folder")
    ap.add_argument("--prompts-json", help="sample: JSON list of prompt id lists")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--architecture", choices=["gpt2", "llama", "qwen2"], default="gpt2")
    for name, default in [("n-layer", 4), ("n-head", 4), ("n-kv-head", 4), ("intermediate-size", 1024), ("n-embd", 256), ("n-positions", 256), ("vocab-size", 259),
                          ("threads", 2), ("seed", 0), ("seq", 128), ("batch", 16), ("steps", 20), ("warmup", 3),
                          ("prompt-len", 16), ("new-tokens", 64), ("repeats", 5)]:
        ap.add_argument("--" + name, type=int, default=default)
    args = ap.parse_args()
    for name, value in vars(args).items():
        if isinstance(value, int) and value < (0 if name in ("warmup", "seed") else 1):
            ap.error(f"--{name.replace('_', '-')} must be {'>= 0' if name in ('warmup', 'seed') else '>= 1'}, got {value}")
    if args.n_embd % args.n_head:
        ap.error(f"n-embd {args.n_embd} is not divisible by n-head {args.n_head}")
    if args.vocab_size < 259:
        ap.error("vocab-size must be >= 259 (bytes + BOS/EOS/PAD)")
    if args.mode == "train" and args.seq > args.n_positions:
        ap.error(f"seq {args.seq} exceeds n-positions {args.n_positions}")
    if args.mode == "generate" and args.prompt_len + args.new_tokens > args.n_positions:
        ap.error(f"prompt-len + new-tokens = {args.prompt_len + args.new_tokens} exceeds n-positions {args.n_positions}")
    try:
        import torch
        import transformers
    except ImportError as e:
        print(f"bench_torch.py: {e}; install with: pip install torch==2.13.0 transformers", file=sys.stderr)
        sys.exit(2)
    rss_import = peak_rss_mb()
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    if args.mode == "sample" and not (args.model and args.prompts_json):
        ap.error("sample needs --model and --prompts-json")
    run = {"train": bench_train, "generate": bench_generate, "sample": bench_sample}[args.mode]
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON line
        result = run(args, torch, transformers, rss_import)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

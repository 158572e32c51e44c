#!/usr/bin/env python3
"""Peer side of `ballast bench ppo-step`: full PPO iterations on the workload Ballast wrote, timed per iteration.

    python3 tools/bench/ppo_peer.py trl   --workload W.json
    python3 tools/bench/ppo_peer.py torch --workload W.json

Prints exactly one JSON line on stdout (library output goes to stderr), which `ballast bench` parses. Exits 2
with a message on stderr on bad arguments, a bad workload or missing packages (install them with
tools/install/bench-deps.sh).

One iteration = generate `batch` responses (sampling, KV cache) -> score -> no-grad log-probs/values ->
`epochs` passes over `minibatches` shuffled minibatches of PPO updates. `warmup` untimed iterations come first.

trl:   TRL 1.12's PPOTrainer (trl.experimental.ppo) driven as a user would, configured for this workload (rollout
       batch = `batch`, minibatch = batch/minibatches, one micro-batch per minibatch). Iterations are timed with a
       TrainerCallback: one iteration = the time between consecutive on_step_end calls (the first from
       on_train_begin). Where TRL's loop differs from Ballast's passes is listed in the output's "notes".
torch: a plain PyTorch loop doing the passes Ballast does: left-padded prompts, `policy.generate` (sampling,
       top_k=0, top_p=1), responses cut after the first EOS; no-grad forwards for policy log-probs, reference
       log-probs, critic values (value model = GPT2ForSequenceClassification applied per position) and the reward
       (score at each row's last real token); per-token reward -kl_coef*(logp-ref_logp) plus the score on the last
       response token; GAE; advantages whitened over the batch's response tokens; per minibatch a policy step
       (clipped surrogate, clip_grad_norm_, AdamW lr) and a critic step (clipped value loss, clip_grad_norm_,
       AdamW critic_lr). Dropout is off (models stay in eval mode, which for GPT-2 only disables dropout).

Counted: "response_tokens" per timed iteration = sum over rows of generated tokens up to and including the first
EOS (all generated tokens for a row without EOS), no padding; "eos_fraction" = timed rows that stopped on EOS;
"peak_rss_mb" = ru_maxrss of this process.
"""
import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import time

KEYS = ("policy", "reward", "prompts", "batch", "max_new_tokens", "temperature", "eos", "pad", "epochs",
        "minibatches", "lr", "critic_lr", "kl_coef", "clip", "value_clip", "gamma", "lambda", "max_grad_norm",
        "iterations", "warmup", "threads", "seed")


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def fail(msg):
    print(f"ppo_peer.py: {msg}", file=sys.stderr)
    sys.exit(2)


def load_workload(path):
    try:
        with open(path) as f:
            w = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read workload {path}: {e}")
    missing = [k for k in KEYS if k not in w]
    if missing:
        fail(f"workload {path} lacks keys: {', '.join(missing)}")
    for k in ("batch", "max_new_tokens", "epochs", "minibatches", "iterations", "threads"):
        if not isinstance(w[k], int) or w[k] < 1:
            fail(f"workload '{k}' must be an integer >= 1, got {w[k]!r}")
    if not isinstance(w["warmup"], int) or w["warmup"] < 0:
        fail(f"workload 'warmup' must be an integer >= 0, got {w['warmup']!r}")
    if w["batch"] % w["minibatches"]:
        fail(f"batch {w['batch']} is not divisible by minibatches {w['minibatches']}")
    if not w["prompts"] or not all(isinstance(p, list) and p for p in w["prompts"]):
        fail("workload 'prompts' must be a non-empty list of non-empty token lists")
    if w["temperature"] <= 0:
        fail("temperature must be > 0")
    for k in ("policy", "reward"):
        if not os.path.isfile(os.path.join(w[k], "config.json")):
            fail(f"{k} dir {w[k]!r} has no config.json")
    with open(os.path.join(w["policy"], "config.json")) as f:
        n_pos = json.load(f).get("n_positions", 1 << 30)
    longest = max(len(p) for p in w["prompts"])
    if longest + w["max_new_tokens"] > n_pos:
        fail(f"longest prompt {longest} + max_new_tokens {w['max_new_tokens']} exceeds n_positions {n_pos}")
    return w


def load_models(w, transformers):
    """policy, reference, reward and value models; pad/eos set where transformers looks for them."""
    lm = [transformers.GPT2LMHeadModel.from_pretrained(w["policy"]) for _ in range(2)]
    sc = [transformers.GPT2ForSequenceClassification.from_pretrained(w["reward"], num_labels=1) for _ in range(2)]
    for m in lm + sc:
        m.config.pad_token_id = w["pad"]
    for m in lm:
        m.generation_config.pad_token_id, m.generation_config.eos_token_id = w["pad"], w["eos"]
    return lm[0], lm[1], sc[0], sc[1]


def count_responses(resp, eos):
    """resp [B, G] generated ids -> (lengths incl. first EOS, or G without one; bool row stopped on EOS)."""
    is_eos = resp == eos
    has = is_eos.any(1)
    first = is_eos.int().argmax(1)
    return (first + 1).where(has, resp.new_full(first.shape, resp.shape[1])), has


def prompt_rows(w, it):
    n = len(w["prompts"])
    return [w["prompts"][(it * w["batch"] + j) % n] for j in range(w["batch"])]


# ---------------------------------------------------------------------------------------------------- torch mode
def run_torch(w, torch, transformers):
    B, T, pad, eos = w["batch"], w["temperature"], w["pad"], w["eos"]
    policy, ref, reward, critic = load_models(w, transformers)
    for m in (policy, ref, reward, critic):
        m.eval()  # no dropout anywhere (gradients still flow in eval mode)
    def adamw(params, lr):  # fused kernel where this torch has it, as transformers' Trainer (and so TRL) uses
        try:
            return torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=True)
        except (RuntimeError, TypeError):
            return torch.optim.AdamW(params, lr=lr, weight_decay=0.0)

    opt_p, opt_c = adamw(policy.parameters(), w["lr"]), adamw(critic.parameters(), w["critic_lr"])

    def logprobs(model, seq, mask, pos, P):
        logits = model(input_ids=seq, attention_mask=mask, position_ids=pos, use_cache=False).logits
        logits = logits[:, P - 1:-1].float() / T  # position P-1+t predicts response token t
        return torch.log_softmax(logits, -1).gather(-1, seq[:, P:, None]).squeeze(-1)

    def per_token_score(model, seq, mask, pos):
        hidden = model.transformer(input_ids=seq, attention_mask=mask, position_ids=pos, use_cache=False)
        return model.score(hidden.last_hidden_state).squeeze(-1)  # [B, L]

    def masked_mean(x, m):
        return (x * m).sum() / m.sum().clamp(min=1)

    def iteration(it):
        rows = prompt_rows(w, it)
        P = max(len(r) for r in rows)
        ids = torch.full((B, P), pad, dtype=torch.long)
        pmask = torch.zeros((B, P), dtype=torch.long)
        for i, r in enumerate(rows):  # left padding
            ids[i, P - len(r):] = torch.tensor(r)
            pmask[i, P - len(r):] = 1
        with torch.no_grad():
            out = policy.generate(input_ids=ids, attention_mask=pmask, do_sample=True, temperature=T, top_k=0,
                                  top_p=1.0, max_new_tokens=w["max_new_tokens"], eos_token_id=eos, pad_token_id=pad)
            resp = out[:, P:]
            G = resp.shape[1]
            lengths, stopped = count_responses(resp, eos)
            rmask = torch.arange(G)[None, :] < lengths[:, None]  # [B, G] real response tokens
            resp = resp.masked_fill(~rmask, pad)
            seq = torch.cat([ids, resp], 1)
            mask = torch.cat([pmask, rmask.long()], 1)
            pos = (mask.cumsum(1) - 1).clamp(min=0)
            old_logp = logprobs(policy, seq, mask, pos, P)
            ref_logp = logprobs(ref, seq, mask, pos, P)
            old_v = per_token_score(critic, seq, mask, pos)[:, P - 1:-1] * rmask
            last = P - 1 + lengths  # index of each row's last real token
            h = reward.transformer(input_ids=seq, attention_mask=mask, position_ids=pos, use_cache=False)
            score = reward.score(h.last_hidden_state[torch.arange(B), last]).squeeze(-1)
            rewards = -w["kl_coef"] * (old_logp - ref_logp) * rmask
            rewards[torch.arange(B), lengths - 1] += score
            adv = torch.zeros_like(rewards)
            gae = torch.zeros(B)
            for t in reversed(range(G)):  # GAE; values and rewards are zero past each row's end
                next_v = old_v[:, t + 1] if t + 1 < G else torch.zeros(B)
                delta = rewards[:, t] + w["gamma"] * next_v - old_v[:, t]
                gae = delta + w["gamma"] * w["lambda"] * gae
                adv[:, t] = gae
            returns = adv + old_v
            mean = masked_mean(adv, rmask)
            var = masked_mean((adv - mean) ** 2, rmask)
            adv = ((adv - mean) * torch.rsqrt(var + 1e-8)) * rmask
        mb = B // w["minibatches"]
        for _ in range(w["epochs"]):
            perm = torch.randperm(B)
            for s in range(0, B, mb):
                idx = perm[s:s + mb]
                m_seq, m_mask, m_pos, m_r = seq[idx], mask[idx], pos[idx], rmask[idx].float()
                ratio = torch.exp(logprobs(policy, m_seq, m_mask, m_pos, P) - old_logp[idx])
                a = adv[idx]
                pg = torch.max(-a * ratio, -a * ratio.clamp(1 - w["clip"], 1 + w["clip"]))
                opt_p.zero_grad(set_to_none=True)
                masked_mean(pg, m_r).backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), w["max_grad_norm"])
                opt_p.step()
                v = per_token_score(critic, m_seq, m_mask, m_pos)[:, P - 1:-1]
                v_old, ret = old_v[idx], returns[idx]
                v_clip = v_old + (v - v_old).clamp(-w["value_clip"], w["value_clip"])
                vloss = 0.5 * masked_mean(torch.max((v - ret) ** 2, (v_clip - ret) ** 2), m_r)
                opt_c.zero_grad(set_to_none=True)
                vloss.backward()
                torch.nn.utils.clip_grad_norm_(critic.parameters(), w["max_grad_norm"])
                opt_c.step()
        return int(lengths.sum()), int(stopped.sum())

    times, tokens, eos_rows = [], [], 0
    for it in range(w["warmup"] + w["iterations"]):
        t0 = time.perf_counter()
        n_tok, n_eos = iteration(it)
        dt = time.perf_counter() - t0
        if it >= w["warmup"]:
            times.append(dt)
            tokens.append(n_tok)
            eos_rows += n_eos
    notes = (f"plain PyTorch loop; separate AdamW (weight_decay 0, fused={opt_p.defaults.get('fused')}) for policy "
             "(lr) and critic (critic_lr), each with clip_grad_norm_(max_grad_norm); "
             "old log-probs from a no-grad forward of the policy after generation; models in eval mode (no dropout)")
    return times, tokens, eos_rows, {"attn": getattr(policy.config, "_attn_implementation", None), "notes": notes}


# ------------------------------------------------------------------------------------------------------ trl mode
def run_trl(w, torch, transformers):
    import tempfile
    import shutil
    import datasets
    import tokenizers
    from torch.utils.data import DataLoader
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    B, eos, pad = w["batch"], w["eos"], w["pad"]
    policy, ref, reward, value = load_models(w, transformers)

    # A tokenizer TRL accepts: one word-level token per id. Training only uses pad() and the pad/eos ids.
    vocab = {f"<{i}>": i for i in range(256)}
    vocab.update({"<bos>": 256, "<eos>": 257, "<pad>": 258})
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab, unk_token="<pad>")),
        bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", padding_side="left")
    assert (tok.pad_token_id, tok.eos_token_id) == (pad, eos), (tok.pad_token_id, tok.eos_token_id)

    total = w["warmup"] + w["iterations"]
    train = datasets.Dataset.from_dict({"input_ids": [list(r) for it in range(total) for r in prompt_rows(w, it)]})

    # Count response tokens as TRL generates them (TRL's own generate() wrapper calls policy.generate).
    seen = {"tokens": 0, "eos": 0}
    orig_generate = policy.generate

    def counting_generate(*a, **kw):
        out = orig_generate(*a, **kw)
        seqs = out.sequences if hasattr(out, "sequences") else out
        lengths, stopped = count_responses(seqs[:, kw["input_ids"].shape[1]:], eos)
        seen["tokens"] += int(lengths.sum())
        seen["eos"] += int(stopped.sum())
        return out

    policy.generate = counting_generate

    class Timer(transformers.TrainerCallback):
        def __init__(self):
            self.marks = []  # (time, tokens so far, eos rows so far)

        def on_train_begin(self, args, state, control, **kw):
            self.marks.append((time.perf_counter(), seen["tokens"], seen["eos"]))

        def on_step_end(self, args, state, control, **kw):
            self.marks.append((time.perf_counter(), seen["tokens"], seen["eos"]))

    out_dir = tempfile.mkdtemp(prefix="ppo_peer_trl_")
    try:
        cfg = PPOConfig(
            output_dir=out_dir, per_device_train_batch_size=B, gradient_accumulation_steps=1,
            num_mini_batches=w["minibatches"], num_ppo_epochs=w["epochs"], local_rollout_forward_batch_size=B,
            response_length=w["max_new_tokens"], temperature=w["temperature"], stop_token_id=eos,
            kl_coef=w["kl_coef"], cliprange=w["clip"], cliprange_value=w["value_clip"], gamma=w["gamma"],
            lam=w["lambda"], learning_rate=w["lr"], max_grad_norm=w["max_grad_norm"], total_episodes=B * total,
            num_sample_generations=0, whiten_rewards=False, lr_scheduler_type="constant", report_to=[],
            save_strategy="no", logging_strategy="no", disable_tqdm=True, use_cpu=True, bf16=False, fp16=False,
            gradient_checkpointing=False, seed=w["seed"], dataloader_num_workers=0, dataloader_pin_memory=False)
        timer = Timer()
        trainer = PPOTrainer(args=cfg, processing_class=tok, model=policy, ref_model=ref, reward_model=reward,
                             train_dataset=train, value_model=value, callbacks=[timer])
        # TRL's dataloader shuffles; take the prompts in order instead so both peers see the same batches.
        trainer.dataloader = trainer.accelerator.prepare(
            DataLoader(train, batch_size=B, shuffle=False, collate_fn=trainer.data_collator, drop_last=True))
        trainer.train()
        opt = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
        decay = max(g["weight_decay"] for g in opt.param_groups)
        opt_name = f"{type(opt).__name__}(fused={opt.defaults.get('fused')}, weight_decay={decay})"
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)

    marks = timer.marks
    if len(marks) != total + 1:
        raise RuntimeError(f"expected {total} PPO steps from TRL, saw {len(marks) - 1}")
    times, tokens, eos_rows = [], [], 0
    for i in range(w["warmup"], total):
        (t0, k0, e0), (t1, k1, e1) = marks[i], marks[i + 1]
        times.append(t1 - t0)
        tokens.append(k1 - k0)
        eos_rows += e1 - e0
    notes = "; ".join([
        f"TRL PPOTrainer as shipped, with per_device_train_batch_size={B}, num_mini_batches={w['minibatches']}, "
        "gradient_accumulation_steps=1 (TRL's rollout batch is per_device_train_batch_size*grad_accum and its "
        "minibatch that / num_mini_batches)",
        f"optimizer {opt_name} over policy+value (PolicyAndValueWrapper) with ONE learning rate "
        f"(lr={w['lr']}; critic_lr unused), loss = pg_loss + vf_coef(0.1)*vf_loss, one backward and one step per "
        "minibatch",
        "no gradient clipping in TRL's PPO loop (max_grad_norm is set but not applied)",
        "old log-probs come from the generation logits (output_scores), not from a separate policy forward",
        "values from a value-model forward on the untruncated query+response, reward model on the EOS-truncated one",
        "TRL adds the score one position after the last response token when there is room (the value loss covers "
        "that extra position too)",
        "TRL calls gc.collect() twice and empty_cache() several times per iteration and computes/logs stats "
        "(entropy over the full logits per minibatch)",
        "TRL's shuffling dataloader was replaced by an in-order one; lr scheduler constant",
        "iteration time = gap between on_step_end callbacks (the first from on_train_begin), so it includes the "
        "previous iteration's trailing gc.collect()",
        "response tokens counted by wrapping policy.generate"])
    return times, tokens, eos_rows, {"trl": __import__("trl").__version__, "optimizer": opt_name,
                                     "attn": getattr(policy.config, "_attn_implementation", None), "notes": notes}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["trl", "torch"])
    ap.add_argument("--workload", required=True, help="workload JSON written by `ballast bench ppo-step`")
    args = ap.parse_args()
    w = load_workload(args.workload)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    try:
        import torch
        import transformers
        if args.mode == "trl":
            import trl  # noqa: F401
            import datasets  # noqa: F401
            import accelerate  # noqa: F401
            if not hasattr(__import__("trl.experimental.ppo", fromlist=["PPOTrainer"]), "PPOTrainer"):
                raise ImportError(f"trl {trl.__version__} has no trl.experimental.ppo.PPOTrainer (need trl 1.12)")
    except ImportError as e:
        fail(f"{e}; install with: bash tools/install/bench-deps.sh")
    rss_import = peak_rss_mb()
    torch.set_num_threads(w["threads"])
    with contextlib.suppress(RuntimeError):  # only allowed before any inter-op work
        torch.set_num_interop_threads(1)
    transformers.logging.set_verbosity_error()
    transformers.set_seed(w["seed"])  # torch, numpy and random
    run = run_trl if args.mode == "trl" else run_torch
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON line
        times, tokens, eos_rows, extra = run(w, torch, transformers)
    med = statistics.median(times)
    rows = w["batch"] * len(times)
    result = {"mode": args.mode, "torch": torch.__version__, "transformers": transformers.__version__}
    if "trl" in extra:
        result["trl"] = extra.pop("trl")
    result.update({
        "threads": torch.get_num_threads(), "iterations": len(times), "warmup": w["warmup"], "batch": w["batch"],
        "iteration_s": times, "iteration_s_median": med, "rollouts_per_s": w["batch"] / med,
        "response_tokens": tokens, "response_tokens_per_s": sum(tokens) / sum(times),
        "mean_response_length": sum(tokens) / rows, "eos_fraction": eos_rows / rows,
        "peak_rss_mb": peak_rss_mb(), "rss_after_import_mb": rss_import})
    result.update(extra)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

"""The paper's claims on the built-in benchmark, with seeds, controls, ablations, tables and figures — one command.

    python3 tools/paper/paper.py                      # configs/paper/main.yaml, seeds 1 2 3, controls, ablations
    python3 tools/paper/paper.py --ci                 # configs/paper/ci.yaml: one seed, tiny, a few minutes
    python3 tools/paper/paper.py --seeds 4 5 6 --out runs/paper --publish tools/paper

What it runs (every step is a `ballast` command; finished steps are skipped when rerun):
  base        data, SFT, the forget set and preference labels, shared by every seed
              (`ballast pipeline --until label`)
  seed-S      RM and AM training, selection, the three PPO arms (RM-PPO, AM-PPO, AM-PPO + rehearsal)
              with policy snapshots, and the curve evaluation of every arm (ARM/curve.jsonl: step 0 =
              SFT, each snapshot, the final policy) — with every trainer seeded by S
  controls    (first seed) PPO on the gold score itself, PPO on a length-only score, and RM-PPO with a
              reward model trained on labels from the zero-length-bias annotator; each with its curve
  ablations   (first seed) each AM term off in turn; the rehearsal coefficient γ ∈ {0, 0.1, 0.3, 1}
              (0 and the config's γ are the main AM-PPO and AM-PPO + SR arms); rehearsal with a random
              subset of the same size; other cluster counts
Outputs in OUT: results.json, table1.csv, table2.csv, ablations.csv, figures/*.svg and results.md
(means and 95% t confidence intervals over seeds, the failure-mode checks per seed, verdicts, figures
linked). --publish DIR copies results.md, the CSVs, results.json and the figures there.
"""
import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("BALLAST_BIN") or str(ROOT / ".build/release/ballast")
ARMS = ["rm-ppo", "am-ppo", "am-ppo-sr"]
CONTROLS = ["gold-ppo", "length-ppo", "zero-bias-rm-ppo"]
AM_TERMS = ["expected", "bound", "task_mean", "task_spread"]
GAMMAS = [0.0, 0.1, 0.3, 1.0]
SPLITS = ["test", "forget", "forget_sft_only"]  # greedy win / lose against SFT, per curve point
MIN_PAIRS = 10  # tasks with fewer test pairs are left out of the per-task spreads
# The failure-mode thresholds for the RM-PPO baseline (sampled gold on the test prompts).
EARLY_RISE, LATE_DROP, CONTROL_RISE = 0.03, 0.05, 0.05

# Two-sided 95% Student t quantiles by degrees of freedom.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def log(msg):
    print(f"[paper {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ballast(*args, cwd=ROOT):
    log("ballast " + " ".join(str(a) for a in args))
    r = subprocess.run([BIN, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.exit(f"ballast {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout[-4000:]}")
    return r.stdout


def mean_ci(xs):
    """Mean and half-width of the 95% t interval (nan half-width for a single value)."""
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    if not xs:
        return float("nan"), float("nan")
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, float("nan")
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
    return m, T95.get(len(xs) - 1, 1.96) * sd / math.sqrt(len(xs))


def fmt(m, h, pct=False, digits=3):
    if m is None or math.isnan(m):
        return "–"
    scale, unit = (100, "%") if pct else (1, "")
    d = 1 if pct else digits
    s = f"{m * scale:.{d}f}{unit}"
    return s if math.isnan(h) else s + f" ± {h * scale:.{d}f}"


# ---------------------------------------------------------------- running

def link_shared(run_dir, base, stages=("data", "sft", "forget", "label")):
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in ("data", "sft"):
        if not (run_dir / name).exists():
            (run_dir / name).symlink_to((base / name).resolve())
    for st in stages:
        (run_dir / f".done-{st}").write_text("done\n")


def ppo_config(cfg, out_dir, policy, critic, scorer, prompts, rehearsal, seed, gamma=None):
    """A standalone `ballast ppo` config from the pipeline config's ppo section."""
    c = json.loads(json.dumps(cfg.get("ppo", {})))
    c["models"] = {"policy": str(policy), "critic": str(critic), "scorer": str(scorer)}
    c["data"] = {"prompts": str(prompts), "rehearsal": str(rehearsal) if rehearsal else "none"}
    c.setdefault("train", {})["seed"] = seed
    c.setdefault("run", {})["out_dir"] = str(out_dir)
    c["run"]["threads"] = cfg.get("threads", 2)
    if gamma is not None:
        c.setdefault("ppo", {})["rehearsal_coef"] = gamma
    path = Path(out_dir).parent / (Path(out_dir).name + ".yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(c, sort_keys=True))
    return path


def curve(cfg, ppo_dir, base, scorer):
    """`ballast curve` of a PPO run folder (skipped when its curve.jsonl exists); returns the records."""
    path = Path(ppo_dir) / "curve.jsonl"
    if not path.exists():
        e = cfg.get("eval", {})
        ballast("curve", "--ppo-dir", ppo_dir, "--sft", base / "sft/checkpoint", "--scorer", scorer, "--data", base / "data",
                "--max-new-tokens", e.get("max_new_tokens", 64), "--samples-per-prompt", e.get("samples_per_prompt", 2),
                "--tie-epsilon", e.get("tie_epsilon", 0.05), "--threads", cfg.get("threads", 2))
    return read_jsonl(path)


def read_jsonl(path):
    return [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]


def run_ppo(cfg, out_dir, base, critic, scorer, prompts, rehearsal, seed, gamma=None, proxy=None):
    """`ballast ppo` (skipped when finished), then its curve with `proxy` (default: the scorer) as the proxy."""
    steps = cfg["ppo"]["train"]["steps"]
    state = Path(out_dir) / "checkpoint/trainer_state.json"
    if not (state.exists() and json.loads(state.read_text())["step"] >= steps):
        conf = ppo_config(cfg, out_dir, base / "sft/checkpoint", critic, scorer, prompts, rehearsal, seed, gamma)
        ballast("ppo", "--config", conf, *(["--resume"] if state.exists() else []))
    return curve(cfg, out_dir, base, proxy or scorer)


def run_all(args, cfg, out):
    base = out / "base"
    ballast("pipeline", "--config", args.config, "--set", f"run_dir={base}", "--until", "label")
    for s in args.seeds:
        d = out / f"seed-{s}"
        link_shared(d, base)
        ballast("pipeline", "--config", args.config, "--set", f"run_dir={d}", "--set", f"rm.train.seed={s}",
                "--set", f"am.train.seed={s}", "--set", f"select.seed={s}", "--set", f"ppo.train.seed={s}")
    s = args.seeds[0]
    d = out / f"seed-{s}"
    rm, prompts = d / "rm/checkpoint", d / "select/ppo_prompts.jsonl"
    if not args.no_controls:
        ctl = out / "controls"
        # The recipe's own check: PPO on the gold score must raise gold (proxy column: the RM).
        run_ppo(cfg, ctl / "gold-ppo", base, rm, "gold", prompts, None, s, proxy=rm)
        # The spurious feature alone: a length-only score.
        run_ppo(cfg, ctl / "length-ppo", base, rm, "length", prompts, None, s, proxy=rm)
        # No length bias in the labels: relabel, train an RM on those labels, RM-PPO on it.
        z = ctl / "zero-bias"
        link_shared(z, base, ("data", "sft", "forget"))
        ballast("pipeline", "--config", args.config, "--set", f"run_dir={z}", "--set", "label.length_bias=0",
                "--set", f"rm.train.seed={s}", "--until", "rm")
        run_ppo(cfg, ctl / "zero-bias-rm-ppo", base, z / "rm/checkpoint", z / "rm/checkpoint", prompts, None, s)
    if args.no_ablations:
        return
    ab = out / "ablations"
    # Each AM term off in turn (reward-model metrics only: a PPO run per variant is beyond this budget).
    for term in AM_TERMS:
        a = ab / f"am-no-{term}"
        link_shared(a, base, ("data", "sft", "forget", "label", "rm"))
        if not (a / "rm").exists():
            (a / "rm").symlink_to((d / "rm").resolve())
        ballast("pipeline", "--config", args.config, "--set", f"run_dir={a}", "--set", f"am.am.{term}=0",
                "--set", f"am.train.seed={s}", "--until", "am")
    sel = cfg.get("select", {})
    clusters, per = sel.get("clusters", 16), sel.get("per_cluster", 16)
    am = d / "am/checkpoint"
    main_gamma = cfg["ppo"].get("ppo", {}).get("rehearsal_coef", 0.01)
    # γ sweep on AM-PPO + rehearsal: γ = 0 is the AM-PPO arm and the config's γ the AM-PPO + SR arm.
    for g in GAMMAS:
        if g not in (0.0, main_gamma):
            run_ppo(cfg, ab / f"gamma-{g}", base, rm, am, prompts, d / "select/rehearsal.jsonl", s, gamma=g)
    # Random rehearsal subset of the same size, and other cluster counts at the same rehearsal size.
    variants = [("random", ["--random", "--clusters", clusters, "--per-cluster", per])]
    for k in args.clusters:
        if k != clusters:
            variants.append((f"clusters-{k}", ["--clusters", k, "--per-cluster", max(1, clusters * per // k)]))
    for name, flags in variants:
        sd = ab / f"select-{name}"
        if not (sd / "rehearsal.jsonl").exists():
            ballast("select", "--sft", base / "sft/checkpoint", "--am", am, "--prompts", base / "data/rl_prompts.jsonl",
                    "--out", sd, "--seed", s, "--max-new-tokens", sel.get("max_new_tokens", 48), *flags)
        run_ppo(cfg, ab / f"rehearsal-{name}", base, rm, am, sd / "ppo_prompts.jsonl", sd / "rehearsal.jsonl", s)


# ---------------------------------------------------------------- tables

def reward_json(eval_json, key):
    rows = json.loads(Path(eval_json).read_text())[key]
    return rows if isinstance(rows, dict) else {"rows": rows}


def reward_summary(eval_json, key):
    j = reward_json(eval_json, key)
    rows = j["rows"]
    overall = next(r for r in rows if r["task"] == "all")
    tasks = [r for r in rows if r["task"] != "all" and r["pairs"] >= MIN_PAIRS]
    spread = lambda f: (max(r[f] for r in tasks) - min(r[f] for r in tasks)) if len(tasks) >= 2 else float("nan")
    labels = j.get("labels") or {}
    nan = float("nan")
    return {"accuracy": overall["accuracy"], "ece": overall["ece"], "pairs": overall["pairs"], "mean_spread": spread("scoreMean"),
            "std_spread": spread("scoreStd"), "std_ratio": j.get("task_std_ratio", nan), "mean_spread_over_std": j.get("task_mean_spread_over_std", nan),
            "length_matched_accuracy": labels.get("lengthMatchedAccuracy", nan), "bayes_ceiling": labels.get("bayesCeiling") or nan,
            "longer_wins": labels.get("longerWins", nan),
            "per_task": {r["task"]: {k: r[k] for k in ("pairs", "accuracy", "ece", "scoreMean", "scoreStd", "histogram")} for r in rows}}


def greedy(point, split):
    """(win, lose, tie) of a curve point's greedy comparison with SFT on `split`, or None when not evaluated."""
    w, l = point.get(f"{split}_greedy_win"), point.get(f"{split}_greedy_lose")
    return None if w is None else (w, l, 1 - w - l)


def summarise_curve(points):
    """The numbers a curve is judged by: gold at SFT, its peak before the end, at the end; proxy trend; KL."""
    gold = [p["gold"] for p in points]
    proxy = [p.get("proxy") for p in points]
    base, end = gold[0], gold[-1]
    peak = max(gold[1:-1] or gold[1:] or gold)
    rising = proxy[-1] is not None and proxy[-2] is not None and proxy[-1] > proxy[-2] if len(points) >= 2 else False
    return {"gold_sft": base, "gold_end": end, "gold_peak": peak, "early_rise": peak - base, "end_change": end - base,
            "proxy_start": proxy[0], "proxy_end": proxy[-1], "proxy_rising_at_end": rising, "kl_end": points[-1]["kl"],
            "steps": [p["step"] for p in points]}


def failure_modes(s):
    return {"early_rise": s["early_rise"] >= EARLY_RISE, "late_drop": s["end_change"] <= -LATE_DROP and s["proxy_rising_at_end"]}


def interpolate_at_kl(points, target):
    """Linear interpolation of (kl, v1, v2, ...) points (sorted by kl) at `target`."""
    pts = sorted(points)
    for (k0, *v0), (k1, *v1) in zip(pts, pts[1:]):
        if k0 <= target <= k1:
            t = 0 if k1 == k0 else (target - k0) / (k1 - k0)
            return [a + t * (b - a) for a, b in zip(v0, v1)]
    return None


def collect(args, out):
    res = {"seeds": args.seeds, "table1": {}, "table2": {}, "matched_kl": {}, "curves": {}, "summary": {}, "controls": {},
           "gammas": {}, "ablations": {}}
    # Table 1: ranking accuracy, ECE, spreads of per-task score mean and std, the labels' baselines.
    for model, path, key in (("RM r", "rm/eval.json", "r"), ("AM r", "am/eval.json", "r"), ("AM a", "am/eval.json", "a")):
        per_seed = [reward_summary(out / f"seed-{s}" / path, key) for s in args.seeds]
        res["table1"][model] = {m: [p[m] for p in per_seed] for m in per_seed[0] if m != "per_task"}
        res["table1"][model]["per_task"] = [p["per_task"] for p in per_seed]
    # Curves and Table 2 (final policies, from each curve's last point) per arm.
    for arm in ARMS:
        runs = [read_jsonl(out / f"seed-{s}/{arm}/curve.jsonl") for s in args.seeds]
        res["curves"][arm] = runs
        res["summary"][arm] = [summarise_curve(r) for r in runs]
        res["table2"][arm] = {}
        for split in SPLITS:
            finals = [greedy(r[-1], split) for r in runs]
            if all(finals):
                res["table2"][arm][split] = {k: [f[i] for f in finals] for i, k in enumerate(("win", "lose", "tie"))}
        res["table2"][arm]["sampled"] = {k: [r[-1].get(k) for r in runs] for k in ("win", "lose", "tie", "gold", "proxy", "kl")}
        res["table2"][arm]["sampled"]["gold_sft"] = [r[0]["gold"] for r in runs]
    # Matched KL: per seed, the smallest final KL over the arms; every arm's curve read there.
    for split in SPLITS:
        if not all(split in res["table2"][arm] for arm in ARMS):
            continue
        res["matched_kl"][split] = {arm: {"win": [], "lose": [], "tie": [], "gold": [], "kl": []} for arm in ARMS}
        for i in range(len(args.seeds)):
            target = min(res["curves"][arm][i][-1]["kl"] for arm in ARMS)
            for arm in ARMS:
                pts = [(p["kl"], *greedy(p, split), p["gold"]) for p in res["curves"][arm][i]]
                v = interpolate_at_kl(pts, target) or [float("nan")] * 4
                for k, x in zip(("win", "lose", "tie", "gold"), v):
                    res["matched_kl"][split][arm][k].append(x)
                res["matched_kl"][split][arm]["kl"].append(target)
    ctl = out / "controls"
    for name in CONTROLS:
        p = ctl / name / "curve.jsonl"
        if p.exists():
            pts = read_jsonl(p)
            res["controls"][name] = {"curve": pts, "summary": summarise_curve(pts)}
    zr = ctl / "zero-bias/rm/eval.json"
    if zr.exists():
        res["controls"]["zero-bias RM"] = {"rm": {k: v for k, v in reward_summary(zr, "r").items() if k != "per_task"}}
    ab = out / "ablations"
    first = out / f"seed-{args.seeds[0]}"
    cfg = yaml.safe_load((ROOT / args.config).read_text())
    main_gamma = cfg["ppo"].get("ppo", {}).get("rehearsal_coef", 0.01)
    for g in GAMMAS:
        d = first / "am-ppo" if g == 0 else first / "am-ppo-sr" if g == main_gamma else ab / f"gamma-{g}"
        if (d / "curve.jsonl").exists():
            pts = read_jsonl(d / "curve.jsonl")
            metrics = read_jsonl(d / "metrics.jsonl") if (d / "metrics.jsonl").exists() else []
            nll = [m["rehearsal_nll"] for m in metrics if "rehearsal_nll" in m]
            res["gammas"][str(g)] = {"run": str(d.relative_to(out)), "final": pts[-1], "summary": summarise_curve(pts),
                                     "rehearsal_nll_first": nll[0] if nll else None, "rehearsal_nll_last": nll[-1] if nll else None,
                                     "forget": [(p["step"], *(greedy(p, "forget") or (float("nan"),) * 3)) for p in pts],
                                     "forget_sft_only": [(p["step"], *(greedy(p, "forget_sft_only") or (float("nan"),) * 3)) for p in pts]}
    if ab.exists():
        for term in AM_TERMS:
            p = ab / f"am-no-{term}/am/eval.json"
            if p.exists():
                res["ablations"][f"AM without {term}"] = {"r": reward_summary(p, "r"), "a": reward_summary(p, "a")}
        for d in sorted(ab.glob("rehearsal-*")):
            if (d / "curve.jsonl").exists():
                last = read_jsonl(d / "curve.jsonl")[-1]
                res["ablations"][d.name] = {split: dict(zip(("win", "lose", "tie"), greedy(last, split)))
                                            for split in SPLITS if greedy(last, split)}
                res["ablations"][d.name]["sampled"] = {k: last.get(k) for k in ("gold", "proxy", "kl")}
    return res


# ---------------------------------------------------------------- figures (plain SVG)

COLORS = {"rm-ppo": "#d62728", "am-ppo": "#1f77b4", "am-ppo-sr": "#2ca02c", "gold-ppo": "#7f7f7f", "length-ppo": "#bcbd22",
          "zero-bias-rm-ppo": "#ff7f0e", "RM r": "#d62728", "AM r": "#9467bd", "AM a": "#1f77b4"}


def svg_lines(title, xlabel, ylabel, series, path, width=520, height=320):
    """series: [(label, color, [(x, y)], dashed)] → a line chart."""
    pts = [p for _, _, ps, _ in series for p in ps if not (math.isnan(p[0]) or math.isnan(p[1]))]
    if not pts:
        return
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    pad = (y1 - y0) * 0.08
    y0, y1 = y0 - pad, y1 + pad
    L, R, T, B = 60, 150, 30, 45
    X = lambda x: L + (x - x0) / (x1 - x0) * (width - L - R)
    Y = lambda y: height - B - (y - y0) / (y1 - y0) * (height - T - B)
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
         f'<rect width="{width}" height="{height}" fill="white"/><text x="{L}" y="18" font-size="13">{title}</text>',
         f'<line x1="{L}" y1="{height - B}" x2="{width - R}" y2="{height - B}" stroke="black"/>',
         f'<line x1="{L}" y1="{T}" x2="{L}" y2="{height - B}" stroke="black"/>']
    for i in range(5):
        xv, yv = x0 + (x1 - x0) * i / 4, y0 + (y1 - y0) * i / 4
        o.append(f'<text x="{X(xv):.1f}" y="{height - B + 14}" text-anchor="middle">{xv:.3g}</text>')
        o.append(f'<text x="{L - 5}" y="{Y(yv) + 4:.1f}" text-anchor="end">{yv:.3g}</text>')
        o.append(f'<line x1="{L}" y1="{Y(yv):.1f}" x2="{width - R}" y2="{Y(yv):.1f}" stroke="#eee"/>')
    o.append(f'<text x="{(L + width - R) / 2}" y="{height - 8}" text-anchor="middle">{xlabel}</text>')
    o.append(f'<text transform="translate(14,{(T + height - B) / 2}) rotate(-90)" text-anchor="middle">{ylabel}</text>')
    for i, (label, color, ps, dashed) in enumerate(series):
        dash = ' stroke-dasharray="5,3"' if dashed else ""
        ps = [p for p in ps if not (math.isnan(p[0]) or math.isnan(p[1]))]
        if ps:
            d = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in ps)
            o.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="1.8"{dash}/>')
        ly = T + 14 * i
        o.append(f'<line x1="{width - R + 8}" y1="{ly}" x2="{width - R + 26}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/>')
        o.append(f'<text x="{width - R + 30}" y="{ly + 4}">{label}</text>')
    o.append("</svg>")
    Path(path).write_text("\n".join(o))


def mean_curve(runs, key, x="kl"):
    """Point-by-point mean over seeds (every seed has the same snapshot steps): [(√KL, mean key)]."""
    n = min(len(r) for r in runs)
    out = []
    for i in range(n):
        ys = [r[i].get(key) for r in runs]
        if all(y is not None for y in ys):
            out.append((sum(math.sqrt(max(r[i][x], 0)) for r in runs) / len(runs), sum(ys) / len(ys)))
    return out


def forget_series(runs, split):
    """Mean over seeds of greedy win − lose (%) on `split`, per step; [] when the split was not evaluated."""
    n = min(len(r) for r in runs)
    pts = []
    for i in range(n):
        g = [greedy(r[i], split) for r in runs]
        if all(g):
            pts.append((runs[0][i]["step"], 100 * sum(w - l for w, l, _ in g) / len(g)))
    return pts


def figures(res, fig_dir):
    fig_dir.mkdir(parents=True, exist_ok=True)
    made = []
    # Per-task score distributions (first seed): histograms as lines, RM r vs AM a.
    tasks = sorted(t for t in res["table1"]["RM r"]["per_task"][0] if t != "all")
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    for model in ("RM r", "AM a"):
        pt = res["table1"][model]["per_task"][0]
        series = []
        for i, t in enumerate(tasks):
            h = pt[t]["histogram"]
            total = max(sum(h), 1)
            series.append((f"{t} (μ {pt[t]['scoreMean']:.2f})", palette[i % len(palette)], [(j, c / total) for j, c in enumerate(h)], False))
        name = "scores-" + model.replace(" ", "-").lower() + ".svg"
        svg_lines(f"{model}: per-task score distribution (test pairs, seed {res['seeds'][0]})", "histogram bin (low → high score)",
                  "fraction of responses", series, fig_dir / name)
        made.append(name)
    # Gold and proxy against √KL (Gao et al.'s axes): sampled responses on the test prompts at every
    # snapshot, mean over seeds; the controls (first seed) dashed.
    series = [(arm, COLORS[arm], mean_curve(res["curves"][arm], "gold"), False) for arm in ARMS]
    series += [(name, COLORS[name], mean_curve([c["curve"]], "gold"), True) for name, c in res["controls"].items() if "curve" in c]
    svg_lines("Gold score against √KL (sampled, test prompts; controls dashed)", "√KL(π ‖ π_SFT), nats per response",
              "gold score", series, fig_dir / "gold-vs-sqrt-kl.svg")
    series = [(arm, COLORS[arm], mean_curve(res["curves"][arm], "proxy"), False) for arm in ARMS]
    svg_lines("Proxy score (the arm's RM r or AM a) against √KL", "√KL(π ‖ π_SFT), nats per response", "proxy score",
              series, fig_dir / "proxy-vs-sqrt-kl.svg")
    # Forget sets: win − lose against the SFT model over training (the paper's Fig. 1b).
    series = []
    for arm in ARMS:
        series.append((f"{arm} expert-aligned", COLORS[arm], forget_series(res["curves"][arm], "forget"), False))
        series.append((f"{arm} SFT-only", COLORS[arm], forget_series(res["curves"][arm], "forget_sft_only"), True))
    svg_lines("Forget sets: greedy win − lose against SFT (mean over seeds)", "PPO step", "win − lose (%)", series,
              fig_dir / "forget-win-minus-lose.svg")
    # The γ sweep: the expert-aligned forget set (SFT-only where it is empty) over training.
    series = []
    for i, (g, v) in enumerate(sorted(res["gammas"].items(), key=lambda kv: float(kv[0]))):
        key = "forget" if any(not math.isnan(p[1]) for p in v["forget"]) else "forget_sft_only"
        series.append((f"γ = {g}", palette[i % len(palette)], [(p[0], 100 * (p[1] - p[2])) for p in v[key]], key != "forget"))
    svg_lines("Rehearsal strength: forget-set win − lose over training (AM-PPO + SR)", "PPO step", "win − lose (%)", series,
              fig_dir / "gamma-forget.svg")
    return made + ["gold-vs-sqrt-kl.svg", "proxy-vs-sqrt-kl.svg", "forget-win-minus-lose.svg", "gamma-forget.svg"]


# ---------------------------------------------------------------- report

def paired(xs, ys):
    """Per-seed differences x − y (the seeds pair the runs) and their mean with its 95% t interval."""
    return mean_ci([x - y for x, y in zip(xs, ys)])


def verdict(diff, higher_better=True, margin=0.0):
    """`diff` = (mean, half-width) of claimed-better minus baseline. Supported when the interval lies on
    the claimed side of −margin (margin > 0: "not worse by more than margin"); not supported when it lies
    entirely on the other side; otherwise inconclusive."""
    m, h = diff if higher_better else (-diff[0], diff[1])
    if math.isnan(m):
        return "not measured"
    if math.isnan(h):
        return "inconclusive (one seed)"
    if m - h > -margin:
        return "supported"
    if m + h < -margin:
        return "not supported"
    return "inconclusive at this scale"


def forget_split(res):
    """The forget set the claims use: expert-aligned when it was evaluated, else the SFT-only family."""
    return "forget" if all("forget" in res["table2"][a] for a in ARMS) else "forget_sft_only"


def verdicts(res):
    t1, t2, out = res["table1"], res["table2"], []
    acc = lambda m: t1[m]["accuracy"]
    d = paired(acc("AM a"), acc("RM r"))
    out.append(("The AM keeps ranking accuracy (AM a no more than 1 point below RM r)", verdict(d, margin=0.01),
                f"accuracy RM {fmt(*mean_ci(acc('RM r')), pct=True)}, AM {fmt(*mean_ci(acc('AM a')), pct=True)}; AM − RM {fmt(*d, pct=True)}"))
    d = paired(t1["AM a"]["ece"], t1["RM r"]["ece"])
    out.append(("The AM is better calibrated (lower ECE)", verdict(d, higher_better=False),
                f"ECE RM {fmt(*mean_ci(t1['RM r']['ece']), pct=True)}, AM {fmt(*mean_ci(t1['AM a']['ece']), pct=True)}; AM − RM {fmt(*d, pct=True)}"))
    d = paired(t1["AM a"]["mean_spread"], t1["RM r"]["mean_spread"])
    out.append(("The AM balances score distributions across tasks (smaller spread of per-task means)", verdict(d, higher_better=False),
                f"spread RM r {fmt(*mean_ci(t1['RM r']['mean_spread']))}, AM a {fmt(*mean_ci(t1['AM a']['mean_spread']))}; AM − RM {fmt(*d)}"))
    gold = lambda arm: [x["end_change"] for x in res["summary"][arm]]
    d = paired(gold("am-ppo"), gold("rm-ppo"))
    out.append(("AM-PPO over-optimises less than RM-PPO (gold change from SFT at the end, sampled)", verdict(d),
                f"gold change: RM-PPO {fmt(*mean_ci(gold('rm-ppo')))}, AM-PPO {fmt(*mean_ci(gold('am-ppo')))}; difference {fmt(*d)}"))
    wl = lambda arm, split: [w - l for w, l in zip(t2[arm][split]["win"], t2[arm][split]["lose"])]
    d = paired(wl("am-ppo", "test"), wl("rm-ppo", "test"))
    out.append(("AM-PPO beats RM-PPO (test win − lose against SFT, greedy, matched steps)", verdict(d),
                f"win − lose: RM-PPO {fmt(*mean_ci(wl('rm-ppo', 'test')), pct=True)}, AM-PPO {fmt(*mean_ci(wl('am-ppo', 'test')), pct=True)}; difference {fmt(*d, pct=True)}"))
    if "test" in res["matched_kl"]:
        mk = res["matched_kl"]["test"]
        gk = lambda arm: mk[arm]["gold"]
        d = paired(gk("am-ppo"), gk("rm-ppo"))
        out.append(("AM-PPO beats RM-PPO at matched KL (sampled gold)", verdict(d),
                    f"RM-PPO {fmt(*mean_ci(gk('rm-ppo')))}, AM-PPO {fmt(*mean_ci(gk('am-ppo')))}; difference {fmt(*d)}"))
    f = forget_split(res)
    d = paired(wl("am-ppo-sr", f), wl("am-ppo", f))
    out.append((f"Selective Rehearsal mitigates forgetting ({f} set win − lose, AM-PPO + SR vs AM-PPO)", verdict(d),
                f"AM-PPO {fmt(*mean_ci(wl('am-ppo', f)), pct=True)}, AM-PPO + SR {fmt(*mean_ci(wl('am-ppo-sr', f)), pct=True)}; difference {fmt(*d, pct=True)}"))
    return out


def write_outputs(res, out, figs, args):
    (out / "results.json").write_text(json.dumps(res, indent=1, sort_keys=True, default=float))
    t1 = res["table1"]
    metrics1 = ("accuracy", "ece", "mean_spread", "std_spread", "std_ratio", "mean_spread_over_std", "length_matched_accuracy",
                "bayes_ceiling", "longer_wins")
    with open(out / "table1.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "metric", "mean", "ci95", "per_seed"])
        for m in t1:
            for k in metrics1:
                w.writerow([m, k, *mean_ci(t1[m][k]), json.dumps(t1[m][k])])
    with open(out / "table2.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arm", "set", "matching", "metric", "mean", "ci95", "per_seed"])
        for arm in ARMS:
            for split, v in res["table2"][arm].items():
                for k, xs in v.items():
                    w.writerow([arm, split, "steps", k, *mean_ci(xs), json.dumps(xs)])
            for split, v in res["matched_kl"].items():
                for k, xs in v[arm].items():
                    w.writerow([arm, split, "kl", k, *mean_ci(xs), json.dumps(xs)])
    with open(out / "ablations.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "quantity", "value"])
        for name, v in res["ablations"].items():
            for sub, d in v.items():
                for k, x in d.items():
                    if isinstance(x, (int, float)):
                        w.writerow([name, f"{sub}.{k}", x])
        for g, v in res["gammas"].items():
            for k, x in v["summary"].items():
                if isinstance(x, (int, float)):
                    w.writerow([f"gamma-{g}", k, x])
            for k in ("rehearsal_nll_first", "rehearsal_nll_last"):
                if v[k] is not None:
                    w.writerow([f"gamma-{g}", k, v[k]])
        for name, c in res["controls"].items():
            for k, x in c.get("summary", c.get("rm", {})).items():
                if isinstance(x, (int, float)):
                    w.writerow([name, k, x])
    n = len(res["seeds"])
    md = [f"# Paper claims on the built-in benchmark\n",
          f"Generated by `python3 tools/paper/paper.py {' '.join(args.argv)}` ({n} seed{'s' if n > 1 else ''}: {', '.join(map(str, res['seeds']))}; "
          f"config `{args.config}`). Means ± half-width of the 95% t interval over seeds. Data, SFT model, forget set and preference "
          f"labels are shared by all seeds; the seed changes RM/AM training, selection, PPO sampling and updates.\n",
          "## Table 1 analogue — reward model vs Advantage Model (test preference pairs)\n",
          "| model | accuracy | length-matched | ECE | spread of per-task mean / std | per-task std ratio |", "|---|---|---|---|---|---|"]
    for m in t1:
        md.append(f"| {m} | {fmt(*mean_ci(t1[m]['accuracy']), pct=True)} | {fmt(*mean_ci(t1[m]['length_matched_accuracy']), pct=True)} | "
                  f"{fmt(*mean_ci(t1[m]['ece']), pct=True)} | {fmt(*mean_ci(t1[m]['mean_spread_over_std']))} | {fmt(*mean_ci(t1[m]['std_ratio']))} |")
    md.append(f"\nLabels: {t1['RM r']['pairs'][0]} test pairs; the Bayes ceiling of the labels is "
              f"{fmt(*mean_ci(t1['RM r']['bayes_ceiling']), pct=True)} and \"the longer response wins\" scores "
              f"{fmt(*mean_ci(t1['RM r']['longer_wins']), pct=True)}. Length-matched: pairs whose responses differ by at most 2 characters. "
              f"Spreads are over tasks with at least {MIN_PAIRS} test pairs. AM r and AM a rank and calibrate identically (e depends on "
              "the prompt only, so it cancels within a pair); they differ in score level per task. Per task, mean over seeds:\n")
    md.append("| task | pairs | RM accuracy | AM accuracy | RM r mean / std | AM a mean / std |")
    md.append("|---|---|---|---|---|---|")
    per = lambda m, t, k: mean_ci([pt[t][k] for pt in t1[m]["per_task"] if t in pt])
    for t in sorted(t1["RM r"]["per_task"][0]):
        md.append(f"| {t} | {t1['RM r']['per_task'][0][t]['pairs']} | {fmt(*per('RM r', t, 'accuracy'), pct=True)} | {fmt(*per('AM a', t, 'accuracy'), pct=True)} | "
                  f"{per('RM r', t, 'scoreMean')[0]:.3f} / {per('RM r', t, 'scoreStd')[0]:.3f} | {per('AM a', t, 'scoreMean')[0]:.3f} / {per('AM a', t, 'scoreStd')[0]:.3f} |")
    md.append("\n## Over-optimisation — sampled gold along PPO (test prompts, T = 1)\n")
    md.append(f"Per seed: gold of the SFT model, the highest gold at a snapshot before the end, the final gold, the proxy at start "
              f"and end, the final KL (nats per response). The baseline shows the failure mode when gold first rises by at least "
              f"{EARLY_RISE} and then ends at least {LATE_DROP} below SFT while the proxy is still rising.\n")
    md.append("| run | seed | gold SFT → peak → end | proxy start → end | KL end | early rise ≥ 0.03 | ends ≥ 0.05 below, proxy rising |")
    md.append("|---|---|---|---|---|---|---|")
    rows = [(arm, s, x) for arm in ARMS for s, x in zip(res["seeds"], res["summary"][arm])]
    rows += [(name, res["seeds"][0], c["summary"]) for name, c in res["controls"].items() if "summary" in c]
    for name, seed, x in rows:
        fm = failure_modes(x)
        px = lambda v: "–" if v is None else f"{v:.3f}"
        md.append(f"| {name} | {seed} | {x['gold_sft']:.3f} → {x['gold_peak']:.3f} → {x['gold_end']:.3f} | {px(x['proxy_start'])} → {px(x['proxy_end'])} | "
                  f"{x['kl_end']:.2f} | {'yes' if fm['early_rise'] else 'no'} | {'yes' if fm['late_drop'] else 'no'} |")
    if "gold-ppo" in res["controls"]:
        g = res["controls"]["gold-ppo"]["summary"]
        md.append(f"\nThe gold-score control changes gold by {g['end_change']:+.3f} (it must rise by at least {CONTROL_RISE} for the "
                  "recipe to be able to optimise at all).")
    f = forget_split(res)
    md.append(f"\n## Table 2 analogue — final policies against SFT\n")
    md.append(f"Greedy win / lose / tie per set (forget sets: `forget` = expert-aligned PPO-family prompts, `forget_sft_only` = the "
              f"family never seen in RL) and the sampled comparison on the test prompts.\n")
    md.append("| arm | set | win | lose | tie |")
    md.append("|---|---|---|---|---|")
    for arm in ARMS:
        for split in SPLITS + ["sampled"]:
            if split in res["table2"][arm]:
                v = res["table2"][arm][split]
                md.append(f"| {arm} | {split} | " + " | ".join(fmt(*mean_ci(v[k]), pct=True) for k in ("win", "lose", "tie")) + " |")
    if "test" in res["matched_kl"]:
        md.append("\nAt matched KL (every arm's curve read at the smallest final KL of the three, per seed):\n")
        md.append("| arm | KL | sampled gold | test win | test lose |")
        md.append("|---|---|---|---|---|")
        for arm in ARMS:
            v = res["matched_kl"]["test"][arm]
            md.append(f"| {arm} | {fmt(*mean_ci(v['kl']))} | {fmt(*mean_ci(v['gold']))} | {fmt(*mean_ci(v['win']), pct=True)} | {fmt(*mean_ci(v['lose']), pct=True)} |")
    md.append("\n## Claims\n")
    md.append("| claim | verdict | numbers |")
    md.append("|---|---|---|")
    for claim, verdict_text, nums in verdicts(res):
        md.append(f"| {claim} | **{verdict_text}** | {nums} |")
    md.append("\nVerdicts use the per-seed differences (seeds pair the runs): “supported” when the 95% t interval of the difference lies "
              "on the paper's side of zero (for accuracy: above −1 point), “not supported” when it lies on the other side, otherwise "
              "“inconclusive at this scale”.\n")
    if res["gammas"]:
        md.append(f"## Rehearsal strength γ (AM-PPO + SR, seed {res['seeds'][0]})\n")
        md.append("| γ | run | final gold (SFT) | KL | expert-aligned win − lose | SFT-only win − lose | rehearsal NLL first → last |")
        md.append("|---|---|---|---|---|---|---|")
        for g, v in sorted(res["gammas"].items(), key=lambda kv: float(kv[0])):
            last = v["final"]
            wl = lambda split: "–" if greedy(last, split) is None else f"{100 * (greedy(last, split)[0] - greedy(last, split)[1]):+.1f}%"
            nll = "–" if v["rehearsal_nll_first"] is None else f"{v['rehearsal_nll_first']:.3f} → {v['rehearsal_nll_last']:.3f}"
            md.append(f"| {g} | {v['run']} | {last['gold']:.3f} ({v['summary']['gold_sft']:.3f}) | {last['kl']:.2f} | {wl('forget')} | {wl('forget_sft_only')} | {nll} |")
    if res["ablations"]:
        md.append(f"\n## Ablations (seed {res['seeds'][0]})\n")
        md.append("| variant | accuracy (a) | ECE (a) | spread of per-task mean (a) |")
        md.append("|---|---|---|---|")
        for name, v in res["ablations"].items():
            if "a" in v:
                md.append(f"| {name} | {100 * v['a']['accuracy']:.1f}% | {100 * v['a']['ece']:.1f}% | {fmt(v['a']['mean_spread'], float('nan'))} |")
        md.append(f"\n| rehearsal variant | test win / lose / tie | {f} win / lose / tie | sampled gold | KL |")
        md.append("|---|---|---|---|---|")
        for name, v in res["ablations"].items():
            if "test" in v:
                t, fg = v["test"], v.get(f, {"win": float("nan"), "lose": float("nan"), "tie": float("nan")})
                md.append(f"| {name} | {100 * t['win']:.1f} / {100 * t['lose']:.1f} / {100 * t['tie']:.1f}% | "
                          f"{100 * fg['win']:.1f} / {100 * fg['lose']:.1f} / {100 * fg['tie']:.1f}% | {v['sampled']['gold']:.3f} | {v['sampled']['kl']:.2f} |")
    md.append("\n## Figures\n")
    for fig in figs:
        md.append(f"![{fig}](figures/{fig})\n")
    (out / "results.md").write_text("\n".join(md) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/paper/main.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--out", default="runs/paper")
    ap.add_argument("--clusters", type=int, nargs="+", default=[4, 16, 64], help="cluster counts of the ablation")
    ap.add_argument("--no-ablations", action="store_true")
    ap.add_argument("--no-controls", action="store_true", help="skip the gold, length-only and zero-bias controls")
    ap.add_argument("--ci", action="store_true", help="configs/paper/ci.yaml, one seed, runs/paper-ci: the reduced suite CI runs")
    ap.add_argument("--publish", help="copy results.md, CSVs, results.json and figures here")
    ap.add_argument("--report-only", action="store_true", help="rebuild tables and figures from finished runs")
    args = ap.parse_args()
    args.argv = sys.argv[1:]
    if args.ci:
        args.config, args.out = "configs/paper/ci.yaml", ("runs/paper-ci" if args.out == "runs/paper" else args.out)
        args.seeds, args.clusters = args.seeds[:1] if args.seeds != [1, 2, 3] else [1], [2, 4]
    cfg = yaml.safe_load((ROOT / args.config).read_text())
    out = (ROOT / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    if not args.report_only:
        run_all(args, cfg, out)
    res = collect(args, out)
    figs = figures(res, out / "figures")
    write_outputs(res, out, figs, args)
    log(f"wrote {out}/results.md, table1.csv, table2.csv, ablations.csv, results.json, figures/ ({time.time() - start:.0f} s)")
    if args.publish:
        dest = ROOT / args.publish
        (dest / "figures").mkdir(parents=True, exist_ok=True)
        for name in ("results.md", "table1.csv", "table2.csv", "ablations.csv", "results.json"):
            shutil.copy(out / name, dest / name)
        for f in figs:
            shutil.copy(out / "figures" / f, dest / "figures" / f)
        log(f"published to {dest}")


if __name__ == "__main__":
    main()

"""The paper's claims on the built-in benchmark, with seeds, ablations, tables and figures — one command.

    python3 tools/paper.py                      # configs/paper/main.yaml, seeds 1 2 3, all ablations
    python3 tools/paper.py --ci                 # configs/paper/ci.yaml: one seed, tiny, a few minutes
    python3 tools/paper.py --seeds 1 2 3 4 5 --out runs/paper --publish tools/paper

What it runs (every step is a `ballast` command; finished steps are skipped when rerun):
  base        data, SFT and preference labels, shared by every seed (`ballast pipeline --until label`)
  seed-S      RM and AM training, selection, the three PPO arms (RM-PPO, AM-PPO, AM-PPO + rehearsal)
              with policy snapshots, final evaluation — with every trainer seeded by S
  snapshots   `ballast eval` of every PPO snapshot on the test prompts and the forget set
  ablations   (first seed) each AM term off in turn; rehearsal with a random subset of the same size;
              γ ∈ {0, 0.003, 0.01, 0.03, 0.1}; number of clusters
Outputs in OUT: results.json, table1.csv, table2.csv, ablations.csv, figures/*.svg and results.md
(tables with means and 95% t confidence intervals over seeds, figures linked). --publish DIR copies
results.md, the CSVs, results.json and the figures there.
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

ROOT = Path(__file__).resolve().parent.parent
BIN = os.environ.get("BALLAST_BIN") or str(ROOT / ".build/release/ballast")
ARMS = ["rm-ppo", "am-ppo", "am-ppo-sr"]
AM_TERMS = ["expected", "bound", "task_mean", "task_spread"]
GAMMAS = [0.0, 0.003, 0.01, 0.03, 0.1]
MIN_PAIRS = 10  # tasks with fewer test pairs are left out of the per-task spreads

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
    if math.isnan(m):
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


def evaluate(cfg, policy, base, scorer, out_json):
    if Path(out_json).exists():
        return json.loads(Path(out_json).read_text())
    e = cfg.get("eval", {})
    forget = base / "data/forget.jsonl"
    if not forget.read_text().strip():
        # Only CI-sized models answer no candidate with gold >= 0.95; their numbers mean nothing anyway.
        log("the expert-aligned forget set is empty: evaluating the forget split on all candidates")
        forget = base / "data/forget_candidates.jsonl"
    ballast("eval", "--policy", policy, "--sft", base / "sft/checkpoint", "--scorer", scorer,
            "--prompts", base / "data/test_prompts.jsonl", "--forget", forget,
            "--max-new-tokens", e.get("max_new_tokens", 48), "--tie-epsilon", e.get("tie_epsilon", 0.05), "--json", out_json)
    return json.loads(Path(out_json).read_text())


def run_ppo(cfg, out_dir, base, seed_dir, scorer, prompts, rehearsal, seed, gamma=None):
    """`ballast ppo` (skipped when finished) and the final policy's evaluation."""
    steps = cfg["ppo"]["train"]["steps"]
    state = Path(out_dir) / "checkpoint/trainer_state.json"
    if not (state.exists() and json.loads(state.read_text())["step"] >= steps):
        conf = ppo_config(cfg, out_dir, base / "sft/checkpoint", seed_dir / "rm/checkpoint", scorer, prompts, rehearsal, seed, gamma)
        ballast("ppo", "--config", conf, *(["--resume"] if state.exists() else []))
    return evaluate(cfg, Path(out_dir) / "checkpoint", base, scorer, Path(out_dir) / "eval.json")


def run_all(args, cfg, out):
    base = out / "base"
    ballast("pipeline", "--config", args.config, "--set", f"run_dir={base}", "--until", "label")
    for s in args.seeds:
        d = out / f"seed-{s}"
        link_shared(d, base)
        ballast("pipeline", "--config", args.config, "--set", f"run_dir={d}", "--set", f"rm.train.seed={s}",
                "--set", f"am.train.seed={s}", "--set", f"select.seed={s}", "--set", f"ppo.train.seed={s}")
        for arm in ARMS:
            for snap in sorted((d / arm / "snapshots").glob("step-*"), key=lambda p: int(p.name[5:])):
                evaluate(cfg, snap, base, d / ("rm" if arm == "rm-ppo" else "am") / "checkpoint", snap / "eval.json")
    if args.no_ablations:
        return
    s = args.seeds[0]
    d, ab = out / f"seed-{s}", out / "ablations"
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
    # γ grid on the main AM-PPO + rehearsal setup (0 and the config's γ are the main arms, rerun for a clean grid).
    for g in GAMMAS:
        run_ppo(cfg, ab / f"gamma-{g}", base, d, d / "am/checkpoint", d / "select/ppo_prompts.jsonl",
                d / "select/rehearsal.jsonl" if g > 0 else None, s, gamma=g)
    # Random rehearsal subset of the same size, and other cluster counts at the same rehearsal size.
    variants = [("random", ["--random", "--clusters", clusters, "--per-cluster", per])]
    for k in args.clusters:
        if k != clusters:
            variants.append((f"clusters-{k}", ["--clusters", k, "--per-cluster", max(1, clusters * per // k)]))
    for name, flags in variants:
        sd = ab / f"select-{name}"
        if not (sd / "rehearsal.jsonl").exists():
            ballast("select", "--sft", base / "sft/checkpoint", "--am", d / "am/checkpoint", "--prompts", base / "data/rl_prompts.jsonl",
                    "--out", sd, "--seed", s, "--max-new-tokens", sel.get("max_new_tokens", 48), *flags)
        run_ppo(cfg, ab / f"rehearsal-{name}", base, d, d / "am/checkpoint", sd / "ppo_prompts.jsonl", sd / "rehearsal.jsonl", s)


# ---------------------------------------------------------------- tables

def reward_rows(eval_json, key):
    rows = json.loads(Path(eval_json).read_text())[key]
    return rows if isinstance(rows, list) else rows.get("rows", rows)


def reward_summary(eval_json, key):
    rows = reward_rows(eval_json, key)
    overall = next(r for r in rows if r["task"] == "all")
    tasks = [r for r in rows if r["task"] != "all" and r["pairs"] >= MIN_PAIRS]
    spread = lambda f: (max(r[f] for r in tasks) - min(r[f] for r in tasks)) if len(tasks) >= 2 else float("nan")
    return {"accuracy": overall["accuracy"], "ece": overall["ece"], "mean_spread": spread("scoreMean"), "std_spread": spread("scoreStd"),
            "per_task": {r["task"]: {k: r[k] for k in ("pairs", "accuracy", "ece", "scoreMean", "scoreStd", "histogram")} for r in rows}}


def overall(rows):
    return next(r for r in rows if r["task"] == "all")


def interpolate_at_kl(points, target):
    """Linear interpolation of (kl, win, lose, tie) points (sorted by kl) at `target`."""
    pts = sorted(points)
    for (k0, *v0), (k1, *v1) in zip(pts, pts[1:]):
        if k0 <= target <= k1:
            t = 0 if k1 == k0 else (target - k0) / (k1 - k0)
            return [a + t * (b - a) for a, b in zip(v0, v1)]
    return None


def collect(args, out):
    res = {"seeds": args.seeds, "table1": {}, "table2": {}, "matched_kl": {}, "curves": {}, "snapshots": {}, "ablations": {}}
    # Table 1: ranking accuracy, ECE, spreads of per-task score mean and std.
    for model, path, key in (("RM r", "rm/eval.json", "r"), ("AM r", "am/eval.json", "r"), ("AM a", "am/eval.json", "a")):
        per_seed = [reward_summary(out / f"seed-{s}" / path, key) for s in args.seeds]
        res["table1"][model] = {m: [p[m] for p in per_seed] for m in ("accuracy", "ece", "mean_spread", "std_spread")}
        res["table1"][model]["per_task"] = [p["per_task"] for p in per_seed]
    # Table 2 at matched steps (final policies) and matched KL (snapshot curves interpolated).
    for arm in ARMS:
        res["table2"][arm] = {}
        for split in ("test", "forget"):
            finals = [overall(json.loads((out / f"seed-{s}/eval.json").read_text())[arm][split]) for s in args.seeds]
            res["table2"][arm][split] = {k: [f[k] for f in finals] for k in ("win", "lose", "tie", "kl", "goldPolicy", "goldSFT")}
        res["curves"][arm] = [[json.loads(l) for l in (out / f"seed-{s}/{arm}/metrics.jsonl").read_text().splitlines() if l.strip()]
                              for s in args.seeds]
        snaps = []
        for s in args.seeds:
            pts = {"test": [(0.0, 0.0, 0.0, 1.0, 0)], "forget": [(0.0, 0.0, 0.0, 1.0, 0)]}
            for sd in sorted((out / f"seed-{s}/{arm}/snapshots").glob("step-*"), key=lambda p: int(p.name[5:])):
                e = json.loads((sd / "eval.json").read_text())
                for split in pts:
                    o = overall(e[split])
                    pts[split].append((o["kl"], o["win"], o["lose"], o["tie"], int(sd.name[5:])))
            snaps.append(pts)
        res["snapshots"][arm] = snaps
    # Matched KL: per seed, the smallest final test-set KL over the arms; every arm's curve read there.
    for split in ("test", "forget"):
        res["matched_kl"][split] = {arm: {"win": [], "lose": [], "tie": [], "kl": []} for arm in ARMS}
        for i, s in enumerate(args.seeds):
            target = min(max(p[0] for p in res["snapshots"][arm][i][split]) for arm in ARMS)
            for arm in ARMS:
                v = interpolate_at_kl([p[:4] for p in res["snapshots"][arm][i][split]], target)
                for k, x in zip(("win", "lose", "tie"), v or [float("nan")] * 3):
                    res["matched_kl"][split][arm][k].append(x)
                res["matched_kl"][split][arm]["kl"].append(target)
    ab = out / "ablations"
    if ab.exists():
        for term in AM_TERMS:
            p = ab / f"am-no-{term}/am/eval.json"
            if p.exists():
                res["ablations"][f"AM without {term}"] = {"r": reward_summary(p, "r"), "a": reward_summary(p, "a")}
        for d in sorted(ab.glob("gamma-*")) + sorted(ab.glob("rehearsal-*")):
            if (d / "eval.json").exists():
                e = json.loads((d / "eval.json").read_text())
                res["ablations"][d.name] = {split: overall(e[split]) for split in ("test", "forget")}
    return res


# ---------------------------------------------------------------- figures (plain SVG)

COLORS = {"rm-ppo": "#d62728", "am-ppo": "#1f77b4", "am-ppo-sr": "#2ca02c", "RM r": "#d62728", "AM r": "#9467bd", "AM a": "#1f77b4"}


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


def figures(res, fig_dir):
    fig_dir.mkdir(parents=True, exist_ok=True)
    # Per-task score distributions (first seed): histograms as lines, RM r vs AM a.
    made = []
    tasks = sorted(t for t in res["table1"]["RM r"]["per_task"][0] if t != "all")
    for model in ("RM r", "AM a"):
        pt = res["table1"][model]["per_task"][0]
        series = []
        palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
        for i, t in enumerate(tasks):
            h = pt[t]["histogram"]
            total = max(sum(h), 1)
            series.append((f"{t} (μ {pt[t]['scoreMean']:.2f})", palette[i % 6], [(j, c / total) for j, c in enumerate(h)], False))
        name = "scores-" + model.replace(" ", "-").lower() + ".svg"
        svg_lines(f"{model}: per-task score distribution (test pairs, seed {res['seeds'][0]})", "histogram bin (low → high score)",
                  "fraction of responses", series, fig_dir / name)
        made.append(name)
    # Gold and proxy against KL during PPO (Gao et al. style): every training step of every seed, sorted
    # by KL and averaged in 10 equal-count KL bins.
    def curve(arm, key, bins=10):
        pts = sorted((m["kl"], m[key]) for r in res["curves"][arm] for m in r)
        size = max(1, len(pts) // bins)
        groups = [pts[i:i + size] for i in range(0, len(pts), size)]
        return [(sum(k for k, _ in g) / len(g), sum(v for _, v in g) / len(g)) for g in groups]
    for key, label, dashed in (("gold", "gold score", False), ("score", "proxy score (RM r or AM a)", True)):
        series = [(f"{arm} {'gold' if key == 'gold' else 'proxy'}", COLORS[arm], curve(arm, key), dashed) for arm in ARMS]
        svg_lines(f"{label.capitalize()} against KL (PPO steps of all seeds, KL-binned)", "KL(π ‖ π_SFT), summed per response",
                  label, series, fig_dir / ("gold-vs-kl.svg" if key == "gold" else "proxy-vs-kl.svg"))
    # Forget-set win − lose over training (the paper's Fig. 1b).
    series = []
    for arm in ARMS:
        snaps = res["snapshots"][arm]
        steps = sorted({p[4] for s in snaps for p in s["forget"]})
        pts = []
        for st in steps:
            vals = [p[1] - p[2] for s in snaps for p in s["forget"] if p[4] == st]
            pts.append((st, 100 * sum(vals) / len(vals)))
        series.append((arm, COLORS[arm], pts, False))
    svg_lines("Forget set: win − lose against the SFT model (mean over seeds)", "PPO step", "win − lose (%)", series, fig_dir / "forget-win-minus-lose.svg")
    return made + ["gold-vs-kl.svg", "proxy-vs-kl.svg", "forget-win-minus-lose.svg"]


# ---------------------------------------------------------------- report

def paired(xs, ys):
    """Per-seed differences x − y (the seeds pair the runs) and their mean with its 95% t interval."""
    return mean_ci([x - y for x, y in zip(xs, ys)])


def verdict(diff, higher_better=True, margin=0.0):
    """`diff` = (mean, half-width) of claimed-better minus baseline. Supported when the interval lies on
    the claimed side of −margin (margin > 0: "not worse by more than margin"); not supported when it lies
    entirely on the other side; otherwise inconclusive."""
    m, h = diff if higher_better else (-diff[0], diff[1])
    if math.isnan(h):
        return "inconclusive (one seed)"
    if m - h > -margin:
        return "supported"
    if m + h < -margin:
        return "not supported"
    return "inconclusive at this scale"


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
    wl = lambda arm, split: [w - l for w, l in zip(t2[arm][split]["win"], t2[arm][split]["lose"])]
    d = paired(wl("am-ppo", "test"), wl("rm-ppo", "test"))
    out.append(("AM-PPO beats RM-PPO (test win − lose against SFT, matched steps)", verdict(d),
                f"win − lose: RM-PPO {fmt(*mean_ci(wl('rm-ppo', 'test')), pct=True)}, AM-PPO {fmt(*mean_ci(wl('am-ppo', 'test')), pct=True)}; difference {fmt(*d, pct=True)}"))
    mk = res["matched_kl"]["test"]
    wlk = lambda arm: [w - l for w, l in zip(mk[arm]["win"], mk[arm]["lose"])]
    d = paired(wlk("am-ppo"), wlk("rm-ppo"))
    out.append(("AM-PPO beats RM-PPO at matched KL (test win − lose)", verdict(d),
                f"RM-PPO {fmt(*mean_ci(wlk('rm-ppo')), pct=True)}, AM-PPO {fmt(*mean_ci(wlk('am-ppo')), pct=True)}; difference {fmt(*d, pct=True)}"))
    d = paired(wl("am-ppo-sr", "forget"), wl("am-ppo", "forget"))
    out.append(("Selective Rehearsal mitigates forgetting (forget-set win − lose, AM-PPO + SR vs AM-PPO)", verdict(d),
                f"AM-PPO {fmt(*mean_ci(wl('am-ppo', 'forget')), pct=True)}, AM-PPO + SR {fmt(*mean_ci(wl('am-ppo-sr', 'forget')), pct=True)}; difference {fmt(*d, pct=True)}"))
    return out


def write_outputs(res, out, figs, args):
    (out / "results.json").write_text(json.dumps(res, indent=1, sort_keys=True, default=float))
    t1 = res["table1"]
    with open(out / "table1.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "metric", "mean", "ci95", "per_seed"])
        for m in t1:
            for k in ("accuracy", "ece", "mean_spread", "std_spread"):
                w.writerow([m, k, *mean_ci(t1[m][k]), json.dumps(t1[m][k])])
    with open(out / "table2.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arm", "set", "matching", "metric", "mean", "ci95", "per_seed"])
        for arm in ARMS:
            for split in ("test", "forget"):
                for k, v in res["table2"][arm][split].items():
                    w.writerow([arm, split, "steps", k, *mean_ci(v), json.dumps(v)])
                for k, v in res["matched_kl"][split][arm].items():
                    w.writerow([arm, split, "kl", k, *mean_ci(v), json.dumps(v)])
    with open(out / "ablations.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "quantity", "value"])
        for name, v in res["ablations"].items():
            for sub, d in v.items():
                for k, x in d.items():
                    if isinstance(x, (int, float)):
                        w.writerow([name, f"{sub}.{k}", x])
    n = len(res["seeds"])
    md = [f"# Paper claims on the built-in benchmark\n",
          f"Generated by `python3 tools/paper.py {' '.join(args.argv)}` ({n} seed{'s' if n > 1 else ''}: {', '.join(map(str, res['seeds']))}; "
          f"config `{args.config}`). Means ± half-width of the 95% t interval over seeds. Data, SFT model and preference labels "
          f"are shared by all seeds; the seed changes RM/AM training, selection, PPO sampling and updates.\n",
          "## Table 1 analogue — reward model vs Advantage Model (test preference pairs)\n",
          "| model | accuracy | ECE | spread of per-task mean | spread of per-task std |", "|---|---|---|---|---|"]
    for m in t1:
        md.append(f"| {m} | {fmt(*mean_ci(t1[m]['accuracy']), pct=True)} | {fmt(*mean_ci(t1[m]['ece']), pct=True)} | "
                  f"{fmt(*mean_ci(t1[m]['mean_spread']))} | {fmt(*mean_ci(t1[m]['std_spread']))} |")
    md.append(f"\nSpreads are max − min over tasks with at least {MIN_PAIRS} test pairs. AM r and AM a rank and calibrate "
              "identically (e depends on the prompt only, so it cancels within a pair); they differ in score level per task. "
              "Per task, mean over seeds:\n")
    md.append("| task | pairs | RM accuracy | AM accuracy | RM r mean / std | AM a mean / std |")
    md.append("|---|---|---|---|---|---|")
    per = lambda m, t, k: mean_ci([pt[t][k] for pt in t1[m]["per_task"] if t in pt])
    for t in sorted(t1["RM r"]["per_task"][0]):
        md.append(f"| {t} | {t1['RM r']['per_task'][0][t]['pairs']} | {fmt(*per('RM r', t, 'accuracy'), pct=True)} | {fmt(*per('AM a', t, 'accuracy'), pct=True)} | "
                  f"{per('RM r', t, 'scoreMean')[0]:.3f} / {per('RM r', t, 'scoreStd')[0]:.3f} | {per('AM a', t, 'scoreMean')[0]:.3f} / {per('AM a', t, 'scoreStd')[0]:.3f} |")
    for matching, key in (("matched PPO steps (final policies)", "table2"), ("matched KL (snapshot curves read at the smallest final KL of the three arms)", "matched_kl")):
        md.append(f"\n## Table 2 analogue — PPO vs SFT, {matching}\n")
        md.append("| arm | test win | test lose | test tie | forget win | forget lose | forget tie | KL per token (test) |")
        md.append("|---|---|---|---|---|---|---|---|")
        for arm in ARMS:
            get = (lambda sp: res["table2"][arm][sp]) if key == "table2" else (lambda sp: res["matched_kl"][sp][arm])
            row = [fmt(*mean_ci(get(sp)[k]), pct=True) for sp in ("test", "forget") for k in ("win", "lose", "tie")]
            md.append(f"| {arm} | " + " | ".join(row) + f" | {fmt(*mean_ci(get('test')['kl']))} |")
    md.append("\n## Reward hacking in the baseline? (training rollouts, mean over seeds, first vs last 5 PPO steps)\n")
    md.append("| arm | proxy score | gold score | KL (summed per response) |")
    md.append("|---|---|---|---|")
    for arm in ARMS:
        runs = res["curves"][arm]
        def span(key):
            first = mean_ci([sum(m[key] for m in r[:5]) / 5 for r in runs])[0]
            last = mean_ci([sum(m[key] for m in r[-5:]) / 5 for r in runs])[0]
            return f"{first:.3f} → {last:.3f}"
        md.append(f"| {arm} | {span('score')} | {span('gold')} | {span('kl')} |")
    md.append("\nThe failure mode the paper targets shows as the proxy rising while gold falls. Whether this benchmark "
              "exhibits it in the RM-PPO baseline is read off this table and `figures/gold-vs-kl.svg`, and stated in the "
              "summary in tools/paper/README.md.\n")
    md.append("\n## Claims\n")
    md.append("| claim | verdict | numbers |")
    md.append("|---|---|---|")
    for claim, verdict, nums in verdicts(res):
        md.append(f"| {claim} | **{verdict}** | {nums} |")
    md.append("\nVerdicts use the per-seed differences (seeds pair the runs): “supported” when the 95% t interval of the difference lies "
              "on the paper's side of zero (for accuracy: above −1 point), “not supported” when it lies on the other side, otherwise "
              "“inconclusive at this scale”.\n")
    if res["ablations"]:
        md.append(f"## Ablations (seed {res['seeds'][0]})\n")
        md.append("| variant | accuracy (a) | ECE (a) | spread of per-task mean (a) |")
        md.append("|---|---|---|---|")
        for name, v in res["ablations"].items():
            if "a" in v:
                md.append(f"| {name} | {100 * v['a']['accuracy']:.1f}% | {100 * v['a']['ece']:.1f}% | {fmt(v['a']['mean_spread'], float('nan'))} |")
        md.append("\n| PPO variant | test win / lose / tie | forget win / lose / tie | KL per token |")
        md.append("|---|---|---|---|")
        for name, v in res["ablations"].items():
            if "test" in v:
                t, f = v["test"], v["forget"]
                md.append(f"| {name} | {100 * t['win']:.1f} / {100 * t['lose']:.1f} / {100 * t['tie']:.1f}% | "
                          f"{100 * f['win']:.1f} / {100 * f['lose']:.1f} / {100 * f['tie']:.1f}% | {t['kl']:.3f} |")
    md.append("\n## Figures\n")
    for f in figs:
        md.append(f"![{f}](figures/{f})\n")
    (out / "results.md").write_text("\n".join(md) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/paper/main.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--out", default="runs/paper")
    ap.add_argument("--clusters", type=int, nargs="+", default=[4, 16, 64], help="cluster counts of the ablation")
    ap.add_argument("--no-ablations", action="store_true")
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

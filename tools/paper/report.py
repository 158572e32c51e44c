"""Tables, figures and verdicts of the paper suite: means and 95% t intervals over seeds, the failure-mode
checks of the RM-PPO baseline, SVG figures, and results.md / the CSVs / results.json. `paper.py` runs the
experiments and calls `write_outputs` here.
"""
import csv
import json
import math
import sys
from pathlib import Path

import yaml


ARMS = ["rm-ppo", "am-ppo", "am-ppo-sr"]
CONTROLS = ["gold-ppo", "length-ppo", "zero-bias-rm-ppo"]
AM_TERMS = ["expected", "bound", "task_mean", "task_spread"]
GAMMAS = [0.0, 0.1, 0.3, 1.0]
STRONGEST_GAMMA = max(GAMMAS)
SPLITS = ["test", "forget", "forget_sft_only"]  # greedy win / lose against SFT, per curve point
MIN_PAIRS = 10  # tasks with fewer test pairs are left out of the per-task spreads
# The failure-mode thresholds for the RM-PPO baseline (sampled gold on the test prompts).
EARLY_RISE, LATE_DROP, CONTROL_RISE = 0.03, 0.05, 0.05

# Two-sided 95% Student t quantiles by degrees of freedom.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}

 
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
    md = ["# Paper claims on the built-in benchmark\n",
          f"Generated by `python3 tools/paper/paper.py{''.join(' ' + a for a in args.argv)}` ({n} seed{'s' if n > 1 else ''}: {', '.join(map(str, res['seeds']))}; "
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
              f"Spreads are over tasks with at least {MIN_PAIRS} test pairs. AM r and AM a rank identically (e and the scale "
              "exp(z) depend on the prompt only); a divides r − e by a per-prompt scale, so its calibration and per-task "
              "levels and spreads differ from r's. Per task, mean over seeds:\n")
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
    md.append("\n## Table 2 analogue — final policies against SFT\n")
    md.append("Greedy win / lose / tie per set (forget sets: `forget` = expert-aligned PPO-family prompts, `forget_sft_only` = the "
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
    if res.get("rehearsal_seeds"):
        md += rehearsal_seeds_md(res["rehearsal_seeds"], res.get("forget_tasks"))
    md.append("\n## Figures\n")
    for fig in figs:
        md.append(f"![{fig}](figures/{fig})\n")
    (out / "results.md").write_text("\n".join(md) + "\n")


def rehearsal_seeds_md(rs, forget_tasks=None):
    """results.md lines of the rehearsal comparisons over seeds (rehearsal_over_seeds's rows); `forget_tasks`:
    the expert-aligned forget set's examples per task."""
    md = []
    first = next(iter(rs.values()))
    keys = list(REHEARSAL_ROWS) + [k for k in OPTIONAL_REHEARSAL_ROWS if all(k in row for row in rs.values())]
    md.append(f"\n## Rehearsal ablations over seeds ({', '.join(rs)})\n")
    md.append("Final policies: expert-aligned forget set greedy win − lose against SFT, and sampled gold. "
              "Differences are paired by seed, with the 95% t interval.\n")
    md.append("| seed | " + " | ".join(first[k]["label"] for k in keys) + " |")
    md.append("|---|" + "---|" * len(keys))
    wl = lambda x: "–" if x is None else f"{100 * x:+.1f}%"
    for s, row in rs.items():
        md.append(f"| {s} | " + " | ".join(f"{wl(row[k]['forget_win_minus_lose'])}, gold {row[k]['gold']:.3f}" for k in keys) + " |")
    md.append("")
    for s, row in rs.items():
        sets = [(k, row[k]) for k in keys if "rehearsal_examples" in row[k]]
        if len(sets) > 1:
            md.append(f"Seed {s}, rehearsal answers with a line after the answer: "
                      + ", ".join(f"{100 * v['rehearsal_extra_line_share']:.0f}% {SET_NAMES[k]} ({v['rehearsal_examples']} examples, "
                                  f"mean {v['rehearsal_mean_chars']:.1f} characters)" for k, v in sets) + ".")
    md.append("")
    tasks = lambda counts: " / ".join(f"{t} {n}" for t, n in counts.items())
    if forget_tasks:
        md.append(f"The expert-aligned forget set by task: {tasks(forget_tasks)}. Rehearsal sets by task:\n")
        md.append("| seed | set | tasks |")
        md.append("|---|---|---|")
        for s, row in rs.items():
            for k in keys:
                if "rehearsal_tasks" in row[k]:
                    md.append(f"| {s} | {SET_NAMES[k]} | {tasks(row[k]['rehearsal_tasks'])} |")
        md.append("")
    for (a, b), (fw, gd) in rehearsal_differences(rs).items():
        md.append(f"- {first[a]['label']} − {first[b]['label']}: forget win − lose {fmt(*fw, pct=True)}, gold {fmt(*gd)}")
    md.append("")
    return md


def read_jsonl(path):
    return [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]


def collect(args, out, cfg):
    """Reads every finished run under `out` into one results dict (the config gives the main γ)."""
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
    main_gamma = cfg["ppo"].get("ppo", {}).get("rehearsal_coef", 0.01)
    for g in GAMMAS:
        d = first / "am-ppo" if g == 0 else first / "am-ppo-sr" if g == main_gamma else ab / f"gamma-{g}"
        if (d / "curve.jsonl").exists() and seed_matches(d, args.seeds[0]):
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
            if p.exists() and seed_matches(ab / f"am-no-{term}", args.seeds[0]):
                res["ablations"][f"AM without {term}"] = {"r": reward_summary(p, "r"), "a": reward_summary(p, "a")}
        for d in sorted(ab.glob("rehearsal-*")):
            if (d / "curve.jsonl").exists() and seed_matches(d, args.seeds[0]):
                last = read_jsonl(d / "curve.jsonl")[-1]
                res["ablations"][d.name] = {split: dict(zip(("win", "lose", "tie"), greedy(last, split)))
                                            for split in SPLITS if greedy(last, split)}
                res["ablations"][d.name]["sampled"] = {k: last.get(k) for k in ("gold", "proxy", "kl")}
    res["rehearsal_seeds"] = rehearsal_over_seeds(args, out, cfg)
    forget = out / "base/data/forget.jsonl"
    res["forget_tasks"] = task_counts(read_jsonl(forget)) if forget.exists() else {}
    return res


def run_seed(d):
    """The trainer seed a run folder was made with: a PPO run's from the config saved next to it (D.yaml), a
    pipeline run's from its AM checkpoint; None when neither is there."""
    conf = d.parent / f"{d.name}.yaml"
    if conf.exists():
        return (yaml.safe_load(conf.read_text()).get("train") or {}).get("seed")
    state = d / "am/checkpoint/trainer_state.json"
    if state.exists():
        return json.loads(state.read_text()).get("seed")
    return None


def seed_matches(d, seed):
    """Whether run folder d belongs to `seed` (or says nothing of its seed); says so on stderr when it does not.
    The first seed's ablations live in ablations/ whatever the seed list, so a report over other seeds must
    not pick them up."""
    s = run_seed(d)
    if s is not None and s != seed:
        print(f"[report] leaving out {d}: trained with seed {s}, not {seed}", file=sys.stderr)
        return False
    return True


# The rehearsal comparisons over seeds, by fixed key (results.json sorts keys, so their order means nothing);
# the optional ones are shown when every seed has them.
REHEARSAL_ROWS = ("none", "selected", "strongest", "random")
OPTIONAL_REHEARSAL_ROWS = ("debiased", "proportional")
# Paired differences reported in results.md: (a, b) is a − b.
REHEARSAL_DIFFS = (("strongest", "none"), ("selected", "none"), ("random", "none"), ("selected", "random"), ("strongest", "selected"),
                   ("debiased", "selected"), ("debiased", "random"), ("proportional", "none"), ("proportional", "selected"),
                   ("proportional", "random"))
# Rehearsal sets of the selection's size that replace it at the config's γ: key → variant name N (the set in
# ablations/[seed-S/]select-N, its PPO run in ablations/[seed-S/]rehearsal-N; paper.py's SELECTION_VARIANTS).
SET_VARIANTS = {"random": "random", "debiased": "length-debiased", "proportional": "proportional"}
SET_NAMES = {"selected": "selected", **SET_VARIANTS}


def rehearsal_runs(out, s, main_gamma):
    """Seed s's rehearsal runs by key (REHEARSAL_ROWS, and the optional ones that finished) and the ablations
    folder they came from, or (None, None) when a required one is missing. The ablation runs come from
    ablations/seed-S, or from ablations/ when that folder's runs were trained with seed s."""
    base = {"none": out / f"seed-{s}/am-ppo", "selected": out / f"seed-{s}/am-ppo-sr"}
    finished = lambda d: (d / "curve.jsonl").exists() and run_seed(d) in (s, None)
    for ab in (out / "ablations" / f"seed-{s}", out / "ablations"):
        strongest = base["selected"] if main_gamma == STRONGEST_GAMMA else ab / f"gamma-{STRONGEST_GAMMA}"
        runs = dict(base, strongest=strongest, random=ab / "rehearsal-random")
        if all(finished(d) for d in runs.values()):
            for key in OPTIONAL_REHEARSAL_ROWS:
                if finished(ab / f"rehearsal-{SET_VARIANTS[key]}"):
                    runs[key] = ab / f"rehearsal-{SET_VARIANTS[key]}"
            return runs, ab
    return None, None


def task_counts(examples):
    """{task: examples} in task order."""
    counts = {}
    for e in examples:
        counts[e.get("task", "?")] = counts.get(e.get("task", "?"), 0) + 1
    return dict(sorted(counts.items()))


def rehearsal_differences(rs):
    """{(a, b): (forget win − lose interval, gold interval)} of a − b paired by seed, for each pair of
    REHEARSAL_DIFFS that names two different runs (with γ = 1 in the config, the strongest run is the selected one)."""
    out = {}
    for a, b in REHEARSAL_DIFFS:
        if any(a not in row or b not in row or row[a]["run"] == row[b]["run"] for row in rs.values()):
            continue
        d = lambda key: mean_ci([row[a][key] - row[b][key] for row in rs.values() if row[a][key] is not None and row[b][key] is not None])
        out[(a, b)] = (d("forget_win_minus_lose"), d("gold"))
    return out


def rehearsal_over_seeds(args, out, cfg):
    """Per seed that has them all: the final greedy forget-set win − lose and sampled gold of AM-PPO (no
    rehearsal), AM-PPO + SR at the config's γ, at the strongest γ, and with a random rehearsal subset at the
    config's γ, keyed by REHEARSAL_ROWS with a `label` each, plus the optional rehearsal sets that finished.
    Empty when the config's γ is 0 (no rehearsal arm)."""
    main_gamma = cfg["ppo"].get("ppo", {}).get("rehearsal_coef", 0.01)
    if main_gamma == 0:
        return {}
    labels = {"none": "γ = 0", "selected": f"γ = {main_gamma} (selected)", "strongest": f"γ = {STRONGEST_GAMMA} (selected)",
              "random": f"γ = {main_gamma} (random)", "debiased": f"γ = {main_gamma} (length-debiased)",
              "proportional": f"γ = {main_gamma} (proportional)"}
    rows = {}
    for s in args.seeds:
        runs, ab = rehearsal_runs(out, s, main_gamma)
        if runs is None:
            continue
        row = {}
        for key, d in runs.items():
            last = read_jsonl(d / "curve.jsonl")[-1]
            wl = greedy(last, "forget")
            row[key] = {"label": labels[key], "run": str(d.relative_to(out)), "forget_win_minus_lose": None if wl is None else wl[0] - wl[1],
                        "gold": last["gold"], "kl": last["kl"]}
        # What was rehearsed: how verbose each set's answers are (the AM carries the annotators' length
        # preference) and which tasks they cover (the equal quota per cluster under-covers uniform tasks).
        for key in SET_NAMES:
            f = out / f"seed-{s}/select/rehearsal.jsonl" if key == "selected" else ab / f"select-{SET_VARIANTS[key]}/rehearsal.jsonl"
            if key in row and f.exists():
                examples = read_jsonl(f)
                row[key]["rehearsal_examples"] = len(examples)
                row[key]["rehearsal_mean_chars"] = sum(len(e["completion"]) for e in examples) / max(len(examples), 1)
                row[key]["rehearsal_extra_line_share"] = sum("\n" in e["completion"].strip() for e in examples) / max(len(examples), 1)
                row[key]["rehearsal_tasks"] = task_counts(examples)
        rows[str(s)] = row
    return rows


# ---------------------------------------------------------------- figures (plain SVG)

"""The paper suite's SVG figures, written by hand (no plotting library on CI): score histograms, gold and
proxy against √KL with Gao et al.'s fit, forget-set win − lose per snapshot, the γ sweep.
"""
import math
from pathlib import Path

from report import ARMS, greedy

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

"""The reduced paper suite (`tools/paper/paper.py --ci`: tiny configs, one seed) runs end to end and writes
every table and figure, well formed. Run: python3 -m pytest -q tools/tests/test_paper.py"""
import csv
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_reduced_suite_produces_tables_and_figures(tmp_path):
    out = tmp_path / "paper"
    r = subprocess.run([sys.executable, "tools/paper/paper.py", "--ci", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert set(res["table1"]) == {"RM r", "AM r", "AM a"}
    for model in res["table1"].values():
        assert len(model["accuracy"]) == 1 and 0 <= model["accuracy"][0] <= 1 and 0 <= model["ece"][0] <= 1
        assert 0.5 <= model["bayes_ceiling"][0] <= 1 and 0 <= model["longer_wins"][0] <= 1
    steps = [p["step"] for p in res["curves"]["rm-ppo"][0]]
    assert steps == [0, 1, 2], "SFT point plus a snapshot per PPO step"
    for arm in ("rm-ppo", "am-ppo", "am-ppo-sr"):
        # The CI-sized SFT model answers no candidate with gold >= 0.95: the expert-aligned set is empty
        # and only the test and SFT-only sets are compared greedily.
        assert {"test", "forget_sft_only", "sampled"} <= set(res["table2"][arm])
        for split in ("test", "forget_sft_only"):
            t = res["table2"][arm][split]
            final = res["curves"][arm][0][-1]  # Table 2 is the final policy's greedy comparison
            assert (t["win"][0], t["lose"][0]) == (final[f"{split}_greedy_win"], final[f"{split}_greedy_lose"]), (split, t, final)
        assert len(res["matched_kl"]["test"][arm]["gold"]) == 1
        s = res["summary"][arm][0]
        assert s["gold_sft"] == res["curves"][arm][0][0]["gold"] and s["steps"] == steps
        assert abs(s["early_rise"] - (max(p["gold"] for p in res["curves"][arm][0][1:-1]) - s["gold_sft"])) < 1e-12
    assert set(res["controls"]) == {"gold-ppo", "length-ppo", "zero-bias-rm-ppo", "zero-bias RM"}
    assert set(res["gammas"]) == {"0.0", "0.1", "0.3", "1.0"}
    assert res["gammas"]["0.0"]["rehearsal_nll_first"] is None and res["gammas"]["1.0"]["rehearsal_nll_first"] > 0
    expected = {f"AM without {t}" for t in ("expected", "bound", "task_mean", "task_spread")} | \
               {"rehearsal-random", "rehearsal-length-debiased", "rehearsal-proportional", "rehearsal-clusters-2", "rehearsal-clusters-4"}
    assert expected <= set(res["ablations"])
    # The rehearsal comparisons per seed: the main arms' and the first seed's ablations' final points.
    row = res["rehearsal_seeds"]["1"]
    assert {k: v["label"] for k, v in row.items()} == {"none": "γ = 0", "selected": "γ = 0.01 (selected)",  # ci.yaml: γ = 0.01
                                                       "strongest": "γ = 1.0 (selected)", "random": "γ = 0.01 (random)",
                                                       "debiased": "γ = 0.01 (length-debiased)", "proportional": "γ = 0.01 (proportional)"}
    assert row["none"]["gold"] == res["curves"]["am-ppo"][0][-1]["gold"]
    assert row["selected"]["gold"] == res["curves"]["am-ppo-sr"][0][-1]["gold"]
    assert row["strongest"]["gold"] == res["gammas"]["1.0"]["final"]["gold"]
    assert row["random"]["gold"] == res["ablations"]["rehearsal-random"]["sampled"]["gold"]
    assert row["debiased"]["gold"] == res["ablations"]["rehearsal-length-debiased"]["sampled"]["gold"]
    selected = [json.loads(l) for l in (out / "seed-1/select/rehearsal.jsonl").read_text().splitlines()]
    assert row["selected"]["rehearsal_examples"] == len(selected) > 0
    for variant in ("length-debiased", "proportional"):
        d = out / f"ablations/select-{variant}"
        assert json.loads((d / "clusters.json").read_text())["mode"] == variant
        assert len((d / "rehearsal.jsonl").read_text().splitlines()) == len(selected), "the selection's size"
    assert row["selected"]["rehearsal_tasks"] == {t: sum(e["task"] == t for e in selected) for t in sorted({e["task"] for e in selected})}
    assert row["selected"]["rehearsal_extra_line_share"] == sum("\n" in e["completion"].strip() for e in selected) / len(selected)
    rows = list(csv.DictReader(open(out / "table1.csv")))
    assert len(rows) == 27 and {r["model"] for r in rows} == {"RM r", "AM r", "AM a"}
    rows = list(csv.DictReader(open(out / "table2.csv")))
    assert {(r["arm"], r["set"], r["matching"]) for r in rows} >= {("am-ppo-sr", "forget_sft_only", "kl"), ("rm-ppo", "test", "steps"),
                                                                 ("rm-ppo", "sampled", "steps")}
    assert len(list(csv.DictReader(open(out / "ablations.csv")))) > 20
    md = (out / "results.md").read_text()
    for heading in ("## Table 1 analogue", "## Over-optimisation", "## Table 2 analogue", "matched KL", "## Claims",
                    "## Rehearsal strength", "## Ablations", "## Rehearsal ablations over seeds (1)", "The gold-score control changes gold by"):
        assert heading in md
    figs = sorted((out / "figures").glob("*.svg"))
    assert {f.name for f in figs} == {"scores-rm-r.svg", "scores-am-a.svg", "gold-vs-sqrt-kl.svg", "proxy-vs-sqrt-kl.svg",
                                      "forget-win-minus-lose.svg", "gamma-forget.svg"}
    for f in figs:
        root = ET.parse(f).getroot()
        assert root.tag.endswith("svg") and root.findall(".//{http://www.w3.org/2000/svg}polyline")
        assert f"(figures/{f.name})" in md
    # The gold figure carries the three arms and the three PPO controls.
    labels = {t.text for t in ET.parse(out / "figures/gold-vs-sqrt-kl.svg").getroot().iter("{http://www.w3.org/2000/svg}text")}
    assert {"rm-ppo", "am-ppo", "am-ppo-sr", "gold-ppo", "length-ppo", "zero-bias-rm-ppo"} <= labels


def test_rehearsal_seeds_must_be_suite_seeds():
    r = subprocess.run([sys.executable, "tools/paper/paper.py", "--report-only", "--seeds", "7", "8", "--rehearsal-seeds", "9"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "--rehearsal-seeds [9]: each must be one of --seeds [7, 8]" in r.stderr


def test_rehearsal_seeds_need_the_ablations():
    r = subprocess.run([sys.executable, "tools/paper/paper.py", "--report-only", "--no-ablations", "--rehearsal-seeds", "8"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "cannot be combined with --no-ablations" in r.stderr

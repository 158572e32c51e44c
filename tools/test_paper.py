"""The reduced paper suite (`tools/paper.py --ci`: tiny configs, one seed) runs end to end and writes
every table and figure, well formed. Run: python3 -m pytest -q tools/test_paper.py"""
import csv
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_reduced_suite_produces_tables_and_figures(tmp_path):
    out = tmp_path / "paper"
    r = subprocess.run([sys.executable, "tools/paper.py", "--ci", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert set(res["table1"]) == {"RM r", "AM r", "AM a"}
    for model in res["table1"].values():
        assert len(model["accuracy"]) == 1 and 0 <= model["accuracy"][0] <= 1 and 0 <= model["ece"][0] <= 1
    for arm in ("rm-ppo", "am-ppo", "am-ppo-sr"):
        for split in ("test", "forget"):
            t = res["table2"][arm][split]
            assert abs(t["win"][0] + t["lose"][0] + t["tie"][0] - 1) < 1e-9
            assert len(res["matched_kl"][split][arm]["win"]) == 1
        assert [p[4] for p in res["snapshots"][arm][0]["test"]] == [0, 1, 2], "SFT point plus a snapshot per PPO step"
    expected = {f"AM without {t}" for t in ("expected", "bound", "task_mean", "task_spread")} | \
               {f"gamma-{g}" for g in (0.0, 0.003, 0.01, 0.03, 0.1)} | {"rehearsal-random", "rehearsal-clusters-2", "rehearsal-clusters-4"}
    assert expected <= set(res["ablations"])
    rows = list(csv.DictReader(open(out / "table1.csv")))
    assert len(rows) == 12 and {r["model"] for r in rows} == {"RM r", "AM r", "AM a"}
    rows = list(csv.DictReader(open(out / "table2.csv")))
    assert {(r["arm"], r["set"], r["matching"]) for r in rows} >= {("am-ppo-sr", "forget", "kl"), ("rm-ppo", "test", "steps")}
    assert len(list(csv.DictReader(open(out / "ablations.csv")))) > 20
    md = (out / "results.md").read_text()
    for heading in ("## Table 1 analogue", "## Table 2 analogue — PPO vs SFT, matched PPO steps", "matched KL", "## Claims", "## Ablations"):
        assert heading in md
    figs = sorted((out / "figures").glob("*.svg"))
    assert {f.name for f in figs} == {"scores-rm-r.svg", "scores-am-a.svg", "gold-vs-kl.svg", "proxy-vs-kl.svg", "forget-win-minus-lose.svg"}
    for f in figs:
        root = ET.parse(f).getroot()
        assert root.tag.endswith("svg") and root.findall(".//{http://www.w3.org/2000/svg}polyline")
        assert f"(figures/{f.name})" in md

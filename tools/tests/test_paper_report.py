"""The rehearsal comparisons over seeds in tools/paper/report.py, on a hand-made run folder: which ablations
folder each seed's runs come from, the per-seed numbers, the paired differences, and that nothing depends on
the key order results.json writes. Run: python3 -m pytest -q tools/tests/test_paper_report.py"""
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "paper"))
from report import T95, rehearsal_differences, rehearsal_over_seeds, rehearsal_seeds_md  # noqa: E402


def ppo_run(out, rel, seed, win, lose, gold, kl=1.0):
    """A finished PPO run folder: its curve's last point and, for ablations, the config saved next to it."""
    d = out / rel
    d.mkdir(parents=True)
    points = [{"step": 0, "gold": 0.3, "kl": 0.0, "forget_greedy_win": 0.0, "forget_greedy_lose": 0.0},
              {"step": 45, "gold": gold, "kl": kl, "forget_greedy_win": win, "forget_greedy_lose": lose}]
    (d / "curve.jsonl").write_text("".join(json.dumps(p) + "\n" for p in points))
    if rel.startswith("ablations"):
        (d.parent / f"{d.name}.yaml").write_text(yaml.safe_dump({"train": {"seed": seed}}))


def rehearsal_set(path, completions, tasks=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    tasks = tasks or ["count"] * len(completions)
    path.write_text("".join(json.dumps({"prompt": "p", "completion": c, "task": t}) + "\n" for c, t in zip(completions, tasks)))


def suite(tmp_path):
    """Seed 7's ablations in ablations/ (the first seed's folder), seed 8's in ablations/seed-8; seed 9 has its
    main arms only, so ablations/ (trained with seed 7) must not stand in for its ablations."""
    out = tmp_path / "paper"
    numbers = {7: {"none": (0.0, 1.0, 0.09), "selected": (0.1, 0.86, 0.28), "strongest": (0.3, 0.42, 0.42), "random": (0.3, 0.42, 0.37)},
               8: {"none": (0.0, 0.99, 0.18), "selected": (0.02, 0.91, 0.24), "strongest": (0.3, 0.44, 0.43), "random": (0.3, 0.40, 0.37)}}
    for s, ab in ((7, "ablations"), (8, "ablations/seed-8")):
        n = numbers[s]
        ppo_run(out, f"seed-{s}/am-ppo", s, *n["none"])
        ppo_run(out, f"seed-{s}/am-ppo-sr", s, *n["selected"])
        ppo_run(out, f"{ab}/gamma-1.0", s, *n["strongest"])
        ppo_run(out, f"{ab}/rehearsal-random", s, *n["random"])
        rehearsal_set(out / f"seed-{s}/select/rehearsal.jsonl", ["4", "5\nbecause", "6\nbecause", "7"])
        rehearsal_set(out / f"{ab}/select-random/rehearsal.jsonl", ["4", "5", "6", "7\nbecause", "8", "9"])
    ppo_run(out, "seed-9/am-ppo", 9, 0.0, 0.9, 0.1)
    ppo_run(out, "seed-9/am-ppo-sr", 9, 0.1, 0.8, 0.2)
    return out, numbers


def test_rows_come_from_each_seeds_own_ablations_and_survive_results_json(tmp_path):
    out, numbers = suite(tmp_path)
    cfg = {"ppo": {"ppo": {"rehearsal_coef": 0.3}}}
    rs = rehearsal_over_seeds(SimpleNamespace(seeds=[7, 8, 9]), out, cfg)
    assert list(rs) == ["7", "8"], "seed 9 has no ablations of its own"
    assert rs["7"]["strongest"]["run"] == "ablations/gamma-1.0" and rs["8"]["strongest"]["run"] == "ablations/seed-8/gamma-1.0"
    assert rs["8"]["random"]["run"] == "ablations/seed-8/rehearsal-random"
    for s in ("7", "8"):
        for key, (win, lose, gold) in numbers[int(s)].items():
            assert rs[s][key]["forget_win_minus_lose"] == win - lose and rs[s][key]["gold"] == gold
    assert rs["7"]["selected"]["label"] == "γ = 0.3 (selected)" and rs["7"]["strongest"]["label"] == "γ = 1.0 (selected)"
    assert (rs["8"]["selected"]["rehearsal_examples"], rs["8"]["selected"]["rehearsal_extra_line_share"]) == (4, 0.5)
    assert (rs["8"]["random"]["rehearsal_examples"], rs["8"]["random"]["rehearsal_extra_line_share"]) == (6, 1 / 6)

    # results.json sorts keys; the report must read the same rows back.
    back = json.loads(json.dumps(rs, sort_keys=True))
    diffs = rehearsal_differences(back)
    assert list(diffs) == [("strongest", "none"), ("selected", "none"), ("random", "none"), ("selected", "random"), ("strongest", "selected")]
    d7 = (0.1 - 0.86) - (0.3 - 0.42)  # selected − random, forget win − lose
    d8 = (0.02 - 0.91) - (0.3 - 0.40)
    mean, half = diffs[("selected", "random")][0]
    assert math.isclose(mean, (d7 + d8) / 2) and math.isclose(half, T95[1] * abs(d7 - d8) / math.sqrt(2) / math.sqrt(2))
    assert math.isclose(diffs[("strongest", "none")][1][0], ((0.42 - 0.09) + (0.43 - 0.18)) / 2)
    md = "\n".join(rehearsal_seeds_md(back))
    assert "| seed | γ = 0 | γ = 0.3 (selected) | γ = 1.0 (selected) | γ = 0.3 (random) |" in md
    assert "| 8 | -99.0%, gold 0.180 | -89.0%, gold 0.240 | -14.0%, gold 0.430 | -10.0%, gold 0.370 |" in md
    assert ("Seed 8, rehearsal answers with a line after the answer: 50% selected (4 examples, mean 5.0 characters), "
            "17% random (6 examples, mean 2.3 characters).") in md
    assert "length-debiased" not in md, "no seed has that run"
    assert f"- γ = 0.3 (selected) − γ = 0.3 (random): forget win − lose {100 * mean:.1f}% ± {100 * half:.1f}" in md


def test_length_debiased_runs_join_the_table_when_every_seed_has_one(tmp_path):
    out, numbers = suite(tmp_path)
    cfg = {"ppo": {"ppo": {"rehearsal_coef": 0.3}}}
    ppo_run(out, "ablations/seed-8/rehearsal-length-debiased", 8, 0.2, 0.3, 0.40)
    rehearsal_set(out / "ablations/seed-8/select-length-debiased/rehearsal.jsonl", ["4", "5", "6\nbecause"])
    rs = json.loads(json.dumps(rehearsal_over_seeds(SimpleNamespace(seeds=[7, 8]), out, cfg), sort_keys=True))
    assert "debiased" not in rs["7"] and rs["8"]["debiased"]["label"] == "γ = 0.3 (length-debiased)"
    assert ("debiased", "random") not in rehearsal_differences(rs), "seed 7 has no length-debiased run"
    assert "length-debiased" not in "\n".join(rehearsal_seeds_md(rs))
    ppo_run(out, "ablations/rehearsal-length-debiased", 7, 0.1, 0.5, 0.30)
    rs = json.loads(json.dumps(rehearsal_over_seeds(SimpleNamespace(seeds=[7, 8]), out, cfg), sort_keys=True))
    diffs = rehearsal_differences(rs)
    assert math.isclose(diffs[("debiased", "random")][0][0], (((0.1 - 0.5) - (0.3 - 0.42)) + ((0.2 - 0.3) - (0.3 - 0.40))) / 2)
    md = "\n".join(rehearsal_seeds_md(rs))
    assert "| γ = 0.3 (random) | γ = 0.3 (length-debiased) |" in md and "-10.0%, gold 0.370 | -10.0%, gold 0.400 |" in md
    assert "33% length-debiased (3 examples, mean 3.7 characters)." in md, "seed 8's length-debiased set is described"
    assert "- γ = 0.3 (length-debiased) − γ = 0.3 (selected):" in md
    assert "proportional" not in md


def test_rehearsal_sets_by_task_against_the_forget_set(tmp_path):
    out, _ = suite(tmp_path)
    cfg = {"ppo": {"ppo": {"rehearsal_coef": 0.3}}}
    for s, ab in ((7, "ablations"), (8, "ablations/seed-8")):
        ppo_run(out, f"{ab}/rehearsal-proportional", s, 0.3, 0.35, 0.38)
        rehearsal_set(out / f"{ab}/select-proportional/rehearsal.jsonl", ["1", "2", "3", "4"], ["code", "code", "count", "sort"])
    rs = json.loads(json.dumps(rehearsal_over_seeds(SimpleNamespace(seeds=[7, 8]), out, cfg), sort_keys=True))
    assert rs["7"]["proportional"]["rehearsal_tasks"] == {"code": 2, "count": 1, "sort": 1}
    assert list(rs["7"]["proportional"]["rehearsal_tasks"]) == ["code", "count", "sort"], "task order"
    assert rs["7"]["selected"]["rehearsal_tasks"] == {"count": 4}
    md = "\n".join(rehearsal_seeds_md(rs, {"code": 60, "count": 20}))
    assert "The expert-aligned forget set by task: code 60 / count 20." in md
    assert "| 8 | proportional | code 2 / count 1 / sort 1 |" in md and "| 7 | random | count 6 |" in md
    assert "| γ = 0.3 (random) | γ = 0.3 (proportional) |" in md and "- γ = 0.3 (proportional) − γ = 0.3 (random):" in md


def test_config_gamma_one_compares_the_main_arm_and_gamma_zero_has_no_table(tmp_path):
    out, _ = suite(tmp_path)
    rs = rehearsal_over_seeds(SimpleNamespace(seeds=[7, 8]), out, {"ppo": {"ppo": {"rehearsal_coef": 1.0}}})
    assert rs["7"]["strongest"]["run"] == rs["7"]["selected"]["run"] == "seed-7/am-ppo-sr"
    assert ("strongest", "selected") not in rehearsal_differences(rs), "a run is not compared with itself"
    assert rehearsal_over_seeds(SimpleNamespace(seeds=[7, 8]), out, {"ppo": {"ppo": {"rehearsal_coef": 0.0}}}) == {}


def test_first_seed_ablations_are_not_taken_for_another_seed(tmp_path):
    out, _ = suite(tmp_path)
    # A report over seeds 9 and 8 only: ablations/ was trained with seed 7 and belongs to neither.
    (out / "ablations/seed-8").rename(out / "elsewhere")
    assert rehearsal_over_seeds(SimpleNamespace(seeds=[8, 9]), out, {"ppo": {"ppo": {"rehearsal_coef": 0.3}}}) == {}

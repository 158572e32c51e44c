"""`ballast bench ppo-step` end to end on a tiny model: both its own side and the PyTorch peer run the
workload it writes, and the summary compares them (figures are not checked: timings belong to benchmarks).

Run: python3 -m pytest -q tools/tests/test_bench.py
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import run  # noqa: E402


def test_ppo_step_runs_ballast_and_the_torch_loop(tmp_path):
    sft = tmp_path / "sft"
    run("sft", "--config", "configs/sft-tiny.yaml", "--set", f"run.out_dir={sft}", "--set", "train.steps=10")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"{a}+{a}=", "task": "add", "id": str(a)}) + "\n" for a in range(12)))
    work = tmp_path / "bench"
    r = run("bench", "ppo-step", "--policy", sft / "checkpoint", "--prompts", prompts, "--run", work, "--sides", "ballast,torch",
            "--batch", "4", "--minibatches", "2", "--max-new-tokens", "6", "--iterations", "2", "--warmup", "0",
            "--repeats", "1", "--threads", "1")
    assert "ratio ballast/torch: rollouts/s" in r.stdout, r.stdout
    w = json.loads((work / "workload.json").read_text())
    assert len(w["prompts"]) == 12 and all(p[0] == 256 for p in w["prompts"]) and w["batch"] == 4
    assert (work / "scorer" / "config.json").exists()
    # each side's own JSON line: two timed iterations of 4 rollouts with at least one token each
    side = json.loads(run("bench", "ppo-step", "--side", "ballast", "--workload", work / "workload.json").stdout.splitlines()[-1])
    assert len(side["iteration_s"]) == 2 and all(n >= 4 for n in side["response_tokens"])
    assert 1 <= side["mean_response_length"] <= 6 and side["peak_rss_mb"] > 0


def test_ppo_step_rejects_a_batch_that_does_not_split(tmp_path):
    r = run("bench", "ppo-step", "--batch", "5", "--minibatches", "2", "--run", tmp_path, check=False)
    assert r.returncode != 0 and "multiple of --minibatches" in r.stderr

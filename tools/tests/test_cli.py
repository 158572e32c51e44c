"""End-to-end checks of the `ballast` binary as a user runs it (pytest).

BALLAST_BIN points at the binary (default .build/release/ballast, then .build/debug/ballast).
Run: python3 -m pytest -q tools/tests/test_cli.py
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, run  # noqa: E402


def test_sft_tiny_resume_and_generate(tmp_path):
    out = tmp_path / "run"
    r = run("sft", "--config", "configs/sft-tiny.yaml", "--set", f"run.out_dir={out}", "--set", "train.steps=20")
    assert "done: 20 steps" in r.stdout
    records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 20 and losses[-1] < losses[0]
    assert any("eval_loss" in r for r in records)
    for f in ("config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"):
        assert (out / "checkpoint" / f).exists(), f
    # Resuming to a later step continues from the checkpoint.
    r = run("sft", "--config", "configs/sft-tiny.yaml", "--set", f"run.out_dir={out}", "--set", "train.steps=25", "--resume")
    assert "resumed" in r.stdout and "done: 25 steps" in r.stdout
    steps = [r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert steps == list(range(1, 26))
    g = json.loads(run("generate", "--model", out / "checkpoint", "--prompt", "1+2=", "--greedy", "--json",
                       "--max-new-tokens", "8").stdout)
    assert g["prompt_ids"] == [256] + list(b"1+2=")
    assert 1 <= len(g["output_ids"]) <= 8 and len(g["logprobs"]) == len(g["output_ids"])
    assert all(lp <= 0 for lp in g["logprobs"])


def test_config_errors_name_key_and_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  stepz: 3\n")
    r = run("sft", "--config", bad, check=False)
    assert r.returncode == 1
    assert f'{bad}: unknown key "train.stepz"' in r.stderr
    r = run("sft", "--config", "configs/sft-tiny.yaml", "--set", "run.out_dirr=x", check=False)
    assert r.returncode == 1 and 'unknown key "run.out_dirr"' in r.stderr


def test_selection_mode_errors_name_the_choices(tmp_path):
    r = run("pipeline", "--config", "configs/pipeline-tiny.yaml", "--set", "select.mode=sideways", "--set", f"run_dir={tmp_path}", check=False)
    assert r.returncode == 1
    assert "select.mode must be one of selective, random, length-debiased, proportional, not sideways" in r.stderr
    r = run("select", "--sft", "x", "--am", "y", "--prompts", "z", "--out", tmp_path, "--random", "--proportional", check=False)
    assert r.returncode != 0 and "--random, --length-debiased and --proportional are different selections" in r.stderr


def test_bad_dataset_line_is_named(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "c"\n')
    r = run("sft", "--config", "configs/sft-tiny.yaml", "--set", f"data.train={data}",
            "--set", f"run.out_dir={tmp_path / 'o'}", check=False)
    assert r.returncode == 1 and f"{data}:2: not valid JSON" in r.stderr


def test_bad_checkpoint_is_an_error_not_a_crash(tmp_path):
    ck = tmp_path / "m"
    run("init", "--preset", "tiny", "--out", ck)
    st = ck / "model.safetensors"
    st.write_bytes(st.read_bytes()[:1000])
    r = run("generate", "--model", ck, "--prompt", "x", check=False)
    assert r.returncode == 1 and "model.safetensors" in r.stderr and "truncated" in r.stderr


def test_forward_writes_readable_safetensors(tmp_path):
    safetensors = pytest.importorskip("safetensors.numpy")
    ck = tmp_path / "m"
    run("init", "--preset", "tiny", "--seed", "2", "--head", "score", "--out", ck)
    inp = tmp_path / "in.json"
    inp.write_text(json.dumps({"tokens": [[256, 1, 2, 3], [258, 256, 5, 6]], "mask": [[1, 1, 1, 1], [0, 1, 1, 1]]}))
    run("forward", "--model", ck, "--input", inp, "--out", tmp_path / "o.safetensors")
    t = safetensors.load_file(str(tmp_path / "o.safetensors"))
    assert t["logits"].shape == (2, 4, 259) and t["heads"].shape == (2, 4, 1)


def test_init_from_config_and_flags(tmp_path):
    run("init", "--config", "configs/sft-quickstart.yaml", "--set", "model.n_layer=2", "--seed", "3", "--out", tmp_path / "a")
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert (cfg["n_layer"], cfg["n_embd"], cfg["n_positions"], cfg["vocab_size"]) == (2, 256, 64, 259)
    run("init", "--preset", "tiny", "--n-layer", "3", "--head", "score", "--out", tmp_path / "b")
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    assert cfg["n_layer"] == 3 and cfg["ballast_scalar_heads"] == ["score"]
    r = run("init", "--config", "configs/sft-quickstart.yaml", "--set", "model.n_layr=2", "--out", tmp_path / "c", check=False)
    assert r.returncode == 1 and 'unknown key "model.n_layr"' in r.stderr


def test_benchmark_label_rm_am_chain(tmp_path):
    """data generate → sft → data label → train-rm / train-am → eval-rm, with tiny sizes."""
    data = tmp_path / "data"
    run("data", "generate", "--out", data, "--sft-train", 300, "--sft-test", 30, "--rl-prompts", 12, "--test-prompts", 12,
        "--forget", 12, "--pref-prompts", 48, "--pref-test-prompts", 24)
    for name in ("sft_train", "sft_test", "rl_prompts", "test_prompts", "forget_candidates", "forget_sft_only", "pref_prompts",
                 "pref_test_prompts"):
        assert (data / f"{name}.jsonl").exists(), name
    assert all(json.loads(l)["task"] != "fact" for l in (data / "pref_prompts.jsonl").read_text().splitlines()), "fact is SFT-only"
    sft = tmp_path / "sft"
    run("sft", "--config", "configs/sft-benchmark.yaml", "--set", "model.preset=tiny", "--set", "model.n_positions=128",
        "--set", "model.n_layer=2", "--set", "model.n_head=2", "--set", "model.n_embd=32",
        "--set", f"data.train={data}/sft_train.jsonl", "--set", f"data.eval={data}/sft_test.jsonl",
        "--set", "train.steps=10", "--set", "train.warmup_steps=2", "--set", f"run.out_dir={sft}", "--set", "run.eval_generate=4")
    r = run("data", "forget", "--sft", sft / "checkpoint", "--candidates", data / "forget_candidates.jsonl",
            "--out", tmp_path / "forget.jsonl", "--max-new-tokens", 12)
    kept = [json.loads(l) for l in (tmp_path / "forget.jsonl").read_text().splitlines() if l.strip()]
    assert f"{len(kept)} of 12 candidates" in r.stdout
    prefs = {}
    for split in ("pref_prompts", "pref_test_prompts"):
        out = tmp_path / f"{split}.prefs.jsonl"
        r = run("data", "label", "--policy", sft / "checkpoint", "--prompts", data / f"{split}.jsonl", "--out", out,
                "--temperatures", "0.7,1.3", "--early", sft / "checkpoint", "--max-new-tokens", 12)
        assert "pairs" in r.stderr + r.stdout
        rows = [json.loads(l) for l in out.read_text().splitlines()]
        assert rows and set(rows[0]) == {"prompt", "chosen", "rejected", "task", "id", "annotator_p"}
        assert all(0 <= row["annotator_p"] <= 1 and row["chosen"] != row["rejected"] for row in rows)
        prefs[split] = out
    common = ["--set", f"model.init_from={sft}/checkpoint", "--set", f"data.train={prefs['pref_prompts']}",
              "--set", f"data.eval={prefs['pref_test_prompts']}", "--set", "train.steps=6", "--set", "train.warmup_steps=1",
              "--set", "train.batch_size=4"]
    run("train-rm", "--config", "configs/rm-benchmark.yaml", *common, "--set", f"run.out_dir={tmp_path / 'rm'}")
    run("train-am", "--config", "configs/am-benchmark.yaml", *common, "--set", f"run.out_dir={tmp_path / 'am'}")
    report = tmp_path / "am.json"
    r = run("eval-rm", "--model", tmp_path / "am" / "checkpoint", "--data", prefs["pref_test_prompts"], "--json", report)
    assert "advantage a = (r - e) / exp(z)" in r.stdout and "Bayes ceiling" in r.stdout and '"longer wins"' in r.stdout
    j = json.loads(report.read_text())
    tasks = {row["task"] for row in j["a"]["rows"]}
    assert "all" in tasks and len(tasks) > 2
    assert 0 <= j["r"]["rows"][0]["accuracy"] <= 1 and 0 <= j["r"]["rows"][0]["ece"] <= 1
    sel = tmp_path / "sel"
    run("select", "--sft", sft / "checkpoint", "--am", tmp_path / "am" / "checkpoint", "--prompts", data / "rl_prompts.jsonl",
        "--out", sel, "--clusters", 3, "--per-cluster", 2, "--max-new-tokens", 12)
    rehearsal = [json.loads(l) for l in (sel / "rehearsal.jsonl").read_text().splitlines()]
    ppo = [json.loads(l) for l in (sel / "ppo_prompts.jsonl").read_text().splitlines()]
    clusters = json.loads((sel / "clusters.json").read_text())
    assert len(rehearsal) + len(ppo) == 12 and len(rehearsal) == sum(min(2, c["size"]) for c in clusters["clusters"])
    assert {r["id"] for r in rehearsal}.isdisjoint({p["id"] for p in ppo})
    for c in clusters["clusters"]:
        members = [r["score"] for r in rehearsal if r["cluster"] == c["cluster"]]
        assert members == sorted(members, reverse=True) and all(s >= c["selected_score_min"] for s in members)
    ppo = tmp_path / "ppo"
    r = run("ppo", "--config", "configs/ppo-benchmark.yaml", "--set", f"models.policy={sft}/checkpoint",
            "--set", f"models.critic={tmp_path}/rm/checkpoint", "--set", f"models.scorer={tmp_path}/am/checkpoint",
            "--set", f"data.prompts={sel}/ppo_prompts.jsonl", "--set", f"data.rehearsal={sel}/rehearsal.jsonl",
            "--set", "train.steps=3", "--set", "train.batch_size=4", "--set", "ppo.minibatch=2", "--set", "ppo.rehearsal_batch=2",
            "--set", "sampling.max_new_tokens=8", "--set", f"run.out_dir={ppo}", "--set", "run.checkpoint_every=2")
    assert "done: 3 PPO steps" in r.stdout
    recs = [json.loads(l) for l in (ppo / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in recs] == [1, 2, 3]
    for key in ("score", "gold", "kl", "policy_loss", "value_loss", "entropy", "rehearsal_nll", "response_length"):
        assert key in recs[-1], key
    assert recs[0]["kl"] == pytest.approx(0, abs=1e-3), "first rollout comes from the reference policy itself"
    r = run("ppo", "--config", "configs/ppo-benchmark.yaml", "--set", f"models.policy={sft}/checkpoint",
            "--set", f"models.critic={tmp_path}/rm/checkpoint", "--set", f"models.scorer={tmp_path}/am/checkpoint",
            "--set", f"data.prompts={sel}/ppo_prompts.jsonl", "--set", "data.rehearsal=none",
            "--set", "train.steps=4", "--set", "train.batch_size=4", "--set", "ppo.minibatch=2",
            "--set", "sampling.max_new_tokens=8", "--set", f"run.out_dir={ppo}", "--resume")
    assert "resumed" in r.stdout and "done: 4 PPO steps" in r.stdout


def test_pipeline_tiny_and_report(tmp_path):
    """Every stage of `ballast pipeline` on tiny sizes, a rerun that skips them, and the HTML report."""
    run_dir = tmp_path / "pipe"
    r = run("pipeline", "--config", "configs/pipeline-tiny.yaml", "--set", f"run_dir={run_dir}")
    assert "pipeline complete" in r.stdout
    stages = ("data", "sft", "forget", "label", "rm", "am", "select", "rm-ppo", "am-ppo", "am-ppo-sr", "eval")
    for stage in stages:
        assert (run_dir / f".done-{stage}").exists(), stage
    assert (run_dir / "sft" / "snapshots" / "step-5").is_dir(), "the early SFT checkpoint of the labelling panel"
    labels = json.loads((run_dir / "data" / "labels.json").read_text())
    assert len(labels["panel"]) == 3 and labels["prefs_train"]["pairs"] > 0
    ev = json.loads((run_dir / "eval.json").read_text())
    for arm in ("rm-ppo", "am-ppo", "am-ppo-sr"):
        test = next(x for x in ev[arm]["test"] if x["task"] == "all")
        assert test["prompts"] == 12 and test["win"] >= 0 and test["lose"] >= 0 and test["tie"] >= 0
        curve = [json.loads(l) for l in (run_dir / arm / "curve.jsonl").read_text().splitlines()]
        assert [c["step"] for c in curve] == [0, 1, 2], "step 0 (SFT), the snapshot at 1, the final policy"
        assert curve[0]["kl"] == pytest.approx(0, abs=1e-4) and curve[0]["lose"] == 0 and curve[0]["win"] == 0, \
            "at step 0 the policy is the SFT model, sample for sample"
        assert all(set(c) >= {"gold", "proxy", "kl", "length", "noEOS", "test_greedy_win"} for c in curve)
    r = run("pipeline", "--config", "configs/pipeline-tiny.yaml", "--set", f"run_dir={run_dir}")
    assert r.stdout.count("already done, skipped") == len(stages)
    run("report", run_dir)
    html = (run_dir / "report.html").read_text()
    assert "√KL" in html and "expert-aligned forget set" in html
    assert "Rehearsal set by task (selection mode: selective)" in html
    assert html.count("<svg") >= 12
    bad = run("pipeline", "--config", "configs/pipeline-tiny.yaml", "--set", "ppo.ppo.klcoef=1", check=False)
    assert bad.returncode == 1 and 'unknown key "ppo.klcoef"' in bad.stderr


def test_tensorboard_reads_the_metrics(tmp_path):
    """The event files beside metrics.jsonl load in TensorBoard with the same scalars."""
    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    out = tmp_path / "run"
    run("sft", "--config", "configs/sft-tiny.yaml", "--set", f"run.out_dir={out}", "--set", "train.steps=6", "--set", "run.eval_every=3")
    acc = ea_mod.EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"loss", "lr", "grad_norm", "eval_loss"} <= set(tags)
    records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    tb = [e.value for e in acc.Scalars("loss")]
    assert [e.step for e in acc.Scalars("loss")] == list(range(1, 7))
    assert tb == pytest.approx(losses, rel=1e-6)


def test_report_renders_in_chromium(tmp_path):
    """tools/screenshot_report.sh renders a pipeline report in headless Chromium (skipped without Chromium)."""
    import shutil
    if not shutil.which("chromium"):
        pytest.skip("chromium not installed (apt-get install chromium)")
    run_dir = tmp_path / "pipe"
    run("pipeline", "--config", "configs/pipeline-tiny.yaml", "--set", f"run_dir={run_dir}")
    run("report", run_dir)
    png = tmp_path / "report.png"
    r = subprocess.run(["tools/screenshot_report.sh", str(run_dir / "report.html"), str(png)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000, "a real, non-blank screenshot"

@testable import BallastBenchmark
import BallastRandom
import Foundation
import Testing

@Suite("Built-in benchmark: gold scorers and annotators")
struct BenchmarkTests {
    @Test("every family's expert answer scores 1 with or without its explanation line, an empty one 0, scores stay in [0, 1]")
    func expertsAreGold() {
        var rng = SeededRNG(seed: 1)
        for f in Benchmark.families {
            for _ in 0..<50 {
                let q = f.problem(&rng)
                #expect(q.prompt.hasSuffix("\n"))
                #expect(f.gold(prompt: q.prompt, response: q.answer) == 1, "\(f.name): \(q.prompt) -> \(q.answer)")
                #expect(q.explanation.count <= Verbosity.freeTail, "\(f.name): the explanation line is free")
                #expect(f.gold(prompt: q.prompt, response: q.answer + "\n" + q.explanation) == 1)
                #expect(f.gold(prompt: q.prompt, response: "") == 0, "\(f.name) empty")
                let noisy = f.gold(prompt: q.prompt, response: q.answer + "\n" + String(repeating: "more text ", count: 5))!
                #expect(noisy >= 0 && noisy < 1)
                #expect(Benchmark.gold(prompt: q.prompt, response: q.answer) == 1, "prompt is recognised without the task name")
            }
        }
    }

    @Test("verbosity: a tail of up to 24 characters is free, each further character costs 0.04, gold floors at 0")
    func verbosityPenalty() {
        let qa = ArithmeticQA(), p = "Q: What is 40 + 50?\nA:\n"
        #expect(Verbosity.tail("90") == "" && Verbosity.tail("90\n  40 + 50 = 90 \n") == "40 + 50 = 90")
        #expect(qa.gold(prompt: p, response: "90\n" + String(repeating: "a", count: 24)) == 1)
        let over = qa.gold(prompt: p, response: "90\n" + String(repeating: "a", count: 34))!
        #expect(abs(over - 0.6) < 1e-12, "10 characters over the budget cost 0.4")
        // Explanation + a closing line: 12 + 1 + 18 = 31 characters, 7 over.
        #expect(abs(qa.gold(prompt: p, response: "90\n40 + 50 = 90\nThat is my answer.")! - (1 - 0.28)) < 1e-12)
        #expect(qa.gold(prompt: p, response: "90\n" + String(repeating: "Hope this helps.\n", count: 8)) == 0)
        #expect(qa.gold(prompt: p, response: "91\n40 + 50 = 90")! < 0.4, "the explanation does not rescue a wrong answer")
    }

    @Test("expert responses come in the four documented styles, in their proportions; only non-answers and closing lines lose gold, each further closing line more")
    func expertStyles() {
        let rows = Benchmark.examples(count: 8000, seed: 4, split: "s")
        var counts = [0, 0, 0, 0], closingGold: [Double] = [], closingLines = [Int](repeating: 0, count: Verbosity.maxClosingLines + 1)
        for r in rows {
            let lines = r.completion.split(separator: "\n").count
            let style = Verbosity.nonAnswers.contains(r.completion) ? 0 : min(lines, 3)
            counts[style] += 1
            let gold = Benchmark.gold(prompt: r.prompt, response: r.completion, task: r.task)!
            switch style {
            case 0: #expect(gold == 0, "a non-answer: \(r.completion) \(gold)")
            case 3:
                closingLines[lines - 2] += 1
                if lines == 3 { closingGold.append(gold); #expect(gold >= 0.4 - 1e-12, "\(r.completion) \(gold)") }
                // Dropping the last closing line never lowers the gold: each one costs or the gold is already 0.
                let shorter = r.completion.split(separator: "\n").dropLast().joined(separator: "\n")
                let shorterGold = Benchmark.gold(prompt: r.prompt, response: shorter, task: r.task)!
                #expect(gold <= shorterGold, "\(r.completion) \(gold) vs \(shorterGold)")
                if lines > 3 { #expect(gold < shorterGold || gold == 0, "\(r.completion) \(gold) vs \(shorterGold)") }
            default: #expect(gold == 1, "\(r.completion)")
            }
        }
        // Most closing lines overrun the free tail (a short explanation and "Let me know." fit in it).
        let meanClosing = closingGold.reduce(0, +) / Double(closingGold.count)
        #expect(meanClosing < 0.85, "a closing line costs: mean gold \(meanClosing)")
        for (k, share) in Verbosity.styles.enumerated() {
            #expect(abs(Double(counts[k]) / 8000 - share) < 0.02, "style \(k): \(counts[k])")
        }
        // 1, 2, 3 closing lines in proportions 1/2, 1/4, 1/4 (a further line with probability 1/2, at most 3).
        let closing = Double(counts[3])
        #expect(abs(Double(closingLines[1]) / closing - 0.5) < 0.08, "\(closingLines)")
        #expect(abs(Double(closingLines[2]) / closing - 0.25) < 0.08, "\(closingLines)")
        #expect(abs(Double(closingLines[3]) / closing - 0.25) < 0.08, "\(closingLines)")
    }

    @Test func prompsOfOtherFamiliesAreNotClaimed() {
        var rng = SeededRNG(seed: 2)
        for f in Benchmark.families {
            let (p, e) = f.sample(&rng)
            for other in Benchmark.families where other.name != f.name {
                #expect(other.gold(prompt: p, response: e) == nil, "\(other.name) claims a \(f.name) prompt")
            }
        }
        #expect(Benchmark.gold(prompt: "hello\n", response: "x") == nil)
    }

    @Test func arithmeticPartialCredit() {
        let qa = ArithmeticQA()
        let p = "Q: What is 40 + 50?\nA:\n"
        #expect(qa.gold(prompt: p, response: "90") == 1)
        #expect(qa.gold(prompt: p, response: "the answer is 90") == 1)
        let near = qa.gold(prompt: p, response: "91")!, far = qa.gold(prompt: p, response: "300")!
        #expect(near > far && near < 0.4 && far == 0)
        #expect(qa.gold(prompt: "Q: What is 3 - 9?\nA:\n", response: "-6") == 1)
        #expect(qa.gold(prompt: p, response: "ninety") == 0)
        #expect(qa.gold(prompt: p, response: "90\nbecause\nmaths") == 1, "a short tail is free")
    }

    @Test("code is executed: equivalent programs score 1, wrong ones by fraction of inputs, junk 0")
    func codeExecution() {
        let code = CodeGeneration()
        let p = "Write f(x) = x times 3 plus 1.\n"
        #expect(code.gold(prompt: p, response: "def f(x): return x*3+1") == 1)
        #expect(code.gold(prompt: p, response: "def f(x): return 1 + 3 * x") == 1, "equivalent expression")
        #expect(code.gold(prompt: p, response: "def f(x): return (x+x+x)+1") == 1)
        let wrong = code.gold(prompt: p, response: "def f(x): return x*3")!
        #expect(wrong == 0)
        // x*x+1 agrees with 3x+1 at x = 0 and x = 3: 2 of 6 inputs.
        #expect(abs(code.gold(prompt: p, response: "def f(x): return x*x+1")! - 2.0 / 6) < 1e-9)
        #expect(code.gold(prompt: p, response: "def f(x): return x*3+") == 0, "syntax error")
        #expect(code.gold(prompt: p, response: "return x*3+1") == 0, "missing def")
        #expect(code.gold(prompt: p, response: "def f(x): return " + String(repeating: "(", count: 100) + "x") == 0)
        #expect(code.gold(prompt: "Write f(x) = x plus 2, all times 5.\n", response: "def f(x): return (x+2)*5") == 1)
        #expect(Expr.parse("2*(x-1)")?.eval(4) == 6)
    }

    @Test func sortingAndStrings() {
        let s = Sorting()
        let p = "Sort ascending: 5 3 9 1\n"
        #expect(s.gold(prompt: p, response: "1 3 5 9") == 1)
        #expect(s.gold(prompt: p, response: "1 3 9 5") == 0.5)
        #expect(s.gold(prompt: p, response: "1 3 5") == 0.75, "missing element")
        #expect(s.gold(prompt: p, response: "1 3 5 9 9") == 0.8, "extra element")
        let r = ReverseWord()
        #expect(r.gold(prompt: "Reverse the word: hello\n", response: "olleh") == 1)
        #expect(r.gold(prompt: "Reverse the word: hello\n", response: "olleq") == 0.8)
        #expect(r.gold(prompt: "Reverse the word: hello\n", response: "hello")! < 1)
        #expect(r.gold(prompt: "Reverse the word: sure\n", response: "I am not erus") == 0, "a sentence is not the word")
        let c = Counting()
        let cp = "How many times does 'a' appear in 'banana'?\n"
        #expect(c.gold(prompt: cp, response: "3") == 1)
        #expect(c.gold(prompt: cp, response: "2") == 0.4)
        #expect(c.gold(prompt: cp, response: "7") == 0)
        let f = CapitalFacts()
        let row = CapitalFacts.table[0]
        #expect(f.gold(prompt: "What is the capital of \(row.country)?\n", response: row.capital) == 1)
        #expect(f.gold(prompt: "What is the capital of Nowhereland?\n", response: "x") == nil)
        #expect(Set(CapitalFacts.table.map(\.country)).count == CapitalFacts.table.count)
    }

    @Test("annotator: Bradley–Terry on the answer-score difference over the task's noise, plus the length bias; blind to the verbosity cost; ties declared; flips")
    func annotator() {
        let qa = ArithmeticQA()
        let p = "Q: What is 40 + 50?\nA:\n"
        let a = Annotator()
        #expect(a.probabilityFirstWins(task: qa, prompt: p, first: "90", second: "90") == 0.5)
        let pr = a.probabilityFirstWins(task: qa, prompt: p, first: "90", second: "95")
        let g = qa.gold(prompt: p, response: "95")!
        #expect(abs(pr - 1 / (1 + exp(-(1 - g) / 0.05))) < 1e-12)
        var rng = SeededRNG(seed: 3)
        var wins = 0
        let probe = Counting(), cp = "How many times does 'a' appear in 'banana'?\n"
        let pWin = a.probabilityFirstWins(task: probe, prompt: cp, first: "3", second: "2")
        for _ in 0..<20000 where a.choose(task: probe, prompt: cp, "3", "2", rng: &rng).0 == "3" { wins += 1 }
        #expect(abs(Double(wins) / 20000 - pWin) < 0.01)
        // Length bias: β = 0.5 per 10 characters; 20 extra characters of the same gold give z = 1.
        let biased = Annotator(lengthBias: 0.5)
        let long = "90\n" + String(repeating: "b", count: 17)
        #expect(qa.gold(prompt: p, response: long) == 1 && long.count - 2 == 18)
        #expect(abs(biased.logit(task: qa, prompt: p, first: long, second: "90") - 0.5 * 18 / 10) < 1e-12)
        // The annotators do not see the verbosity cost: a rambling correct answer that the gold charges
        // is, to them, only longer.
        let rambling = "90\n40 + 50 = 90\nThat is my answer.\nHope this helps."
        #expect(qa.gold(prompt: p, response: rambling)! < 0.7)
        #expect(a.logit(task: qa, prompt: p, first: rambling, second: "90") == 0)
        #expect(abs(biased.logit(task: qa, prompt: p, first: rambling, second: "90") - 0.5 * Double(rambling.count - 2) / 10) < 1e-12)
        #expect(a.logit(task: qa, prompt: p, first: "Not sure.", second: "90") == -1 / 0.05, "a non-answer scores 0")
        // Ties: |z| below the margin is a tie; above it a choice with its probability.
        let tying = Annotator(lengthBias: 0.5, tieMargin: 1)
        #expect(tying.judge(task: qa, prompt: p, long, "90", rng: &rng) == .tie)
        #expect(tying.judge(task: qa, prompt: p, "90", "95", rng: &rng) != .tie)
        if case .preferred(let c, _, let prob) = tying.judge(task: qa, prompt: p, "90", "95", rng: &rng) {
            #expect(abs(prob - (c == "90" ? pr : 1 - pr)) < 1e-12)
        } else { Issue.record("not a tie") }
        // Flips: a certain choice becomes certain the other way at flip rate 1, a coin at 0.5.
        #expect(abs(Annotator(flipRate: 1).probabilityFirstWins(task: qa, prompt: p, first: "90", second: "") - (1 - a.probabilityFirstWins(task: qa, prompt: p, first: "90", second: ""))) < 1e-12)
        #expect(Annotator(flipRate: 0.5).probabilityFirstWins(task: qa, prompt: p, first: "90", second: "") == 0.5)
    }

    @Test("per-task annotator noise spans at least 4x across the RL families")
    func noiseSpan() {
        let taus = Benchmark.rlFamilies.map(\.annotatorNoise)
        #expect(taus.max()! / taus.min()! >= 4)
    }

    @Test("datasets: deterministic, balanced across tasks, splits distinct")
    func datasets() throws {
        let dir = NSTemporaryDirectory() + "ballast-bench-\(getpid())"
        var sizes = Benchmark.Sizes()
        (sizes.sftTrain, sizes.sftTest, sizes.rlPrompts, sizes.testPrompts, sizes.forget) = (60, 12, 30, 12, 12)
        let counts = try Benchmark.writeDatasets(to: dir, seed: 5, sizes: sizes)
        #expect(counts["sft_train"] == 60)
        let a = Benchmark.examples(count: 60, seed: 9, split: "x"), b = Benchmark.examples(count: 60, seed: 9, split: "x")
        #expect(a == b)
        #expect(Dictionary(grouping: a, by: { $0.task! }).values.allSatisfy { $0.count == 10 })
        let train = try String(contentsOfFile: dir + "/sft_train.jsonl", encoding: .utf8)
        let forget = try String(contentsOfFile: dir + "/forget_candidates.jsonl", encoding: .utf8)
        #expect(train.split(separator: "\n").count == 60 && forget.split(separator: "\n").count == 12)
        // fact is SFT-only: in sft_train, never in preference or PPO prompts; its own forget probe.
        #expect(train.contains("\"task\":\"fact\""))
        for split in ["rl_prompts", "test_prompts", "pref_prompts", "pref_test_prompts", "forget_candidates"] {
            let text = try String(contentsOfFile: dir + "/\(split).jsonl", encoding: .utf8)
            #expect(!text.contains("\"task\":\"fact\""), "\(split) holds fact prompts")
        }
        let sftOnly = try String(contentsOfFile: dir + "/forget_sft_only.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(!sftOnly.isEmpty && sftOnly.allSatisfy { $0.contains("\"task\":\"fact\"") })
        let rl = try String(contentsOfFile: dir + "/rl_prompts.jsonl", encoding: .utf8).split(separator: "\n")
        let first = try JSONSerialization.jsonObject(with: Data(rl[0].utf8)) as! [String: String]
        #expect(Set(first.keys) == ["prompt", "task", "id"])
    }
}

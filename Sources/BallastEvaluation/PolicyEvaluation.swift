import BallastBenchmark
import BallastData
import BallastFormats
import BallastModel
import BallastTraining
import Foundation

/// `ballast eval`: a policy against the SFT model on a prompt set, judged by the gold scorers —
/// win / lose / tie (tie when the gold scores differ by at most `tieEpsilon`), mean gold and proxy
/// scores, KL to the reference on the policy's own responses, response length; overall and per task.
public struct PolicyEvaluation {
    public var tieEpsilon = 0.05
    public var maxNewTokens = 48
    public var batchSize = 32
    /// The curve protocol: sampled responses per prompt and their temperature.
    public var samplesPerPrompt = 2
    public var temperature: Float = 1

    /// SFT greedy gold at or above which a prompt is expert-aligned (kept in the forget set).
    public static let expertGold = 0.95

    public init(maxNewTokens: Int = 48) { self.maxNewTokens = maxNewTokens }

    /// The candidates that `sft` already answers (greedy) with gold ≥ `expertGold`.
    public func expertAligned(sft: GPT, candidates: [PromptRecord]) throws -> [PromptRecord] {
        Self.expertAligned(candidates, responses: try respond(sft, candidates).map(\.text))
    }

    /// The candidates whose response (same order) has gold ≥ `expertGold`.
    public static func expertAligned(_ candidates: [PromptRecord], responses: [String]) -> [PromptRecord] {
        zip(candidates, responses).filter { c, r in (Benchmark.gold(prompt: c.prompt, response: r, task: c.task) ?? 0) >= expertGold }.map(\.0)
    }

    /// One point of the over-optimisation curve, from sampled responses (T = `temperature`,
    /// `samplesPerPrompt` per prompt): mean gold and proxy, the sequence KL to the reference on the
    /// same samples (Σ over a response's tokens of log π − log π_ref, mean over responses), length,
    /// the fraction without EOS, and win / lose / tie against `sftSamples` (the SFT model's samples of
    /// the same prompts, sample for sample) when given.
    public struct CurvePoint: Codable, Sendable {
        public var gold: Double
        /// The answer line's score alone (gold without the verbosity penalty) and the mean tail length
        /// in characters: how much of a gold change is correctness and how much verbosity.
        public var answerScore: Double
        public var tailLength: Double
        public var proxy: Double?
        public var kl: Double
        public var length: Double
        public var noEOS: Double
        public var goldByTask: [String: Double]
        public var win: Double?
        public var lose: Double?
        public var tie: Double?
    }

    public struct Samples: Sendable {
        public var prompts: [PromptRecord]
        public var texts: [String]
        public var ids: [[Int32]]
        public var logp: [[Float]]
        public var gold: [Double]
    }

    /// `samplesPerPrompt` sampled responses per prompt (prompt-major), seeded.
    public func sample(_ model: GPT, _ prompts: [PromptRecord], seed: UInt64) throws -> Samples {
        let codec = model.codec
        var rows: [PromptRecord] = []
        for p in prompts { rows += Array(repeating: p, count: samplesPerPrompt) }
        var out = Samples(prompts: rows, texts: [], ids: [], logp: [], gold: [])
        var start = 0
        while start < rows.count {
            let chunk = rows[start..<min(start + batchSize, rows.count)]
            let ids = try chunk.map { try codec.promptIds(text: $0.prompt, messages: $0.messages) }
            let room = model.config.nPositions - (ids.map(\.count).max() ?? 0)
            var opts = SamplingOptions(temperature: temperature, maxNewTokens: min(maxNewTokens, room))
            opts.seed = seed &+ UInt64(start)
            for g in try Generator(model: model).generate(prompts: ids, options: opts) {
                out.texts.append(codec.decodeResponse(g.outputIds))
                out.ids.append(g.outputIds)
                out.logp.append(g.logprobs)
            }
            start = chunk.endIndex
        }
        out.gold = rows.indices.map { Benchmark.gold(prompt: rows[$0].prompt, response: out.texts[$0], task: rows[$0].task) ?? .nan }
        return out
    }

    /// `samples`: the policy's samples of `prompts` at `seed` when already drawn (step 0 of a curve
    /// is the SFT model, whose samples the curve already holds).
    public func curvePoint(policy: GPT, reference: GPT, scorer: GPT?, prompts: [PromptRecord], seed: UInt64,
                           sftSamples: Samples? = nil, samples: Samples? = nil) throws -> CurvePoint {
        let s = try samples ?? sample(policy, prompts, seed: seed)
        let prefix = try s.prompts.map { try policy.codec.promptIds(text: $0.prompt, messages: $0.messages) }
        var kl = 0.0
        var start = 0
        while start < s.prompts.count {
            let range = start..<min(start + batchSize, s.prompts.count)
            let batch = SequenceBatch.make(range.map { prefix[$0] + s.ids[$0] })
            reference.forward(batch, inferenceOnly: true)
            for (k, i) in range.enumerated() {
                for (j, token) in s.ids[i].enumerated() {
                    kl += Double(s.logp[i][j]) - SequenceBatch.logProb(reference.logits, row: batch.start(ofRow: k) + prefix[i].count + j - 1,
                                                                       v: reference.config.vocabSize, target: token)
                }
            }
            start = range.upperBound
        }
        let n = Double(max(s.prompts.count, 1))
        func mean(_ xs: [Double]) -> Double { xs.isEmpty ? .nan : xs.reduce(0, +) / Double(xs.count) }
        let proxy = scorer.map { mean(Scoring.sequenceScores($0, sequences: s.prompts.indices.map { prefix[$0] + s.ids[$0] }, promptTokens: prefix.map(\.count))) }
        var byTask: [String: [Double]] = [:]
        for (p, g) in zip(s.prompts, s.gold) where !g.isNaN { byTask[p.task, default: []].append(g) }
        let answers = s.prompts.indices.compactMap { i in
            Benchmark.family(s.prompts[i].task)?.score(prompt: s.prompts[i].prompt, answer: Text.firstLine(s.texts[i]))
        }
        var point = CurvePoint(gold: mean(s.gold.filter { !$0.isNaN }), answerScore: mean(answers),
                               tailLength: mean(s.texts.map { Double(Verbosity.tail($0).count) }), proxy: proxy, kl: kl / n,
                               length: mean(s.texts.map { Double($0.count) }),
                               noEOS: Double(s.ids.filter { $0.last != policy.codec.eos }.count) / n,
                               goldByTask: byTask.mapValues(mean))
        if let sft = sftSamples, sft.gold.count == s.gold.count {
            let judged = s.gold.indices.filter { !s.gold[$0].isNaN && !sft.gold[$0].isNaN }
            let m = Double(max(judged.count, 1))
            point.win = Double(judged.filter { s.gold[$0] - sft.gold[$0] > tieEpsilon }.count) / m
            point.lose = Double(judged.filter { sft.gold[$0] - s.gold[$0] > tieEpsilon }.count) / m
            point.tie = 1 - point.win! - point.lose!
        }
        return point
    }

    public struct Row: Codable, Sendable {
        public var task: String
        public var prompts: Int
        public var win: Double
        public var lose: Double
        public var tie: Double
        public var goldPolicy: Double
        public var goldSFT: Double
        public var proxyPolicy: Double?
        public var proxySFT: Double?
        public var kl: Double
        public var lengthPolicy: Double
        public var lengthSFT: Double
    }

    /// Greedy responses of `model` and their per-token log-probs under `reference` and the model.
    public func respond(_ model: GPT, _ prompts: [PromptRecord]) throws -> [(text: String, ids: [Int32], logp: [Float])] {
        let codec = model.codec
        var out: [(String, [Int32], [Float])] = []
        var start = 0
        while start < prompts.count {
            let chunk = prompts[start..<min(start + batchSize, prompts.count)]
            let ids = try chunk.map { try codec.promptIds(text: $0.prompt, messages: $0.messages) }
            let room = model.config.nPositions - (ids.map(\.count).max() ?? 0)
            let gens = try Generator(model: model).generate(prompts: ids, options: SamplingOptions(greedy: true, maxNewTokens: min(maxNewTokens, room)))
            out += gens.map { (codec.decodeResponse($0.outputIds), $0.outputIds, $0.logprobs) }
            start += chunk.count
        }
        return out
    }

    /// Greedy win and lose rates of `policy` against the SFT model's greedy responses on `prompts`, by
    /// the gold scorer alone: what a curve records at every snapshot (`compare` adds KL, proxy and
    /// per-task rows, which only the final table shows).
    public func greedyWinLose(policy: GPT, prompts: [PromptRecord],
                              sftResponses: [(text: String, ids: [Int32], logp: [Float])]) throws -> (win: Double, lose: Double) {
        let pol = try respond(policy, prompts)
        let judged = prompts.indices.compactMap { i -> (Double, Double)? in
            guard let gp = Benchmark.gold(prompt: prompts[i].prompt, response: pol[i].text, task: prompts[i].task),
                  let gs = Benchmark.gold(prompt: prompts[i].prompt, response: sftResponses[i].text, task: prompts[i].task),
                  !gp.isNaN, !gs.isNaN else { return nil }
            return (gp, gs)
        }
        let n = Double(max(judged.count, 1))
        return (Double(judged.filter { $0.0 - $0.1 > tieEpsilon }.count) / n, Double(judged.filter { $0.1 - $0.0 > tieEpsilon }.count) / n)
    }

    /// `sftResponses`: the SFT model's greedy responses to `prompts`, when already known (a curve
    /// compares every snapshot with the same SFT responses).
    public func compare(policy: GPT, sft: GPT, reference: GPT, scorer: GPT?, prompts: [PromptRecord],
                        sftResponses: [(text: String, ids: [Int32], logp: [Float])]? = nil) throws -> [Row] {
        let pol = try respond(policy, prompts), base = try sftResponses ?? respond(sft, prompts)
        let prefix = try prompts.map { try policy.codec.promptIds(text: $0.prompt, messages: $0.messages) }
        // KL(π‖π_ref) estimated on the policy's greedy responses: mean over tokens of log π − log π_ref.
        var kl = [Double](repeating: 0, count: prompts.count)
        var start = 0
        while start < prompts.count {
            let range = start..<min(start + batchSize, prompts.count)
            let seqs = range.map { prefix[$0] + pol[$0].ids }
            let batch = SequenceBatch.make(seqs)
            reference.forward(batch, inferenceOnly: true)
            for (k, i) in range.enumerated() where !pol[i].ids.isEmpty {
                var s = 0.0
                for (j, tokId) in pol[i].ids.enumerated() {
                    let ref = SequenceBatch.logProb(reference.logits, row: batch.start(ofRow: k) + prefix[i].count + j - 1, v: reference.config.vocabSize, target: tokId)
                    s += Double(pol[i].logp[j]) - ref
                }
                kl[i] = s / Double(pol[i].ids.count)
            }
            start = range.upperBound
        }
        let proxyPol = scorer.map { Scoring.sequenceScores($0, sequences: prompts.indices.map { prefix[$0] + pol[$0].ids }, promptTokens: prefix.map(\.count)) }
        let proxySFT = scorer.map { Scoring.sequenceScores($0, sequences: prompts.indices.map { prefix[$0] + base[$0].ids }, promptTokens: prefix.map(\.count)) }
        let gp = prompts.indices.map { Benchmark.gold(prompt: prompts[$0].prompt, response: pol[$0].text, task: prompts[$0].task) ?? .nan }
        let gs = prompts.indices.map { Benchmark.gold(prompt: prompts[$0].prompt, response: base[$0].text, task: prompts[$0].task) ?? .nan }
        func row(_ name: String, _ idx: [Int]) -> Row {
            let judged = idx.filter { !gp[$0].isNaN && !gs[$0].isNaN }
            let n = Double(max(judged.count, 1))
            let win = Double(judged.filter { gp[$0] - gs[$0] > tieEpsilon }.count) / n
            let lose = Double(judged.filter { gs[$0] - gp[$0] > tieEpsilon }.count) / n
            func mean(_ xs: [Double]) -> Double { xs.isEmpty ? .nan : xs.reduce(0, +) / Double(xs.count) }
            return Row(task: name, prompts: idx.count, win: win, lose: lose, tie: judged.isEmpty ? 0 : 1 - win - lose,
                       goldPolicy: mean(judged.map { gp[$0] }), goldSFT: mean(judged.map { gs[$0] }),
                       proxyPolicy: proxyPol.map { p in mean(idx.map { p[$0] }) }, proxySFT: proxySFT.map { p in mean(idx.map { p[$0] }) },
                       kl: mean(idx.map { kl[$0] }), lengthPolicy: mean(idx.map { Double(pol[$0].text.count) }),
                       lengthSFT: mean(idx.map { Double(base[$0].text.count) }))
        }
        var rows = [row("all", Array(prompts.indices))]
        for task in Set(prompts.map(\.task)).sorted() { rows.append(row(task, prompts.indices.filter { prompts[$0].task == task })) }
        return rows
    }

    /// The seed of the curve's sampled responses (the same prompts and seed at every point).
    public static let curveSeed: UInt64 = 0xC0FE

    /// The prompt sets of the curve protocol: the test prompts (sampled and greedy) and the two forget
    /// sets (greedy), read from a benchmark data folder; an empty or absent forget set is skipped.
    public struct CurveSets {
        public var test: [PromptRecord]
        public var greedy: [(name: String, prompts: [PromptRecord])]

        public init(dataDir: String, note: (String) -> Void) throws {
            test = try PromptRecord.read("\(dataDir)/test_prompts.jsonl")
            greedy = [("test", test)]
            for name in ["forget", "forget_sft_only"] {
                let file = "\(dataDir)/\(name).jsonl"
                let prompts = FileManager.default.fileExists(atPath: file) ? try PromptRecord.read(file) : []
                if prompts.isEmpty { note("\(name) set is empty or absent: not evaluated") } else { greedy.append((name, prompts)) }
            }
        }
    }

    /// Evaluates a PPO run folder along training: step 0 (the SFT model), every snapshot in
    /// PPO_DIR/snapshots, and the final policy (PPO_DIR/checkpoint at `finalStep`). Each point is a
    /// `CurvePoint` on the test prompts plus greedy win / lose against SFT on every set; the records go
    /// to PPO_DIR/curve.jsonl. Returns them and the final policy's greedy rows per set.
    public func curve(ppoDir: String, finalStep: Int, sft: GPT, scorer: GPT, sets: CurveSets, sftSamples: Samples? = nil,
                      note: (String) -> Void = { _ in }) throws -> (curve: [[String: Any]], final: [String: Any]) {
        let baseSamples = try sftSamples ?? sample(sft, sets.test, seed: Self.curveSeed)
        let snapDir = ppoDir + "/snapshots"
        var steps = [0] + ((try? FileManager.default.contentsOfDirectory(atPath: snapDir)) ?? [])
            .compactMap { $0.hasPrefix("step-") ? Int($0.dropFirst(5)) : nil }.filter { $0 <= finalStep }.sorted()
        if steps.last != finalStep { steps.append(finalStep) }
        var curve: [[String: Any]] = []
        var final: [String: Any] = [:]
        let sftGreedy = try sets.greedy.map { try respond(sft, $0.prompts) }
        for step in steps {
            let snapshot = "\(snapDir)/step-\(step)"
            let policy = step == 0 ? sft : try Checkpoint.load(FileManager.default.fileExists(atPath: snapshot) ? snapshot : ppoDir + "/checkpoint")
            let point = try curvePoint(policy: policy, reference: sft, scorer: scorer, prompts: sets.test, seed: Self.curveSeed,
                                       sftSamples: baseSamples, samples: step == 0 ? baseSamples : nil)
            var record = try JSONSerialization.jsonObject(with: JSONEncoder().encode(point)) as! [String: Any]
            record["step"] = step
            for (k, (name, prompts)) in sets.greedy.enumerated() {
                if step == finalStep {
                    let rows = try compare(policy: policy, sft: sft, reference: sft, scorer: scorer, prompts: prompts, sftResponses: sftGreedy[k])
                    (record["\(name)_greedy_win"], record["\(name)_greedy_lose"]) = (rows[0].win, rows[0].lose)
                    note("vs SFT, \(name) set (greedy):\n" + Self.table(rows))
                    final[name] = try JSONSerialization.jsonObject(with: JSONEncoder().encode(rows))
                } else if step == 0 {
                    // The SFT model against its own greedy responses.
                    (record["\(name)_greedy_win"], record["\(name)_greedy_lose"]) = (0.0, 0.0)
                } else {
                    let r = try greedyWinLose(policy: policy, prompts: prompts, sftResponses: sftGreedy[k])
                    (record["\(name)_greedy_win"], record["\(name)_greedy_lose"]) = (r.win, r.lose)
                }
            }
            let forget = (record["forget_greedy_win"] as? Double).map { $0 - (record["forget_greedy_lose"] as? Double ?? 0) }
            note(String(format: "step %d: sampled gold %.3f (answer %.3f, tail %.1f chars), proxy %.3f, KL %.2f nats, length %.1f, no EOS %.0f%%, win/lose vs SFT %.1f/%.1f%%, forget win-lose %@",
                        step, point.gold, point.answerScore, point.tailLength, point.proxy ?? .nan, point.kl, point.length, 100 * point.noEOS, 100 * (point.win ?? .nan),
                        100 * (point.lose ?? .nan), forget.map { String(format: "%+.1f%%", 100 * $0) } ?? "-"))
            curve.append(record)
        }
        var lines = Data()
        for record in curve { lines += try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) + [0x0A] }
        try AtomicFile.write(lines, to: ppoDir + "/curve.jsonl")
        return (curve, final)
    }

    public static func table(_ rows: [Row]) -> String {
        var s = [TextTable.left("task", 8), TextTable.right("n", 5), TextTable.right("win", 7), TextTable.right("lose", 7), TextTable.right("tie", 7),
                 TextTable.right("gold", 7), TextTable.right("gold_sft", 9), TextTable.right("proxy", 7), TextTable.right("prx_sft", 8),
                 TextTable.right("kl", 7), TextTable.right("len", 6)].joined(separator: " ") + "\n"
        for r in rows {
            s += [TextTable.left(r.task, 8), TextTable.right("\(r.prompts)", 5), TextTable.percent(r.win, 7), TextTable.percent(r.lose, 7),
                  TextTable.percent(r.tie, 7), TextTable.number(r.goldPolicy, 7), TextTable.number(r.goldSFT, 9),
                  TextTable.right(r.proxyPolicy.map { String(format: "%.3f", $0) } ?? "-", 7),
                  TextTable.right(r.proxySFT.map { String(format: "%.3f", $0) } ?? "-", 8),
                  TextTable.number(r.kl, 7), TextTable.number(r.lengthPolicy, 6, digits: 1)].joined(separator: " ") + "\n"
        }
        return s
    }
}


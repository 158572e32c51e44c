import BallastEvaluation
import BallastTestSupport
import Foundation
import FoundationXML
import Testing
#if canImport(FoundationXML)
#endif

@Suite("Run report")
struct ReportTests {
    /// A synthetic pipeline run folder with every file the report reads.
    func fakeRun() throws -> String {
        let dir = scratchDirectory("report")
        let fm = FileManager.default
        for d in ["rm", "am", "rm-ppo", "am-ppo", "am-ppo-sr"] { try fm.createDirectory(atPath: dir + "/" + d, withIntermediateDirectories: true) }
        func rows(_ shift: Double) -> [[String: Any]] {
            ["all", "qa", "code"].enumerated().map { i, t in
                ["task": t, "pairs": 10, "accuracy": 0.6, "ece": 0.05, "scoreMean": shift * Double(i), "scoreStd": 0.3,
                 "histogram": [1, 2, 3, 4, 5, 4, 3, 2, 1, 0]]
            }
        }
        func rep(_ shift: Double) -> [String: Any] { ["rows": rows(shift), "histogram_range": [-1.0, 1.0], "task_mean_spread": shift] }
        try JSONSerialization.data(withJSONObject: ["r": rep(0.5)]).write(to: URL(fileURLWithPath: dir + "/rm/eval.json"))
        try JSONSerialization.data(withJSONObject: ["r": rep(0.5), "a": rep(0.1)]).write(to: URL(fileURLWithPath: dir + "/am/eval.json"))
        for arm in ["rm-ppo", "am-ppo", "am-ppo-sr"] {
            let lines = (1...5).map { s in "{\"step\": \(s), \"score\": \(Double(s) * 0.1), \"gold\": 0.5, \"kl\": 0.01, \"response_length\": 9}" }
            try lines.joined(separator: "\n").write(toFile: "\(dir)/\(arm)/metrics.jsonl", atomically: true, encoding: .utf8)
            // A curve that rises then falls: gold = 0.6 + d(0.1 − 0.1 log d) at d = √KL.
            let curve = [0.0, 0.5, 1.0, 2.0, 3.0].enumerated().map { i, d in
                "{\"step\": \(i * 10), \"kl\": \(d * d), \"gold\": \(0.6 + (d > 0 ? d * (0.1 - 0.1 * log(d)) : 0)), \"proxy\": \(d), "
                    + "\"forget_greedy_win\": 0.1, \"forget_greedy_lose\": \(0.1 * Double(i)), \"forget_sft_only_greedy_win\": 0, \"forget_sft_only_greedy_lose\": 0.05}"
            }
            try curve.joined(separator: "\n").write(toFile: "\(dir)/\(arm)/curve.jsonl", atomically: true, encoding: .utf8)
        }
        // Forget set 3 code + 1 qa; rehearsal 1 code + 3 qa: code is under-rehearsed (75% against 25%).
        for d in ["data", "select"] { try fm.createDirectory(atPath: dir + "/" + d, withIntermediateDirectories: true) }
        func jsonl(_ tasks: [String]) -> String { tasks.map { "{\"prompt\": \"p\", \"task\": \"\($0)\"}" }.joined(separator: "\n") + "\n" }
        try jsonl(["code", "code", "code", "qa"]).write(toFile: dir + "/data/forget.jsonl", atomically: true, encoding: .utf8)
        try jsonl(["code", "qa", "qa", "qa"]).write(toFile: dir + "/select/rehearsal.jsonl", atomically: true, encoding: .utf8)
        try jsonl(["code", "code", "sort"]).write(toFile: dir + "/select/ppo_prompts.jsonl", atomically: true, encoding: .utf8)
        let row: [String: Any] = ["task": "all", "win": 0.2, "lose": 0.1, "tie": 0.7]
        let ev = ["rm-ppo": ["test": [row], "forget": [row]], "am-ppo": ["test": [row], "forget": [row]], "am-ppo-sr": ["test": [row], "forget": [row]]]
        try JSONSerialization.data(withJSONObject: ev).write(to: URL(fileURLWithPath: dir + "/eval.json"))
        return dir
    }

    @Test("the page is well-formed XHTML with the three kinds of chart")
    func wellFormed() throws {
        let dir = try fakeRun()
        let path = try RunReport.write(runDir: dir)
        let html = try String(contentsOfFile: path, encoding: .utf8)
        let parser = XMLParser(data: Data(html.replacingOccurrences(of: "<!DOCTYPE html>", with: "").utf8))
        #expect(parser.parse(), "parse error: \(String(describing: parser.parserError))")
        #expect(html.components(separatedBy: "<svg").count - 1 == 2 + 4 + 4 + 2, "2 distributions, 4 training curves, gold and proxy against √KL and 2 forget curves, 2 win/lose charts")
        #expect(html.contains("rm-ppo: α 0.100, β 0.100, peak at √KL 1.00"), "the Gao fit recovers the planted curve: exp(α/β − 1) = 1")
        #expect(html.contains("<polyline") && html.contains("am-ppo-sr") && html.contains("spread of per-task means"))
        #expect(!html.contains("Not available"))
        #expect(html.contains("Rehearsal set by task (selection mode: selective)"))
        #expect(html.contains("<tr><td>code</td><td>3</td><td>1</td><td>2</td></tr>") && html.contains("<tr><td>sort</td><td>0</td><td>0</td><td>1</td></tr>"))
        #expect(html.contains("less than half their share of the forget set: code (75% of the forget set, 25% of the rehearsal set)."))
    }

    @Test("missing parts are listed, not fatal")
    func partialRun() throws {
        let dir = scratchDirectory("report-empty")
        let html = try String(contentsOfFile: try RunReport.write(runDir: dir), encoding: .utf8)
        #expect(html.contains("Not available") && html.contains("eval.json not found") && html.contains("select/rehearsal.jsonl not found"))
    }
}

import BallastBenchmark
import BallastData
import BallastModel
import Foundation

/// What `ballast eval-rm` reports: accuracy and ECE overall and per task, and per-task score
/// distributions (mean, std, 10-bin histogram over the overall score range) of all responses.
public struct RewardReport {
    public struct Row: Codable {
        public var task: String
        public var pairs: Int
        public var accuracy: Double
        public var ece: Double
        public var scoreMean: Double
        public var scoreStd: Double
        public var histogram: [Int]
    }

    public var rows: [Row] = []
    public var histogramRange: ClosedRange<Double> = 0...0

    /// What the labels allow and what the spurious feature alone gets, beside the model's accuracy.
    public struct LabelBaselines: Codable {
        /// Mean over pairs of max(p, 1 − p), p the annotator's probability of the recorded choice: the
        /// best expected accuracy any model can have on these labels.
        public var bayesCeiling: Double?
        /// Accuracy of "the longer response wins" (equal lengths count half).
        public var longerWins: Double
        /// Pairs whose responses differ by at most `lengthMatchedChars` characters, and the model's accuracy on them.
        public var lengthMatchedPairs: Int
        public var lengthMatchedAccuracy: Double
    }
    public static let lengthMatchedChars = 2
    public var labels: LabelBaselines?

    public init(model: GPT, pairs: [EncodedPair], head: Int) {
        let s = PreferenceScorer.score(model, pairs, head: head)
        self.init(chosen: s.chosen, rejected: s.rejected, tasks: pairs.map(\.task))
    }

    /// `pairs` (the raw pairs behind the scores, same order) adds the label baselines.
    public init(chosen c: [Double], rejected r: [Double], tasks: [String], pairs: [PreferencePair]? = nil) {
        if let pairs {
            let ps = pairs.compactMap(\.annotatorP)
            let longer = pairs.map { p -> Double in p.chosen.count > p.rejected.count ? 1 : p.chosen.count == p.rejected.count ? 0.5 : 0 }
            let matched = pairs.indices.filter { abs(pairs[$0].chosen.count - pairs[$0].rejected.count) <= Self.lengthMatchedChars }
            labels = LabelBaselines(bayesCeiling: ps.count == pairs.count && !ps.isEmpty ? ps.map { max($0, 1 - $0) }.reduce(0, +) / Double(ps.count) : nil,
                                    longerWins: longer.reduce(0, +) / Double(max(longer.count, 1)), lengthMatchedPairs: matched.count,
                                    lengthMatchedAccuracy: PreferenceLosses.accuracy(chosen: matched.map { c[$0] }, rejected: matched.map { r[$0] }))
        }
        let all = c + r
        let lo = all.min() ?? 0, hi = all.max() ?? 0
        histogramRange = lo...hi
        func row(_ name: String, _ idx: [Int]) -> Row {
            let cs = idx.map { c[$0] }, rs = idx.map { r[$0] }, scores = cs + rs
            let mean = scores.reduce(0, +) / Double(max(scores.count, 1))
            let std = (scores.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(scores.count, 1))).squareRoot()
            var hist = [Int](repeating: 0, count: 10)
            for s in scores { hist[hi > lo ? min(9, Int((s - lo) / (hi - lo) * 10)) : 0] += 1 }
            return Row(task: name, pairs: idx.count, accuracy: PreferenceLosses.accuracy(chosen: cs, rejected: rs),
                       ece: PreferenceLosses.expectedCalibrationError(chosen: cs, rejected: rs), scoreMean: mean, scoreStd: std, histogram: hist)
        }
        rows.append(row("all", Array(c.indices)))
        for task in Set(tasks).sorted() { rows.append(row(task, tasks.indices.filter { tasks[$0] == task })) }
    }

    /// Spread across tasks of the per-task mean score (max − min): the imbalance the AM regulates.
    public var taskMeanSpread: Double {
        let means = rows.dropFirst().map(\.scoreMean)
        return (means.max() ?? 0) - (means.min() ?? 0)
    }

    /// Largest over smallest per-task score std, and the spread of per-task means over the overall std:
    /// how differently the model scores the tasks (the paper's Fig. 1a).
    public var taskStdRatio: Double {
        let stds = rows.dropFirst().map(\.scoreStd)
        return (stds.max() ?? 0) / max(stds.min() ?? 0, 1e-12)
    }
    public var taskMeanSpreadOverStd: Double { taskMeanSpread / max(rows.first?.scoreStd ?? 0, 1e-12) }

    public func table() -> String {
        var s = [TextTable.left("task", 8), TextTable.right("pairs", 6), TextTable.right("accuracy", 9), TextTable.right("ECE", 7),
                 TextTable.right("mean", 8), TextTable.right("std", 7)].joined(separator: " ")
        s += String(format: "  histogram over [%.2f, %.2f]\n", histogramRange.lowerBound, histogramRange.upperBound)
        for r in rows {
            s += [TextTable.left(r.task, 8), TextTable.right("\(r.pairs)", 6), TextTable.percent(r.accuracy, 9), TextTable.percent(r.ece, 7),
                  TextTable.number(r.scoreMean, 8), TextTable.number(r.scoreStd, 7)].joined(separator: " ")
            s += "  " + r.histogram.map(String.init).joined(separator: " ") + "\n"
        }
        s += String(format: "spread of per-task mean scores (max - min): %.3f (%.2f of the overall std); largest / smallest per-task std: %.2f",
                    taskMeanSpread, taskMeanSpreadOverStd, taskStdRatio)
        if let l = labels {
            s += "\nlabels: " + (l.bayesCeiling.map { String(format: "Bayes ceiling %.1f%%, ", 100 * $0) } ?? "")
            s += String(format: "\"longer wins\" %.1f%%; length-matched pairs (|Δ| ≤ %d chars): %d, accuracy %.1f%%",
                        100 * l.longerWins, Self.lengthMatchedChars, l.lengthMatchedPairs, 100 * l.lengthMatchedAccuracy)
        }
        return s
    }

    public func json() throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        struct Out: Codable {
            var rows: [Row]; var histogram_range: [Double]; var task_mean_spread: Double
            var task_mean_spread_over_std: Double; var task_std_ratio: Double; var labels: LabelBaselines?
        }
        return try enc.encode(Out(rows: rows, histogram_range: [histogramRange.lowerBound, histogramRange.upperBound], task_mean_spread: taskMeanSpread,
                                  task_mean_spread_over_std: taskMeanSpreadOverStd, task_std_ratio: taskStdRatio, labels: labels))
    }
}

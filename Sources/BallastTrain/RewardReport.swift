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

    public init(model: GPT, pairs: [EncodedPair], head: Int) {
        let s = PreferenceScorer.score(model, pairs, head: head)
        self.init(chosen: s.chosen, rejected: s.rejected, tasks: pairs.map(\.task))
    }

    public init(chosen c: [Double], rejected r: [Double], tasks: [String]) {
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

    public func table() -> String {
        var s = [TextTable.left("task", 8), TextTable.right("pairs", 6), TextTable.right("accuracy", 9), TextTable.right("ECE", 7),
                 TextTable.right("mean", 8), TextTable.right("std", 7)].joined(separator: " ")
        s += String(format: "  histogram over [%.2f, %.2f]\n", histogramRange.lowerBound, histogramRange.upperBound)
        for r in rows {
            s += [TextTable.left(r.task, 8), TextTable.right("\(r.pairs)", 6), TextTable.percent(r.accuracy, 9), TextTable.percent(r.ece, 7),
                  TextTable.number(r.scoreMean, 8), TextTable.number(r.scoreStd, 7)].joined(separator: " ")
            s += "  " + r.histogram.map(String.init).joined(separator: " ") + "\n"
        }
        s += String(format: "spread of per-task mean scores (max - min): %.3f", taskMeanSpread)
        return s
    }

    public func json() throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        struct Out: Codable { var rows: [Row]; var histogram_range: [Double]; var task_mean_spread: Double }
        return try enc.encode(Out(rows: rows, histogram_range: [histogramRange.lowerBound, histogramRange.upperBound], task_mean_spread: taskMeanSpread))
    }
}

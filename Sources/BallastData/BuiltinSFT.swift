import BallastRandom
import Foundation

/// A small built-in SFT dataset so that the first command trains something real with no downloads:
/// arithmetic, string reversal, upper-casing, sorting digits and counting letters. Each family has a
/// fixed prompt template and one correct completion. The full multi-task benchmark (with gold scorers
/// and annotators) is a separate issue and may replace this.
public enum BuiltinSFT {
    public static let tasks = ["add", "reverse", "upper", "sort", "count"]

    /// Deterministic examples for `seed`; task families cycle so each gets an equal share.
    public static func generate(count: Int, seed: UInt64) -> [SFTExample] {
        var rng = SplitMix64(seed: seed)
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        func word(_ lo: Int, _ hi: Int) -> String {
            String((0..<rng.int(lo...hi)).map { _ in letters[rng.int(0...25)] })
        }
        return (0..<count).map { i in
            let task = tasks[i % tasks.count]
            let prompt: String, completion: String
            switch task {
            case "add":
                let a = rng.int(0...99), b = rng.int(0...99)
                prompt = "\(a)+\(b)="
                completion = "\(a + b)"
            case "reverse":
                let w = word(3, 8)
                prompt = "reverse \(w):"
                completion = String(w.reversed())
            case "upper":
                let w = word(3, 8)
                prompt = "upper \(w):"
                completion = w.uppercased()
            case "sort":
                let digits = (0..<rng.int(3...7)).map { _ in rng.int(0...9) }
                prompt = "sort \(digits.map(String.init).joined()):"
                completion = digits.sorted().map(String.init).joined()
            default:
                let w = word(4, 10)
                let ch = w[w.index(w.startIndex, offsetBy: rng.int(0...(w.count - 1)))]
                prompt = "count \(ch) in \(w):"
                completion = "\(w.filter { $0 == ch }.count)"
            }
            return SFTExample(prompt: prompt, completion: completion, task: task, id: "\(task)-\(seed)-\(i)")
        }
    }

    /// Fraction of examples whose `generated` completion is exactly right.
    public static func exactMatch(_ examples: [SFTExample], _ generated: [String]) -> Double {
        guard !examples.isEmpty else { return 0 }
        let hits = zip(examples, generated).filter { $0.completion == $1 }.count
        return Double(hits) / Double(examples.count)
    }
}

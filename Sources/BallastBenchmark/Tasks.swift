import BallastKernels
import Foundation

/// One task family of the built-in benchmark: a prompt generator, an expert (SFT) response, a graded
/// gold scorer in [0, 1], and the noise level of its simulated annotator.
///
/// Gold scores are computed from the prompt text alone, so they also grade user-made prompts of the
/// same form and any policy's responses. Every prompt ends with "\n"; responses are plain text
/// (the tokenizer adds EOS).
public protocol TaskFamily: Sendable {
    var name: String { get }
    /// Temperature τ of the annotator's Bradley–Terry choice: P(a ≻ b) = σ((gold_a − gold_b)/τ).
    var annotatorNoise: Double { get }
    func sample(_ rng: inout SeededRNG) -> (prompt: String, expert: String)
    /// Gold score of `response` for `prompt`, or nil when the prompt is not of this family.
    func gold(prompt: String, response: String) -> Double?
}

extension SeededRNG {
    mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + Int(next() % UInt64(r.count)) }
    mutating func pick<T>(_ xs: [T]) -> T { xs[int(0...(xs.count - 1))] }
}

/// Text helpers shared by the scorers.
enum Text {
    /// Edit distance (insertions, deletions, substitutions) over characters.
    static func levenshtein(_ a: String, _ b: String) -> Int {
        let x = Array(a), y = Array(b)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var prev = Array(0...y.count), cur = [Int](repeating: 0, count: y.count + 1)
        for i in 1...x.count {
            cur[0] = i
            for j in 1...y.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[y.count]
    }

    /// 1 − normalised edit distance, in [0, 1].
    static func similarity(_ a: String, _ b: String) -> Double {
        let m = max(a.count, b.count)
        return m == 0 ? 1 : 1 - Double(levenshtein(a, b)) / Double(m)
    }

    /// The response's first line, trimmed: answers are one line; what follows is rambling.
    static func firstLine(_ s: String) -> String {
        String(s.split(separator: "\n", omittingEmptySubsequences: false).first ?? "").trimmingCharacters(in: .whitespaces)
    }

    /// Rambling after the answer costs a little: 0.05 per extra line, at most 0.3.
    static func tailPenalty(_ s: String) -> Double {
        let extra = s.split(separator: "\n").dropFirst().filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.count
        return min(0.3, 0.05 * Double(extra))
    }

    static func integers(_ s: String) -> [Int] {
        var out: [Int] = [], cur = "", sign = 1
        func flush() { if let v = Int(cur) { out.append(sign * v) }; cur = ""; sign = 1 }
        var prev: Character = " "
        for ch in s {
            if ch.isASCII && ch.isNumber { cur.append(ch) } else {
                flush()
                if ch == "-" && !(prev.isASCII && prev.isNumber) { sign = -1 }
            }
            if !(ch == "-") && !(ch.isASCII && ch.isNumber) { sign = 1 }
            prev = ch
        }
        flush()
        return out
    }

    /// The text between `prefix` and `suffix` in `s`.
    static func between(_ s: String, _ prefix: String, _ suffix: String) -> String? {
        guard let a = s.range(of: prefix), let b = s.range(of: suffix, range: a.upperBound..<s.endIndex) else { return nil }
        return String(s[a.upperBound..<b.lowerBound])
    }
}

/// Arithmetic QA: "Q: What is 37 + 48?\nA:" → " 85". Exact answer 1; a wrong number gets up to 0.4
/// by closeness; no number 0.
public struct ArithmeticQA: TaskFamily {
    public let name = "qa"
    public let annotatorNoise = 0.05
    public init() {}

    public func sample(_ rng: inout SeededRNG) -> (prompt: String, expert: String) {
        let op = rng.pick(["+", "-", "*"])
        let a = op == "*" ? rng.int(2...19) : rng.int(10...99)
        let b = op == "*" ? rng.int(2...9) : rng.int(1...99)
        let ans = op == "+" ? a + b : op == "-" ? a - b : a * b
        return ("Q: What is \(a) \(op) \(b)?\nA:\n", "\(ans)")
    }

    func answer(_ prompt: String) -> Int? {
        guard let body = Text.between(prompt, "Q: What is ", "?") else { return nil }
        let parts = body.split(separator: " ")
        guard parts.count == 3, let a = Int(parts[0]), let b = Int(parts[2]) else { return nil }
        switch parts[1] {
        case "+": return a + b
        case "-": return a - b
        case "*": return a * b
        default: return nil
        }
    }

    public func gold(prompt: String, response: String) -> Double? {
        guard let ans = answer(prompt) else { return nil }
        guard let got = Text.integers(Text.firstLine(response)).first else { return 0 }
        let base = got == ans ? 1 : 0.4 * max(0, 1 - Double(abs(got - ans)) / Double(abs(ans) + 10))
        return max(0, base - Text.tailPenalty(response))
    }
}

/// Sorting: "Sort ascending: 5 3 9 1\n" → "1 3 5 9". Score = fraction of positions equal to the
/// sorted list (a response of the wrong length is compared position by position up to the longer).
public struct Sorting: TaskFamily {
    public let name = "sort"
    public let annotatorNoise = 0.1
    public init() {}

    public func sample(_ rng: inout SeededRNG) -> (prompt: String, expert: String) {
        let xs = (0..<rng.int(4...7)).map { _ in rng.int(0...99) }
        return ("Sort ascending: \(xs.map(String.init).joined(separator: " "))\n", xs.sorted().map(String.init).joined(separator: " "))
    }

    public func gold(prompt: String, response: String) -> Double? {
        guard prompt.hasPrefix("Sort ascending: ") else { return nil }
        let want = Text.integers(String(prompt.dropFirst(16))).sorted()
        guard !want.isEmpty else { return nil }
        let got = Text.integers(Text.firstLine(response))
        let n = max(want.count, got.count)
        let hits = zip(want, got).filter { $0 == $1 }.count
        return max(0, Double(hits) / Double(n) - Text.tailPenalty(response))
    }
}

/// String transformation: "Reverse the word: hello\n" → "olleh". Score = 1 − normalised edit distance.
public struct ReverseWord: TaskFamily {
    public let name = "reverse"
    public let annotatorNoise = 0.1
    public init() {}

    public func sample(_ rng: inout SeededRNG) -> (prompt: String, expert: String) {
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        let w = String((0..<rng.int(3...8)).map { _ in letters[rng.int(0...25)] })
        return ("Reverse the word: \(w)\n", String(w.reversed()))
    }

    public func gold(prompt: String, response: String) -> Double? {
        guard prompt.hasPrefix("Reverse the word: ") else { return nil }
        let w = Text.firstLine(String(prompt.dropFirst(18)))
        return max(0, Text.similarity(Text.firstLine(response), String(w.reversed())) - Text.tailPenalty(response))
    }
}

/// Counting: "How many times does 'a' appear in 'banana'?\n" → "3". Exact 1, off by one 0.4, else 0.
public struct Counting: TaskFamily {
    public let name = "count"
    public let annotatorNoise = 0.05
    public init() {}

    public func sample(_ rng: inout SeededRNG) -> (prompt: String, expert: String) {
        let letters = Array("abcde")
        let w = String((0..<rng.int(4...10)).map { _ in letters[rng.int(0...4)] })
        let c = letters[rng.int(0...4)]
        return ("How many times does '\(c)' appear in '\(w)'?\n", "\(w.filter { $0 == c }.count)")
    }

    public func gold(prompt: String, response: String) -> Double? {
        guard prompt.hasPrefix("How many times does '"), let c = Text.between(prompt, "does '", "'"),
              let w = Text.between(prompt, "appear in '", "'") else { return nil }
        let ans = w.filter { String($0) == c }.count
        guard let got = Text.integers(Text.firstLine(response)).first else { return 0 }
        let base = got == ans ? 1.0 : abs(got - ans) == 1 ? 0.4 : 0
        return max(0, base - Text.tailPenalty(response))
    }
}

/// Closed-book knowledge over a fixed table of fictional countries and capitals (the same table for
/// every seed): "What is the capital of Varnok?\n" → "Trelis". Score = 1 − normalised edit distance.
public struct CapitalFacts: TaskFamily {
    public let name = "fact"
    public let annotatorNoise = 0.15
    public static let table: [(country: String, capital: String)] = {
        var rng = SeededRNG(seed: 0xFAC7)
        let on = ["br", "c", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "th", "tr", "qu"]
        let vo = ["a", "e", "i", "o", "u", "ai", "ea"]
        let co = ["n", "r", "s", "th", "k", "l", "m", "x", "nd", "rk"]
        func word(_ syllables: Int) -> String {
            var w = (0..<syllables).map { _ in rng.pick(on) + rng.pick(vo) }.joined() + rng.pick(co)
            w = w.prefix(1).uppercased() + w.dropFirst()
            return w
        }
        var seen = Set<String>()
        var rows: [(String, String)] = []
        while rows.count < 40 {
            let country = word(2), capital = word(rng.int(1...2))
            if seen.insert(country).inserted { rows.append((country, capital)) }
        }
        return rows
    }()
    public init() {}

    public func sample(_ rng: inout SeededRNG) -> (prompt: String, expert: String) {
        let row = rng.pick(Self.table)
        return ("What is the capital of \(row.country)?\n", row.capital)
    }

    public func gold(prompt: String, response: String) -> Double? {
        guard let country = Text.between(prompt, "What is the capital of ", "?"),
              let row = Self.table.first(where: { $0.country == country }) else { return nil }
        return max(0, Text.similarity(Text.firstLine(response), row.capital) - Text.tailPenalty(response))
    }
}

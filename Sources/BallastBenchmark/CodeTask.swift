import BallastRandom
import Foundation

/// Code generation whose output is executed: "Write f(x) = x times 3 plus 1.\n" →
/// "def f(x): return x*3+1". The response is parsed as `def f(x): return EXPR` (EXPR over integers,
/// x, + - *, parentheses) and run on x ∈ {−2, …, 3}; the score is the fraction of inputs where it
/// returns the specified value. Code that does not parse scores 0.
public struct CodeGeneration: TaskFamily {
    public let name = "code"
    public let annotatorNoise = 0.1
    public init() {}

    /// The specification's shapes: words in the prompt and the expert's expression, with constants A, B
    /// (A always before B in the words).
    static let shapes: [(words: String, code: String)] = [
        ("x times A plus B", "x*A+B"),
        ("x times A minus B", "x*A-B"),
        ("x plus A, all times B", "(x+A)*B"),
        ("x squared plus B", "x*x+B"),
    ]

    static func fill(_ template: String, _ a: Int, _ b: Int) -> String {
        template.replacingOccurrences(of: "A", with: "\(a)").replacingOccurrences(of: "B", with: "\(b)")
    }

    public func problem(_ rng: inout SeededRNG) -> (prompt: String, answer: String, explanation: String) {
        let shape = rng.pick(Self.shapes), a = rng.int(2...9), b = rng.int(1...9)
        return ("Write f(x) = \(Self.fill(shape.words, a, b)).\n", "def f(x): return \(Self.fill(shape.code, a, b))",
                "# \(shape.code.contains("x*x") ? "quadratic" : "linear") in x")
    }

    /// The reference expression for a prompt: the shape whose words match with the constants masked.
    func reference(_ prompt: String) -> String? {
        guard let spec = Text.between(prompt, "Write f(x) = ", ".\n") else { return nil }
        let constants = Text.integers(spec)
        let masked = spec.replacingOccurrences(of: "[0-9]+", with: "#", options: .regularExpression)
        for shape in Self.shapes {
            let key = shape.words.replacingOccurrences(of: "A", with: "#").replacingOccurrences(of: "B", with: "#")
            guard key == masked else { continue }
            let a = shape.words.contains("A") ? constants.first : 0
            guard let a, let b = constants.last else { return nil }
            return Self.fill(shape.code, a, b)
        }
        return nil
    }

    public func score(prompt: String, answer line: String) -> Double? {
        guard let ref = reference(prompt), let want = Expr.parse(ref) else { return nil }
        guard let body = line.range(of: "return ").map({ String(line[$0.upperBound...]) }),
              line.hasPrefix("def f(x):"), let got = Expr.parse(body) else { return 0 }
        let inputs = -2...3
        let hits = inputs.filter { got.eval($0) == want.eval($0) }.count
        return Double(hits) / Double(inputs.count)
    }
}

/// A tiny integer expression language: the "interpreter" that executes generated code.
indirect enum Expr: Equatable {
    case x, num(Int), add(Expr, Expr), sub(Expr, Expr), mul(Expr, Expr)

    func eval(_ x: Int) -> Int? {
        switch self {
        case .x: return x
        case .num(let n): return n
        case .add(let a, let b): return a.eval(x).flatMap { l in b.eval(x).map { l &+ $0 } }
        case .sub(let a, let b): return a.eval(x).flatMap { l in b.eval(x).map { l &- $0 } }
        case .mul(let a, let b): return a.eval(x).flatMap { l in b.eval(x).map { l &* $0 } }
        }
    }

    /// Parses the whole string (spaces ignored) or returns nil.
    static func parse(_ s: String) -> Expr? {
        var p = Parser(chars: Array(s.filter { $0 != " " }))
        guard let e = p.sum(), p.i == p.chars.count else { return nil }
        return e
    }

    struct Parser {
        let chars: [Character]
        var i = 0
        var depth = 0

        mutating func sum() -> Expr? {
            guard var lhs = product() else { return nil }
            while i < chars.count, chars[i] == "+" || chars[i] == "-" {
                let op = chars[i]
                i += 1
                guard let rhs = product() else { return nil }
                lhs = op == "+" ? .add(lhs, rhs) : .sub(lhs, rhs)
            }
            return lhs
        }

        mutating func product() -> Expr? {
            guard var lhs = atom() else { return nil }
            while i < chars.count, chars[i] == "*" {
                i += 1
                guard let rhs = atom() else { return nil }
                lhs = .mul(lhs, rhs)
            }
            return lhs
        }

        mutating func atom() -> Expr? {
            guard i < chars.count else { return nil }
            if chars[i] == "x" { i += 1; return .x }
            if chars[i] == "(" {
                guard depth < 32 else { return nil }
                i += 1
                depth += 1
                let e = sum()
                depth -= 1
                guard let e, i < chars.count, chars[i] == ")" else { return nil }
                i += 1
                return e
            }
            var digits = ""
            while i < chars.count, chars[i].isASCII, chars[i].isNumber, digits.count < 9 { digits.append(chars[i]); i += 1 }
            return Int(digits).map(Expr.num)
        }
    }
}

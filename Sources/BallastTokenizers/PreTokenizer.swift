/// The split of text into pieces before BPE, for the regular expressions the supported model families
/// use. Each is a hand-written scanner that returns exactly what the regex (leftmost alternative,
/// greedy with backtracking, as Oniguruma runs it inside `tokenizers`) matches at a position: no regex
/// engine, so no per-call compilation and no UTF-16 offsets. Any other pattern is refused by name.
public enum PreTokenizerPattern: String, Sendable, CaseIterable {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// Llama 3: case-insensitive contractions, one leading non-letter glued to a word, numbers in
    /// runs of at most three, punctuation runs that keep their trailing newlines, newline runs.
    case llama3
    /// Qwen2: Llama 3's pattern with single digits (`\p{N}` instead of `\p{N}{1,3}`).
    case qwen2

    public static let expressions: [PreTokenizerPattern: String] = [
        .gpt2: #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#,
        .llama3: #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#,
        .qwen2: #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#,
    ]

    public init?(expression: String) {
        guard let p = Self.expressions.first(where: { $0.value == expression })?.key else { return nil }
        self = p
    }

    /// The pieces of `text`, as ranges of its scalars; they cover the text in order.
    public func split(_ s: [Unicode.Scalar]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        while i < s.count {
            let end = pieceEnd(s, from: i)
            out.append(i..<end)
            i = end
        }
        return out
    }

    func pieceEnd(_ s: [Unicode.Scalar], from i: Int) -> Int {
        let n = s.count
        @inline(__always) func run(_ from: Int, _ test: (Unicode.Scalar) -> Bool) -> Int {
            var j = from
            while j < n && test(s[j]) { j += 1 }
            return j
        }
        if let c = contraction(s, at: i, caseInsensitive: self != .gpt2) { return c }
        let c = s[i]
        switch self {
        case .gpt2:
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
            for cls in [CharacterClass.isLetter, CharacterClass.isNumber, CharacterClass.isOther] {
                if c == " " && i + 1 < n && cls(s[i + 1]) { return run(i + 1, cls) }
                if cls(c) { return run(i, cls) }
            }
        case .llama3, .qwen2:
            // `[^\r\n\p{L}\p{N}]?\p{L}+`
            if !CharacterClass.isNewline(c) && !CharacterClass.isLetter(c) && !CharacterClass.isNumber(c)
                && i + 1 < n && CharacterClass.isLetter(s[i + 1]) { return run(i + 1, CharacterClass.isLetter) }
            if CharacterClass.isLetter(c) { return run(i, CharacterClass.isLetter) }
            // `\p{N}{1,3}` or `\p{N}`
            if CharacterClass.isNumber(c) { return min(run(i, CharacterClass.isNumber), i + (self == .llama3 ? 3 : 1)) }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
            var j = -1
            if c == " " && i + 1 < n && CharacterClass.isOther(s[i + 1]) { j = run(i + 1, CharacterClass.isOther) }
            else if CharacterClass.isOther(c) { j = run(i, CharacterClass.isOther) }
            if j >= 0 { return run(j, CharacterClass.isNewline) }
            // `\s*[\r\n]+`: up to the last newline of the whitespace run
            let e = run(i, CharacterClass.isWhitespace)
            if let last = (i..<e).last(where: { CharacterClass.isNewline(s[$0]) }) { return last + 1 }
        }
        // `\s+(?!\S)` then `\s+`: c is whitespace here (every other scalar was matched above)
        let e = run(i, CharacterClass.isWhitespace)
        if e == n || e - i < 2 { return max(e, i + 1) }
        return e - 1
    }

    /// The end of `'s|'t|'re|'ve|'m|'ll|'d` at i, if it matches.
    func contraction(_ s: [Unicode.Scalar], at i: Int, caseInsensitive: Bool) -> Int? {
        guard s[i] == "'", i + 1 < s.count else { return nil }
        func fold(_ k: Int) -> Unicode.Scalar? {
            guard k < s.count else { return nil }
            let c = s[k]
            guard caseInsensitive else { return c }
            if c.value == 0x17F { return "s" }  // ſ folds to s under Unicode case folding
            return (0x41...0x5A).contains(c.value) ? Unicode.Scalar(c.value + 32) : c
        }
        switch fold(i + 1) {
        case "s", "t", "m", "d": return i + 2
        case "r", "v": return fold(i + 2) == "e" ? i + 3 : nil
        case "l": return fold(i + 2) == "l" ? i + 3 : nil
        default: return nil
        }
    }
}

/// Unicode classes as Oniguruma reads them inside `tokenizers`: \p{L}, \p{N}, \s (White_Space).
enum CharacterClass {
    @inline(__always) static func isLetter(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return (0x41...0x5A).contains(c.value) || (0x61...0x7A).contains(c.value) }
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    @inline(__always) static func isNumber(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return (0x30...0x39).contains(c.value) }
        switch c.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    @inline(__always) static func isWhitespace(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return c == " " || (0x09...0x0D).contains(c.value) }
        return c.properties.isWhitespace
    }

    @inline(__always) static func isNewline(_ c: Unicode.Scalar) -> Bool { c == "\n" || c == "\r" }

    @inline(__always) static func isOther(_ c: Unicode.Scalar) -> Bool { !isWhitespace(c) && !isLetter(c) && !isNumber(c) }
}

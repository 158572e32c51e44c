import Foundation

/// The subset of Jinja that chat templates use, rendered as `transformers`' `apply_chat_template` renders
/// it (jinja2 with `trim_blocks` and `lstrip_blocks`). Written by hand because no Swift Jinja library is
/// in the package mirror, and a chat template must render byte for byte as the model was trained.
///
/// Supported: text, `{{ }}`, `{% %}`, `{# #}` with `-` whitespace control; `if`/`elif`/`else`, `for … in`
/// (with `loop.index`, `index0`, `first`, `last`, `length`), `set`, `break`/`continue`, `generation`
/// blocks; string, integer, boolean, none and list literals; `.attr`, `[key]`, `[a:b]`; `+ - * / // % ~`,
/// comparisons, `in`, `and`/`or`/`not`, `x if c else y`; the tests `defined`, `undefined`, `none`,
/// `string`, `number`, `mapping`, `sequence`, `true`, `false`; the filters `trim`, `length`, `count`,
/// `upper`, `lower`, `string`, `first`, `last`, `default`, `join`; string methods `strip`, `lstrip`,
/// `rstrip`, `upper`, `lower`, `startswith`, `endswith`; `raise_exception(message)`.
/// Anything else (macros, `namespace`, `tojson`, …) is an error naming it, at parse time for syntax and
/// when reached for filters and functions — never output that differs silently.
public struct JinjaTemplate: Sendable {
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public let description: String
        init(_ d: String) { description = d }
    }

    public indirect enum Value: Sendable, Equatable {
        case undefined(String)
        case none
        case bool(Bool)
        case int(Int)
        case string(String)
        case list([Value])
        case dict([String: Value])

        var truthy: Bool {
            switch self {
            case .undefined, .none: return false
            case .bool(let b): return b
            case .int(let i): return i != 0
            case .string(let s): return !s.isEmpty
            case .list(let l): return !l.isEmpty
            case .dict(let d): return !d.isEmpty
            }
        }

        /// How `{{ }}` prints a value (Python's str()).
        func rendered() throws -> String {
            switch self {
            case .undefined: return ""
            case .none: return "None"
            case .bool(let b): return b ? "True" : "False"
            case .int(let i): return String(i)
            case .string(let s): return s
            case .list, .dict: throw Failure("printing a list or mapping is not supported")
            }
        }
    }

    indirect enum Expr: Sendable {
        case literal(Value)
        case name(String)
        case list([Expr])
        case attribute(Expr, String)
        case item(Expr, Expr)
        case slice(Expr, Expr?, Expr?)
        case call(Expr, [Expr])
        case filter(Expr, String, [Expr])
        case test(Expr, String, negated: Bool)
        case unary(String, Expr)
        case binary(String, Expr, Expr)
        case conditional(Expr, Expr, Expr?)
    }

    indirect enum Node: Sendable {
        case text(String)
        case output(Expr)
        case conditional([(Expr, [Node])], [Node])
        case loop(String, Expr, [Node])
        case assign(String, Expr)
        case loopControl(breaks: Bool)
    }

    let nodes: [Node]

    public init(_ source: String) throws {
        var parser = StatementParser(segments: try Self.segments(source))
        nodes = try parser.body(until: [])
    }

    public func render(_ variables: [String: Value]) throws -> String {
        var r = Renderer(scopes: [variables])
        try r.run(nodes)
        return r.out
    }

    // MARK: Lexing the template into text and tags

    enum Segment {
        case text(String)
        case output(String)
        case statement(String)
    }

    /// Splits the source into text and tags, applying `-` whitespace control, trim_blocks (the first
    /// newline after a block tag goes) and lstrip_blocks (spaces and tabs before a block tag on its line go).
    static func segments(_ source: String) throws -> [Segment] {
        var s = Array(source.unicodeScalars)
        if s.last == "\n" { s.removeLast() }  // jinja2's keep_trailing_newline=False drops one final newline
        var out: [Segment] = []
        var text = ""
        var i = 0
        var stripNextText = false, trimNextNewline = false
        func flush() {
            if !text.isEmpty { out.append(.text(text)) }
            text = ""
        }
        while i < s.count {
            if s[i] == "{", i + 1 < s.count, s[i + 1] == "{" || s[i + 1] == "%" || s[i + 1] == "#" {
                let kind = s[i + 1]
                let close: Unicode.Scalar = kind == "{" ? "}" : kind
                var j = i + 2
                let stripBefore = j < s.count && s[j] == "-"
                let keepBefore = j < s.count && s[j] == "+"
                if stripBefore || keepBefore { j += 1 }
                // find the closing delimiter (outside string literals for expressions)
                var k = j
                var quote: Unicode.Scalar?
                while k + 1 < s.count {
                    if kind != "#" {
                        if let q = quote {
                            if s[k] == "\\" { k += 2; continue }
                            if s[k] == q { quote = nil }
                        } else if s[k] == "'" || s[k] == "\"" {
                            quote = s[k]
                        }
                    }
                    if quote == nil && s[k + 1] == "}" && s[k] == close { break }
                    k += 1
                }
                guard k + 1 < s.count else { throw Failure("unclosed \(String(kind == "{" ? "{{" : kind == "%" ? "{%" : "{#")) tag") }
                var end = k
                let stripAfter = end > j && s[end - 1] == "-"
                if stripAfter { end -= 1 }
                let inner = String(String.UnicodeScalarView(s[j..<max(j, end)]))
                let isBlock = kind != "{"
                // whitespace before the tag
                if stripBefore {
                    while let last = text.unicodeScalars.last, last.properties.isWhitespace { text.unicodeScalars.removeLast() }
                } else if isBlock && !keepBefore {
                    // lstrip_blocks: spaces and tabs between the start of the line (in the source) and the tag
                    var b = i
                    while b > 0 && (s[b - 1] == " " || s[b - 1] == "\t") { b -= 1 }
                    if b == 0 || s[b - 1] == "\n" {
                        var run = i - b
                        while run > 0, let last = text.unicodeScalars.last, last == " " || last == "\t" {
                            text.unicodeScalars.removeLast()
                            run -= 1
                        }
                    }
                }
                flush()
                switch kind {
                case "{": out.append(.output(inner))
                case "%": out.append(.statement(inner))
                default: break
                }
                i = k + 2
                stripNextText = stripAfter
                trimNextNewline = isBlock && !stripAfter
                continue
            }
            if stripNextText {
                if s[i].properties.isWhitespace { i += 1; continue }
                stripNextText = false
            }
            if trimNextNewline {
                trimNextNewline = false
                if s[i] == "\n" { i += 1; continue }
                if s[i] == "\r", i + 1 < s.count, s[i + 1] == "\n" { i += 2; continue }
            }
            text.unicodeScalars.append(s[i])
            i += 1
        }
        flush()
        return out
    }
}

// MARK: Expressions

struct ExpressionLexer {
    enum Token: Equatable {
        case name(String), string(String), int(Int), op(String), end
    }

    static func tokens(_ src: String) throws -> [Token] {
        let s = Array(src.unicodeScalars)
        var out: [Token] = []
        var i = 0
        let twoChar: Set<String> = ["==", "!=", "<=", ">=", "//", "**"]
        while i < s.count {
            let c = s[i]
            if c.properties.isWhitespace { i += 1; continue }
            if c == "'" || c == "\"" {
                var j = i + 1, v = ""
                while j < s.count && s[j] != c {
                    if s[j] == "\\", j + 1 < s.count {
                        j += 1
                        switch s[j] {
                        case "n": v += "\n"
                        case "t": v += "\t"
                        case "r": v += "\r"
                        case "\\": v += "\\"
                        case "'": v += "'"
                        case "\"": v += "\""
                        case "u", "x":
                            // \uXXXX and \xXX as Python reads them
                            let width = s[j] == "u" ? 4 : 2
                            let digits = j + width < s.count ? String(String.UnicodeScalarView(s[(j + 1)...(j + width)])) : ""
                            guard let code = UInt32(digits, radix: 16), let scalar = Unicode.Scalar(code) else {
                                throw JinjaTemplate.Failure("bad \\\(s[j]) escape in \"\(src)\"")
                            }
                            v.unicodeScalars.append(scalar)
                            j += width
                        default: v += "\\"; v.unicodeScalars.append(s[j])
                        }
                    } else {
                        v.unicodeScalars.append(s[j])
                    }
                    j += 1
                }
                guard j < s.count else { throw JinjaTemplate.Failure("unterminated string in \"\(src)\"") }
                out.append(.string(v))
                i = j + 1
            } else if c.properties.numericType != nil && c.isASCII {
                var j = i, v = 0
                while j < s.count, s[j].isASCII, let d = Int(String(s[j])) { v = v * 10 + d; j += 1 }
                if j < s.count && s[j] == "." { throw JinjaTemplate.Failure("floating-point literals are not supported: \"\(src)\"") }
                out.append(.int(v))
                i = j
            } else if c == "_" || c.properties.isAlphabetic {
                var j = i, v = ""
                while j < s.count && (s[j] == "_" || s[j].properties.isAlphabetic || (s[j].isASCII && s[j].properties.numericType != nil)) {
                    v.unicodeScalars.append(s[j]); j += 1
                }
                out.append(.name(v))
                i = j
            } else {
                if i + 1 < s.count, twoChar.contains(String(c) + String(s[i + 1])) {
                    out.append(.op(String(c) + String(s[i + 1])))
                    i += 2
                } else if "()[].,:|+-*/%~<>=".unicodeScalars.contains(c) {
                    out.append(.op(String(c)))
                    i += 1
                } else {
                    throw JinjaTemplate.Failure("unexpected character \"\(c)\" in \"\(src)\"")
                }
            }
        }
        out.append(.end)
        return out
    }
}

struct ExpressionParser {
    typealias Expr = JinjaTemplate.Expr
    var tokens: [ExpressionLexer.Token]
    var at = 0
    let source: String

    init(_ source: String) throws {
        self.source = source
        tokens = try ExpressionLexer.tokens(source)
    }

    var peek: ExpressionLexer.Token { tokens[at] }
    mutating func next() -> ExpressionLexer.Token { defer { at += 1 }; return tokens[at] }
    func fail(_ what: String) -> JinjaTemplate.Failure { JinjaTemplate.Failure("\(what) in \"\(source.trimmingCharacters(in: .whitespaces))\"") }

    mutating func accept(_ op: String) -> Bool {
        if peek == .op(op) { at += 1; return true }
        return false
    }
    mutating func acceptName(_ n: String) -> Bool {
        if peek == .name(n) { at += 1; return true }
        return false
    }
    mutating func expect(_ op: String) throws {
        guard accept(op) else { throw fail("expected \"\(op)\"") }
    }
    mutating func name() throws -> String {
        guard case .name(let n) = next() else { throw fail("expected a name") }
        return n
    }
    mutating func finish() throws {
        guard peek == .end else { throw fail("unexpected \(peek)") }
    }

    mutating func expression() throws -> Expr {
        let value = try or()
        if acceptName("if") {
            let cond = try or()
            let other = acceptName("else") ? try expression() : nil
            return .conditional(cond, value, other)
        }
        return value
    }
    mutating func or() throws -> Expr {
        var e = try and()
        while acceptName("or") { e = .binary("or", e, try and()) }
        return e
    }
    mutating func and() throws -> Expr {
        var e = try not()
        while acceptName("and") { e = .binary("and", e, try not()) }
        return e
    }
    mutating func not() throws -> Expr {
        if acceptName("not") { return .unary("not", try not()) }
        return try compare()
    }
    mutating func compare() throws -> Expr {
        var e = try sum()
        while true {
            if case .op(let o) = peek, ["==", "!=", "<", ">", "<=", ">="].contains(o) {
                at += 1
                e = .binary(o, e, try sum())
            } else if acceptName("in") {
                e = .binary("in", e, try sum())
            } else if peek == .name("not"), tokens[at + 1] == .name("in") {
                at += 2
                e = .unary("not", .binary("in", e, try sum()))
            } else {
                return e
            }
        }
    }
    // as jinja2: + and - bind looser than ~, which binds looser than * / // %
    mutating func sum() throws -> Expr {
        var e = try concat()
        while true {
            if accept("+") { e = .binary("+", e, try concat()) } else if accept("-") { e = .binary("-", e, try concat()) } else { return e }
        }
    }
    mutating func concat() throws -> Expr {
        var e = try product()
        while accept("~") { e = .binary("~", e, try product()) }
        return e
    }
    mutating func product() throws -> Expr {
        var e = try unary()
        while true {
            if case .op(let o) = peek, ["*", "/", "//", "%"].contains(o) {
                at += 1
                e = .binary(o, e, try unary())
            } else {
                return e
            }
        }
    }
    mutating func unary() throws -> Expr {
        if accept("-") { return .unary("-", try unary()) }
        var e = try postfix(try primary())
        // filters and tests bind tighter than any operator
        while true {
            if accept("|") {
                let f = try name()
                var args: [Expr] = []
                if accept("(") { args = try arguments() }
                e = try postfix(.filter(e, f, args))
            } else if acceptName("is") {
                let negated = acceptName("not")
                let t = try name()
                e = .test(e, t, negated: negated)
            } else {
                return e
            }
        }
    }
    mutating func primary() throws -> Expr {
        switch next() {
        case .string(var s):
            while case .string(let more) = peek { s += more; at += 1 }  // adjacent literals concatenate
            return .literal(.string(s))
        case .int(let i): return .literal(.int(i))
        case .name(let n):
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n)
            }
        case .op("("):
            let e = try expression()
            try expect(")")
            return e
        case .op("["):
            var items: [Expr] = []
            if !accept("]") {
                repeat { items.append(try expression()) } while accept(",")
                try expect("]")
            }
            return .list(items)
        case let t: throw fail("unexpected \(t)")
        }
    }
    mutating func postfix(_ base: Expr) throws -> Expr {
        var e = base
        while true {
            if accept(".") {
                e = .attribute(e, try name())
            } else if accept("[") {
                if accept(":") {
                    let hi = peek == .op("]") ? nil : try expression()
                    try expect("]")
                    e = .slice(e, nil, hi)
                    continue
                }
                let index = try expression()
                if accept(":") {
                    let hi = peek == .op("]") ? nil : try expression()
                    try expect("]")
                    e = .slice(e, index, hi)
                } else {
                    try expect("]")
                    e = .item(e, index)
                }
            } else if accept("(") {
                e = .call(e, try arguments())
            } else {
                return e
            }
        }
    }
    mutating func arguments() throws -> [Expr] {
        var args: [Expr] = []
        if accept(")") { return args }
        repeat {
            if case .name = peek, tokens[at + 1] == .op("=") { throw fail("keyword arguments are not supported") }
            args.append(try expression())
        } while accept(",")
        try expect(")")
        return args
    }
}

// MARK: Statements

struct StatementParser {
    typealias Node = JinjaTemplate.Node
    let segments: [JinjaTemplate.Segment]
    var at = 0

    init(segments: [JinjaTemplate.Segment]) { self.segments = segments }

    /// Nodes until one of the statements `until` (its keyword), which is left for the caller.
    mutating func body(until: Set<String>) throws -> [Node] {
        var nodes: [Node] = []
        while at < segments.count {
            switch segments[at] {
            case .text(let t):
                nodes.append(.text(t))
                at += 1
            case .output(let src):
                var p = try ExpressionParser(src)
                let e = try p.expression()
                try p.finish()
                nodes.append(.output(e))
                at += 1
            case .statement(let src):
                var p = try ExpressionParser(src)
                let keyword = try p.name()
                if until.contains(keyword) { return nodes }
                at += 1
                switch keyword {
                case "if":
                    var branches: [(JinjaTemplate.Expr, [Node])] = []
                    var cond = try p.expression()
                    try p.finish()
                    var otherwise: [Node] = []
                    while true {
                        let b = try body(until: ["elif", "else", "endif"])
                        branches.append((cond, b))
                        var q = try closing(["elif", "else", "endif"], opened: "if")
                        let k = try q.name()
                        if k == "elif" {
                            cond = try q.expression()
                            try q.finish()
                            continue
                        }
                        if k == "else" {
                            try q.finish()
                            otherwise = try body(until: ["endif"])
                            _ = try closing(["endif"], opened: "if")
                        }
                        break
                    }
                    nodes.append(.conditional(branches, otherwise))
                case "for":
                    let target = try p.name()
                    if p.accept(",") { throw p.fail("unpacking several loop variables is not supported") }
                    guard p.acceptName("in") else { throw p.fail("expected \"in\"") }
                    let seq = try p.or()  // not expression(): "in xs if c" is a loop filter, not a conditional
                    if p.peek != .end { throw p.fail("loop filters (for … in … if …) and recursive loops are not supported") }
                    let b = try body(until: ["endfor", "else"])
                    var q = try closing(["endfor", "else"], opened: "for")
                    if try q.name() == "else" { throw p.fail("for … else is not supported") }
                    nodes.append(.loop(target, seq, b))
                case "set":
                    let target = try p.name()
                    if p.peek == .op(".") { throw p.fail("assigning to an attribute (namespace) is not supported") }
                    guard p.accept("=") else { throw p.fail("block set is not supported (expected \"=\")") }
                    let value = try p.expression()
                    try p.finish()
                    nodes.append(.assign(target, value))
                case "generation":
                    // transformers' marker for assistant tokens: rendered as its content
                    try p.finish()
                    nodes += try body(until: ["endgeneration"])
                    _ = try closing(["endgeneration"], opened: "generation")
                case "break", "continue":
                    try p.finish()
                    nodes.append(.loopControl(breaks: keyword == "break"))
                default:
                    throw JinjaTemplate.Failure("the statement \"\(keyword)\" is not supported (\"{% \(src.trimmingCharacters(in: .whitespaces)) %}\")")
                }
            }
        }
        if !until.isEmpty { throw JinjaTemplate.Failure("missing {% \(until.sorted().joined(separator: " / ")) %}") }
        return nodes
    }

    /// Consumes the statement that ends a block and returns its parser, positioned after the keyword's start.
    mutating func closing(_ keywords: Set<String>, opened: String) throws -> ExpressionParser {
        guard at < segments.count, case .statement(let src) = segments[at] else {
            throw JinjaTemplate.Failure("{% \(opened) %} is never closed")
        }
        at += 1
        let p = try ExpressionParser(src)
        return p
    }
}

// MARK: Rendering

struct Renderer {
    typealias Value = JinjaTemplate.Value
    typealias Expr = JinjaTemplate.Expr
    var scopes: [[String: Value]]
    var out = ""

    enum Control: Error { case breakLoop, continueLoop }

    mutating func run(_ nodes: [JinjaTemplate.Node]) throws {
        for node in nodes {
            switch node {
            case .text(let t): out += t
            case .output(let e): out += try eval(e).rendered()
            case .conditional(let branches, let otherwise):
                var taken = false
                for (cond, body) in branches where try eval(cond).truthy {
                    try run(body)
                    taken = true
                    break
                }
                if !taken { try run(otherwise) }
            case .loop(let target, let seq, let body):
                let items: [Value]
                switch try eval(seq) {
                case .list(let l): items = l
                case .string(let s): items = s.map { .string(String($0)) }
                case .dict(let d): items = d.keys.sorted().map { .string($0) }
                case .undefined, .none: items = []
                default: throw JinjaTemplate.Failure("cannot loop over a number or boolean")
                }
                for (i, item) in items.enumerated() {
                    let loop: Value = .dict(["index0": .int(i), "index": .int(i + 1), "first": .bool(i == 0),
                                             "last": .bool(i == items.count - 1), "length": .int(items.count),
                                             "revindex0": .int(items.count - 1 - i), "revindex": .int(items.count - i)])
                    scopes.append([target: item, "loop": loop])
                    defer { scopes.removeLast() }
                    do { try run(body) } catch Control.continueLoop { continue } catch Control.breakLoop { break }
                }
            case .assign(let name, let e):
                let v = try eval(e)
                scopes[scopes.count - 1][name] = v
            case .loopControl(let breaks):
                throw breaks ? Control.breakLoop : Control.continueLoop
            }
        }
    }

    func lookup(_ name: String) -> Value {
        for s in scopes.reversed() { if let v = s[name] { return v } }
        return .undefined(name)
    }

    func eval(_ e: Expr) throws -> Value {
        switch e {
        case .literal(let v): return v
        case .name(let n): return lookup(n)
        case .list(let items): return .list(try items.map(eval))
        case .attribute(let base, let key): return member(try eval(base), key)
        case .item(let base, let index):
            let b = try eval(base), i = try eval(index)
            switch (b, i) {
            case (.dict, .string(let k)): return member(b, k)
            case (.list(let l), .int(let n)):
                let k = n < 0 ? l.count + n : n
                return l.indices.contains(k) ? l[k] : .undefined("[\(n)]")
            case (.string(let s), .int(let n)):
                let chars = Array(s.unicodeScalars), k = n < 0 ? chars.count + n : n  // code points, as Python indexes
                return chars.indices.contains(k) ? .string(String(chars[k])) : .undefined("[\(n)]")
            case (.undefined(let name), _): return .undefined(name + "[…]")
            default: return .undefined("[…]")
            }
        case .slice(let base, let lo, let hi):
            let b = try eval(base)
            func bound(_ x: Expr?, _ count: Int, _ fallback: Int) throws -> Int {
                guard let x else { return fallback }
                guard case .int(let n) = try eval(x) else { throw JinjaTemplate.Failure("slice bounds must be integers") }
                return Swift.max(0, Swift.min(count, n < 0 ? count + n : n))
            }
            switch b {
            case .list(let l):
                let a = try bound(lo, l.count, 0), z = try bound(hi, l.count, l.count)
                return .list(a < z ? Array(l[a..<z]) : [])
            case .string(let s):
                let c = Array(s.unicodeScalars), a = try bound(lo, c.count, 0), z = try bound(hi, c.count, c.count)
                return .string(a < z ? String(String.UnicodeScalarView(c[a..<z])) : "")
            default: throw JinjaTemplate.Failure("cannot slice this value")
            }
        case .call(let callee, let args):
            let values = try args.map(eval)
            if case .name("raise_exception") = callee {
                throw JinjaTemplate.Failure("the template raised: \((try? values.first?.rendered()) ?? "")")
            }
            if case .attribute(let base, let method) = callee { return try call(method, on: try eval(base), values) }
            if case .name(let n) = callee { throw JinjaTemplate.Failure("the function \(n)() is not supported") }
            throw JinjaTemplate.Failure("this call is not supported")
        case .filter(let base, let name, let args):
            return try filter(name, try eval(base), try args.map(eval))
        case .test(let base, let name, let negated):
            let v = try eval(base)
            let r: Bool
            switch name {
            case "defined": if case .undefined = v { r = false } else { r = true }
            case "undefined": if case .undefined = v { r = true } else { r = false }
            case "none": r = v == .none
            case "string": if case .string = v { r = true } else { r = false }
            case "number": if case .int = v { r = true } else { r = false }
            case "mapping": if case .dict = v { r = true } else { r = false }
            case "sequence", "iterable":
                switch v { case .list, .string, .dict: r = true; default: r = false }
            case "true": r = v == .bool(true)
            case "false": r = v == .bool(false)
            default: throw JinjaTemplate.Failure("the test \"is \(name)\" is not supported")
            }
            return .bool(r != negated)
        case .unary(let op, let x):
            let v = try eval(x)
            if op == "not" { return .bool(!v.truthy) }
            guard case .int(let i) = v else { throw JinjaTemplate.Failure("unary minus needs a number") }
            return .int(-i)
        case .binary(let op, let l, let r):
            if op == "and" { let a = try eval(l); return a.truthy ? try eval(r) : a }
            if op == "or" { let a = try eval(l); return a.truthy ? a : try eval(r) }
            return try binary(op, try eval(l), try eval(r))
        case .conditional(let cond, let value, let other):
            if try eval(cond).truthy { return try eval(value) }
            return try other.map(eval) ?? .undefined("else")
        }
    }

    func member(_ v: Value, _ key: String) -> Value {
        if case .dict(let d) = v { return d[key] ?? .undefined(key) }
        if case .undefined(let n) = v { return .undefined(n + "." + key) }
        return .undefined(key)
    }

    func binary(_ op: String, _ a: Value, _ b: Value) throws -> Value {
        switch op {
        case "==": return .bool(equal(a, b))
        case "!=": return .bool(!equal(a, b))
        case "~": return .string(try a.rendered() + b.rendered())
        case "in":
            switch b {
            case .list(let l): return .bool(l.contains { equal($0, a) })
            case .string(let s): guard case .string(let x) = a else { return .bool(false) }; return .bool(s.contains(x))
            case .dict(let d): guard case .string(let x) = a else { return .bool(false) }; return .bool(d[x] != nil)
            case .undefined, .none: return .bool(false)
            default: throw JinjaTemplate.Failure("\"in\" needs a list, string or mapping")
            }
        default: break
        }
        if case .undefined(let n) = a { throw JinjaTemplate.Failure("\(n) is undefined (in \"\(op)\")") }
        if case .undefined(let n) = b { throw JinjaTemplate.Failure("\(n) is undefined (in \"\(op)\")") }
        switch (op, a, b) {
        case ("+", .string(let x), .string(let y)): return .string(x + y)
        case ("+", .list(let x), .list(let y)): return .list(x + y)
        case ("+", .int(let x), .int(let y)): return .int(x + y)
        case ("-", .int(let x), .int(let y)): return .int(x - y)
        case ("*", .int(let x), .int(let y)): return .int(x * y)
        case ("*", .string(let x), .int(let y)): return .string(String(repeating: x, count: Swift.max(0, y)))
        case ("//", .int(let x), .int(let y)) where y != 0: return .int(Int((Double(x) / Double(y)).rounded(.down)))
        case ("%", .int(let x), .int(let y)) where y != 0: return .int(((x % y) + y) % y)
        case ("<", .int(let x), .int(let y)): return .bool(x < y)
        case (">", .int(let x), .int(let y)): return .bool(x > y)
        case ("<=", .int(let x), .int(let y)): return .bool(x <= y)
        case (">=", .int(let x), .int(let y)): return .bool(x >= y)
        case ("<", .string(let x), .string(let y)): return .bool(x.unicodeScalars.lexicographicallyPrecedes(y.unicodeScalars))
        case (">", .string(let x), .string(let y)): return .bool(y.unicodeScalars.lexicographicallyPrecedes(x.unicodeScalars))
        default: throw JinjaTemplate.Failure("\"\(op)\" is not supported for \(a) and \(b)")
        }
    }

    func equal(_ a: Value, _ b: Value) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined): return true
        case (.undefined, _), (_, .undefined): return false
        case (.bool(let x), .int(let y)), (.int(let y), .bool(let x)): return (x ? 1 : 0) == y
        default: return a == b
        }
    }

    func string(_ v: Value, _ what: String) throws -> String {
        guard case .string(let s) = v else { throw JinjaTemplate.Failure("\(what) needs a string") }
        return s
    }

    /// Python's str.strip() without arguments: Unicode whitespace at both ends.
    static func strip(_ s: String, leading: Bool = true, trailing: Bool = true) -> String {
        var scalars = Substring(s).unicodeScalars[...]
        if leading { while let f = scalars.first, f.properties.isWhitespace { scalars.removeFirst() } }
        if trailing { while let l = scalars.last, l.properties.isWhitespace { scalars.removeLast() } }
        return String(String.UnicodeScalarView(scalars))
    }

    func call(_ method: String, on v: Value, _ args: [Value]) throws -> Value {
        switch method {
        case "strip", "lstrip", "rstrip":
            guard args.isEmpty else { throw JinjaTemplate.Failure("\(method)() with arguments is not supported") }
            return .string(Renderer.strip(try string(v, method), leading: method != "rstrip", trailing: method != "lstrip"))
        case "upper": return .string(try string(v, method).uppercased())
        case "lower": return .string(try string(v, method).lowercased())
        case "startswith", "endswith":
            guard args.count == 1, case .string(let x) = args[0] else { throw JinjaTemplate.Failure("\(method)() needs one string") }
            let s = try string(v, method)
            return .bool(method == "startswith" ? s.unicodeScalars.starts(with: x.unicodeScalars)
                                                : s.unicodeScalars.reversed().starts(with: x.unicodeScalars.reversed()))
        default: throw JinjaTemplate.Failure("the method .\(method)() is not supported")
        }
    }

    func filter(_ name: String, _ v: Value, _ args: [Value]) throws -> Value {
        switch name {
        case "trim":
            if case .undefined = v { return .string("") }
            return .string(Renderer.strip(try string(v, "trim")))
        case "upper": return .string(try string(v, "upper").uppercased())
        case "lower": return .string(try string(v, "lower").lowercased())
        case "string": return .string(try v.rendered())
        case "length", "count":
            switch v {
            case .list(let l): return .int(l.count)
            case .string(let s): return .int(s.unicodeScalars.count)  // Python counts code points
            case .dict(let d): return .int(d.count)
            case .undefined: return .int(0)
            default: throw JinjaTemplate.Failure("length of a value without one")
            }
        case "first", "last":
            guard case .list(let l) = v else { throw JinjaTemplate.Failure("\(name) needs a list") }
            return (name == "first" ? l.first : l.last) ?? .undefined(name)
        case "default":
            // default(x, true) also replaces falsy values, as jinja2's boolean argument does
            if case .undefined = v { return args.first ?? .string("") }
            if args.count > 1, args[1].truthy, !v.truthy { return args[0] }
            return v
        case "join":
            guard case .list(let l) = v else { throw JinjaTemplate.Failure("join needs a list") }
            let sep = try args.first.map { try string($0, "join") } ?? ""
            return .string(try l.map { try $0.rendered() }.joined(separator: sep))
        default: throw JinjaTemplate.Failure("the filter \"\(name)\" is not supported")
        }
    }
}

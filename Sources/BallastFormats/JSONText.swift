import Foundation

/// JSON written and read by hand for the two places where it sits on a hot path: the header of every
/// wire frame (a safetensors header) and every coordinator journal record. Foundation's
/// JSONSerialization bridges each value through NSDictionary/NSNumber and sorted keys with the locale's
/// collator; in `ballast bench coordinator` that was about 70% of the coordinator's CPU (perf). Files
/// read once (configs, checkpoints' config.json) keep using Foundation.
public enum JSONText {
    /// A parsed JSON value. Objects keep their members in document order (duplicates included; the
    /// reader decides what a duplicate means).
    public enum Value: Equatable, Sendable {
        case null
        case bool(Bool)
        /// A number; `exactInt` is set when the literal is an integer that fits in Int.
        case number(Double, exactInt: Int?)
        case string(String)
        case array([Value])
        case object([(String, Value)])

        public static func == (a: Value, b: Value) -> Bool {
            switch (a, b) {
            case (.null, .null): return true
            case let (.bool(x), .bool(y)): return x == y
            case let (.number(x, i), .number(y, j)): return x == y && i == j
            case let (.string(x), .string(y)): return x == y
            case let (.array(x), .array(y)): return x == y
            case let (.object(x), .object(y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
            default: return false
            }
        }
    }

    public struct SyntaxError: Error, CustomStringConvertible {
        public let offset: Int
        public let problem: String
        public var description: String { "invalid JSON at byte \(offset): \(problem)" }
    }

    // MARK: Writing

    static let hexDigits = Array("0123456789abcdef".utf8)

    /// Appends `s` as a JSON string literal, escaped as JSONSerialization escapes it (including `\/`),
    /// so that frame headers keep the bytes the golden wire frames pin.
    public static func appendQuoted(_ s: String, to out: inout [UInt8]) {
        out.append(0x22)
        // Names and numbers need no escape: copied whole (byte by byte was a visible share of every frame).
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C || $0 == 0x2F }) {
            out.append(contentsOf: s.utf8)
            out.append(0x22)
            return
        }
        for b in s.utf8 {
            let escape: UInt8?
            switch b {
            case 0x22, 0x5C, 0x2F: escape = b
            case 0x0A: escape = 0x6E
            case 0x0D: escape = 0x72
            case 0x09: escape = 0x74
            case 0x08: escape = 0x62
            case 0x0C: escape = 0x66
            case ..<0x20:
                out.append(0x5C)
                out.append(0x75)
                out.append(0x30)
                out.append(0x30)
                out.append(hexDigits[Int(b >> 4)])
                out.append(hexDigits[Int(b & 15)])
                continue
            default: escape = nil
            }
            if let escape {
                out.append(0x5C)
                out.append(escape)
            } else {
                out.append(b)
            }
        }
        out.append(0x22)
    }

    public struct UnsupportedValue: Error, CustomStringConvertible {
        public let value: String
        public var description: String { "cannot write \(value) as JSON" }
    }

    /// Appends a value built from String, Int, Double (finite), Bool, NSNull, arrays and [String: Any]
    /// dictionaries; object keys are written in byte order of their UTF-8, so equal records give equal bytes.
    public static func append(_ value: Any, to out: inout [UInt8]) throws {
        switch value {
        case let v as Int:
            out.append(contentsOf: String(v).utf8)
        case let v as String:
            appendQuoted(v, to: &out)
        case let v as [Int]:
            out.append(0x5B)
            for (i, x) in v.enumerated() {
                if i > 0 { out.append(0x2C) }
                out.append(contentsOf: String(x).utf8)
            }
            out.append(0x5D)
        case let v as [String: Any]:
            out.append(0x7B)
            for (i, key) in v.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).enumerated() {
                if i > 0 { out.append(0x2C) }
                appendQuoted(key, to: &out)
                out.append(0x3A)
                try append(v[key]!, to: &out)
            }
            out.append(0x7D)
        case let v as [Any]:
            out.append(0x5B)
            for (i, x) in v.enumerated() {
                if i > 0 { out.append(0x2C) }
                try append(x, to: &out)
            }
            out.append(0x5D)
        case let v as Bool:
            out.append(contentsOf: (v ? "true" : "false").utf8)
        case let v as Double:
            guard v.isFinite else { throw UnsupportedValue(value: "the number \(v)") }
            out.append(contentsOf: "\(v)".utf8)
        case is NSNull:
            out.append(contentsOf: "null".utf8)
        default:
            throw UnsupportedValue(value: "a value of type \(type(of: value))")
        }
    }

    public static func data(_ value: Any) throws -> Data {
        var out: [UInt8] = []
        try append(value, to: &out)
        return Data(out)
    }

    // MARK: Reading

    /// Parses one JSON text (RFC 8259: one value, surrounded only by whitespace).
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws -> Value {
        var p = Parser(bytes: bytes)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.at == bytes.count else { throw p.error("unexpected data after the value") }
        return v
    }

    public static func parse(_ data: Data) throws -> Value {
        try data.withUnsafeBytes { try parse($0) }
    }

    struct Parser {
        let bytes: UnsafeRawBufferPointer
        var at = 0
        static let maxDepth = 512

        func error(_ problem: String) -> SyntaxError { SyntaxError(offset: at, problem: problem) }

        var peek: UInt8? { at < bytes.count ? bytes[at] : nil }

        mutating func skipSpace() {
            while at < bytes.count, bytes[at] == 0x20 || bytes[at] == 0x0A || bytes[at] == 0x0D || bytes[at] == 0x09 { at += 1 }
        }

        mutating func expect(_ literal: String) throws {
            for b in literal.utf8 {
                guard peek == b else { throw error("expected \(literal)") }
                at += 1
            }
        }

        mutating func value(depth: Int) throws -> Value {
            guard depth < Self.maxDepth else { throw error("nested deeper than \(Self.maxDepth)") }
            guard let c = peek else { throw error("unexpected end") }
            switch c {
            case 0x7B: return try object(depth: depth)
            case 0x5B: return try array(depth: depth)
            case 0x22: return .string(try string())
            case 0x74: try expect("true"); return .bool(true)
            case 0x66: try expect("false"); return .bool(false)
            case 0x6E: try expect("null"); return .null
            case 0x2D, 0x30...0x39: return try number()
            default: throw error("unexpected character \(UnicodeScalar(c))")
            }
        }

        mutating func object(depth: Int) throws -> Value {
            at += 1
            var members: [(String, Value)] = []
            skipSpace()
            if peek == 0x7D { at += 1; return .object(members) }
            while true {
                skipSpace()
                guard peek == 0x22 else { throw error("expected a member name") }
                let key = try string()
                skipSpace()
                guard peek == 0x3A else { throw error("expected ':'") }
                at += 1
                skipSpace()
                members.append((key, try value(depth: depth + 1)))
                skipSpace()
                guard let c = peek else { throw error("unterminated object") }
                at += 1
                if c == 0x7D { return .object(members) }
                guard c == 0x2C else { at -= 1; throw error("expected ',' or '}'") }
            }
        }

        mutating func array(depth: Int) throws -> Value {
            at += 1
            var items: [Value] = []
            skipSpace()
            if peek == 0x5D { at += 1; return .array(items) }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard let c = peek else { throw error("unterminated array") }
                at += 1
                if c == 0x5D { return .array(items) }
                guard c == 0x2C else { at -= 1; throw error("expected ',' or ']'") }
            }
        }

        mutating func hex4() throws -> UInt32 {
            guard at + 4 <= bytes.count else { throw error("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[at]
                let d: UInt8
                switch c {
                case 0x30...0x39: d = c - 0x30
                case 0x41...0x46: d = c - 0x41 + 10
                case 0x61...0x66: d = c - 0x61 + 10
                default: throw error("bad hex digit in \\u escape")
                }
                v = v << 4 | UInt32(d)
                at += 1
            }
            return v
        }

        mutating func string() throws -> String {
            at += 1
            let start = at
            // Fast path: no escapes, and ASCII needs no UTF-8 validation (names and metadata usually are).
            var ascii = true
            while at < bytes.count, bytes[at] != 0x22, bytes[at] != 0x5C {
                guard bytes[at] >= 0x20 else { throw error("control character in a string") }
                ascii = ascii && bytes[at] < 0x80
                at += 1
            }
            guard at < bytes.count else { throw error("unterminated string") }
            if ascii, bytes[at] == 0x22 {
                defer { at += 1 }
                return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<at]), as: UTF8.self)
            }
            var out = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[start..<at]))
            while bytes[at] != 0x22 {
                // At a backslash.
                at += 1
                guard let e = peek else { throw error("unterminated string") }
                at += 1
                switch e {
                case 0x22, 0x5C, 0x2F: out.append(e)
                case 0x62: out.append(0x08)
                case 0x66: out.append(0x0C)
                case 0x6E: out.append(0x0A)
                case 0x72: out.append(0x0D)
                case 0x74: out.append(0x09)
                case 0x75:
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard at + 6 <= bytes.count, bytes[at] == 0x5C, bytes[at + 1] == 0x75 else { throw error("unpaired surrogate") }
                        at += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate") }
                        scalar = 0x10000 + (scalar - 0xD800) << 10 + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw error("unpaired surrogate")
                    }
                    out.append(contentsOf: String(UnicodeScalar(scalar)!).utf8)
                default: throw error("bad escape \\\(UnicodeScalar(e))")
                }
                while at < bytes.count, bytes[at] != 0x22, bytes[at] != 0x5C {
                    guard bytes[at] >= 0x20 else { throw error("control character in a string") }
                    out.append(bytes[at])
                    at += 1
                }
                guard at < bytes.count else { throw error("unterminated string") }
            }
            at += 1
            guard let s = String(validating: out, as: UTF8.self) else { throw SyntaxError(offset: start, problem: "string is not valid UTF-8") }
            return s
        }

        mutating func number() throws -> Value {
            let start = at
            var negative = false
            if peek == 0x2D { negative = true; at += 1 }
            guard let first = peek, (0x30...0x39).contains(first) else { throw error("expected a digit") }
            var magnitude: UInt64 = 0, fits = true
            if first == 0x30 {
                at += 1
            } else {
                while let c = peek, (0x30...0x39).contains(c) {
                    let (m, o1) = magnitude.multipliedReportingOverflow(by: 10)
                    let (s, o2) = m.addingReportingOverflow(UInt64(c - 0x30))
                    if o1 || o2 { fits = false } else { magnitude = s }
                    at += 1
                }
            }
            var integral = true
            if peek == 0x2E {
                integral = false
                at += 1
                guard let c = peek, (0x30...0x39).contains(c) else { throw error("expected a digit after '.'") }
                while let c = peek, (0x30...0x39).contains(c) { at += 1 }
            }
            if peek == 0x65 || peek == 0x45 {
                integral = false
                at += 1
                if peek == 0x2B || peek == 0x2D { at += 1 }
                guard let c = peek, (0x30...0x39).contains(c) else { throw error("expected a digit in the exponent") }
                while let c = peek, (0x30...0x39).contains(c) { at += 1 }
            }
            if integral && fits {
                if !negative, magnitude <= UInt64(Int.max) { return .number(Double(magnitude), exactInt: Int(magnitude)) }
                if negative, magnitude <= UInt64(Int.max) + 1 {
                    let v = magnitude == UInt64(Int.max) + 1 ? Int.min : -Int(magnitude)
                    return .number(Double(v), exactInt: v)
                }
            }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<at]), as: UTF8.self)
            guard let d = Double(text) else { throw SyntaxError(offset: start, problem: "bad number \(text)") }
            return .number(d, exactInt: nil)
        }
    }
}

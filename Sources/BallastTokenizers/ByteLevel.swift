/// GPT-2's byte-level alphabet: every byte maps to one printable character, so BPE runs on text that
/// can represent any byte sequence. Printable Latin-1 bytes (33–126, 161–172, 174–255) map to
/// themselves; the other 68 bytes map, in byte order, to U+0100 onward. Ballast runs BPE on the bytes
/// themselves and uses the alphabet only to read and write vocabularies.
public enum ByteLevel {
    /// byte → the scalar that spells it
    public static let scalars: [Unicode.Scalar] = {
        var table: [Unicode.Scalar] = []
        var next: UInt32 = 256
        for b in 0..<256 {
            if (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b) {
                table.append(Unicode.Scalar(UInt32(b))!)
            } else {
                table.append(Unicode.Scalar(next)!)
                next += 1
            }
        }
        return table
    }()

    /// scalar → byte
    static let byteOfScalar: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (b, s) in scalars.enumerated() { map[s.value] = UInt8(b) }
        return map
    }()

    /// The byte-level spelling of some bytes.
    public static func spell(_ bytes: some Sequence<UInt8>) -> String {
        var out = String.UnicodeScalarView()
        for b in bytes { out.append(scalars[Int(b)]) }
        return String(out)
    }

    /// The bytes a byte-level token spells, or nil when it holds a scalar outside the alphabet (an added
    /// token's own text, which the decoder keeps as its UTF-8 bytes, as `tokenizers` does).
    public static func bytes(of token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.unicodeScalars.count)
        for s in token.unicodeScalars {
            guard let b = byteOfScalar[s.value] else { return nil }
            out.append(b)
        }
        return out
    }
}

/// Byte-level tokenizer: byte b is token b (0…255); special tokens follow.
///
/// | id  | token |
/// |-----|-------|
/// | 0–255 | the UTF-8 bytes |
/// | 256 | BOS — starts every sequence |
/// | 257 | EOS — ends a completion; generation stops on it |
/// | 258 | PAD — padding, never attended to |
public struct ByteTokenizer: Sendable {
    public static let bos: Int32 = 256
    public static let eos: Int32 = 257
    public static let pad: Int32 = 258
    /// Smallest vocabulary a model needs for this tokenizer.
    public static let vocabSize = 259

    public init() {}

    public func encode(_ text: String) -> [Int32] { text.utf8.map { Int32($0) } }

    /// Decodes byte tokens; special tokens are dropped, invalid UTF-8 is repaired with U+FFFD.
    public func decode(_ ids: [Int32]) -> String {
        let bytes = ids.compactMap { $0 >= 0 && $0 < 256 ? UInt8($0) : nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    public static func name(of id: Int32) -> String {
        switch id {
        case bos: return "<bos>"
        case eos: return "<eos>"
        case pad: return "<pad>"
        default: return id < 256 ? String(decoding: [UInt8(id)], as: UTF8.self) : "<\(id)>"
        }
    }
}

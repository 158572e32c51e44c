import Foundation

/// A Hugging Face byte-level BPE tokenizer (GPT-2, Llama 3, Qwen2 and their relatives), read from a
/// `tokenizer.json` or from GPT-2's `vocab.json` + `merges.txt`. Encoding: added tokens are cut out of
/// the text first, the rest is normalised (NFC where the file says so), split by the pre-tokenizer's
/// pattern and run through BPE; the post-processor's template adds BOS/EOS. Decoding maps ids back to
/// bytes and reads them as UTF-8. Parts of the format it does not implement are refused by name when
/// the file is read, never ignored.
public final class BPETokenizer: @unchecked Sendable {
    public struct AddedToken: Sendable, Equatable {
        public var id: Int32
        public var content: String
        public var special: Bool
        public var lstrip = false, rstrip = false
    }

    public let model: BPEModel
    public let pattern: PreTokenizerPattern
    public let nfc: Bool
    public let addedTokens: [AddedToken]
    /// ids the post-processor puts before and after a single sequence
    public let prefix: [Int32], suffix: [Int32]
    public let vocabSize: Int
    /// id → the bytes it spells (empty for added tokens, which `added` holds)
    let spelled: [[UInt8]]
    let added: [Int32: AddedToken]
    /// added tokens longest first, as scalars, for matching
    let addedByLength: [(scalars: [Unicode.Scalar], token: AddedToken)]
    private var cache: [[UInt8]: [Int32]] = [:]
    private let lock = NSLock()

    init(vocab: [String: Int32], merges: [(String, String)], ignoreMerges: Bool, pattern: PreTokenizerPattern, nfc: Bool,
         addedTokens: [AddedToken], prefix: [Int32], suffix: [Int32]) throws {
        model = try BPEModel(vocab: vocab, merges: merges, ignoreMerges: ignoreMerges)
        self.pattern = pattern
        self.nfc = nfc
        self.addedTokens = addedTokens
        self.prefix = prefix
        self.suffix = suffix
        let size = Int(max(vocab.values.max() ?? -1, addedTokens.map(\.id).max() ?? -1)) + 1
        vocabSize = size
        var spelled = [[UInt8]](repeating: [], count: size)
        for (token, id) in vocab { if let b = ByteLevel.bytes(of: token) { spelled[Int(id)] = b } }
        self.spelled = spelled
        added = Dictionary(addedTokens.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        addedByLength = addedTokens.filter { !$0.content.isEmpty }
            .map { (Array($0.content.unicodeScalars), $0) }
            .sorted { $0.scalars.count > $1.scalars.count }
    }

    /// Whether `id` is a token of this tokenizer (a model's vocabulary may be padded beyond it).
    public func knows(_ id: Int32) -> Bool { added[id] != nil || (id >= 0 && Int(id) < spelled.count && !spelled[Int(id)].isEmpty) }

    /// Whether `id` is an added token (special tokens such as <|im_end|>).
    public func isAddedToken(_ id: Int32) -> Bool { added[id] != nil }

    public func id(of token: String) -> Int32? {
        if let a = addedTokens.first(where: { $0.content == token }) { return a.id }
        guard let b = ByteLevel.bytes(of: token) else { return nil }
        var out: [Int32] = []
        model.encode(b, into: &out)
        return out.count == 1 && spelled[Int(out[0])] == b ? out[0] : nil
    }

    /// Token ids of `text`; `addSpecialTokens` applies the post-processor's template (BOS for Llama 3).
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int32] {
        var out = addSpecialTokens ? prefix : []
        encode(Array(text.unicodeScalars), into: &out, offsets: nil)
        if addSpecialTokens { out += suffix }
        return out
    }

    /// Token ids of `text` (no post-processor tokens) with the range of Unicode scalars of `text` each
    /// token covers: a BPE token the scalars its bytes come from (a scalar split across tokens belongs to
    /// each), an added token its match. Where the NFC normalizer changes a stretch of text, every token of
    /// that stretch gets the whole stretch.
    public func encodeWithOffsets(_ text: String) -> (ids: [Int32], offsets: [Range<Int>]) {
        var ids: [Int32] = [], offsets: [Range<Int>] = []
        encode(Array(text.unicodeScalars), into: &ids, offsets: &offsets)
        return (ids, offsets)
    }

    private func encode(_ scalars: [Unicode.Scalar], into out: inout [Int32], offsets: UnsafeMutablePointer<[Range<Int>]>?) {
        var start = 0, i = 0
        while i < scalars.count {
            guard let (token, end) = addedToken(in: scalars, at: i) else { i += 1; continue }
            var textEnd = i, next = end
            if token.lstrip { while textEnd > start && CharacterClass.isWhitespace(scalars[textEnd - 1]) { textEnd -= 1 } }
            if token.rstrip { while next < scalars.count && CharacterClass.isWhitespace(scalars[next]) { next += 1 } }
            encodeText(scalars[start..<textEnd], into: &out, offsets: offsets)
            out.append(token.id)
            offsets?.pointee.append(i..<end)
            start = next
            i = next
        }
        encodeText(scalars[start..<scalars.count], into: &out, offsets: offsets)
    }

    func addedToken(in s: [Unicode.Scalar], at i: Int) -> (AddedToken, Int)? {
        for (scalars, token) in addedByLength where i + scalars.count <= s.count {
            if s[i] == scalars[0] && s[i..<(i + scalars.count)].elementsEqual(scalars) { return (token, i + scalars.count) }
        }
        return nil
    }

    func encodeText(_ text: ArraySlice<Unicode.Scalar>, into out: inout [Int32], offsets: UnsafeMutablePointer<[Range<Int>]>? = nil) {
        guard !text.isEmpty else { return }
        var s = Array(text)
        var stable = true
        if nfc {
            var v = String.UnicodeScalarView()
            v.append(contentsOf: s)
            let normalized = Array(String(v).precomposedStringWithCanonicalMapping.unicodeScalars)
            stable = normalized == s
            s = normalized
        }
        for piece in pattern.split(s) {
            var bytes: [UInt8] = []
            for scalar in s[piece] { bytes.append(contentsOf: String(scalar).utf8) }
            lock.lock()
            let hit = cache[bytes]
            lock.unlock()
            let ids: [Int32]
            if let hit {
                ids = hit
            } else {
                var fresh: [Int32] = []
                model.encode(bytes, into: &fresh)
                lock.lock()
                if cache.count > 200_000 { cache.removeAll(keepingCapacity: true) }
                cache[bytes] = fresh
                lock.unlock()
                ids = fresh
            }
            out += ids
            guard let offsets else { continue }
            if !stable {
                for _ in ids { offsets.pointee.append(text.startIndex..<text.endIndex) }
                continue
            }
            // byte position → scalar of the piece, to give each token the scalars its bytes come from
            var scalarOfByte: [Int] = []
            for k in piece { scalarOfByte += [Int](repeating: text.startIndex + k, count: String(s[k]).utf8.count) }
            var at = 0
            for id in ids {
                let n = max(spelled[Int(id)].count, 1)
                offsets.pointee.append(scalarOfByte[at]..<(scalarOfByte[min(at + n, scalarOfByte.count) - 1] + 1))
                at += n
            }
        }
    }

    /// The text of `ids`: each id's bytes, read as UTF-8 (invalid sequences become U+FFFD); added
    /// tokens give their text, or nothing for special ones when `skipSpecialTokens`.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) throws -> String {
        var bytes: [UInt8] = []
        for id in ids {
            if let a = added[id] {
                if !(skipSpecialTokens && a.special) { bytes += ByteLevel.bytes(of: a.content) ?? Array(a.content.utf8) }
                continue
            }
            guard id >= 0, Int(id) < spelled.count, !spelled[Int(id)].isEmpty else {
                throw TokenizerError("token id \(id) is not in the vocabulary (size \(vocabSize))")
            }
            bytes += spelled[Int(id)]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

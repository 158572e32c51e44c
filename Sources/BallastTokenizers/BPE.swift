/// Byte-level BPE on token ids: a piece starts as one id per byte and the adjacent pair with the lowest
/// merge rank is merged until none is left, as `tokenizers`' BPE model does without dropout.
public struct BPEModel: Sendable {
    /// id of each single byte's token
    let byteIds: [Int32]
    /// (left id, right id) packed in a UInt64 → (rank, merged id)
    let merges: [UInt64: (rank: Int32, id: Int32)]
    /// byte sequence → id, for `ignoreMerges` (a piece that is a whole token is taken as it is)
    let wholeTokens: [[UInt8]: Int32]
    let ignoreMerges: Bool

    /// `vocab`: byte-level spellings → ids; `merges`: pairs of spellings in rank order.
    public init(vocab: [String: Int32], merges: [(String, String)], ignoreMerges: Bool) throws {
        var byBytes: [[UInt8]: Int32] = [:]
        for (token, id) in vocab {
            guard let bytes = ByteLevel.bytes(of: token) else { continue }  // not byte-level: added tokens only
            byBytes[bytes] = id
        }
        var byteIds = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            guard let id = byBytes[[UInt8(b)]] else {
                throw TokenizerError("the vocabulary has no token for byte \(b) (\(ByteLevel.scalars[b])): not a byte-level BPE vocabulary")
            }
            byteIds[b] = id
        }
        var table: [UInt64: (rank: Int32, id: Int32)] = [:]
        table.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = vocab[a], let ib = vocab[b], let merged = vocab[a + b] else {
                throw TokenizerError("merge \(rank) \"\(a) \(b)\" names a token missing from the vocabulary")
            }
            let key = Self.pair(ia, ib)
            if table[key] == nil { table[key] = (Int32(rank), merged) }
        }
        self.byteIds = byteIds
        self.merges = table
        self.wholeTokens = ignoreMerges ? byBytes : [:]
        self.ignoreMerges = ignoreMerges
    }

    /// Number of merge rules.
    public var mergeCount: Int { merges.count }

    @inline(__always) static func pair(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b)) }

    /// The ids of one pre-tokenized piece given as UTF-8 bytes.
    public func encode(_ bytes: [UInt8], into out: inout [Int32]) {
        if ignoreMerges, let id = wholeTokens[bytes] {
            out.append(id)
            return
        }
        var symbols = bytes.map { byteIds[Int($0)] }
        while symbols.count > 1 {
            var best = Int32.max, at = -1, merged: Int32 = 0
            for k in 0..<(symbols.count - 1) {
                if let m = merges[Self.pair(symbols[k], symbols[k + 1])], m.rank < best {
                    best = m.rank
                    at = k
                    merged = m.id
                }
            }
            if at < 0 { break }
            // merge every occurrence of the best pair, left to right (what applying that merge rule does)
            let left = symbols[at], right = symbols[at + 1]
            var next: [Int32] = []
            next.reserveCapacity(symbols.count - 1)
            var k = 0
            while k < symbols.count {
                if k + 1 < symbols.count && symbols[k] == left && symbols[k + 1] == right {
                    next.append(merged)
                    k += 2
                } else {
                    next.append(symbols[k])
                    k += 1
                }
            }
            symbols = next
        }
        out.append(contentsOf: symbols)
    }
}

public struct TokenizerError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

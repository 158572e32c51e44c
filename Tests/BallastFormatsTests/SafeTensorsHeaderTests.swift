import BallastFormats
import Foundation
import Testing

@Suite("safetensors header writer")
struct SafeTensorsHeaderTests {
    /// The header as the writer used to build it: a dictionary through JSONSerialization with sorted keys.
    func reference(_ tensors: [(String, TensorData)], _ metadata: [String: String]) throws -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for (name, t) in tensors {
            header[name] = ["dtype": t.dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + t.bytes.count]]
            offset += t.bytes.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        return try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
    }

    @Test("the hand-written header is byte for byte JSONSerialization's, escaping included")
    func sameBytesAsJSONSerialization() throws {
        let odd = ["a\"b", "back\\slash", "path/to", "tab\there", "line\nbreak", "cr\r", "\u{01}\u{1f}\u{08}\u{0c}", "naïve é 中文 😀",
                   "__metadata__x", "Z", "_", "config", "{\"json\": [1, 2]}", ""]
        var rng = SystemRandomNumberGenerator()
        for trial in 0..<200 {
            var tensors: [(String, TensorData)] = []
            var used = Set<String>()
            for _ in 0..<Int.random(in: 0...4, using: &rng) {
                let name = odd.randomElement(using: &rng)! + "\(Int.random(in: 0...9, using: &rng))"
                guard used.insert(name).inserted else { continue }
                let n = Int.random(in: 0...5, using: &rng)
                tensors.append((name, trial % 2 == 0 ? TensorData(floats: [Float](repeating: 1, count: n), shape: [n])
                                                     : TensorData(int64s: [Int](repeating: 7, count: n))))
            }
            var metadata: [String: String] = [:]
            for _ in 0..<Int.random(in: 0...3, using: &rng) { metadata[odd.randomElement(using: &rng)!] = odd.randomElement(using: &rng)! }
            let encoded = SafeTensorsWriter.encode(tensors, metadata: metadata)
            let length = encoded.prefix(8).withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
            var header = encoded.dropFirst(8).prefix(length)
            while header.last == 0x20 { header.removeLast() }
            let want = try reference(tensors, metadata)
            #expect(Data(header) == want, "\(String(decoding: header, as: UTF8.self)) vs \(String(decoding: want, as: UTF8.self))")
            _ = try SafeTensorsFile(data: encoded, name: "trial \(trial)")
        }
    }
}

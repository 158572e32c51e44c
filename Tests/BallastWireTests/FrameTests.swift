import BallastFormats
import BallastKernels
import BallastRandom
import BallastWire
import Foundation
import Testing

/// Rewrites envelope bytes and fixes the header checksum, to reach the checks behind it.
func patched(_ env: Data, _ offset: Int, _ bytes: [UInt8]) -> Data {
    var e = [UInt8](env)
    e.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
    let crc = CRC32C.checksum(Array(e[0..<36]))
    for i in 0..<4 { e[36 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
    return Data(e)
}

func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }

func expectRejected(_ env: Data, _ payload: Data, _ label: String, maxPayload: Int = Frame.defaultMaxPayload,
                    sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        _ = try Frame.decode(envelope: env, payload: payload, maxPayload: maxPayload)
        Issue.record("accepted a bad frame (expected \(label))", sourceLocation: sourceLocation)
    } catch let e as WireError {
        #expect(e.label == label, "\(e)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
}

@Suite("Wire codec")
struct FrameTests {
    func sample() -> Frame {
        var rng = SeededRNG(seed: 1)
        func bytes(_ n: Int) -> Data { Data((0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }) }
        var tensors: [(String, TensorData)] = []
        for dtype in DType.allCases {
            for shape in [[], [0], [3], [2, 3], [2, 1, 4]] {
                let n = shape.reduce(1, *)
                tensors.append(("\(dtype.rawValue)_\(shape.map(String.init).joined(separator: "x"))",
                                TensorData(dtype: dtype, shape: shape, bytes: bytes(n * dtype.size))))
            }
        }
        return Frame(kind: .rollout, sequence: 42, policyVersion: 7, tensors: tensors, metadata: ["lease": "17", "note": "ü ✓"])
    }

    @Test("round trip of every dtype and shape, metadata and envelope fields")
    func roundTrip() throws {
        let f = sample()
        let (env, payload) = f.encode()
        #expect(env.count == Frame.envelopeSize)
        let (back, file) = try Frame.decode(envelope: env, payload: payload)
        #expect(back.kind == .rollout && back.sequence == 42 && back.policyVersion == 7)
        #expect(back.metadata == f.metadata)
        let want = Dictionary(uniqueKeysWithValues: f.tensors.map { ($0.0, $0.1) })
        #expect(back.tensors.count == want.count)
        for (name, t) in back.tensors {
            #expect(t.dtype == want[name]!.dtype && t.shape == want[name]!.shape && t.bytes == want[name]!.bytes, "\(name)")
        }
        #expect(file != nil)
        // The payload alone is a valid safetensors file.
        _ = try SafeTensorsFile(data: payload, name: "payload")
        let (c, _) = try Frame.decode(contiguous: f.encodeContiguous())
        #expect(c.sequence == 42)
    }

    @Test func emptyPayload() throws {
        let (env, payload) = Frame(kind: .heartbeat, sequence: 1).encode()
        #expect(payload.isEmpty)
        let (f, file) = try Frame.decode(envelope: env, payload: payload)
        #expect(f.kind == .heartbeat && f.tensors.isEmpty && file == nil)
    }

    @Test("every malformed-frame case is rejected with its own label")
    func malformed() {
        let (env, payload) = sample().encode()
        expectRejected(env.prefix(20), payload, "too_short")
        expectRejected(patched(env, 0, Array("XXXX".utf8)), payload, "bad_magic")
        expectRejected(patched(env, 4, le(1, 2)), payload, "bad_version")  // version 1: the pre-columnar rollout layout
        expectRejected(patched(env, 6, le(99, 2)), payload, "unknown_kind")
        var flipped = [UInt8](env)
        flipped[10] ^= 1  // sequence changed, header checksum now wrong
        expectRejected(Data(flipped), payload, "header_checksum")
        var reserved = [UInt8](env)
        reserved[44] = 1
        expectRejected(Data(reserved), payload, "bad_reserved")
        expectRejected(env, payload.prefix(payload.count - 1), "length_mismatch")
        expectRejected(env, payload, "oversize", maxPayload: 100)
        var corrupt = [UInt8](payload)
        corrupt[corrupt.count - 1] ^= 0xFF
        expectRejected(env, Data(corrupt), "payload_checksum")
        // A payload with a correct checksum that is not a valid safetensors buffer.
        let junk = Data("{\"not\":\"safetensors\"}".utf8)
        let junkEnv = patched(patched(env, 24, le(UInt64(junk.count), 8)), 32, le(UInt64(CRC32C.checksum([UInt8](junk))), 4))
        expectRejected(junkEnv, junk, "bad_payload")
    }

    @Test("random corruption never crashes; rejections are counted")
    func fuzz() {
        let whole = sample().encodeContiguous()
        var rng = SeededRNG(seed: 5)
        var counters = WireErrorCounters()
        var accepted = 0, truncatedAccepted = 0
        for _ in 0..<3000 {
            var d = [UInt8](whole)
            let truncated = rng.next() % 3 == 0
            switch truncated ? 0 : 1 + rng.next() % 2 {
            case 0: d = Array(d.prefix(Int(rng.next() % UInt64(d.count))))
            case 1: for _ in 0...(rng.next() % 3) { d[Int(rng.next() % UInt64(d.count))] ^= UInt8(truncatingIfNeeded: rng.next() | 1) }
            default: d[Int(rng.next() % 48)] = UInt8(truncatingIfNeeded: rng.next())
            }
            do {
                _ = try Frame.decode(contiguous: Data(d))
                accepted += 1
                if truncated { truncatedAccepted += 1 }
            } catch let e as WireError {
                counters.record(e)
            } catch {
                Issue.record("unexpected error type \(error)")
            }
        }
        #expect(truncatedAccepted == 0, "a frame cut short is never accepted")
        #expect(counters.counts["too_short", default: 0] > 0 && counters.counts["length_mismatch", default: 0] > 0)
        // Only mutations that rewrite a byte with its own value survive (about 1 in 256 of the single-byte kind).
        #expect(accepted < 30, "checksums and the reserved check catch every real mutation")
        #expect(counters.counts.keys.contains("payload_checksum") && counters.counts.keys.contains("header_checksum"))
    }
}

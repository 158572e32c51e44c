@testable import BallastFormats
import BallastKernels
import BallastRandom
import Foundation
import Testing

func header(_ json: String, data: Data = Data()) -> Data {
    var out = Data()
    withUnsafeBytes(of: UInt64(json.utf8.count).littleEndian) { out.append(contentsOf: $0) }
    out.append(Data(json.utf8))
    out.append(data)
    return out
}

func expectRejected(_ data: Data, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        _ = try SafeTensorsFile(data: data, name: "bad.safetensors")
        Issue.record("accepted a bad file (expected: \(fragment))", sourceLocation: sourceLocation)
    } catch let e as FileError {
        #expect(e.path == "bad.safetensors", sourceLocation: sourceLocation)
        #expect(e.problem.contains(fragment), "\(e.problem)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
}

@Suite("safetensors reader and writer")
struct SafeTensorsTests {
    let sample: Data = SafeTensorsWriter.encode([
        ("a", TensorData(floats: [1, 2, 3, 4, 5, 6], shape: [2, 3])),
        ("b", TensorData(int32s: [7, -8], shape: [2])),
    ], metadata: ["format": "pt"])

    /// Found by tools/fuzz/cluster.py: the element count fits an Int but its byte count does not, and
    /// the multiplication trapped (a coordinator died on one CRC-valid frame).
    @Test("a shape whose byte count overflows is rejected, not a trap")
    func byteCountOverflow() {
        expectRejected(header(#"{"t":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}}"#), "beyond any byte count")
        expectRejected(header(#"{"t":{"dtype":"I32","shape":[2305843009213693952,2],"data_offsets":[0,0]}}"#), "beyond any byte count")
    }

    @Test func roundTrip() throws {
        let f = try SafeTensorsFile(data: sample, name: "x")
        #expect(try f.floats("a") == [1, 2, 3, 4, 5, 6])
        #expect(try f.info("a").shape == [2, 3])
        #expect(try f.ints("b") == [7, -8])
        #expect(f.metadata == ["format": "pt"])
        let headerLen = sample.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        #expect(headerLen % 8 == 0, "data buffer is 8-byte aligned")
        #expect(throws: FileError.self) { try f.floats("b") }
        #expect(throws: FileError.self) { try f.floats("missing") }
    }

    @Test("large payloads: the checksum taken while copying is the payload's, and reused buffers never alias a live payload")
    func checksummedAndReused() throws {
        func tensor(_ seed: Float) -> [(String, TensorData)] {
            [("w", TensorData(floats: (0..<400_000).map { Float($0) * seed }, shape: [400_000]))]  // 1.6 MB: above the reuse size
        }
        var a: Data? = SafeTensorsWriter.encodeChecksummed(tensor(1)).payload
        let (b, crc) = SafeTensorsWriter.encodeChecksummed(tensor(2), metadata: ["k": "v"])
        #expect(crc == CRC32C.checksum(b))
        #expect(CRC32C.checksum(a!) == SafeTensorsWriter.encodeChecksummed(tensor(1)).crc32c)
        let bBefore = Data(b)  // a copy, to compare after the buffers change hands
        a = nil  // a's buffer goes back for reuse
        let c = SafeTensorsWriter.encodeChecksummed(tensor(3)).payload
        #expect(b == bBefore, "a payload still alive is never handed out again")
        #expect(try SafeTensorsFile(data: c, name: "c").floats("w") == tensor(3)[0].1.elements(Float.self))
        #expect(try SafeTensorsFile(data: b, name: "b").floats("w") == tensor(2)[0].1.elements(Float.self))
        #expect(a == nil)
    }

    @Test("headers as writers lay them out are read without the JSON tree, to the same tensors; others fall back to it")
    func plainHeaderReader() throws {
        func plain(_ json: String) -> [String: String]? {
            json.utf8.withContiguousStorageIfAvailable { b in
                SafeTensorsFile.readPlainHeader(UnsafeRawBufferPointer(b)).map { r in
                    Dictionary(r.tensors.map { ($0.key, "\($0.dtype) \($0.shape) \($0.begin)..<\($0.end)") }, uniquingKeysWith: { _, last in last }).merging(r.metadata) { a, _ in a }
                }
            }!
        }
        let written = String(decoding: sample.dropFirst(8).prefix(Int(sample.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })), as: UTF8.self)
        #expect(plain(written) == ["a": "F32 [2, 3] 0..<24", "b": "I32 [2] 24..<32", "format": "pt"])
        #expect(plain(" {\n \"x\" : { \"shape\" : [ ] , \"data_offsets\":[0,4],\"dtype\":\"F32\"} } ") == ["x": "F32 [] 0..<4"])
        #expect(plain(#"{"__metadata__":{"a\"b":"c\u00e9\/"}}"#) == ["a\"b": "cé/"])
        // Left to the value tree (which accepts some and explains the rest).
        for json in [#"{"x":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}"#, #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}"#,
                     #"{"x":{"dtype":"F32","shape":[01],"data_offsets":[0,4]}}"#, #"{"x":{"dtype":"F32","shape":[1e0],"data_offsets":[0,4]}}"#,
                     #"{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, #"{"x":{"shape":[1],"data_offsets":[0,4]}}"#,
                     #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#, #"{"__metadata__":{"k":1}}"#, "[1]", #"{"x":{}} x"#,
                     #"{"x":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}}"#] {
            #expect(plain(json) == nil, "\(json)")
        }
        // A repeated key counts last, as in the value tree.
        #expect(plain(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"I32","dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#)
                == ["x": "F64 [1] 0..<8"])
        let repeated = header(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"__metadata__":{"k":"a"},"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"__metadata__":{"k":"b","j":"c"}}"#,
                              data: Data(count: 8))
        let fast = try SafeTensorsFile(data: repeated, name: "t")
        #expect(try fast.info("x").dtype == .f64 && fast.metadata == ["k": "b", "j": "c"])
        let viaTree = try SafeTensorsFile(data: header(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"__metadata__":{"k":"a"},"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8],"extra":0},"__metadata__":{"k":"b","j":"c"}}"#,
                                                          data: Data(count: 8)), name: "t")
        #expect(try viaTree.info("x").dtype == .f64 && viaTree.metadata == ["k": "b", "j": "c"], "the tree gives the same")
        // What the tree accepts of those left to it still reads.
        #expect(try SafeTensorsFile(data: header(#"{"x":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}"#, data: Data(count: 8)), name: "t").info("x").shape == [2])
        #expect(try SafeTensorsFile(data: header(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}"#, data: Data(count: 4)), name: "t")
            .info("x").range == 0..<4)
    }

    @Test func truncated() {
        expectRejected(sample.prefix(sample.count - 3), "truncated")
        expectRejected(sample.prefix(5), "shorter than the 8-byte")
        expectRejected(sample.prefix(20), "runs past the end")
    }

    @Test func malformedHeaders() {
        expectRejected(header("{not json"), "not valid JSON")
        expectRejected(header("[1,2]"), "not a JSON object")
        expectRejected(header(#"{"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}}"#, data: Data(count: 4)), "unknown dtype")
        expectRejected(header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: Data(count: 4)), "needs 8")
        expectRejected(header(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, data: Data(count: 4)), "out of order")
        expectRejected(header(#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: Data(count: 4)), "invalid shape")
        expectRejected(header(#"{"a":{"dtype":"F32","shape":[1]}}"#, data: Data(count: 4)), "data_offsets")
        expectRejected(header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                              data: Data(count: 8)), "overlap")
        expectRejected(header(#"{"__metadata__":{"k":1}}"#), "not a string")
        var huge = Data()
        withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { huge.append(contentsOf: $0) }
        expectRejected(huge + Data(count: 16), "exceeds")
    }

    @Test("random corruption never crashes: every mutant parses or is rejected with a FileError")
    func corruption() {
        var rng = SeededRNG(seed: 42)
        for _ in 0..<2000 {
            var d = sample
            switch rng.next() % 3 {
            case 0: d = d.prefix(Int(rng.next() % UInt64(d.count)))
            case 1:
                for _ in 0...(rng.next() % 4) { d[Int(rng.next() % UInt64(d.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            default: d[Int(rng.next() % 8)] = UInt8(truncatingIfNeeded: rng.next())
            }
            do {
                let f = try SafeTensorsFile(data: d, name: "m")
                for n in f.names { _ = try? f.bytes(n) }
            } catch is FileError {
            } catch {
                Issue.record("unexpected error type \(error)")
            }
        }
    }

    @Test("files on disk: atomic write, error names the path")
    func onDisk() throws {
        let dir = NSTemporaryDirectory() + "ballast-st-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/t.safetensors"
        try SafeTensorsWriter.write([("w", TensorData(floats: [0.5, -1], shape: [2]))], to: path)
        #expect(try SafeTensorsFile(path: path).floats("w") == [0.5, -1])
        try sample.prefix(30).write(to: URL(fileURLWithPath: path))
        let e = try #require(throws: FileError.self) { try SafeTensorsFile(path: path) }
        #expect(e.description.hasPrefix(path + ": "))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["t.safetensors"])
    }
}

@Suite("TensorBoard event files")
struct TensorBoardTests {
    @Test("CRC-32C matches the standard check value and TFRecord framing is consistent")
    func crcAndFraming() throws {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksumReference(Array("123456789".utf8)) == 0xE306_9283)
        var rng = SeededRNG(seed: 8)
        // Lengths on both sides of the three-stream blocks (3 × 256 and 3 × 4096 bytes), and unaligned starts.
        for n in [0, 1, 7, 8, 9, 63, 64, 767, 768, 769, 1000, 4099, 12_287, 12_288, 12_289, 3 * 12_288 + 3 * 768 + 13] {
            let bytes = (0..<n + 3).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            for start in 0..<3 {
                let part = Array(bytes[start..<start + n])
                #expect(CRC32C.checksum(part) == CRC32C.checksumReference(part), "length \(n), start \(start)")
                #expect(CRC32C.checksum(Data(bytes)[start..<start + n]) == CRC32C.checksumReference(part))
            }
        }
        let dir = NSTemporaryDirectory() + "ballast-tb-\(getpid())"
        let w = try TensorBoardWriter(directory: dir)
        w.scalars(["loss": 1.5, "lr": 1e-3], step: 7)
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: w.path)))
        // Walk the records: length, masked CRC of the length, payload, masked CRC of the payload.
        var i = 0, records = 0
        while i < data.count {
            let lenBytes = Array(data[i..<(i + 8)])
            let len = lenBytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.1) << (8 * UInt64($1.0)) }
            let crc = data[(i + 8)..<(i + 12)].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.1) << (8 * UInt32($1.0)) }
            #expect(crc == CRC32C.masked(lenBytes))
            let payload = Array(data[(i + 12)..<(i + 12 + Int(len))])
            let pcrc = data[(i + 12 + Int(len))..<(i + 16 + Int(len))].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.1) << (8 * UInt32($1.0)) }
            #expect(pcrc == CRC32C.masked(payload))
            i += 16 + Int(len)
            records += 1
        }
        #expect(records == 2 && i == data.count)
        #expect(String(decoding: data, as: UTF8.self).contains("brain.Event:2"))
    }
}

@Suite("safetensors zero-size tensors")
struct ZeroSizeTests {
    @Test("a zero-size tensor sharing an offset with a real one is not an overlap")
    func zeroSize() throws {
        let d = SafeTensorsWriter.encode([("a", TensorData(floats: [1, 2], shape: [2])), ("empty", TensorData(floats: [], shape: [0])),
                                          ("b", TensorData(floats: [3], shape: [1]))])
        let f = try SafeTensorsFile(data: d, name: "z")
        #expect(try f.floats("empty") == [] && f.floats("b") == [3])
    }
}

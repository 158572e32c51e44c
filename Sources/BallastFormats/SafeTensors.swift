import CCRC32C
import Foundation
import Synchronization

/// Element types of the safetensors format that Ballast reads and writes.
public enum DType: String, Sendable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    public var size: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }
}

/// A tensor to write: raw little-endian bytes with dtype and shape.
public struct TensorData: Sendable {
    public let dtype: DType
    public let shape: [Int]
    public let bytes: Data

    public init(dtype: DType, shape: [Int], bytes: Data) {
        precondition(bytes.count == shape.reduce(1, *) * dtype.size, "byte count does not match shape")
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    public init(floats: UnsafeBufferPointer<Float>, shape: [Int]) {
        self.init(dtype: .f32, shape: shape, bytes: Data(buffer: floats))
    }

    public init(floats: [Float], shape: [Int]) {
        self.init(dtype: .f32, shape: shape, bytes: floats.withUnsafeBufferPointer { Data(buffer: $0) })
    }

    public init(int32s: [Int32], shape: [Int]) {
        self.init(dtype: .i32, shape: shape, bytes: int32s.withUnsafeBufferPointer { Data(buffer: $0) })
    }

    /// A 1-D I64 tensor (ids, offsets).
    public init(int64s: [Int]) {
        let v = int64s.map(Int64.init)
        self.init(dtype: .i64, shape: [v.count], bytes: v.withUnsafeBufferPointer { Data(buffer: $0) })
    }

    /// The values of an I64 tensor (nil for any other dtype).
    public var int64s: [Int]? {
        guard dtype == .i64 else { return nil }
        return elements(Int64.self).map(Int.init)
    }

    /// The bytes as `T` values, copied out: decoded frames' tensors are views into the payload and not
    /// aligned to their element size, so they must not be bound to `T` in place.
    public func elements<T: BitwiseCopyable>(_: T.Type, from start: Int = 0, count: Int? = nil) -> [T] {
        let n = count ?? bytes.count / MemoryLayout<T>.stride - start
        precondition(start >= 0 && n >= 0 && (start + n) * MemoryLayout<T>.stride <= bytes.count)
        guard n > 0 else { return [] }
        return [T](unsafeUninitializedCapacity: n) { out, done in
            bytes.withUnsafeBytes { raw in
                UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: raw.baseAddress! + start * MemoryLayout<T>.stride,
                                                                     byteCount: n * MemoryLayout<T>.stride)
            }
            done = n
        }
    }
}

/// Large wire-frame buffers kept for reuse. A fresh multi-megabyte allocation comes from mmap (or a
/// thread arena trimmed back to the OS), so every weights frame paid a page fault per 4 KiB as it was
/// written: half of encoding a 13 MB policy. At most two buffers of 1–256 MiB are kept (one being sent
/// while the next is written); files written to disk do not use them, so a checkpoint leaves nothing held.
enum PayloadBuffers {
    struct Buffer: @unchecked Sendable { let pointer: UnsafeMutableRawPointer, capacity: Int }
    static let reused = (1 << 20)...(256 << 20), kept = 2
    static let free = Mutex<[Buffer]>([])

    static func take(_ bytes: Int) -> Buffer {
        if reused.contains(bytes), let b = free.withLock({ list -> Buffer? in
            // one that fits without wasting more than half of it
            guard let i = list.firstIndex(where: { $0.capacity >= bytes && $0.capacity <= 2 * bytes }) else { return nil }
            return list.remove(at: i)
        }) { return b }
        return Buffer(pointer: .allocate(byteCount: max(bytes, 1), alignment: 64), capacity: max(bytes, 1))
    }

    static func give(_ b: Buffer) {
        let kept = reused.contains(b.capacity) && free.withLock { list -> Bool in
            if list.count >= Self.kept { list.removeFirst().pointer.deallocate() }  // the oldest goes
            list.append(b)
            return true
        }
        if !kept { b.pointer.deallocate() }
    }
}

/// A validated, read-only safetensors file (https://github.com/huggingface/safetensors format):
/// u64 little-endian header length N, N bytes of JSON header, then the data buffer.
public struct SafeTensorsFile: Sendable {
    public struct Info: Sendable, Equatable {
        public let dtype: DType
        public let shape: [Int]
        /// Byte range inside the data buffer.
        public let range: Range<Int>
    }

    public let path: String
    public let tensors: [String: Info]
    public let metadata: [String: String]
    private let data: Data
    private let dataStart: Int

    /// Upper bound on the JSON header; real headers are kilobytes.
    public static let maxHeaderBytes = 100 << 20

    public init(path: String) throws {
        let name = path
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
        } catch {
            throw FileError(path: name, problem: "cannot read file (\(error.localizedDescription))")
        }
        try self.init(data: data, name: name)
    }

    public init(data: Data, name: String) throws {
        func fail(_ p: String) -> FileError { FileError(path: name, problem: p) }
        guard data.count >= 8 else { throw fail("file is \(data.count) bytes, shorter than the 8-byte header length") }
        let headerLen = data.withUnsafeBytes { raw -> UInt64 in
            UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        }
        guard headerLen <= UInt64(Self.maxHeaderBytes) else { throw fail("header length \(headerLen) exceeds the \(Self.maxHeaderBytes)-byte limit") }
        guard Int(headerLen) <= data.count - 8 else {
            throw fail("header length \(headerLen) runs past the end of the file (\(data.count) bytes): truncated?")
        }
        let dataStart = 8 + Int(headerLen)
        let dataSize = data.count - dataStart
        var tensors: [String: Info] = [:]
        var metadata: [String: String] = [:]
        /// The checks every tensor entry passes, however its header was read.
        func add(_ key: String, dtype dt: String, shape: [Int], begin b: Int, end e: Int) throws {
            guard let dtype = DType(rawValue: dt) else { throw fail("tensor \"\(key)\" has unknown dtype \"\(dt)\"") }
            guard b >= 0, b <= e else { throw fail("tensor \"\(key)\" has data_offsets [\(b), \(e)] out of order") }
            guard e <= dataSize else {
                throw fail("tensor \"\(key)\" data_offsets [\(b), \(e)] run past the data buffer of \(dataSize) bytes: truncated?")
            }
            var elements = 1
            for d in shape {
                let (r, o) = elements.multipliedReportingOverflow(by: d)
                guard !o else { throw fail("tensor \"\(key)\" shape \(shape) overflows") }
                elements = r
            }
            let (bytes, overflow) = elements.multipliedReportingOverflow(by: dtype.size)
            guard !overflow else { throw fail("tensor \"\(key)\" shape \(shape) of \(dt) is beyond any byte count") }
            guard bytes == e - b else {
                throw fail("tensor \"\(key)\" has \(e - b) bytes but shape \(shape) of \(dt) needs \(bytes)")
            }
            tensors[key] = Info(dtype: dtype, shape: shape, range: b..<e)
        }
        let header = { (raw: UnsafeRawBufferPointer) in UnsafeRawBufferPointer(rebasing: raw[8 ..< 8 + Int(headerLen)]) }
        // Headers as writers lay them out are read straight into entries; anything else (or anything the
        // fast reader does not take) goes through the JSON value tree, which gives the precise complaint.
        if let fast = data.withUnsafeBytes({ Self.readPlainHeader(header($0)) }) {
            for t in fast.tensors { try add(t.key, dtype: t.dtype, shape: t.shape, begin: t.begin, end: t.end) }
            metadata = fast.metadata
        } else {
            try Self.readHeaderValues(data.withUnsafeBytes { try JSONText.parse(header($0)) }, fail: fail, add: add, metadata: &metadata)
        }
        // Zero-size tensors occupy no bytes and cannot overlap anything.
        let sorted = tensors.filter { !$0.value.range.isEmpty }.sorted { $0.value.range.lowerBound < $1.value.range.lowerBound }
        for i in sorted.indices.dropFirst() {
            let prev = sorted[i - 1], cur = sorted[i]
            if cur.value.range.lowerBound < prev.value.range.upperBound {
                throw fail("tensors \"\(prev.key)\" and \"\(cur.key)\" overlap in the data buffer")
            }
        }
        self.path = name
        self.tensors = tensors
        self.metadata = metadata
        self.data = data
        self.dataStart = dataStart
    }

    /// The header through the JSON value tree, entry by entry into `add` and `metadata`.
    static func readHeaderValues(_ parsed: @autoclosure () throws -> JSONText.Value, fail: (String) -> FileError,
                                 add: (String, String, [Int], Int, Int) throws -> Void, metadata: inout [String: String]) throws {
        let members: [(String, JSONText.Value)]
        do {
            guard case .object(let m) = try parsed() else { throw fail("header is not a JSON object") }
            members = m
        } catch let e as JSONText.SyntaxError {
            throw fail("header is not valid JSON (\(e.description))")
        }
        /// A JSON number that is a whole count (2.0 is accepted, as JSONSerialization's NSNumber did).
        func count(_ v: JSONText.Value) -> Int? {
            guard case .number(let d, let exact) = v else { return nil }
            if let exact { return exact }
            return d == d.rounded() && abs(d) < 9e15 ? Int(d) : nil
        }
        func field(_ entry: [(String, JSONText.Value)], _ name: String) -> JSONText.Value? { entry.last { $0.0 == name }?.1 }
        for (key, value) in members {
            if key == "__metadata__" {
                guard case .object(let m) = value else { throw fail("__metadata__ is not an object") }
                for (k, v) in m {
                    guard case .string(let s) = v else { throw fail("__metadata__ value for \"\(k)\" is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard case .object(let entry) = value else { throw fail("entry \"\(key)\" is not an object") }
            guard case .string(let dt)? = field(entry, "dtype") else { throw fail("tensor \"\(key)\" has no dtype") }
            guard DType(rawValue: dt) != nil else { throw fail("tensor \"\(key)\" has unknown dtype \"\(dt)\"") }
            guard case .array(let dims)? = field(entry, "shape") else { throw fail("tensor \"\(key)\" has no shape list") }
            var shape: [Int] = []
            for d in dims {
                guard let n = count(d), n >= 0 else { throw fail("tensor \"\(key)\" has an invalid shape \(dims.map { count($0).map(String.init) ?? "?" })") }
                shape.append(n)
            }
            guard case .array(let offs)? = field(entry, "data_offsets"), offs.count == 2,
                  let b = count(offs[0]), let e = count(offs[1]) else {
                throw fail("tensor \"\(key)\" has no valid data_offsets pair")
            }
            try add(key, dt, shape, b, e)
        }
    }

    struct PlainTensor { var key: String, dtype: String, shape: [Int], begin: Int, end: Int }

    /// Reads a header laid out as writers lay it out: one object of tensor entries with the fields dtype
    /// (a string), shape (non-negative integers) and data_offsets (two of them) and nothing else, and an
    /// optional `__metadata__` object of strings; a repeated key counts last, as in the value tree. Nil for
    /// anything else: the value tree then reads it. Frames are small, so the tree was most of decoding one.
    static func readPlainHeader(_ bytes: UnsafeRawBufferPointer) -> (tensors: [PlainTensor], metadata: [String: String])? {
        var r = PlainHeaderReader(p: JSONText.Parser(bytes: bytes))
        return r.header()
    }

    /// The fast reader's steps (a struct with mutating methods: nested closures over the parser boxed it
    /// on the heap at every call).
    struct PlainHeaderReader {
        var p: JSONText.Parser

        mutating func skip(_ c: UInt8) -> Bool {
            p.skipSpace()
            guard p.peek == c else { return false }
            p.at += 1
            p.skipSpace()
            return true
        }

        mutating func string() -> String? { p.peek == 0x22 ? try? p.string() : nil }

        /// A non-negative integer without sign, leading zeros, fraction or exponent.
        mutating func integer() -> Int? {
            let start = p.at
            var v = 0
            while let c = p.peek, c >= 0x30, c <= 0x39 {
                let (m, o1) = v.multipliedReportingOverflow(by: 10), (a, o2) = m.addingReportingOverflow(Int(c - 0x30))
                guard !o1, !o2 else { return nil }
                v = a
                p.at += 1
            }
            let digits = p.at - start
            guard digits > 0, digits == 1 || p.bytes[start] != 0x30, let c = p.peek, c != 0x2E, c != 0x65, c != 0x45 else { return nil }
            return v
        }

        mutating func integers() -> [Int]? {
            guard skip(0x5B) else { return nil }
            var out: [Int] = []
            if skip(0x5D) { return out }
            repeat {
                guard let v = integer() else { return nil }
                out.append(v)
            } while skip(0x2C)
            return skip(0x5D) ? out : nil
        }

        /// `"key":` at the start of a member.
        mutating func key() -> String? {
            guard let k = string(), skip(0x3A) else { return nil }
            return k
        }

        mutating func readMetadata(into out: inout [String: String]) -> Bool {
            guard skip(0x7B) else { return false }
            if skip(0x7D) { return true }
            repeat {
                guard let k = key(), let v = string() else { return false }
                out[k] = v
            } while skip(0x2C)
            return skip(0x7D)
        }

        mutating func tensor(_ name: String) -> PlainTensor? {
            guard skip(0x7B) else { return nil }
            var dtype: String?, shape: [Int]?, offsets: [Int]?
            repeat {
                switch key() {
                case "dtype": dtype = string(); if dtype == nil { return nil }
                case "shape": shape = integers(); if shape == nil { return nil }
                case "data_offsets": offsets = integers(); if offsets?.count != 2 { return nil }
                default: return nil
                }
            } while skip(0x2C)
            guard skip(0x7D), let dtype, let shape, let offsets else { return nil }
            return PlainTensor(key: name, dtype: dtype, shape: shape, begin: offsets[0], end: offsets[1])
        }

        mutating func header() -> (tensors: [PlainTensor], metadata: [String: String])? {
            var tensors: [PlainTensor] = [], metadata: [String: String] = [:]
            guard skip(0x7B) else { return nil }
            if !skip(0x7D) {
                repeat {
                    guard let name = key() else { return nil }
                    if name == "__metadata__" {
                        guard readMetadata(into: &metadata) else { return nil }
                    } else {
                        guard let t = tensor(name) else { return nil }
                        tensors.append(t)
                    }
                } while skip(0x2C)
                guard skip(0x7D) else { return nil }
            }
            p.skipSpace()
            return p.at == p.bytes.count ? (tensors, metadata) : nil
        }
    }

    public var names: [String] { tensors.keys.sorted() }

    public func info(_ name: String) throws -> Info {
        guard let i = tensors[name] else { throw FileError(path: path, problem: "no tensor named \"\(name)\"") }
        return i
    }

    /// A tensor's bytes as a view of the file's buffer (no copy; not aligned to the element size, and
    /// indices do not start at 0: read it through withUnsafeBytes and loadUnaligned).
    public func slice(_ name: String) throws -> Data {
        let i = try info(name)
        let s = data.startIndex + dataStart
        return data[s + i.range.lowerBound ..< s + i.range.upperBound]
    }

    /// Raw bytes of a tensor (a copy of its own).
    public func bytes(_ name: String) throws -> Data {
        let i = try info(name)
        let s = data.startIndex + dataStart
        return data.subdata(in: s + i.range.lowerBound ..< s + i.range.upperBound)
    }

    /// A floating-point tensor converted to Float32 (F32, F64, F16 and BF16 accepted).
    public func floats(_ name: String) throws -> [Float] {
        let i = try info(name)
        let raw = try bytes(name)
        let n = i.shape.reduce(1, *)
        let out = raw.withUnsafeBytes { p -> [Float]? in
            switch i.dtype {
            case .f32: return (0..<n).map { Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
            case .f64: return (0..<n).map { Float(Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)))) }
            case .bf16: return (0..<n).map { Float(bitPattern: UInt32(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) << 16) }
            case .f16: return (0..<n).map { Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)))) }
            default: return nil
            }
        }
        guard let out else { throw FileError(path: path, problem: "tensor \"\(name)\" has dtype \(i.dtype.rawValue), expected a float type") }
        return out
    }

    /// An integer tensor converted to Int (I64, I32, I16, I8, U8, BOOL accepted).
    public func ints(_ name: String) throws -> [Int] {
        let i = try info(name)
        let raw = try bytes(name)
        let n = i.shape.reduce(1, *)
        let out = raw.withUnsafeBytes { p -> [Int]? in
            switch i.dtype {
            case .i64: return (0..<n).map { Int(Int64(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self))) }
            case .i32: return (0..<n).map { Int(Int32(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))) }
            case .i16: return (0..<n).map { Int(Int16(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self))) }
            case .i8: return (0..<n).map { Int(p.load(fromByteOffset: $0, as: Int8.self)) }
            case .u8, .bool: return (0..<n).map { Int(p.load(fromByteOffset: $0, as: UInt8.self)) }
            default: return nil
            }
        }
        guard let out else { throw FileError(path: path, problem: "tensor \"\(name)\" has dtype \(i.dtype.rawValue), expected an integer type") }
        return out
    }
}

public enum SafeTensorsWriter {
    /// Serialises tensors (in the given order) with optional string metadata. The header is padded with
    /// spaces to a multiple of 8 bytes so that the data buffer is aligned.
    public static func encode(_ tensors: [(String, TensorData)], metadata: [String: String] = [:]) -> Data {
        encode(tensors, metadata: metadata, frame: false).payload
    }

    /// A wire frame's payload and its CRC-32C, computed while the bytes are copied (block by block, so the
    /// checksum reads what the copy just left in cache instead of making a second pass over a large
    /// payload), into a reused buffer (`PayloadBuffers`).
    public static func encodeChecksummed(_ tensors: [(String, TensorData)], metadata: [String: String] = [:]) -> (payload: Data, crc32c: UInt32) {
        encode(tensors, metadata: metadata, frame: true)
    }

    static func encode(_ tensors: [(String, TensorData)], metadata: [String: String], frame: Bool) -> (payload: Data, crc32c: UInt32) {
        // Each top-level member's JSON text, then written in key order: the header is built as bytes
        // because every wire frame carries one (string building was a visible share of a coordinator).
        var entries: [(key: String, value: [UInt8])] = []
        entries.reserveCapacity(tensors.count + 1)
        var offset = 0
        for (name, t) in tensors {
            var v: [UInt8] = Array(#"{"data_offsets":["#.utf8)
            v.append(contentsOf: String(offset).utf8)
            v.append(0x2C)
            v.append(contentsOf: String(offset + t.bytes.count).utf8)
            v.append(contentsOf: #"],"dtype":"#.utf8)
            JSONText.appendQuoted(t.dtype.rawValue, to: &v)
            v.append(contentsOf: #","shape":["#.utf8)
            for (i, d) in t.shape.enumerated() {
                if i > 0 { v.append(0x2C) }
                v.append(contentsOf: String(d).utf8)
            }
            v.append(contentsOf: "]}".utf8)
            entries.append((name, v))
            offset += t.bytes.count
        }
        if !metadata.isEmpty {
            var v: [UInt8] = [0x7B]
            for (i, field) in sortedByKeyOrder(metadata.map { ($0.key, $0.value) }).enumerated() {
                if i > 0 { v.append(0x2C) }
                JSONText.appendQuoted(field.key, to: &v)
                v.append(0x3A)
                JSONText.appendQuoted(field.value, to: &v)
            }
            v.append(0x7D)
            entries.append(("__metadata__", v))
        }
        var json: [UInt8] = [0x7B]
        for (i, entry) in sortedByKeyOrder(entries).enumerated() {
            if i > 0 { json.append(0x2C) }
            JSONText.appendQuoted(entry.key, to: &json)
            json.append(0x3A)
            json.append(contentsOf: entry.value)
        }
        json.append(0x7D)
        while json.count % 8 != 0 { json.append(0x20) }
        let total = 8 + json.count + offset
        let buffer = frame ? PayloadBuffers.take(total)
                           : PayloadBuffers.Buffer(pointer: .allocate(byteCount: max(total, 1), alignment: 64), capacity: max(total, 1))
        var at = 0, crc: UInt32 = 0
        func put(_ source: UnsafeRawBufferPointer) {
            let block = 16 << 10
            var done = 0
            while done < source.count {
                let n = min(block, source.count - done)
                let target = UnsafeMutableRawBufferPointer(start: buffer.pointer + at, count: n)
                target.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[done..<(done + n)]))
                if frame { crc = ballast_crc32c(crc, target.baseAddress, n) }
                at += n
                done += n
            }
        }
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { put($0) }
        json.withUnsafeBytes { put($0) }
        for (_, t) in tensors { t.bytes.withUnsafeBytes { put($0) } }
        let payload = Data(bytesNoCopy: buffer.pointer, count: total, deallocator: .custom { _, _ in
            if frame { PayloadBuffers.give(buffer) } else { buffer.pointer.deallocate() }
        })
        return (payload, crc)
    }

    /// The order JSONSerialization's `sortedKeys` gives (the system locale's collation with numeric
    /// search), which the golden wire frames pin. The collator is slow (it was most of a coordinator's
    /// CPU with JSONSerialization gone), and a frame kind's keys are the same every time, so each set of
    /// keys is sorted once and its order remembered.
    static func sortedByKeyOrder<T>(_ items: [(key: String, value: T)]) -> [(key: String, value: T)] {
        let keys = items.map(\.key)
        if let order = keyOrderCache.withLock({ $0[keys] }) { return order.map { items[$0] } }
        let order = items.indices.sorted {
            items[$0].key.compare(items[$1].key, options: .numeric, range: nil, locale: systemLocale) == .orderedAscending
        }
        keyOrderCache.withLock { cache in
            if cache.count >= 4096 { cache.removeAll() }  // bounded: keys from user data vary without end
            cache[keys] = order
        }
        return order.map { items[$0] }
    }

    static let systemLocale = Locale(identifier: "")
    static let keyOrderCache = Mutex<[[String]: [Int]]>([:])

    /// Writes atomically: temporary file, fsync, rename, fsync of the directory.
    public static func write(_ tensors: [(String, TensorData)], metadata: [String: String] = [:], to path: String) throws {
        try AtomicFile.write(encode(tensors, metadata: metadata), to: path)
    }
}

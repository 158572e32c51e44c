import BallastWire
import Foundation

/// libFuzzer entry point: the input is split into an envelope (first 48 bytes) and a payload, as the
/// transport delivers them; the decoder must either return a frame or throw a WireError — any crash,
/// hang or sanitizer report is a bug. A decoded frame must re-encode to a frame that decodes again.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWire(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Data(bytes: data, count: size)
    let envelope = bytes.prefix(Frame.envelopeSize), payload = bytes.dropFirst(Frame.envelopeSize)
    if let (frame, _) = try? Frame.decode(envelope: Data(envelope), payload: Data(payload)) {
        let (e, p) = frame.encode()
        guard (try? Frame.decode(envelope: e, payload: p)) != nil else { fatalError("a decoded frame did not survive re-encoding") }
    }
    _ = try? Frame.decode(contiguous: bytes)
    return 0
}

// SwiftPM links executables with main aliased to <Target>_main; hand control to libFuzzer's driver there.
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
               _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> Int32) -> Int32

@_cdecl("FuzzWire_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var args = argv
    return runDriver(&count, &args, { fuzzWire($0, $1) })
}

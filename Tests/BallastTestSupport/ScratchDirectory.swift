import Foundation

/// A fresh, empty directory under the system's temporary folder, named for the test (or `tag`) so that
/// a failing test's files can be found.
public func scratchDirectory(_ tag: String = #function) -> String {
    let dir = NSTemporaryDirectory() + "ballast-tests-\(getpid())-\(tag.filter { $0.isLetter || $0.isNumber })-\(UInt32.random(in: 0...UInt32.max))"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

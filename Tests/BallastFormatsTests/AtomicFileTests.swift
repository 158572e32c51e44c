import BallastFormats
import Foundation
import Testing

@Suite("Atomic files")
struct AtomicFileTests {
    func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! NSNumber).intValue
    }

    @Test("a secret is created 0600 (never readable by others in between), even over a leftover temporary file")
    func secretMode() throws {
        let dir = NSTemporaryDirectory() + "atomic-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/server.secret"
        // A crashed writer's temporary file, world-readable.
        _ = FileManager.default.createFile(atPath: path + ".tmp-\(getpid())", contents: Data("old".utf8), attributes: [.posixPermissions: 0o644])
        try AtomicFile.write("s3cret\n", to: path, mode: 0o600)
        #expect(try mode(path) == 0o600)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "s3cret\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["server.secret"])
        try AtomicFile.write("public\n", to: dir + "/server.public")
        #expect(try mode(dir + "/server.public") == 0o644)
    }
}

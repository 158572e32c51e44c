import BallastFormats
import Foundation
import Testing

/// JSONText replaces JSONSerialization on the wire and in the journal: what it writes must read back
/// through JSONSerialization as the same value, and what it reads must be what JSONSerialization reads.
@Suite("hand-written JSON")
struct JSONTextTests {
    static let awkwardStrings = ["", "plain", "quote \" backslash \\ slash /", "tab\tnew\nline\r", "\u{01}\u{08}\u{0C}\u{1F}",
                                 "é ü 中文 🙂", "\u{7F}", "\u{2028}"]

    @Test func stringsAreEscapedExactlyAsJSONSerializationEscapesThem() throws {
        for s in Self.awkwardStrings {
            let foundation = String(decoding: try JSONSerialization.data(withJSONObject: [s]), as: UTF8.self)
            #expect(String(decoding: try JSONText.data([s]), as: UTF8.self) == foundation, "\(s.debugDescription)")
        }
    }

    @Test func recordsReadBackThroughJSONSerializationUnchanged() throws {
        let record: [String: Any] = [
            "t": "lease", "lease": 12, "neg": -7, "big": Int.max, "small": Int.min, "ids": [3, 1, 2], "empty": [Int](),
            "runs": [[0, 5, 3], [1, 0, 1]], "nested": ["a": ["b": [true, false]], "z": NSNull()], "x": 0.25, "e": 1e-300,
            "awkward": Self.awkwardStrings, "req": "actor-3/7",
        ]
        let line = try JSONText.data(record)
        let back = try #require(try JSONSerialization.jsonObject(with: line) as? [String: Any])
        // Equal as Foundation sees them: its own serialisation of both is the same.
        let foundation = { (v: Any) in String(decoding: try JSONSerialization.data(withJSONObject: v, options: [.sortedKeys]), as: UTF8.self) }
        #expect(try foundation(back) == foundation(record))
        // Keys in byte order, so the same record always gives the same bytes.
        let keys = try #require(String(decoding: line, as: UTF8.self).firstMatch(of: /^\{"([a-z]+)"/)?.1)
        #expect(keys == "awkward")
    }

    @Test func valuesJSONCannotHoldAreRefused() {
        #expect(throws: JSONText.UnsupportedValue.self) { try JSONText.data(["x": Double.nan]) }
        #expect(throws: JSONText.UnsupportedValue.self) { try JSONText.data(["x": Date()]) }
    }

    @Test func parsesWhatJSONSerializationParses() throws {
        let text = #" { "a" : [1, -2, 3.5, -0.0, 1e3, 2E-2, 12345678901234567890, true, false, null] ,"#
            + #" "s": "\u00e9\ud83d\ude42\n\"\\\/", "o": {}, "l": [], "a": 2 } "#
        let v = try JSONText.parse(Data(text.utf8))
        guard case .object(let members) = v else { Issue.record("not an object"); return }
        #expect(members.map(\.0) == ["a", "s", "o", "l", "a"])
        #expect(members[1].1 == .string("é🙂\n\"\\/"))
        #expect(members[2].1 == .object([]))
        guard case .array(let items) = members[0].1 else { Issue.record("not an array"); return }
        #expect(items[0] == .number(1, exactInt: 1))
        #expect(items[1] == .number(-2, exactInt: -2))
        #expect(items[2] == .number(3.5, exactInt: nil))
        #expect(items[4] == .number(1000, exactInt: nil))
        #expect(items[5] == .number(0.02, exactInt: nil))
        #expect(items[6] == .number(12345678901234567890, exactInt: nil))  // beyond Int: a Double, as JSONSerialization
        #expect(Array(items[7...]) == [.bool(true), .bool(false), .null])
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "[01]", "[1.]", "[.5]", "[1e]", "[-]", "\"\\x\"", "\"\\ud800\"", "\"a\nb\"",
        "[1] [2]", "{a:1}", "nul", "[\"\\u12\"]", String(repeating: "[", count: 600) + String(repeating: "]", count: 600),
    ])
    func rejectsInvalidText(_ text: String) {
        #expect(throws: JSONText.SyntaxError.self) { try JSONText.parse(Data(text.utf8)) }
    }

    @Test func invalidUTF8InAStringIsRejected() {
        #expect(throws: JSONText.SyntaxError.self) { try JSONText.parse(Data([0x22, 0xC3, 0x28, 0x22])) }
    }

    @Test func safetensorsHeadersWrittenByOtherToolsStillRead() throws {
        // Whitespace, escaped names, member order and integral floats as other writers may produce them.
        let json = "{\n  \"__metadata__\": {\"format\": \"pt\"},\n  \"w\\u00e9/x\": {\"dtype\": \"F32\", \"shape\": [2.0], \"data_offsets\": [0, 8]}\n}"
        let file = try SafeTensorsFile(data: header(json, data: Data(count: 8)), name: "x")
        #expect(file.names == ["wé/x"])
        #expect(try file.info("wé/x").shape == [2])
        #expect(file.metadata == ["format": "pt"])
    }
}

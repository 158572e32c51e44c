import ArgumentParser
import BallastFormats
import BallastTokenizers
import Foundation

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Text on stdin → token ids with a Hugging Face tokenizer: one JSON array per input line (--decode: the reverse).",
        discussion: """
        Input lines are text (a line's own newline is not part of it) or, with --jsonl, JSON objects with a "text" field.
        --decode reads one JSON array of ids per line and prints each text on its own line (with --jsonl, as {"text": ...}).
        The tokenizer is a model folder's tokenizer.json, or vocab.json + merges.txt.
        """)
    @Option(help: "Folder with tokenizer.json, or vocab.json + merges.txt.") var tokenizer: String
    @Flag(help: "Ids → text.") var decode = false
    @Flag(help: "Lines are JSON objects with a \"text\" field (output too, with --decode).") var jsonl = false
    @Flag(name: .customLong("no-special-tokens"),
          help: "Encoding: do not add the post-processor's tokens (BOS for Llama 3). Decoding: drop special tokens.") var noSpecialTokens = false

    func run() throws {
        try failing {
            let tok = try BPETokenizer.load(directory: tokenizer)
            var out = Data()
            func flush() { if !out.isEmpty { _ = Streams.write(out, to: STDOUT_FILENO); out.removeAll(keepingCapacity: true) } }
            var lineNumber = 0
            while let line = readLine(strippingNewline: true) {
                lineNumber += 1
                func bad(_ what: String) -> TokenizerError { TokenizerError("stdin line \(lineNumber): \(what)") }
                if decode {
                    guard let ids = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [NSNumber] else {
                        throw bad("not a JSON array of token ids")
                    }
                    let text: String
                    do { text = try tok.decode(ids.map(\.int32Value), skipSpecialTokens: noSpecialTokens) } catch { throw bad("\(error)") }
                    if jsonl {
                        out += try JSONSerialization.data(withJSONObject: ["text": text], options: [.withoutEscapingSlashes])
                        out += Data("\n".utf8)
                    } else {
                        out += Data((text + "\n").utf8)
                    }
                } else {
                    var text = line
                    if jsonl {
                        guard let obj = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any], let t = obj["text"] as? String else {
                            throw bad("not a JSON object with a string \"text\" field")
                        }
                        text = t
                    }
                    let ids = tok.encode(text, addSpecialTokens: !noSpecialTokens)
                    out += Data(("[" + ids.map(String.init).joined(separator: ",") + "]\n").utf8)
                }
                if out.count > 1 << 16 { flush() }
            }
            flush()
        }
    }
}

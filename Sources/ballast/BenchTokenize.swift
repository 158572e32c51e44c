import ArgumentParser
import BallastTokenizers
import Foundation

struct BenchTokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Encoding tokens/s of a Hugging Face tokenizer against the tokenizers library on the same corpus.",
        discussion: """
        Each repeat loads the tokenizer afresh (a cold cache) and encodes every line of the corpus, BOS/EOS as the \
        tokenizer's post-processor adds them. Ballast runs on one thread; the library runs `encode` line by line \
        (one thread) and `encode_batch` (its Rust thread pool, --threads). The corpus defaults to the lines of this \
        repository's Swift sources and Markdown files. Needs `tokenizers` (tools/install/python-deps.sh).
        """)
    @Option(help: "Tokenizer folder.") var tokenizer = "Tests/BallastTokenizersTests/Fixtures/llama3"
    @Option(help: "Text file, one line per input (default: the repository's sources and docs).") var corpus: String?
    @Option var repeats = 5
    @Option(help: "Threads for the library's encode_batch.") var threads = 2

    func run() throws {
        try failing {
            let file = try corpus ?? Self.repositoryCorpus()
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw TokenizerError("\(file): cannot read as UTF-8") }
            var lines = text.components(separatedBy: "\n")
            if lines.last == "" { lines.removeLast() }
            var rates: [Double] = [], tokens = 0
            for _ in 0..<repeats {
                let tok = try BPETokenizer.load(directory: tokenizer)
                let t0 = DispatchTime.now().uptimeNanoseconds
                tokens = lines.reduce(0) { $0 + tok.encode($1).count }
                rates.append(Double(tokens) / (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9))
            }
            let ours = Bench.median(rates)
            print("corpus: \(file), \(lines.count) lines, \(text.utf8.count / 1024) KiB, \(tokens) tokens with \(tokenizer)")
            print("ballast: \(fmt(ours / 1e6, 2)) M tokens/s (one thread, median of \(repeats))")
            let peer = try Bench.runPython(script: "tokenize_peer.py", ["--tokenizer", tokenizer, "--corpus", file,
                                                                        "--repeats", "\(repeats)", "--threads", "\(threads)"])
            guard let single = peer["encode_tokens_per_s"] as? Double, let batch = peer["encode_batch_tokens_per_s"] as? Double,
                  let theirs = peer["tokens"] as? Int else { throw TokenizerError("tokenize_peer.py printed \(peer)") }
            if theirs != tokens { print("warning: the library counts \(theirs) tokens, Ballast \(tokens)") }
            let version = peer["version"] as? String ?? "?"
            print("tokenizers \(version) encode: \(fmt(single / 1e6, 2)) M tokens/s (one thread); ballast/peer \(fmt(ours / single, 2))x")
            print("tokenizers \(version) encode_batch: \(fmt(batch / 1e6, 2)) M tokens/s (\(threads) threads); ballast/peer \(fmt(ours / batch, 2))x")
        }
    }

    /// Every line of the repository's Swift sources and Markdown files, in a temporary file.
    static func repositoryCorpus() throws -> String {
        var lines: [String] = []
        for root in ["Sources", "Tests", "tools", "configs", "."] {
            guard let e = FileManager.default.enumerator(atPath: root) else { continue }
            for case let path as String in e {
                if root == "." && path.contains("/") { continue }
                guard path.hasSuffix(".swift") || path.hasSuffix(".md"),
                      let t = try? String(contentsOfFile: root + "/" + path, encoding: .utf8) else { continue }
                lines += t.components(separatedBy: "\n").filter { !$0.isEmpty }
            }
        }
        guard !lines.isEmpty else { throw TokenizerError("no sources found: run from the repository root or pass --corpus") }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("ballast-tokenize-corpus.txt").path
        try (lines.joined(separator: "\n") + "\n").write(toFile: out, atomically: true, encoding: .utf8)
        return out
    }
}

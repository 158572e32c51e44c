import BallastConfig
import BallastData
import BallastKernels
import BallastPipeline
import BallastRL
import BallastRandom
import BallastTestSupport
import BallastTraining
import BallastTransport
import Foundation
import Testing

@Suite("YAML configs")
struct ConfigTests {
    let yaml = """
    model:
      preset: tiny
      n_layer: 1
    data:
      max_length: 32
    train:
      steps: 10
      lr: 3e-3
    run:
      out_dir: /tmp/x
    """

    @Test func readsFieldsAndDefaults() throws {
        let c = try SFTConfig.load(try ConfigDocument(yaml: yaml, name: "a.yaml"))
        #expect(c.model.config.nLayer == 1)
        #expect(c.model.config.nEmbd == 32)
        #expect(c.optim.lr == 3e-3)
        #expect(c.optim.steps == 10)
        #expect(c.optim.batchSize == 32)
        #expect(c.run.outDir == "/tmp/x")
    }

    @Test("an unknown key is an error naming the key and the file")
    func unknownKey() throws {
        let doc = try ConfigDocument(yaml: yaml + "\n  lrr: 1", name: "configs/typo.yaml")
        let e = try #require(throws: ConfigError.self) { try SFTConfig.load(doc) }
        #expect(e.message == "configs/typo.yaml: unknown key \"run.lrr\"")
        let top = try ConfigDocument(yaml: yaml + "\nextra: 1", name: "t.yaml")
        #expect(throws: ConfigError("t.yaml: unknown key \"extra\"")) { try SFTConfig.load(top) }
    }

    @Test("--set overrides any field, and a typo there is named as such")
    func overrides() throws {
        let doc = try ConfigDocument(yaml: yaml, name: "a.yaml")
        try doc.apply(override: "train.lr=0.01")
        try doc.apply(override: "train.batch_size=4")
        try doc.apply(override: "model.n_head=4")
        try doc.apply(override: "data.train=/data/sft.jsonl")
        let c = try SFTConfig.load(doc)
        #expect(c.optim.lr == 0.01 && c.optim.batchSize == 4 && c.model.config.nHead == 4 && c.trainData == "/data/sft.jsonl")
        let bad = try ConfigDocument(yaml: yaml, name: "a.yaml")
        try bad.apply(override: "train.stepz=3")
        #expect(throws: ConfigError("--set train.stepz: unknown key \"train.stepz\"")) { try SFTConfig.load(bad) }
        #expect(throws: ConfigError.self) { try bad.apply(override: "no-equals-sign") }
    }

    @Test func typeErrors() throws {
        let doc = try ConfigDocument(yaml: "train:\n  steps: many\n", name: "b.yaml")
        let e = try #require(throws: ConfigError.self) { try SFTConfig.load(doc) }
        #expect(e.message.contains("b.yaml") && e.message.contains("train.steps") && e.message.contains("integer"))
        #expect(throws: ConfigError.self) { try SFTConfig.load(try ConfigDocument(yaml: "model:\n  preset: huge\n", name: "c.yaml")) }
        #expect(throws: ConfigError.self) { try SFTConfig.load(try ConfigDocument(yaml: "model:\n  n_head: 5\n", name: "c.yaml")) }
        #expect(throws: ConfigError.self) { try ConfigDocument(yaml: "- a\n- b\n", name: "list.yaml") }
    }

    @Test("every shipped config under configs/ loads")
    func shippedConfigs() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let dir = root.appendingPathComponent("configs").path
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }
        #expect(!files.isEmpty)
        for f in files {
            let doc = try ConfigDocument(file: dir + "/" + f)
            if f.hasPrefix("sft") { _ = try SFTConfig.load(doc) }
            else if f.hasPrefix("rm") { _ = try RewardConfig.load(doc) }
            else if f.hasPrefix("am") { _ = try RewardConfig.load(doc, kind: .advantage) }
            else if f.hasPrefix("ppo") { _ = try PPOConfig.load(doc) }
            else if f.hasPrefix("pipeline") || f == "quickstart.yaml" { _ = try Pipeline(doc: doc) }
            else { Issue.record("no loader for configs/\(f)") }
        }
    }
}

@Suite("Datasets and tokenizer")
struct DataTests {
    @Test func byteTokenizerRoundTrip() {
        let t = ByteTokenizer()
        let text = "héllo, wörld ✓ 12+34="
        #expect(t.decode(t.encode(text)) == text)
        #expect(t.encode("A") == [65])
        #expect(t.decode([ByteTokenizer.bos, 104, 105, ByteTokenizer.eos, ByteTokenizer.pad]) == "hi")
        #expect([ByteTokenizer.bos, ByteTokenizer.eos, ByteTokenizer.pad] == [256, 257, 258])
    }

    @Test("a malformed JSONL line is reported with file and line number")
    func malformedJSONL() throws {
        let dir = scratchDirectory("jsonl")
        let path = dir + "/d.jsonl"
        try "{\"prompt\":\"a\",\"completion\":\"b\"}\n\n{\"prompt\": \"c\", \"completion\": \n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: DatasetError(file: path, line: 3, problem: "not valid JSON")) { try SFTExample.read(path) }
        try "{\"prompt\":\"a\",\"completion\":\"b\"}\n{\"prompt\":\"a\"}\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: DatasetError(file: path, line: 2, problem: "missing field \"completion\"")) { try SFTExample.read(path) }
        try "{\"prompt\":\"a\",\"completion\":7}\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: DatasetError(file: path, line: 1, problem: "field \"completion\" must be a string")) { try SFTExample.read(path) }
        try "[1]\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: DatasetError(file: path, line: 1, problem: "expected a JSON object")) { try SFTExample.read(path) }
        try "{\"prompt\":\"p\",\"completion\":\"c\",\"task\":\"t\",\"id\":3}\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try SFTExample.read(path) == [SFTExample(prompt: "p", completion: "c", task: "t", id: "3")])
    }

    @Test("built-in data: deterministic per seed, correct answers, JSONL round trip")
    func builtin() throws {
        let a = BuiltinSFT.generate(count: 50, seed: 7)
        #expect(a == BuiltinSFT.generate(count: 50, seed: 7))
        #expect(a != BuiltinSFT.generate(count: 50, seed: 8))
        #expect(Set(a.compactMap(\.task)) == Set(BuiltinSFT.tasks))
        for e in a {
            switch e.task {
            case "add":
                let parts = e.prompt.dropLast().split(separator: "+").compactMap { Int($0) }
                #expect(Int(e.completion) == parts.reduce(0, +))
            case "reverse": #expect(String(e.prompt.dropFirst(8).dropLast().reversed()) == e.completion)
            case "upper": #expect(e.prompt.dropFirst(6).dropLast().uppercased() == e.completion)
            case "sort": #expect(String(e.prompt.dropFirst(5).dropLast().sorted()) == e.completion)
            default: break
            }
        }
        let path = scratchDirectory("builtin") + "/t.jsonl"
        try JSONL.write(a, to: path)
        #expect(try SFTExample.read(path) == a)
        #expect(BuiltinSFT.exactMatch(Array(a.prefix(2)), [a[0].completion, "wrong"]) == 0.5)
    }

    @Test("SFT batches put loss on completion tokens and EOS only")
    func lossMask() throws {
        let e = try SFTEncoding.encode(SFTExample(prompt: "ab", completion: "c"), codec: .bytes)
        #expect(e.tokens == [256, 97, 98, 99, 257])
        #expect(e.promptTokens == 3)
        let short = try SFTEncoding.encode(SFTExample(prompt: "x", completion: "y"), codec: .bytes)
        let (batch, targets, lossMask) = SFTEncoding.batch([e, short])
        #expect(batch.length == 5)
        #expect(targets[0..<5] == [97, 98, 99, 257, -1])
        #expect(lossMask[0..<5] == [0, 0, 1, 1, 0])
        // packed: the short example follows at row 5 with no padding
        #expect(batch.tokens.count == 9 && batch.start(ofRow: 1) == 5)
        #expect(batch.tokens[5..<9] == [256, 120, 121, 257])
        #expect(batch.mask == [Float](repeating: 1, count: 9))
        #expect(batch.positions == [0, 1, 2, 3, 4, 0, 1, 2, 3])
        #expect(targets[5..<9] == [120, 121, 257, -1])
        #expect(lossMask[5..<9] == [0, 1, 1, 0])
    }

    @Test("epoch sampler visits every example once per epoch and resumes exactly")
    func sampler() {
        var s = EpochSampler(count: 10, seed: 3)
        let first = s.next(10)
        #expect(Set(first) == Set(0..<10))
        var a = EpochSampler(count: 10, seed: 3)
        _ = a.next(13)
        var b = EpochSampler(count: 10, seed: 3, epoch: a.epoch, cursor: a.cursor)
        #expect(a.next(9) == b.next(9))
    }

    @Test("length grouping: still every example once per epoch, far less padding than random batches, resumes exactly")
    func lengthGroupedSampler() {
        var rng = SeededRNG(seed: 9)
        let lengths = (0..<1000).map { _ in 5 + Int(rng.next() % 120) }
        func padded(_ s: inout EpochSampler) -> (real: Int, padded: Int, seen: [Int]) {
            var real = 0, pad = 0, seen: [Int] = []
            for _ in 0..<(1000 / 8) {
                let b = s.next(8)
                seen += b
                real += b.map { lengths[$0] }.reduce(0, +)
                pad += 8 * b.map { lengths[$0] }.max()!
            }
            return (real, pad, seen)
        }
        var plain = EpochSampler(count: 1000, seed: 4)
        var grouped = EpochSampler(count: 1000, seed: 4, grouping: .init(lengths: lengths, batch: 8, window: 16))
        let p = padded(&plain), g = padded(&grouped)
        #expect(g.seen.sorted() == Array(0..<1000), "one epoch visits every example once")
        let plainShare = Double(p.real) / Double(p.padded), groupedShare = Double(g.real) / Double(g.padded)
        #expect(plainShare < 0.7 && groupedShare > 0.9, "real-token share: random \(plainShare), grouped \(groupedShare)")
        #expect(g.seen != g.seen.sorted { lengths[$0] < lengths[$1] }, "batches are shuffled, not sorted across the epoch")
        var a = EpochSampler(count: 1000, seed: 4, grouping: .init(lengths: lengths, batch: 8, window: 16))
        _ = a.next(1004)
        var b = EpochSampler(count: 1000, seed: 4, epoch: a.epoch, cursor: a.cursor, grouping: .init(lengths: lengths, batch: 8, window: 16))
        #expect(a.next(40) == b.next(40))
    }

    @Test func zmqLinks() {
        #expect(ZMQ.version.major == 4)
    }
}

import BallastConfig
import BallastFormats
import BallastModel
import BallastOptim
import Foundation

/// Training state saved beside the model for `--resume`.
public struct TrainerState: Codable, Sendable, Equatable {
    public var step: Int
    public var epoch: Int
    public var cursor: Int
    public var seed: UInt64
    public var tokensSeen: Int
    public var lastEvalLoss: Double?
    /// Advantage Model training: running per-task advantage statistics, restored on resume.
    public var taskStats: [String: AdvantageLoss.TaskStats]?
    /// PPO: rehearsal data position and the (possibly adaptive) KL coefficient, restored on resume.
    public var rehearsalEpoch: Int?
    public var rehearsalCursor: Int?
    public var klCoef: Double?
    /// PPO: the score normalisation measured on SFT samples, and the critic warm-up steps done.
    public var scoreMean: Double?
    public var scoreStd: Double?
    public var criticWarmupDone: Int?

    /// The state of a run that has not trained yet.
    public init(step: Int, epoch: Int, cursor: Int, seed: UInt64, tokensSeen: Int, lastEvalLoss: Double?) {
        self.step = step
        self.epoch = epoch
        self.cursor = cursor
        self.seed = seed
        self.tokensSeen = tokensSeen
        self.lastEvalLoss = lastEvalLoss
    }
}

/// A checkpoint folder = Hugging Face model files + optimizer.safetensors + trainer_state.json.
///
/// Folders are replaced so that a crash at any point leaves a valid one: every folder of a unit (PPO
/// saves the policy and the critic together) is first written complete under NAME.tmp; then for each,
/// NAME.old ← NAME and NAME ← NAME.tmp; only when all are swapped are the NAME.old folders removed.
/// `locate` picks, per folder, NAME or NAME.old so that the unit's steps agree.
public enum TrainingCheckpoint {
    public struct Part {
        public let model: GPT
        public let optimizer: AdamW
        public let dir: String
        public init(model: GPT, optimizer: AdamW, dir: String) {
            self.model = model
            self.optimizer = optimizer
            self.dir = dir
        }
    }

    public static func save(model: GPT, optimizer: AdamW, state: TrainerState, to dir: String) throws {
        try save([Part(model: model, optimizer: optimizer, dir: dir)], state: state)
    }

    /// Saves several folders as one unit with the same trainer state. `beforeSwapOperation` runs before
    /// each rename or removal of the swap (the crash-injection test throws from it).
    public static func save(_ parts: [Part], state: TrainerState, beforeSwapOperation: ((String) throws -> Void)? = nil) throws {
        let fm = FileManager.default
        for part in parts {
            let tmp = part.dir + ".tmp"
            try? fm.removeItem(atPath: tmp)
            try Checkpoint.save(part.model, to: tmp)
            let n = part.optimizer.count
            try SafeTensorsWriter.write([
                ("exp_avg", TensorData(floats: UnsafeBufferPointer(start: part.optimizer.m, count: n), shape: [n])),
                ("exp_avg_sq", TensorData(floats: UnsafeBufferPointer(start: part.optimizer.v, count: n), shape: [n])),
            ], metadata: ["step": String(part.optimizer.step)], to: tmp + "/optimizer.safetensors")
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(try enc.encode(state), to: tmp + "/trainer_state.json")
        }
        func step(_ what: String, _ op: () throws -> Void) throws {
            try beforeSwapOperation?(what)
            try op()
        }
        // The folders a resume would use now; they stay until the new unit is complete. After a crash
        // in an earlier swap that may be NAME.old (NAME missing, or newer than the rest of the unit).
        let valid = locate(parts.map(\.dir))
        for (i, part) in parts.enumerated() {
            let dir = part.dir, old = dir + ".old"
            if valid?[i] == old {
                if fm.fileExists(atPath: dir) { try step("remove \(dir)") { try fm.removeItem(atPath: dir) } }
            } else if fm.fileExists(atPath: dir) {
                if fm.fileExists(atPath: old) { try step("remove \(old)") { try fm.removeItem(atPath: old) } }
                try step("rename \(dir) → .old") { try fm.moveItem(atPath: dir, toPath: old) }
            }
            try step("rename \(dir).tmp → \(dir)") { try fm.moveItem(atPath: dir + ".tmp", toPath: dir) }
            AtomicFile.syncDirectory((dir as NSString).deletingLastPathComponent)
        }
        for part in parts where fm.fileExists(atPath: part.dir + ".old") {
            try step("remove \(part.dir).old") { try fm.removeItem(atPath: part.dir + ".old") }
        }
    }

    /// The folder to resume from: NAME, or NAME.old when a crash hit between the two renames.
    public static func locate(_ dir: String) -> String? { locate([dir])?.first }

    /// For a unit saved together: per folder NAME or NAME.old, the newest choice whose trainer steps all
    /// agree; nil when there is none.
    public static func locate(_ dirs: [String]) -> [String]? {
        func step(_ d: String) -> Int? {
            guard let data = FileManager.default.contents(atPath: d + "/trainer_state.json"),
                  let st = try? JSONDecoder().decode(TrainerState.self, from: data) else { return nil }
            return st.step
        }
        let candidates = dirs.map { d in [d, d + ".old"].compactMap { c in step(c).map { (c, $0) } } }
        var common = Set(candidates.first?.map(\.1) ?? [])
        for c in candidates.dropFirst() { common.formIntersection(c.map(\.1)) }
        guard let best = common.max() else { return nil }
        return candidates.map { c in c.first { $0.1 == best }!.0 }
    }

    public static func load(from dir: String, optimizer: AdamW) throws -> TrainerState {
        let file = try SafeTensorsFile(path: dir + "/optimizer.safetensors")
        let m = try file.floats("exp_avg"), v = try file.floats("exp_avg_sq")
        guard m.count == optimizer.count, v.count == optimizer.count else {
            throw FileError(path: file.path, problem: "optimizer state has \(m.count) entries, model has \(optimizer.count) parameters")
        }
        m.withUnsafeBufferPointer { optimizer.m.update(from: $0.baseAddress!, count: m.count) }
        v.withUnsafeBufferPointer { optimizer.v.update(from: $0.baseAddress!, count: v.count) }
        optimizer.step = Int(file.metadata["step"] ?? "") ?? 0
        let path = dir + "/trainer_state.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FileError(path: path, problem: "missing")
        }
        do { return try JSONDecoder().decode(TrainerState.self, from: data) } catch {
            throw FileError(path: path, problem: "unreadable (\(error))")
        }
    }
}

/// Append-only JSONL metrics (the source of truth for plots and reports), mirrored as TensorBoard
/// scalars in RUN/tensorboard/.
public final class MetricsLog {
    let handle: FileHandle
    public let path: String
    let tensorboard: TensorBoardWriter?

    /// Opens `path` for appending. With `keepUpTo`, records whose "step" is larger are dropped first, so
    /// that a resumed run does not duplicate steps logged after its checkpoint.
    public init(path: String, keepUpTo step: Int? = nil) throws {
        self.path = path
        let fm = FileManager.default
        if let step, let data = fm.contents(atPath: path) {
            let kept = data.split(separator: 0x0A).filter { line in
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                      let s = obj["step"] as? Int else { return false }
                return s <= step
            }
            var out = Data()
            for l in kept { out.append(contentsOf: l); out.append(0x0A) }
            try AtomicFile.write(out, to: path)
        } else if step == nil {
            _ = fm.createFile(atPath: path, contents: nil)  // a fresh run starts an empty log
        }
        if !fm.fileExists(atPath: path) { _ = fm.createFile(atPath: path, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: path) else { throw ConfigError("\(path): cannot open for writing") }
        h.seekToEndOfFile()
        handle = h
        tensorboard = try? TensorBoardWriter(directory: (path as NSString).deletingLastPathComponent + "/tensorboard")
    }

    /// Records that could not be written.
    public private(set) var writeFailures = 0

    public func write(_ record: [String: Any]) {
        guard var data = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) else { return }
        data.append(0x0A)
        if !Streams.write(data, to: handle.fileDescriptor) {
            // A full disk or a lost mount: training goes on (its checkpoint write reports the cause if the
            // disk stays full); the first failure is said once, the count is kept.
            if writeFailures == 0 { Streams.err("warning: cannot write \(path) (\(String(cString: strerror(errno)))); metrics are being lost\n") }
            writeFailures += 1
        }
        if let tb = tensorboard, let step = record["step"] as? Int {
            var scalars: [String: Double] = [:]
            for (k, v) in record where k != "step" {
                if let d = v as? Double { scalars[k] = d } else if let i = v as? Int { scalars[k] = Double(i) }
            }
            tb.scalars(scalars, step: step)
        }
    }

    deinit { try? handle.close() }
}

/// Progress on a terminal: one line redrawn in place; otherwise plain periodic lines.
public struct Progress: Sendable {
    public let interactive: Bool
    public init() { interactive = isatty(STDOUT_FILENO) == 1 }

    public func update(_ text: String, force: Bool) {
        if interactive {
            Streams.out("\r\u{1B}[2K" + text)
        } else if force {
            print(text)
            fflush(nil)
        }
    }

    /// A line that stays (evaluation results, checkpoints).
    public func note(_ text: String) {
        if interactive { Streams.out("\r\u{1B}[2K") }
        print(text)
        fflush(nil)
    }

    public static func duration(_ s: Double) -> String {
        guard s.isFinite, s >= 0 else { return "?" }
        let t = Int(s)
        return t >= 3600 ? "\(t / 3600)h\(t % 3600 / 60)m" : t >= 60 ? "\(t / 60)m\(t % 60)s" : "\(t)s"
    }
}

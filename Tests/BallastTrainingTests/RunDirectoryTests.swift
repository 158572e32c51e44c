import BallastConfig
import BallastModel
import BallastTestSupport
import BallastTraining
import Foundation
import Testing

@Suite("Run folders: a trained run is never overwritten, two runs never share a folder", .serialized)
struct RunDirectoryTests {
    @Test("a fresh start where a checkpoint is, is refused naming --resume and --restart; the checkpoint is untouched")
    func freshStartRefused() throws {
        let out = scratchDirectory("run-refuse")
        _ = try SFTTrainer(config: try tinyConfig(out: out, steps: 3), resume: false).run()
        let weights = try Data(contentsOf: URL(fileURLWithPath: out + "/checkpoint/model.safetensors"))
        let metrics = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)
        let error = try #require(throws: ConfigError.self) { try SFTTrainer(config: try tinyConfig(out: out, steps: 3), resume: false) }
        #expect(error.description.contains("--resume") && error.description.contains("--restart"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/checkpoint/model.safetensors")) == weights)
        #expect(try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8) == metrics)
    }

    @Test("--restart moves the old run aside (RUN.replaced-N) and trains from step 0")
    func restartMovesAside() throws {
        let out = scratchDirectory("run-restart")
        _ = try SFTTrainer(config: try tinyConfig(out: out, steps: 3), resume: false).run()
        let weights = try Data(contentsOf: URL(fileURLWithPath: out + "/checkpoint/model.safetensors"))
        let summary = try SFTTrainer(config: try tinyConfig(out: out, steps: 2), resume: false, restart: true).run()
        #expect(summary.steps == 2)
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + ".replaced-1/checkpoint/model.safetensors")) == weights)
        _ = try SFTTrainer(config: try tinyConfig(out: out, steps: 2), resume: false, restart: true).run()
        #expect(FileManager.default.fileExists(atPath: out + ".replaced-2/checkpoint/trainer_state.json"), "a second restart does not reuse the first name")
    }

    @Test("while a trainer holds a folder, another is refused; the lock goes with the trainer")
    func oneRunPerFolder() throws {
        let out = scratchDirectory("run-lock")
        var first: SFTTrainer? = try SFTTrainer(config: try tinyConfig(out: out, steps: 3), resume: false)
        let error = try #require(throws: ConfigError.self) { try SFTTrainer(config: try tinyConfig(out: out, steps: 3), resume: false) }
        #expect(error.description.contains("in use by another Ballast process (pid \(getpid()))"))
        _ = try first!.run()
        first = nil
        _ = try SFTTrainer(config: try tinyConfig(out: out, steps: 4), resume: true)
    }
}

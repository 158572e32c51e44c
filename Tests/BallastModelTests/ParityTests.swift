import BallastFormats
import BallastKernels
import BallastModel
import BallastOptim
import Foundation
import Testing

/// Loads a PyTorch fixture: `parity_tiny` (GPT-2, tools/fixtures/make_parity_fixtures.py) or
/// `parity_llama` / `parity_qwen2` (tools/fixtures/make_llama_parity_fixtures.py, config.json in metadata).
struct ParityFixture {
    let file: SafeTensorsFile
    let config: GPTConfig
    let batch: TokenBatch
    let targets: [Int32]
    let weights: [Float]
    let headTargets: [Float]
    let hyper: [String: Double]

    init(_ name: String = "parity_tiny") throws {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures"))
        file = try SafeTensorsFile(path: url.path)
        hyper = try JSONSerialization.jsonObject(with: Data(file.metadata["hyper"]!.utf8)) as! [String: Double]
        if let headsJSON = file.metadata["heads"] {
            let cfg = try JSONSerialization.jsonObject(with: Data(file.metadata["config"]!.utf8)) as! [String: Any]
            let heads = try JSONSerialization.jsonObject(with: Data(headsJSON.utf8)) as! [String]
            config = GPTConfig(nLayer: cfg["n_layer"] as! Int, nHead: cfg["n_head"] as! Int, nEmbd: cfg["n_embd"] as! Int,
                               nPositions: cfg["n_positions"] as! Int, vocabSize: cfg["vocab_size"] as! Int, scalarHeads: heads)
        } else {
            // config.json as transformers' save_pretrained writes it, read by the checkpoint loader
            config = try Checkpoint.config(json: Data(file.metadata["config"]!.utf8), path: name)
        }
        let shape = try file.info("tokens").shape
        batch = TokenBatch(tokens: try file.ints("tokens").map { Int32($0) }, mask: try file.floats("mask"),
                           batch: shape[0], length: shape[1])
        targets = try file.ints("targets").map { Int32($0) }
        weights = try file.floats("weights")
        headTargets = try file.floats("head_targets")
    }

    func model() throws -> GPT {
        let m = try GPT(config: config)
        for e in m.layout.entries {
            let v = try file.floats("param." + e.name)
            #expect(v.count == e.count)
            v.withUnsafeBufferPointer { (m.params + e.offset).update(from: $0.baseAddress!, count: e.count) }
        }
        return m
    }

    /// The fixture's loss: masked-mean NLL + masked mean squared error of the heads. Fills the model's
    /// output gradients and returns the loss.
    func lossAndOutputGradients(_ m: GPT) -> Float {
        let n = batch.batch * batch.length, v = config.vocabSize, h = config.scalarHeads.count
        m.clearOutputGradients()
        var loss = targets.withUnsafeBufferPointer { t in
            weights.withUnsafeBufferPointer { w in
                CrossEntropy.forwardBackward(logits: m.logits.baseAddress!, targets: t.baseAddress!, weights: w.baseAddress!,
                                             dlogits: m.dLogits, n: n, v: v)
            }
        }
        let count = batch.mask.reduce(0, +)
        let heads = m.headOutputs
        for i in 0..<n where batch.mask[i] != 0 {
            for k in 0..<h {
                let d = heads[i * h + k] - headTargets[i * h + k]
                loss += d * d / count
                m.dHeads[i * h + k] = 2 * d / count
            }
        }
        return loss
    }
}

func expectClose(_ a: UnsafeBufferPointer<Float>, _ b: [Float], atol: Float, rtol: Float, _ what: String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.count == b.count, "\(what): count \(a.count) vs \(b.count)", sourceLocation: sourceLocation)
    var worst: Float = 0, worstIndex = 0
    for i in 0..<min(a.count, b.count) {
        let excess = abs(a[i] - b[i]) - (atol + rtol * abs(b[i]))
        if excess > worst { worst = excess; worstIndex = i }
    }
    #expect(worst <= 0, "\(what): index \(worstIndex) Ballast \(a[worstIndex]) vs PyTorch \(b[worstIndex])",
            sourceLocation: sourceLocation)
}

/// GPT-2 against a PyTorch reference, and the Llama family (GQA, untied head; Qwen2's QKV biases, tied
/// head) against `transformers`' LlamaForCausalLM and Qwen2ForCausalLM.
let parityFixtures = ["parity_tiny", "parity_llama", "parity_qwen2", "parity_llama_bias"]

@Suite("Parity with PyTorch (tools/fixtures/make_parity_fixtures.py, make_llama_parity_fixtures.py)")
struct ParityTests {
    @Test("logits and scalar heads match PyTorch, padding included", arguments: parityFixtures)
    func forwardMatches(_ fixture: String) throws {
        let f = try ParityFixture(fixture)
        let m = try f.model()
        m.forward(f.batch)
        expectClose(m.logits, try f.file.floats("logits"), atol: 2e-5, rtol: 1e-4, "logits")
        expectClose(m.headOutputs, try f.file.floats("heads"), atol: 2e-5, rtol: 1e-4, "heads")
    }

    @Test("loss and every parameter gradient match PyTorch", arguments: parityFixtures)
    func gradientsMatch(_ fixture: String) throws {
        let f = try ParityFixture(fixture)
        let m = try f.model()
        m.zeroGrad()
        m.forward(f.batch)
        let loss = f.lossAndOutputGradients(m)
        m.backward()
        let ref = try f.file.floats("loss")[0]
        #expect(abs(loss - ref) <= 1e-5 * max(1, abs(ref)), "loss \(loss) vs \(ref)")
        for e in m.layout.entries {
            let g = UnsafeBufferPointer(start: m.grads + e.offset, count: e.count)
            expectClose(g, try f.file.floats("grad." + e.name), atol: 2e-6, rtol: 2e-4, "grad \(e.name)")
        }
    }

    @Test("ten AdamW steps with clipping follow PyTorch's loss trajectory", arguments: parityFixtures)
    func adamTrajectory(_ fixture: String) throws {
        let f = try ParityFixture(fixture)
        let m = try f.model()
        let h = f.hyper
        let opt = AdamW(count: m.parameterCount,
                        decayRanges: m.layout.decayRanges,
                        hyper: .init(beta1: Float(h["beta1"]!), beta2: Float(h["beta2"]!), eps: Float(h["eps"]!),
                                     weightDecay: Float(h["weight_decay"]!)))
        let refLosses = try f.file.floats("step_losses")
        let refNorms = try f.file.floats("step_grad_norms")
        for step in 0..<refLosses.count {
            m.zeroGrad()
            m.forward(f.batch)
            let loss = f.lossAndOutputGradients(m)
            m.backward()
            let norm = GradientClipping.clip(m.grads, count: m.parameterCount, maxNorm: Float(h["max_grad_norm"]!))
            opt.update(params: m.params, grads: m.grads, lr: Float(h["lr"]!))
            #expect(abs(loss - refLosses[step]) <= 2e-4 * max(1, abs(refLosses[step])), "step \(step): loss \(loss) vs \(refLosses[step])")
            #expect(abs(norm - refNorms[step]) <= 2e-4 * max(1, refNorms[step]), "step \(step): grad norm \(norm) vs \(refNorms[step])")
        }
    }

    @Test("a detached head trains its own weights and sends nothing into the trunk")
    func detachedHead() throws {
        let f = try ParityFixture()
        let m = try f.model()
        let h = f.config.scalarHeads.count, n = f.batch.batch * f.batch.length
        func gradients(detached: [Int], zeroColumn: Int?) -> [Float] {
            m.zeroGrad()
            m.forward(f.batch)
            _ = f.lossAndOutputGradients(m)
            if let k = zeroColumn { for i in 0..<n { m.dHeads[i * h + k] = 0 } }
            m.backward(detachedHeads: detached)
            return Array(UnsafeBufferPointer(start: m.grads, count: m.parameterCount))
        }
        let full = gradients(detached: [], zeroColumn: nil)
        let detached = gradients(detached: [1], zeroColumn: nil)
        let withoutHead1 = gradients(detached: [], zeroColumn: 1)
        let head1 = try #require(m.layout.entry(named: "\(f.config.scalarHeads[1]).weight"))
        for e in m.layout.entries {
            let range = e.offset..<(e.offset + e.count)
            // the detached head's own weights get the full gradient; everything else sees no head-1 loss
            let expected = e.name == head1.name ? Array(full[range]) : Array(withoutHead1[range])
            #expect(Array(detached[range]) == expected, "\(e.name)")
        }
        // and the detached head's loss did reach the trunk without detaching (so the test can fail)
        let wte = try #require(m.layout.entry(named: "transformer.wte.weight"))
        #expect(full[wte.offset..<(wte.offset + wte.count)] != withoutHead1[wte.offset..<(wte.offset + wte.count)])
    }
}

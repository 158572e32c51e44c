import BallastRL
import BallastWire
import Foundation

/// Rollout batches as `RolloutMessage`s (kind `rollout`): what an actor ships is exactly what
/// `PPOUpdater.update` consumes, plus the lease bookkeeping.
extension RolloutMessage {
    public init(_ batch: RolloutBatch, promptIDs: [Int], epoch: Int, lease: Int, actor: String) {
        self.init(policyVersion: UInt64(batch.policyVersion), sequences: batch.sequences, promptTokens: batch.promptTokens, logp: batch.logp,
                  refLogp: batch.refLogp, values: batch.values, scores: batch.scores, gold: batch.gold, tasks: batch.tasks,
                  promptIDs: promptIDs, epoch: epoch, lease: lease, actor: actor)
    }
}

extension RolloutBatch {
    /// The batch a decoded (hence validated) message carries.
    public init(_ m: RolloutMessage) {
        func rows<T>(_ column: [T], _ offsets: [Int]) -> [[T]] { RolloutMessage.rows(of: column, at: offsets) }
        self.init(sequences: m.sequences, promptTokens: m.promptTokens, logp: rows(m.logp, m.responseOffsets), refLogp: rows(m.refLogp, m.responseOffsets),
                  values: rows(m.values, m.responseOffsets), scores: m.scores, gold: m.gold, tasks: m.tasks, policyVersion: Int(m.policyVersion))
    }
}

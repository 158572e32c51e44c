import BallastRL
import BallastWire
import Foundation

/// Rollout batches as `RolloutMessage`s (kind `rollout`): what an actor ships is exactly what
/// `PPOUpdater.update` consumes, plus the lease bookkeeping.
extension RolloutMessage {
    public init(_ batch: RolloutBatch, promptIDs: [Int], epoch: Int, lease: Int, actor: String) {
        self.init(policyVersion: UInt64(batch.policyVersion), tokens: batch.tokens, tokenOffsets: batch.tokenOffsets, promptTokens: batch.promptTokens,
                  logp: batch.logp, refLogp: batch.refLogp, values: batch.values, responseOffsets: batch.responseOffsets, scores: batch.scores,
                  gold: batch.gold, tasks: batch.tasks, promptIDs: promptIDs, epoch: epoch, lease: lease, actor: actor)
    }
}

extension RolloutBatch {
    /// The batch a decoded (hence validated) message carries.
    public init(_ m: RolloutMessage) {
        self.init(tokens: m.tokens, tokenOffsets: m.tokenOffsets, promptTokens: m.promptTokens, logp: m.logp, refLogp: m.refLogp, values: m.values,
                  responseOffsets: m.responseOffsets, scores: m.scores, gold: m.gold, tasks: m.tasks, policyVersion: Int(m.policyVersion))
    }
}

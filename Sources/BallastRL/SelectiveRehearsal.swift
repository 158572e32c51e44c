import BallastRandom

/// Selective Rehearsal's selection step: cluster the PPO examples by embedding, rank each cluster's
/// members by (advantage-model) score, and keep the top `perCluster` of each as the rehearsal set —
/// expert-aligned examples that PPO should not erode. The rest stay PPO prompts.
public enum SelectiveRehearsal {
    public struct Selection: Sendable {
        /// Cluster of each example.
        public var cluster: [Int]
        /// Indices of the rehearsal set, cluster by cluster, best score first.
        public var rehearsal: [Int]
        /// Indices left for PPO, in input order.
        public var ppo: [Int]
        public var sizes: [Int]
    }

    public static func select(embeddings: [[Double]], scores: [Double], clusters k: Int, perCluster: Int, seed: UInt64) -> Selection {
        precondition(embeddings.count == scores.count)
        let km = KMeans(k: min(k, embeddings.count), seed: seed).fit(embeddings)
        var rehearsal: [Int] = []
        var sizes = [Int](repeating: 0, count: km.centroids.count)
        for c in km.centroids.indices {
            let members = embeddings.indices.filter { km.assignment[$0] == c }
            sizes[c] = members.count
            // Highest score first; ties by index so the result does not depend on sort stability.
            let ranked = members.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
            rehearsal.append(contentsOf: ranked.prefix(perCluster))
        }
        let chosen = Set(rehearsal)
        return Selection(cluster: km.assignment, rehearsal: rehearsal, ppo: embeddings.indices.filter { !chosen.contains($0) }, sizes: sizes)
    }

    /// The ablation baseline: a seeded random subset of the same size as `selection`'s rehearsal set,
    /// ignoring clusters and scores (the same Fisher–Yates draw for a given seed).
    public static func randomSubset(of selection: Selection, seed: UInt64) -> Selection {
        let n = selection.cluster.count
        var order = Array(0..<n)
        var rng = SeededRNG(seed: seed ^ 0x5EED)
        for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        let rehearsal = Array(order.prefix(selection.rehearsal.count))
        let chosen = Set(rehearsal)
        return Selection(cluster: selection.cluster, rehearsal: rehearsal, ppo: (0..<n).filter { !chosen.contains($0) }, sizes: selection.sizes)
    }
}

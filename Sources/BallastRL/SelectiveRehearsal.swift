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

    /// `proportional`: the same number of examples in all (what `perCluster` per cluster gives), shared
    /// out in proportion to the clusters' sizes instead of `perCluster` each, every cluster still by score.
    public static func select(embeddings: [[Double]], scores: [Double], clusters k: Int, perCluster: Int, seed: UInt64,
                              proportional: Bool = false) -> Selection {
        precondition(embeddings.count == scores.count)
        let km = KMeans(k: min(k, embeddings.count), seed: seed).fit(embeddings)
        var members = [[Int]](repeating: [], count: km.centroids.count)
        for i in embeddings.indices { members[km.assignment[i]].append(i) }
        let sizes = members.map(\.count)
        let equal = sizes.map { min($0, perCluster) }
        let quotas = proportional ? proportionalQuotas(sizes: sizes, total: equal.reduce(0, +)) : equal
        var rehearsal: [Int] = []
        for c in members.indices {
            // Highest score first; ties by index so the result does not depend on sort stability.
            let ranked = members[c].sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
            rehearsal.append(contentsOf: ranked.prefix(quotas[c]))
        }
        let chosen = Set(rehearsal)
        return Selection(cluster: km.assignment, rehearsal: rehearsal, ppo: embeddings.indices.filter { !chosen.contains($0) }, sizes: sizes)
    }

    /// `total` shared out in proportion to `sizes` by largest remainder (ties to the lower index); each
    /// quota is at most its size when `total` ≤ the sum of sizes.
    public static func proportionalQuotas(sizes: [Int], total: Int) -> [Int] {
        let n = sizes.reduce(0, +)
        guard n > 0 else { return sizes.map { _ in 0 } }
        var quotas = sizes.map { $0 * total / n }
        let remainders = sizes.indices.map { (sizes[$0] * total) % n }
        for c in sizes.indices.sorted(by: { remainders[$0] > remainders[$1] || (remainders[$0] == remainders[$1] && $0 < $1) })
            .prefix(total - quotas.reduce(0, +)) {
            quotas[c] += 1
        }
        return quotas
    }

    /// Scores with their linear dependence on length removed: score − β (length − mean length), β the
    /// least-squares slope of score on length over all examples, and β. Ranking by these keeps the
    /// examples the scorer likes for their content rather than their length, where its labels carried a
    /// length preference (β = 0 when every length is the same).
    public static func lengthDebiased(scores: [Double], lengths: [Int]) -> (scores: [Double], slope: Double) {
        precondition(scores.count == lengths.count)
        let n = Double(scores.count)
        guard n > 1 else { return (scores, 0) }
        let meanLength = lengths.reduce(0.0) { $0 + Double($1) } / n, meanScore = scores.reduce(0, +) / n
        var covariance = 0.0, variance = 0.0
        for (s, l) in zip(scores, lengths) {
            covariance += (Double(l) - meanLength) * (s - meanScore)
            variance += (Double(l) - meanLength) * (Double(l) - meanLength)
        }
        let slope = variance > 0 ? covariance / variance : 0
        return (zip(scores, lengths).map { s, l in s - slope * (Double(l) - meanLength) }, slope)
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

import BallastRandom
import Foundation
import BallastKernels
import BallastRL
import Testing

@Suite("k-means")
struct KMeansTests {
    /// Three well-separated Gaussian blobs in 5 dimensions, 40 points each, shuffled.
    func blobs(seed: UInt64) -> (points: [[Double]], labels: [Int]) {
        var rng = SeededRNG(seed: seed)
        let centres: [[Double]] = [[0, 0, 0, 0, 0], [10, 10, 0, 0, 0], [0, 10, 10, -10, 5]]
        var pts: [([Double], Int)] = []
        for (c, centre) in centres.enumerated() {
            for _ in 0..<40 { pts.append((centre.map { $0 + Double(rng.nextGaussian()) }, c)) }
        }
        for i in stride(from: pts.count - 1, to: 0, by: -1) { pts.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        return (pts.map(\.0), pts.map(\.1))
    }

    @Test("recovers planted clusters exactly, for several seeds")
    func recoversPlantedClusters() {
        let (points, labels) = blobs(seed: 1)
        for seed in UInt64(0)..<5 {
            let r = KMeans(k: 3, seed: seed).fit(points)
            // Each found cluster maps to exactly one planted cluster.
            var mapping: [Int: Int] = [:]
            for (a, l) in zip(r.assignment, labels) {
                if let m = mapping[a] { #expect(m == l, "seed \(seed): cluster \(a) mixes planted clusters") } else { mapping[a] = l }
            }
            #expect(Set(mapping.values).count == 3)
            #expect(r.inertia < 120 * 5 * 2, "inertia close to the blobs' own spread")
        }
    }

    @Test("deterministic for a seed; k = 1 gives the mean; k = n gives zero inertia")
    func properties() {
        let (points, _) = blobs(seed: 2)
        let a = KMeans(k: 4, seed: 7).fit(points), b = KMeans(k: 4, seed: 7).fit(points)
        #expect(a.assignment == b.assignment && a.centroids == b.centroids)
        let one = KMeans(k: 1, seed: 0).fit(points)
        for j in 0..<5 {
            let mean = points.reduce(0) { $0 + $1[j] } / Double(points.count)
            #expect(abs(one.centroids[0][j] - mean) < 1e-9)
        }
        let few = Array(points.prefix(6))
        #expect(KMeans(k: 6, seed: 3).fit(few).inertia == 0)
        // A single initialisation can land in a local optimum (two seeds in one blob); restarts fix it.
        let (pts, _) = blobs(seed: 1)
        let single = (UInt64(0)..<20).map { KMeans(k: 3, seed: $0, restarts: 1).fit(pts).inertia }
        let multi = (UInt64(0)..<20).map { KMeans(k: 3, seed: $0).fit(pts).inertia }
        #expect(multi.max()! <= single.min()! + 1e-9)
    }
}

@Suite("Selective rehearsal selection")
struct SelectionTests {
    @Test("top-k by score inside each planted cluster; the rest go to PPO")
    func topKPerCluster() {
        // Two far-apart groups; scores rise with the index inside each group.
        let emb = (0..<10).map { i in [i < 5 ? 0.0 : 100.0, Double(i % 5) * 0.01] }
        let scores = (0..<10).map { Double($0 % 5) }
        let s = SelectiveRehearsal.select(embeddings: emb, scores: scores, clusters: 2, perCluster: 2, seed: 1)
        #expect(Set(s.rehearsal) == [4, 3, 9, 8])
        #expect(s.ppo == [0, 1, 2, 5, 6, 7])
        #expect(s.sizes.sorted() == [5, 5])
        #expect(s.cluster[0] == s.cluster[4] && s.cluster[0] != s.cluster[9])
        // Within each cluster the best comes first.
        let firstCluster = s.rehearsal.prefix(2).map { scores[$0] }
        #expect(firstCluster == [4, 3])
    }

    @Test("more per cluster than members keeps the whole cluster; nothing is lost or duplicated")
    func coverage() {
        let emb = (0..<7).map { [Double($0)] }
        let s = SelectiveRehearsal.select(embeddings: emb, scores: emb.map { $0[0] }, clusters: 3, perCluster: 10, seed: 2)
        #expect(s.ppo.isEmpty && Set(s.rehearsal) == Set(0..<7) && s.rehearsal.count == 7)
    }
}

@Suite("Rehearsal ablation")
struct RandomSubsetTests {
    @Test("the random subset has the selection's size, is seeded, and partitions the examples")
    func randomSubset() {
        var rng = SeededRNG(seed: 4)
        let emb = (0..<60).map { _ in [Double(rng.nextFloat()), Double(rng.nextFloat())] }
        let scores = (0..<60).map { Double($0) }
        let sel = SelectiveRehearsal.select(embeddings: emb, scores: scores, clusters: 4, perCluster: 3, seed: 1)
        let a = SelectiveRehearsal.randomSubset(of: sel, seed: 9), b = SelectiveRehearsal.randomSubset(of: sel, seed: 9)
        let c = SelectiveRehearsal.randomSubset(of: sel, seed: 10)
        #expect(a.rehearsal.count == sel.rehearsal.count && a.rehearsal == b.rehearsal && a.rehearsal != c.rehearsal)
        #expect(Set(a.rehearsal).union(a.ppo) == Set(0..<60) && Set(a.rehearsal).isDisjoint(with: a.ppo))
        #expect(Set(a.rehearsal) != Set(sel.rehearsal))
    }
}

@Suite("Proportional rehearsal quotas")
struct ProportionalQuotaTests {
    @Test("largest remainder: quotas sum to the total, follow the sizes, and never exceed a cluster")
    func quotas() {
        #expect(SelectiveRehearsal.proportionalQuotas(sizes: [200, 200, 10, 60, 30], total: 50) == [20, 20, 1, 6, 3])
        // 7 × (5, 3, 2) / 10 = 3.5, 2.1, 1.4: floors 3, 2, 1, and the largest remainder (the first cluster's) gets the seventh.
        #expect(SelectiveRehearsal.proportionalQuotas(sizes: [5, 3, 2], total: 7) == [4, 2, 1])
        #expect(SelectiveRehearsal.proportionalQuotas(sizes: [3, 3, 3], total: 9) == [3, 3, 3])
        #expect(SelectiveRehearsal.proportionalQuotas(sizes: [0, 4], total: 2) == [0, 2])
    }

    @Test("a large uniform cluster gets its share by score instead of the same count as a small one")
    func largeClusterGetsItsShare() {
        // Two well-separated groups, 40 and 8 examples; 4 per cluster in the equal selection → 8 in all.
        let emb = (0..<48).map { [$0 < 40 ? 0.0 : 100.0, Double($0 % 5) * 0.01] }
        let scores = (0..<48).map { Double($0 % 40) }
        let equal = SelectiveRehearsal.select(embeddings: emb, scores: scores, clusters: 2, perCluster: 4, seed: 3)
        let prop = SelectiveRehearsal.select(embeddings: emb, scores: scores, clusters: 2, perCluster: 4, seed: 3, proportional: true)
        #expect(equal.rehearsal.count == 8 && prop.rehearsal.count == 8)
        #expect(equal.rehearsal.filter { $0 < 40 }.count == 4)
        // 8 × 40/48 = 6.67 and 8 × 8/48 = 1.33: 7 and 1, each the cluster's best.
        #expect(Set(prop.rehearsal.filter { $0 < 40 }) == Set(33..<40))
        #expect(prop.rehearsal.filter { $0 >= 40 } == [47])
        #expect(Set(prop.rehearsal).union(prop.ppo) == Set(0..<48) && Set(prop.rehearsal).isDisjoint(with: prop.ppo))
    }
}

@Suite("Length-debiased ranking")
struct LengthDebiasedTests {
    @Test("removes the least-squares slope on length: a score that is length plus content ranks by content")
    func removesTheLengthSlope() {
        let lengths = [2, 4, 6, 8, 10, 12]
        let content = [0.5, -0.5, 0.3, -0.3, 0.1, -0.1]  // uncorrelated with length: the fit must not absorb it
        let scores = zip(lengths, content).map { 0.25 * Double($0) + 1 + $1 }
        let (adjusted, slope) = SelectiveRehearsal.lengthDebiased(scores: scores, lengths: lengths)
        // 0.25 plus content's own slope: Σ (l − 7) c / Σ (l − 7)² = −1.8 / 70
        #expect(abs(slope - (0.25 - 1.8 / 70)) < 1e-12)
        let mean = 7.0
        for i in lengths.indices { #expect(abs(adjusted[i] - (scores[i] - slope * (Double(lengths[i]) - mean))) < 1e-12) }
        // The longest example scores highest raw; debiased, the top two are the shortest two with high content.
        #expect(scores.indices.max { scores[$0] < scores[$1] } == 5)
        #expect(Array(adjusted.indices.sorted { adjusted[$0] > adjusted[$1] }.prefix(2)) == [0, 2])
        // Equal lengths: nothing to remove.
        let flat = SelectiveRehearsal.lengthDebiased(scores: [3, 1, 2], lengths: [5, 5, 5])
        #expect(flat.slope == 0 && flat.scores == [3, 1, 2])
    }
}

@Suite("Gao et al.'s over-optimisation fit R(d) = d(α − β log d)")
struct OverOptimisationFitTests {
    @Test("recovers planted coefficients exactly and places the peak at exp(α/β − 1)")
    func recoversPlanted() {
        let truth = OverOptimisationFit(alpha: 0.3, beta: 0.2)
        let d = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0]
        let fit = OverOptimisationFit.fit(distance: d, gain: d.map(truth.predict))!
        #expect(abs(fit.alpha - 0.3) < 1e-9 && abs(fit.beta - 0.2) < 1e-9)
        #expect(abs(fit.peak! - exp(0.3 / 0.2 - 1)) < 1e-6)
        #expect(truth.predict(0) == 0)
        #expect(OverOptimisationFit(alpha: 1, beta: -0.1).peak == nil, "no peak when gold keeps rising")
    }

    @Test("too few points give no fit")
    func degenerate() {
        #expect(OverOptimisationFit.fit(distance: [0, 1], gain: [0, 0.1]) == nil)
        #expect(OverOptimisationFit.fit(distance: [], gain: []) == nil)
    }
}

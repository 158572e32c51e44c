import BallastRandom
import Foundation

/// k-means with k-means++ initialisation (Arthur & Vassilvitskii), seeded, Lloyd iterations until no
/// assignment changes or `maxIterations`; the best of `restarts` initialisations (lowest inertia) wins,
/// as scikit-learn's n_init. Points are rows of a [N, D] matrix.
public struct KMeans: Sendable {
    public let k: Int
    public var maxIterations = 100
    public var restarts = 4
    public var seed: UInt64

    public init(k: Int, seed: UInt64, maxIterations: Int = 100, restarts: Int = 4) {
        precondition(k >= 1 && restarts >= 1)
        self.k = k
        self.seed = seed
        self.maxIterations = maxIterations
        self.restarts = restarts
    }

    public struct Result: Sendable {
        public var centroids: [[Double]]
        public var assignment: [Int]
        public var inertia: Double
        public var iterations: Int
    }

    @inline(__always)
    static func distance2(_ a: [Double], _ b: [Double]) -> Double {
        var s = 0.0
        for i in a.indices { let d = a[i] - b[i]; s += d * d }
        return s
    }

    public func fit(_ points: [[Double]]) -> Result {
        precondition(points.count >= k, "need at least k = \(k) points, got \(points.count)")
        var best: Result?
        for r in 0..<restarts {
            let result = fitOnce(points, seed: seed &+ UInt64(r) &* 0x9E37_79B9_7F4A_7C15)
            if best == nil || result.inertia < best!.inertia { best = result }
        }
        return best!
    }

    func fitOnce(_ points: [[Double]], seed: UInt64) -> Result {
        let n = points.count
        var rng = SeededRNG(seed: seed)
        // k-means++: first centre uniform, each next with probability ∝ squared distance to the nearest centre.
        var centroids = [points[Int(rng.next() % UInt64(n))]]
        var nearest = points.map { Self.distance2($0, centroids[0]) }
        while centroids.count < k {
            let total = nearest.reduce(0, +)
            var pick = n - 1
            if total > 0 {
                var u = rng.nextDouble() * total
                for i in 0..<n {
                    u -= nearest[i]
                    if u < 0 { pick = i; break }
                }
            } else {
                pick = Int(rng.next() % UInt64(n))
            }
            centroids.append(points[pick])
            for i in 0..<n { nearest[i] = min(nearest[i], Self.distance2(points[i], points[pick])) }
        }
        var assignment = [Int](repeating: -1, count: n)
        var iterations = 0
        while iterations < maxIterations {
            iterations += 1
            var changed = false
            for i in 0..<n {
                var best = 0, bestD = Double.infinity
                for c in 0..<k {
                    let d = Self.distance2(points[i], centroids[c])
                    if d < bestD { bestD = d; best = c }
                }
                if assignment[i] != best { assignment[i] = best; changed = true }
            }
            if !changed { break }
            let dim = points[0].count
            var sums = [[Double]](repeating: [Double](repeating: 0, count: dim), count: k)
            var counts = [Int](repeating: 0, count: k)
            for i in 0..<n {
                counts[assignment[i]] += 1
                for j in 0..<dim { sums[assignment[i]][j] += points[i][j] }
            }
            for c in 0..<k where counts[c] > 0 { centroids[c] = sums[c].map { $0 / Double(counts[c]) } }
        }
        let inertia = (0..<n).reduce(0.0) { $0 + Self.distance2(points[$1], centroids[assignment[$1]]) }
        return Result(centroids: centroids, assignment: assignment, inertia: inertia, iterations: iterations)
    }
}

import Foundation

/// Gao et al. (2022)'s functional form of gold reward against the distance d = √KL(π‖π_SFT) that
/// best-of-n and RL travel: R(d) = d·(α − β·log d), with R the gold gain over the SFT model
/// (R(0) = 0). A positive β makes the curve peak at d* = exp(α/β − 1) and fall beyond.
public struct OverOptimisationFit: Sendable, Equatable {
    public var alpha: Double
    public var beta: Double

    public init(alpha: Double, beta: Double) {
        self.alpha = alpha
        self.beta = beta
    }

    public func predict(_ d: Double) -> Double { d > 0 ? d * (alpha - beta * log(d)) : 0 }

    /// The distance where the fitted gain peaks (nil when β ≤ 0: no peak).
    public var peak: Double? { beta > 0 ? exp(alpha / beta - 1) : nil }

    /// Least squares over the points with d > 0: linear in (α, β) with features d and −d·log d.
    /// Nil when fewer than two such points or the features are collinear.
    public static func fit(distance: [Double], gain: [Double]) -> OverOptimisationFit? {
        var s11 = 0.0, s12 = 0.0, s22 = 0.0, t1 = 0.0, t2 = 0.0, n = 0
        for (d, y) in zip(distance, gain) where d > 0 && d.isFinite && y.isFinite {
            let f1 = d, f2 = -d * log(d)
            s11 += f1 * f1; s12 += f1 * f2; s22 += f2 * f2
            t1 += f1 * y; t2 += f2 * y
            n += 1
        }
        let det = s11 * s22 - s12 * s12
        guard n >= 2, abs(det) > 1e-12 * max(s11 * s22, 1e-300) else { return nil }
        return OverOptimisationFit(alpha: (t1 * s22 - t2 * s12) / det, beta: (s11 * t2 - s12 * t1) / det)
    }
}

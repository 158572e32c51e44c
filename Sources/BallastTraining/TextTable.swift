import Foundation

/// Fixed-width columns for terminal tables (String(format:) does not pad %@ on Linux).
public enum TextTable {
    public static func left(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
    public static func right(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
    public static func number(_ x: Double, _ w: Int, digits: Int = 3) -> String { right(String(format: "%.\(digits)f", x), w) }
    public static func percent(_ x: Double, _ w: Int) -> String { right(String(format: "%.1f%%", 100 * x), w) }
}

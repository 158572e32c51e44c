/// Ragged rows held as one flat column plus n + 1 offsets (row r is `column[offsets[r]..<offsets[r + 1]]`):
/// how rollouts are kept and sent, so that moving a batch is a few bulk copies rather than one
/// allocation per row and field.
public enum Ragged {
    /// The rows laid end to end, and where each starts (plus the end).
    @inlinable public static func flatten<T>(_ rows: [[T]]) -> (column: [T], offsets: [Int]) {
        var column: [T] = [], offsets = [0]
        column.reserveCapacity(rows.reduce(0) { $0 + $1.count })
        offsets.reserveCapacity(rows.count + 1)
        for row in rows {
            column.append(contentsOf: row)
            offsets.append(column.count)
        }
        return (column, offsets)
    }

    /// The column cut back into its rows.
    @inlinable public static func rows<T>(of column: [T], at offsets: [Int]) -> [[T]] {
        (0..<max(offsets.count - 1, 0)).map { Array(column[offsets[$0]..<offsets[$0 + 1]]) }
    }
}

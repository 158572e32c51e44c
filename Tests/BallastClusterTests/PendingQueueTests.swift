@testable import BallastCluster
import BallastRandom
import Testing

@Suite("Pending queue")
struct PendingQueueTests {
    typealias Slot = PromptLedger.Slot

    @Test("random removals, put-backs and leases give the order of the array the ledger used to scan")
    func matchesTheArrayModel() {
        var rng = SeededRNG(seed: 7)
        for trial in 0..<50 {
            let n = 1 + Int(rng.next() % 300)
            let slots = (0..<n).map { Slot(epoch: Int($0 % 7 == 0 ? 1 : 0), id: $0) }
            var queue = PendingQueue()
            queue.replace(with: slots)
            var model = slots  // the old representation: an array, scanned on every operation
            var out: [Slot] = []  // leased or completed: may be put back
            for _ in 0..<400 {
                switch rng.next() % 4 {
                case 0 where !model.isEmpty:  // a waiting prompt completes (a duplicate report)
                    let s = model[Int(rng.next() % UInt64(model.count))]
                    model.removeAll { $0 == s }
                    queue.remove(s)
                    out.append(s)
                case 1 where !out.isEmpty:  // leased prompts come back to the front, in order
                    let k = 1 + Int(rng.next() % UInt64(min(out.count, 5)))
                    let back = Array(out.suffix(k)).sorted { ($0.epoch, $0.id) < ($1.epoch, $1.id) }
                    out.removeLast(k)
                    model.insert(contentsOf: back, at: 0)
                    queue.prepend(back)
                default:  // a lease of up to 8 prompts of the first one's epoch
                    let first = queue.first()
                    #expect(first == model.first, "trial \(trial)")
                    guard let first else { continue }
                    let want = 1 + Int(rng.next() % 8)
                    let expected = Array(model.prefix { $0.epoch == first.epoch }.prefix(want))
                    let got = queue.prefix(want, epoch: first.epoch)
                    #expect(got == expected, "trial \(trial)")
                    for s in got { queue.remove(s) }
                    model.removeAll { got.contains($0) }
                    out += got
                }
                #expect(queue.count == model.count)
            }
        }
    }
}

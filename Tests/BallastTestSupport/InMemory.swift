import BallastTransport
import Foundation

/// An in-process stand-in for ZeroMQ's ROUTER/DEALER pair, for tests: a router receives
/// [peer id, parts…] and routes a reply by its first part; dealers see only the parts. Queues are
/// bounded (a full queue makes `send` return false, like a send timeout at the high-water mark).
public final class InMemoryHub: @unchecked Sendable {
    final class Queue {
        var items: [[Data]] = []
        let capacity: Int
        init(capacity: Int) { self.capacity = capacity }
    }

    let lock = NSCondition()
    var routerInbox: Queue
    var dealerInboxes: [String: Queue] = [:]
    let capacity: Int

    public init(capacity: Int = 1000) {
        self.capacity = capacity
        routerInbox = Queue(capacity: capacity)
    }

    public func router(timeoutMS: Int = -1) -> MessageSocket { RouterEnd(hub: self, timeoutMS: timeoutMS) }

    public func dealer(id: String, timeoutMS: Int = -1) -> MessageSocket {
        lock.lock()
        if dealerInboxes[id] == nil { dealerInboxes[id] = Queue(capacity: capacity) }
        lock.unlock()
        return DealerEnd(hub: self, id: id, timeoutMS: timeoutMS)
    }

    func push(_ q: Queue, _ parts: [Data]) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard q.items.count < q.capacity else { return false }
        q.items.append(parts)
        lock.broadcast()
        return true
    }

    func pop(_ q: () -> Queue?, timeoutMS: Int) -> [Data]? {
        lock.lock()
        defer { lock.unlock() }
        let deadline = timeoutMS < 0 ? Date.distantFuture : Date().addingTimeInterval(Double(timeoutMS) / 1000)
        while true {
            if let queue = q(), !queue.items.isEmpty { return queue.items.removeFirst() }
            if !lock.wait(until: deadline) { return nil }
        }
    }

    final class RouterEnd: MessageSocket {
        let hub: InMemoryHub
        let timeoutMS: Int
        init(hub: InMemoryHub, timeoutMS: Int) { self.hub = hub; self.timeoutMS = timeoutMS }

        func send(_ parts: [Data]) throws -> Bool {
            guard let first = parts.first else { return true }
            hub.lock.lock()
            let q = hub.dealerInboxes[String(decoding: first, as: UTF8.self)]
            hub.lock.unlock()
            guard let q else { return true }  // unknown peer: dropped, as ROUTER does
            return hub.push(q, Array(parts.dropFirst()))
        }

        func receive() throws -> [Data]? { hub.pop({ hub.routerInbox }, timeoutMS: timeoutMS) }
        func receiveNow() throws -> [Data]? { hub.pop({ hub.routerInbox }, timeoutMS: 0) }
    }

    final class DealerEnd: MessageSocket {
        let hub: InMemoryHub
        let id: String
        let timeoutMS: Int
        init(hub: InMemoryHub, id: String, timeoutMS: Int) { self.hub = hub; self.id = id; self.timeoutMS = timeoutMS }

        func send(_ parts: [Data]) throws -> Bool { hub.push(hub.routerInbox, [Data(id.utf8)] + parts) }

        func receive() throws -> [Data]? { hub.pop({ hub.dealerInboxes[id] }, timeoutMS: timeoutMS) }
        func receiveNow() throws -> [Data]? { hub.pop({ hub.dealerInboxes[id] }, timeoutMS: 0) }
    }
}

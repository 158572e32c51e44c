import Foundation

/// Human-readable renderings of the coordinator's status (`ballast status` and the HTTP page).
public enum StatusPage {
    static func num(_ v: Any?) -> String {
        switch v {
        case let d as Double: return d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(format: "%.2f", d)
        case let i as Int: return String(i)
        case let b as Bool: return b ? "yes" : "no"
        case let s as String: return s
        case nil: return "-"
        default: return "\(v!)"
        }
    }

    /// Rows of (section, cells): the run line, the learner line, shards, actors, errors.
    public static func tables(_ st: [String: Any]) -> [(title: String, header: [String], rows: [[String]])] {
        var out: [(String, [String], [[String]])] = []
        out.append(("run", ["epoch", "epochs", "completed", "budget", "pending", "finished", "policy version", "duplicates", "actors expired"],
                    [[num(st["epoch"]), num(st["epochs"]), num(st["completed"]), num(st["budget"]), num(st["pending"]), num(st["finished"]),
                      num(st["policy_version"]), num(st["duplicates"]), num(st["actors_expired"])]]))
        if let l = st["learner"] as? [String: Any] {
            out.append(("learner", ["step", "queue", "capacity", "dropped", "down-weighted", "busy", "rollouts/s", "last checkpoint", "malformed", "seen (s ago)"],
                        [[num(l["step"]), num(l["queue"]), num(l["queue_capacity"]), num(l["dropped"]), num(l["downweighted"]), num(l["busy"]),
                          num(l["rollouts_per_s"]), num(l["checkpoint"]), num(l["errors"]), num(l["last_seen_s"])]]))
        }
        out.append(("shards (current epoch)", ["shard", "done", "leased", "total"],
                    (st["shards"] as? [[String: Any]] ?? []).map { [num($0["shard"]), num($0["done"]), num($0["leased"]), num($0["total"])] }))
        out.append(("actors", ["actor", "host", "alive", "seen (s ago)", "leases", "prompts", "rollouts", "rollouts/s", "policy version"],
                    (st["actors"] as? [[String: Any]] ?? []).map {
                        [num($0["id"]), num($0["host"]), num($0["alive"]), num($0["last_seen_s"]), num($0["leases"]), num($0["prompts"]),
                         num($0["rollouts"]), num($0["rollouts_per_s"]), num($0["policy_version"])]
                    }))
        let errors = st["errors"] as? [String: Any] ?? [:]
        out.append(("malformed frames at the coordinator", ["reason", "count"], errors.keys.sorted().map { [$0, num(errors[$0])] }))
        return out
    }

    public static func text(_ st: [String: Any]) -> String {
        var s = ""
        for (title, header, rows) in tables(st) {
            s += "\(title):\n"
            let widths = header.indices.map { c in ([header[c]] + rows.map { $0[c] }).map(\.count).max()! + 2 }
            func line(_ cells: [String]) -> String { zip(cells, widths).map { $0 + String(repeating: " ", count: $1 - $0.count) }.joined() }
            s += "  " + line(header) + "\n"
            for r in rows { s += "  " + line(r) + "\n" }
            if rows.isEmpty { s += "  (none)\n" }
        }
        return s
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// A small page that refreshes itself every `refresh` seconds.
    public static func html(_ st: [String: Any], refresh: Int = 2) -> String {
        var s = """
        <!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="\(refresh)">
        <title>Ballast coordinator</title><style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}
        td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}h2{font-size:15px;margin:0 0 .4em}</style></head><body>
        <h1>Ballast coordinator</h1><p>JSON: <a href="/status">/status</a> · Prometheus: <a href="/metrics">/metrics</a> · refreshes every \(refresh) s</p>

        """
        for (title, header, rows) in tables(st) {
            s += "<h2>\(escape(title))</h2><table><tr>" + header.map { "<th>\(escape($0))</th>" }.joined() + "</tr>"
            for r in rows { s += "<tr>" + r.map { "<td>\(escape($0))</td>" }.joined() + "</tr>" }
            s += "</table>\n"
        }
        return s + "</body></html>\n"
    }
}

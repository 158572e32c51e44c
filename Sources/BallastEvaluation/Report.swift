import BallastRL
import Foundation

/// `ballast report RUN_DIR`: one self-contained HTML page with inline SVG charts from a pipeline run —
/// per-task score distributions of the RM (r) and AM (a) (the paper's Fig. 1a), PPO curves of proxy
/// score, gold score, KL and response length per arm (Fig. 1b's story), the rehearsal set by task against
/// the forget set, and win / lose / tie bars per evaluation set. Missing parts of the run are listed
/// rather than failing the page.
public enum RunReport {
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]

    public static func write(runDir: String, to path: String? = nil) throws -> String {
        let out = path ?? runDir + "/report.html"
        var body = ""
        var missing: [String] = []
        body += "<h1>Ballast run report</h1><p class=\"muted\">\(escape(runDir)) · generated \(ISO8601DateFormatter().string(from: Date()))</p>"

        // 1. Score distributions per task.
        body += "<h2>Per-task score distributions (RM r vs AM a)</h2>"
        body += "<p>Histograms of the scores of all responses in the held-out preference pairs, per task. A reward model learns different score ranges for different tasks; the Advantage Model is trained to keep each task's advantage centred with a shared spread.</p><div class=\"row\">"
        for (label, file, key) in [("RM: reward r", "rm/eval.json", "r"), ("AM: advantage a = (r − e) / exp(z)", "am/eval.json", "a")] {
            guard let j = readJSON(runDir + "/" + file) as? [String: Any], let rep = j[key] as? [String: Any],
                  let rows = rep["rows"] as? [[String: Any]] else { missing.append(file); continue }
            body += "<div class=\"card\"><h3>\(escape(label))</h3>" + distributionChart(rows: rows, range: rep["histogram_range"] as? [Double] ?? [0, 1])
            body += String(format: "<p class=\"muted\">spread of per-task means (max − min): %.3f</p>", rep["task_mean_spread"] as? Double ?? .nan)
            body += summaryTable(rows) + "</div>"
        }
        body += "</div>"

        // 2. PPO curves.
        body += "<h2>PPO training curves</h2><p>Per PPO step: the proxy score the policy optimises, the gold score it should improve, KL to the SFT reference and response length. Reward hacking shows as proxy rising while gold falls.</p><div class=\"row\">"
        var arms: [(String, [[String: Any]])] = []
        for arm in ["rm-ppo", "am-ppo", "am-ppo-sr"] {
            guard let text = try? String(contentsOfFile: "\(runDir)/\(arm)/metrics.jsonl", encoding: .utf8) else { missing.append("\(arm)/metrics.jsonl"); continue }
            arms.append((arm, text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }))
        }
        for (metric, title) in [("score", "proxy score"), ("gold", "gold score"), ("kl", "KL to reference"), ("response_length", "response length (tokens)")] {
            let series = arms.enumerated().map { (i, arm) in
                (arm.0, palette[i % palette.count], arm.1.compactMap { r -> (Double, Double)? in
                    guard let s = r["step"] as? Int, let v = r[metric] as? Double, v.isFinite else { return nil }
                    return (Double(s), v)
                })
            }
            body += "<div class=\"card\">" + lineChart(title: title, series: series, xLabel: "PPO step") + "</div>"
        }
        body += "</div>"

        // 2b. Over-optimisation curves from the evaluation of every snapshot.
        body += "<h2>Over-optimisation: gold and proxy against √KL (Gao et al.'s axes)</h2>"
        body += "<p>At step 0 (the SFT model), every PPO snapshot and the final policy: mean gold and proxy score of sampled responses (T = 1) on the test prompts, against the square root of their sequence KL to the SFT model. Reward hacking is gold falling while the proxy still rises; the dashed line is the fit R(d) = d(α − β log d) of the gold gain. Forgetting is the expert-aligned forget set's win − lose against SFT falling over the snapshots (greedy responses; the paper's Fig. 1b).</p><div class=\"row\">"
        var curves: [(String, [[String: Any]])] = []
        for arm in ["rm-ppo", "am-ppo", "am-ppo-sr"] {
            guard let text = try? String(contentsOfFile: "\(runDir)/\(arm)/curve.jsonl", encoding: .utf8) else { missing.append("\(arm)/curve.jsonl"); continue }
            curves.append((arm, text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }))
        }
        if !curves.isEmpty {
            func points(_ rows: [[String: Any]], _ x: ([String: Any]) -> Double?, _ y: ([String: Any]) -> Double?) -> [(Double, Double)] {
                rows.compactMap { r in
                    guard let a = x(r), let b = y(r), a.isFinite, b.isFinite else { return nil }
                    return (a, b)
                }
            }
            let sqrtKL: ([String: Any]) -> Double? = { ($0["kl"] as? Double).map { max($0, 0).squareRoot() } }
            var goldSeries: [(String, String, [(Double, Double)])] = []
            var fits: [String] = []
            for (i, (arm, rows)) in curves.enumerated() {
                let p = points(rows, sqrtKL) { $0["gold"] as? Double }
                goldSeries.append((arm, palette[i % palette.count], p))
                if let g0 = p.first?.1, let fit = OverOptimisationFit.fit(distance: p.map(\.0), gain: p.map { $0.1 - g0 }), let dMax = p.map(\.0).max() {
                    let grid = (0...24).map { dMax * Double($0) / 24 }
                    goldSeries.append((arm + " fit", palette[i % palette.count], grid.map { ($0, g0 + fit.predict($0)) }))
                    fits.append(String(format: "%@: α %.3f, β %.3f%@", arm, fit.alpha, fit.beta, fit.peak.map { String(format: ", peak at √KL %.2f", $0) } ?? ", no peak"))
                }
            }
            body += "<div class=\"card\">" + lineChart(title: "gold score (sampled)", series: goldSeries, xLabel: "√KL to SFT (nats^½)", markers: true)
            body += "<p class=\"muted\">" + fits.map(escape).joined(separator: "<br/>") + "</p></div>"
            let proxySeries = curves.enumerated().map { (i, c) in (c.0, palette[i % palette.count], points(c.1, sqrtKL) { $0["proxy"] as? Double }) }
            body += "<div class=\"card\">" + lineChart(title: "proxy score (the arm's own scorer)", series: proxySeries, xLabel: "√KL to SFT (nats^½)", markers: true) + "</div>"
            for (set, title) in [("forget", "expert-aligned forget set"), ("forget_sft_only", "SFT-only family (fact)")] {
                let series = curves.enumerated().map { (i, c) in
                    (c.0, palette[i % palette.count], points(c.1, { ($0["step"] as? Int).map(Double.init) }) { r in
                        guard let w = r["\(set)_greedy_win"] as? Double, let l = r["\(set)_greedy_lose"] as? Double else { return nil }
                        return 100 * (w - l)
                    })
                }
                body += "<div class=\"card\">" + lineChart(title: "\(title): win − lose vs SFT (%)", series: series, xLabel: "PPO step", markers: true) + "</div>"
            }
        }
        body += "</div>"

        // 2c. What was rehearsed, by task, against the forget set it should protect.
        body += rehearsalSection(runDir: runDir, missing: &missing)

        // 3. Win / lose / tie.
        body += "<h2>Policies vs the SFT model (gold judge)</h2><p>Win / lose / tie by the gold scorer (tie within ε) on the test prompts and on the forget set of expert-aligned examples.</p>"
        if let ev = readJSON(runDir + "/eval.json") as? [String: Any] {
            body += "<div class=\"row\">"
            for set in ["test", "forget"] {
                var bars: [(String, Double, Double, Double)] = []
                for arm in ["rm-ppo", "am-ppo", "am-ppo-sr"] {
                    guard let a = ev[arm] as? [String: Any], let rows = a[set] as? [[String: Any]], let all = rows.first(where: { $0["task"] as? String == "all" }) else { continue }
                    bars.append((arm, all["win"] as? Double ?? 0, all["tie"] as? Double ?? 0, all["lose"] as? Double ?? 0))
                }
                body += "<div class=\"card\">" + winLoseChart(title: "\(set) set", bars: bars) + "</div>"
            }
            body += "</div>"
        } else {
            missing.append("eval.json")
        }
        if !missing.isEmpty {
            body += "<h2>Not available</h2><ul>" + missing.map { "<li>\(escape($0)) not found in the run folder</li>" }.joined() + "</ul>"
        }
        let html = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"/><title>Ballast report</title>
        <style>
        body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #222; max-width: 1400px; }
        h1 { margin-bottom: 0; } h2 { margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
        .muted { color: #777; font-size: 13px; } .row { display: flex; flex-wrap: wrap; gap: 16px; }
        .card { border: 1px solid #e3e3e3; border-radius: 6px; padding: 8px 12px; background: #fff; }
        table { border-collapse: collapse; font-size: 12px; } td, th { padding: 2px 8px; text-align: right; } th:first-child, td:first-child { text-align: left; }
        tr:nth-child(even) { background: #f6f6f6; }
        </style></head><body>
        \(body)
        </body></html>
        """
        try html.write(toFile: out, atomically: true, encoding: .utf8)
        return out
    }

    /// Examples per task of a JSONL file of records with a "task" field, or nil when it cannot be read.
    static func tasks(ofJSONL path: String) -> [String: Int]? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        var counts: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            guard let r = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            counts[r["task"] as? String ?? "?", default: 0] += 1
        }
        return counts
    }

    /// The rehearsal set and PPO prompts of the selection stage per task, against the expert-aligned forget
    /// set, with the tasks the rehearsal set covers at less than half their share of the forget set.
    static func rehearsalSection(runDir: String, missing: inout [String]) -> String {
        let files = ["data/forget.jsonl", "select/rehearsal.jsonl", "select/ppo_prompts.jsonl"]
        let counts = files.map { tasks(ofJSONL: runDir + "/" + $0) }
        for (f, c) in zip(files, counts) where c == nil { missing.append(f) }
        guard let forget = counts[0], let rehearsal = counts[1], let ppo = counts[2] else { return "" }
        let mode = (readJSON(runDir + "/select/clusters.json") as? [String: Any])?["mode"] as? String ?? "selective"
        let share = { (c: [String: Int], t: String) in Double(c[t] ?? 0) / Double(max(c.values.reduce(0, +), 1)) }
        let all = Set(forget.keys).union(rehearsal.keys).union(ppo.keys).sorted()
        let under = all.filter { share(rehearsal, $0) < share(forget, $0) / 2 }
        var html = "<h2>Rehearsal set by task (selection mode: \(escape(mode)))</h2>"
        html += "<p>Examples per task in the rehearsal set and the PPO prompts the selection stage wrote, against the expert-aligned forget set that rehearsal should protect. The paper's selection takes the same number from every k-means cluster, and a uniform task can fall into a single cluster, so it can be rehearsed far below its share of the forget set (<code>select.mode: proportional</code> shares the set out by cluster size; tools/paper/README.md has the ablation).</p>"
        html += "<table><tr><th>task</th><th>forget set</th><th>rehearsal set</th><th>PPO prompts</th></tr>"
        for t in all {
            html += "<tr><td>\(escape(t))</td><td>\(forget[t] ?? 0)</td><td>\(rehearsal[t] ?? 0)</td><td>\(ppo[t] ?? 0)</td></tr>"
        }
        html += "</table>"
        if !under.isEmpty {
            html += "<p>Rehearsed at less than half their share of the forget set: " + under.map { t in
                escape(t) + String(format: " (%.0f%% of the forget set, %.0f%% of the rehearsal set)", 100 * share(forget, t), 100 * share(rehearsal, t))
            }.joined(separator: "; ") + ".</p>"
        }
        return html
    }

    static func readJSON(_ path: String) -> Any? {
        guard let d = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONSerialization.jsonObject(with: d)
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func f(_ x: Double) -> String { String(format: "%.1f", x) }

    /// Small multiples: one histogram per task on a shared x range.
    static func distributionChart(rows: [[String: Any]], range: [Double]) -> String {
        let tasks = rows.filter { ($0["task"] as? String) != "all" }
        let w = 420.0, rowH = 46.0, left = 70.0, h = rowH * Double(tasks.count) + 30
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(f(w))\" height=\"\(f(h))\" viewBox=\"0 0 \(f(w)) \(f(h))\">"
        for (i, row) in tasks.enumerated() {
            let hist = (row["histogram"] as? [Int]) ?? []
            let maxC = Double(hist.max() ?? 1)
            let y0 = Double(i) * rowH + 6
            s += "<text x=\"4\" y=\"\(f(y0 + rowH / 2))\" font-size=\"12\">\(escape(row["task"] as? String ?? "?"))</text>"
            let bw = (w - left - 10) / Double(max(hist.count, 1))
            for (k, c) in hist.enumerated() {
                let bh = maxC > 0 ? Double(c) / maxC * (rowH - 10) : 0
                s += "<rect x=\"\(f(left + Double(k) * bw))\" y=\"\(f(y0 + rowH - 8 - bh))\" width=\"\(f(bw - 1))\" height=\"\(f(bh))\" fill=\"\(palette[i % palette.count])\"/>"
            }
            if let m = row["scoreMean"] as? Double, range.count == 2, range[1] > range[0] {
                let x = left + (m - range[0]) / (range[1] - range[0]) * (w - left - 10)
                s += "<line x1=\"\(f(x))\" x2=\"\(f(x))\" y1=\"\(f(y0))\" y2=\"\(f(y0 + rowH - 8))\" stroke=\"#000\" stroke-dasharray=\"3,2\"/>"
            }
        }
        if range.count == 2 {
            s += "<text x=\"\(f(left))\" y=\"\(f(h - 6))\" font-size=\"11\">\(String(format: "%.2f", range[0]))</text>"
            s += "<text x=\"\(f(w - 10))\" y=\"\(f(h - 6))\" font-size=\"11\" text-anchor=\"end\">\(String(format: "%.2f", range[1]))</text>"
        }
        return s + "</svg>"
    }

    static func summaryTable(_ rows: [[String: Any]]) -> String {
        var t = "<table><tr><th>task</th><th>pairs</th><th>accuracy</th><th>ECE</th><th>mean</th><th>std</th></tr>"
        for r in rows {
            t += "<tr><td>\(escape(r["task"] as? String ?? ""))</td><td>\(r["pairs"] as? Int ?? 0)</td>"
            t += String(format: "<td>%.1f%%</td><td>%.1f%%</td><td>%.3f</td><td>%.3f</td></tr>", 100 * (r["accuracy"] as? Double ?? 0),
                        100 * (r["ece"] as? Double ?? 0), r["scoreMean"] as? Double ?? 0, r["scoreStd"] as? Double ?? 0)
        }
        return t + "</table>"
    }

    /// Line chart with a legend; series share axes.
    /// Series whose name ends in "fit" are drawn dashed; `markers` circles every point.
    public static func lineChart(title: String, series: [(String, String, [(Double, Double)])], xLabel: String, markers: Bool = false) -> String {
        let w = 420.0, h = 260.0, l = 56.0, r = 12.0, t = 28.0, b = 40.0
        let pts = series.flatMap(\.2)
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(f(w))\" height=\"\(f(h))\" viewBox=\"0 0 \(f(w)) \(f(h))\">"
        s += "<text x=\"\(f(w / 2))\" y=\"18\" font-size=\"14\" text-anchor=\"middle\">\(escape(title))</text>"
        guard let x0 = pts.map(\.0).min(), let x1 = pts.map(\.0).max(), let y0r = pts.map(\.1).min(), let y1r = pts.map(\.1).max() else {
            return s + "<text x=\"\(f(w / 2))\" y=\"\(f(h / 2))\" text-anchor=\"middle\" font-size=\"12\">no data</text></svg>"
        }
        let pad = max((y1r - y0r) * 0.05, 1e-6)
        let y0 = y0r - pad, y1 = y1r + pad
        func px(_ x: Double) -> Double { l + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * (w - l - r) }
        func py(_ y: Double) -> Double { t + (1 - (y - y0) / (y1 - y0)) * (h - t - b) }
        s += "<rect x=\"\(f(l))\" y=\"\(f(t))\" width=\"\(f(w - l - r))\" height=\"\(f(h - t - b))\" fill=\"none\" stroke=\"#bbb\"/>"
        for k in 0...4 {
            let yv = y0 + (y1 - y0) * Double(k) / 4
            s += "<text x=\"\(f(l - 4))\" y=\"\(f(py(yv) + 4))\" font-size=\"10\" text-anchor=\"end\">\(String(format: "%.3g", yv))</text>"
            s += "<line x1=\"\(f(l))\" x2=\"\(f(w - r))\" y1=\"\(f(py(yv)))\" y2=\"\(f(py(yv)))\" stroke=\"#eee\"/>"
        }
        s += "<text x=\"\(f(l))\" y=\"\(f(h - b + 14))\" font-size=\"10\">\(String(format: "%.3g", x0))</text>"
        s += "<text x=\"\(f(w - r))\" y=\"\(f(h - b + 14))\" font-size=\"10\" text-anchor=\"end\">\(String(format: "%.3g", x1))</text>"
        s += "<text x=\"\(f((l + w - r) / 2))\" y=\"\(f(h - b + 14))\" font-size=\"11\" text-anchor=\"middle\">\(escape(xLabel))</text>"
        for (i, (name, color, p)) in series.enumerated() {
            let fit = name.hasSuffix("fit")
            if !p.isEmpty {
                s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"\(fit ? "1.2" : "1.8")\"\(fit ? " stroke-dasharray=\"5,3\"" : "") points=\""
                    + p.map { "\(f(px($0.0))),\(f(py($0.1)))" }.joined(separator: " ") + "\"/>"
                if markers && !fit { for q in p { s += "<circle cx=\"\(f(px(q.0)))\" cy=\"\(f(py(q.1)))\" r=\"2.5\" fill=\"\(color)\"/>" } }
            }
            if fit { continue }
            let lx = l + Double(series[..<i].filter { !$0.0.hasSuffix("fit") }.count) * 110
            s += "<rect x=\"\(f(lx))\" y=\"\(f(h - 14))\" width=\"10\" height=\"10\" fill=\"\(color)\"/><text x=\"\(f(lx + 14))\" y=\"\(f(h - 5))\" font-size=\"11\">\(escape(name))</text>"
        }
        return s + "</svg>"
    }

    /// Horizontal stacked bars: win (green), tie (grey), lose (red) per policy.
    public static func winLoseChart(title: String, bars: [(String, Double, Double, Double)]) -> String {
        let w = 480.0, rowH = 34.0, l = 90.0, h = 40 + rowH * Double(bars.count) + 24
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(f(w))\" height=\"\(f(h))\" viewBox=\"0 0 \(f(w)) \(f(h))\">"
        s += "<text x=\"\(f(w / 2))\" y=\"18\" font-size=\"14\" text-anchor=\"middle\">\(escape(title))</text>"
        let span = w - l - 12
        for (i, (name, win, tie, lose)) in bars.enumerated() {
            let y = 30 + Double(i) * rowH
            s += "<text x=\"4\" y=\"\(f(y + 18))\" font-size=\"12\">\(escape(name))</text>"
            var x = l
            for (v, color) in [(win, "#2ca02c"), (tie, "#bbbbbb"), (lose, "#d62728")] {
                let bw = span * max(v, 0)
                s += "<rect x=\"\(f(x))\" y=\"\(f(y))\" width=\"\(f(bw))\" height=\"24\" fill=\"\(color)\"/>"
                if v >= 0.06 { s += "<text x=\"\(f(x + bw / 2))\" y=\"\(f(y + 16))\" font-size=\"11\" text-anchor=\"middle\" fill=\"#fff\">\(String(format: "%.0f%%", 100 * v))</text>" }
                x += bw
            }
        }
        let ly = h - 10
        for (k, (name, color)) in [("win", "#2ca02c"), ("tie", "#bbbbbb"), ("lose", "#d62728")].enumerated() {
            s += "<rect x=\"\(f(l + Double(k) * 70))\" y=\"\(f(ly - 9))\" width=\"10\" height=\"10\" fill=\"\(color)\"/><text x=\"\(f(l + Double(k) * 70 + 14))\" y=\"\(f(ly))\" font-size=\"11\">\(name)</text>"
        }
        return s + "</svg>"
    }
}

import Foundation
import HerdRL

/// The learning curves as `GET /history` returns them (column by column).
public struct HistoryDocument: Codable, Sendable {
  public var wallSeconds: [Double]
  public var envSteps: [Int]
  public var returnMean: [Float?]
  public var sampledPerSecond: [Double]
  public var trainedPerSecond: [Double]
  public var lossPG: [Float?]
  public var lossBaseline: [Float?]
  public var lossEntropy: [Float?]
  public var lagP50: [Int]
  public var lagP95: [Int]
  /// Each `episode_info_keys` entry's mean, by key (null before an episode had it).
  public var episodeInfo: [String: [Float?]] = [:]
  /// The latest evaluation's mean return at each point (null before the first;
  /// null throughout from a learner without evaluations).
  @ExplicitNull public var evaluationReturn: [Float?]? = nil

  /// The same names as `/stats` and `progress.jsonl` (``MetricKey``).
  enum CodingKeys: String, CodingKey {
    case wallSeconds = "run/wall_seconds"
    case envSteps = "env_steps/sampled"
    case returnMean = "episode_return/mean"
    case sampledPerSecond = "throughput/sampled_per_second"
    case trainedPerSecond = "throughput/trained_per_second"
    case lossPG = "losses/pg"
    case lossBaseline = "losses/baseline"
    case lossEntropy = "losses/entropy"
    case lagP50 = "policy_lag/p50"
    case lagP95 = "policy_lag/p95"
    case episodeInfo = "episode_info"
    case evaluationReturn = "evaluation/return_mean"
  }
}

/// Eight-level bar sparklines.
public enum Sparkline {
  static let bars: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]

  /// The last values resampled to at most `width` columns (each column the mean of
  /// its values); a column with no value is a space.
  public static func render(_ values: [Double?], width: Int) -> String {
    guard width > 0, !values.isEmpty else { return "" }
    let columns = min(width, values.count)
    var cells: [Double?] = []
    for c in 0..<columns {
      let lo = c * values.count / columns
      let hi = max(lo + 1, (c + 1) * values.count / columns)
      let xs = values[lo..<hi].compactMap { $0 }.filter(\.isFinite)
      cells.append(xs.isEmpty ? nil : xs.reduce(0, +) / Double(xs.count))
    }
    let known = cells.compactMap { $0 }
    guard let lo = known.min(), let hi = known.max() else { return String(repeating: " ", count: columns) }
    return String(
      cells.map { v -> Character in
        guard let v else { return " " }
        if hi - lo < 1e-12 { return bars[3] }
        return bars[min(7, max(0, Int((v - lo) / (hi - lo) * 7.999)))]
      })
  }
}

/// The terminal view of `herd stats`: the run's state, its numbers, two sparklines
/// and the worker table, as plain text (the caller clears the screen between frames).
public enum StatsView {
  public static func render(_ d: StatsDocument, history: HistoryDocument?, width: Int = 100) -> String {
    func n(_ x: Double?) -> String { x.map(Self.si) ?? "-" }
    func f(_ x: Float?) -> String { x.map { Self.value(Double($0)) } ?? "-" }
    var out: [String] = []
    out.append("herd  \(d.env)  \(d.runDir)  [\(d.status)] \(d.statusReason)")
    out.append(
      "uptime \(duration(d.uptimeSeconds))   policy version \(d.policyVersion)   updates \(d.updates)   queue \(d.queueDepth)/\(d.queueCapacity) (\(String(format: "%.1f", Double(d.queueBytes) / 1_048_576)) MiB)"
    )
    out.append("")
    out.append(
      "env steps   \(n(Double(d.envStepsSampled))) sampled   \(n(Double(d.envStepsTrained))) trained   \(n(d.sampledPerSecond))/s sampled   \(n(d.trainedPerSecond))/s trained"
    )
    let range = d.returnMin.map { "\(f($0)) .. \(f(d.returnMax))" } ?? "-"
    out.append(
      "return      \(f(d.returnMean)) mean (\(range) over \(d.episodesWindow) episodes)   length \(f(d.lengthMean))   episodes \(d.episodes)"
    )
    if !d.episodeInfo.isEmpty {
      let info = d.episodeInfo.sorted { $0.key < $1.key }.map { "\($0.key) \(f($0.value))" }
      out.append("info        " + info.joined(separator: "   ") + "   (means over the last 100 episodes)")
    }
    if let e = d.evaluation {
      func g(_ x: Double?) -> String { x.map(Self.value) ?? "-" }
      let best = d.bestEvaluation.map { "   best \(g($0.returnMean)) at \(n(Double($0.envSteps))) env steps" } ?? ""
      out.append(
        "evaluation  \(g(e.returnMean)) mean (\(g(e.returnMin)) .. \(g(e.returnMax)) over \(e.episodes) \(e.greedy ? "greedy" : "sampled") episodes) at \(n(Double(e.envSteps))) env steps\(best)   evaluations \(d.evaluations ?? 0)"
      )
    }
    out.append(
      "losses      pg \(f(d.lossPG))   baseline \(f(d.lossBaseline))   entropy term \(f(d.lossEntropy))   entropy \(f(d.entropy)) (weight \(f(d.entropyCoeff)))   grad norm \(f(d.gradNorm))   lr \(f(d.learningRate))"
    )
    out.append("policy lag  p50 \(d.lagP50)   p95 \(d.lagP95)   max \(d.lagMax)")
    let drops = d.dropped.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
    out.append("dropped     \(drops.isEmpty ? "none" : drops.joined(separator: ", "))")
    if let h = history, !h.wallSeconds.isEmpty {
      let w = max(10, min(60, width - 24))
      out.append("")
      out.append("return   \(Sparkline.render(h.returnMean.map { $0.map(Double.init) }, width: w))  \(f(d.returnMean))")
      out.append("steps/s  \(Sparkline.render(h.sampledPerSecond.map { $0 }, width: w))  \(n(d.sampledPerSecond))")
    }
    out.append("")
    let header = ["id", "host", "pid", "envs", "env steps", "steps/s", "episodes", "return", "policy", "heartbeat", "state"]
    var rows = [header]
    for w in d.workers {
      rows.append([
        String(w.id), w.host, String(w.pid), String(w.envs), n(Double(w.envSteps)), n(w.stepsPerSecond),
        String(w.episodes), f(w.meanReturn), String(w.policyVersion), String(format: "%.1f s", max(0, w.secondsSinceHeartbeat)),
        w.state,
      ])
    }
    if d.workers.isEmpty {
      out.append("no workers (in-process runs have none; a learner waits for `herd worker --learner ...`)")
    } else {
      out += table(rows, leftAligned: [1, 10])
    }
    return out.joined(separator: "\n") + "\n"
  }

  /// Columns padded to their widest cell.
  static func table(_ rows: [[String]], leftAligned: Set<Int>) -> [String] {
    let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
    return rows.map { r in
      r.enumerated().map { i, cell in
        let pad = String(repeating: " ", count: widths[i] - cell.count)
        return leftAligned.contains(i) ? cell + pad : pad + cell
      }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
    }
  }

  /// 1234567 -> "1.23M", 0.00123 -> "0.00123".
  public static func si(_ v: Double) -> String {
    guard v.isFinite else { return "-" }
    let a = abs(v)
    if a >= 1e9 { return String(format: "%.2fG", v / 1e9) }
    if a >= 1e6 { return String(format: "%.2fM", v / 1e6) }
    if a >= 1e4 { return String(format: "%.1fk", v / 1e3) }
    if a >= 100 { return String(format: "%.0f", v) }
    if a >= 1 { return String(format: "%.2f", v) }
    if a == 0 { return "0" }
    return String(format: "%.3g", v)
  }

  /// A measured value (return, loss): two decimals, or three significant digits
  /// when small, SI suffixes when large.
  public static func value(_ v: Double) -> String {
    guard v.isFinite else { return "-" }
    let a = abs(v)
    if a >= 1e4 { return si(v) }
    if a >= 0.01 || a == 0 { return String(format: "%.2f", v) }
    return String(format: "%.3g", v)
  }

  /// 3725 -> "1h 2m 5s".
  public static func duration(_ seconds: Double) -> String {
    let s = Int(max(0, seconds))
    let (h, m) = (s / 3600, s % 3600 / 60)
    return (h > 0 ? "\(h)h " : "") + (h > 0 || m > 0 ? "\(m)m " : "") + "\(s % 60)s"
  }
}

import ArgumentParser
import Foundation
import HerdEnvs
import HerdMath
import HerdNN
import HerdRL
import Logging

/// `herd bench envhost`: Gymnasium environments through Herd's env host, beside the
/// same environments in one Python process (a plain loop, SyncVectorEnv,
/// AsyncVectorEnv with shared memory), the bridge's own cost per step, and a
/// worker's end-to-end rate with its LSTM policy.
struct BenchEnvHost: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "envhost",
    abstract: "Env host throughput against Gymnasium's vector environments, the bridge's cost, a worker's rate.",
    discussion: """
      Random actions everywhere; rounds alternate between Herd and the references,
      medians are printed. The bridge's cost is measured with an environment that
      does nothing (HerdTest/Null-v0): host time per step minus a plain Python loop's
      time per step over the same environments, so what remains is the shared memory,
      the wake-ups, the flattening and Herd's copies.

      Examples:
        herd bench envhost --env CartPole-v1 --envs 8,32,64
        herd bench envhost --env ALE/Pong-v5 --envs 16,32 --no-async \\
          --config configs/pong.json
      """
  )

  @Option(help: "Gymnasium id (without gym:).")
  var env = "CartPole-v1"
  @Option(help: "Comma-separated K values.")
  var envs = "8,32,64"
  @Option(parsing: .unconditional, help: "Seconds per measurement.")
  var seconds = 2.0
  @Option(parsing: .unconditional, help: "Alternating rounds; medians are reported.")
  var rounds = 3
  @Option(help: "Python interpreter with herd_env (default: as for herd worker).")
  var python: String?
  @Flag(help: "Skip AsyncVectorEnv (one process per environment: slow to start at K = 64).")
  var noAsync = false
  @Option(help: "A JSON config for the worker end-to-end part (its model), laid over the environment's defaults, e.g. configs/pong.json.")
  var config: String?

  func validate() throws {
    guard envs.split(separator: ",").allSatisfy({ (Int($0) ?? 0) > 0 }) else {
      throw ValidationError("--envs must be comma-separated positive counts, got '\(envs)'")
    }
    try requirePositive([("--rounds", rounds)])
    guard seconds > 0 else { throw ValidationError("--seconds must be positive, got \(seconds)") }
  }

  var interpreter: String { python ?? EnvHostSettings.defaultPython }

  func run() throws {
    BLAS.setThreadCount(1)
    print("herd bench envhost: \(env), random actions, \(rounds) alternating rounds of \(seconds) s, medians")
    print(openBLASLine())
    print("python: \(interpreter)")
    let ks = envs.split(separator: ",").compactMap { Int($0) }
    print("\n   K   host P=1   host P=2   py loop    SyncVectorEnv  AsyncVectorEnv(shm)   (env steps/s)")
    for k in ks {
      var rows: [String: [Double]] = [:]
      for _ in 0..<rounds {
        rows["h1", default: []].append(try hostRate(env, k: k, processes: 1))
        rows["h2", default: []].append(try hostRate(env, k: k, processes: 2))
        rows["loop", default: []].append(try pythonRate(env, k: k, mode: "loop"))
        rows["sync", default: []].append(try pythonRate(env, k: k, mode: "sync"))
        if !noAsync { rows["async", default: []].append(try pythonRate(env, k: k, mode: "async")) }
      }
      func m(_ key: String) -> String { rows[key].map { String(format: "%9.0f", median($0)) } ?? "        -" }
      print(String(format: "%4d  ", k) + [m("h1"), m("h2"), m("loop"), "   " + m("sync"), "      " + m("async")].joined(separator: "  "))
    }

    // The bridge's own cost at K = 32.
    let null = "herd_env.testing_envs:HerdTest/Null-v0"
    var host: [Double] = []
    var hostCPU: [Double] = []
    var loop: [Double] = []
    for _ in 0..<rounds {
      let (rate, cpu) = try hostRateAndCPU(null, k: 32, processes: 1)
      host.append(rate)
      hostCPU.append(cpu)
      loop.append(try pythonRate(null, k: 32, mode: "loop"))
    }
    let bridge = 1e6 / median(host) - 1e6 / median(loop)
    print(
      String(
        format: "\nbridge at K = 32 (Null env, F = 4): host %.2f us/step, plain loop %.2f us/step: bridge %.2f us per env step",
        1e6 / median(host), 1e6 / median(loop), bridge))
    // The loop is one busy process: its CPU time per step is its wall time per step.
    print(
      String(
        format: "  in CPU time (this thread + the host process): %.2f us/step, minus the loop's %.2f: bridge %.2f us of CPU per env step",
        median(hostCPU), 1e6 / median(loop), median(hostCPU) - 1e6 / median(loop)))

    // A worker end to end: LSTM policy + env host, fragments recorded (not sent).
    // The config `herd train --env gym:ENV [--config FILE]` would train with (for
    // Box actions, without the previous action unless the file asks for it).
    let options = try ConfigOptions.parse(["--env", "gym:\(env)"] + (self.config.map { ["--config", $0] } ?? []))
    var config = try options.resolve()
    try options.fitDefaults(&config, host: EnvHostSettings(python: interpreter), logger: Logger(label: "herd.bench"))
    config.num_envs_per_worker = 32
    let spec = try EnvironmentFactory.spec(config, host: EnvHostSettings(python: interpreter))
    let encoder = try ConvPlan.make(config: config, observation: spec.observation).map { "conv \($0.name) + FC \($0.fcHiddens)" }
      ?? "\(config.fcnet_hiddens)"
    print("\nworker end to end, K = 32, \(config.use_lstm ? "LSTM(\(config.lstm_cell_size))" : "feed-forward") policy, encoder \(encoder):")
    var envOnly: [Double] = []
    var inference: [Double] = []
    var workers: [String: [Double]] = [:]
    let shapes = [(1, 1), (1, 2), (2, 1), (2, 2)]  // (P, groups per host)
    for _ in 0..<rounds {
      envOnly.append(try hostRate(env, k: 32, processes: 1))
      inference.append(try inferenceRate(config, spec: spec))
      for (p, g) in shapes { workers["\(p)x\(g)", default: []].append(try workerRate(config, processes: p, groups: g)) }
    }
    let floor = min(median(envOnly), median(inference))
    print(String(format: "  env only (host, P = 1)          %9.0f steps/s", median(envOnly)))
    print(String(format: "  inference only                  %9.0f steps/s", median(inference)))
    for (p, g) in shapes {
      let rate = median(workers["\(p)x\(g)"] ?? [0])
      print(
        String(
          format: "  worker, P = %d, %d group%@/host     %9.0f steps/s  = %.2f of min(env, inference), %.2f of env only",
          p, g, g == 1 ? " " : "s", rate, rate / floor, rate / median(envOnly)))
    }
  }

  /// Env steps/s through the host (one group per host) with random actions.
  func hostRate(_ id: String, k: Int, processes: Int) throws -> Double {
    try hostRateAndCPU(id, k: k, processes: processes).rate
  }

  /// Env steps/s through the host (one group per host: one command per host per
  /// step) with random actions, and the CPU time it took per env step: this
  /// thread's plus the host processes' (from /proc), in microseconds.
  func hostRateAndCPU(_ id: String, k: Int, processes: Int = 1) throws -> (rate: Double, cpuMicros: Double) {
    var options = HostedEnvironments.Options(
      id: id, config: "{}", count: k, processes: processes, seed: 1, python: interpreter)
    options.groupsPerHost = 1
    let envs = try HostedEnvironments(options, log: { printError($0) })
    defer { envs.close() }
    try envs.reset()
    var rng = SeededGenerator(seed: 3)
    // [K, D] actions: a component of each head (Discrete, MultiDiscrete), or
    // uniform within a Box's bounds (a standard normal where one is infinite).
    let d = envs.actionDims
    let box = try envs.spec.action.continuousAction()
    let heads = box == nil ? try envs.spec.action.actionHeads() : []
    var actions = [Int32](repeating: 0, count: k * d)
    var values = [Float](repeating: 0, count: k * d)
    var calls = 0
    func step() {
      for i in 0..<k {
        for j in 0..<d {
          if let box {
            let (lo, hi) = (box.low[j], box.high[j])
            values[i * d + j] =
              lo.isFinite && hi.isFinite ? lo + (hi - lo) * rng.nextUnitFloat() : rng.nextGaussian()
          } else {
            actions[i * d + j] = Int32(rng.next() % UInt64(heads[j]))
          }
        }
      }
      actions.withUnsafeBufferPointer { a in
        values.withUnsafeBufferPointer { v in
          for g in envs.groups.indices {
            if box != nil {
              try? envs.beginStep(group: g, continuousActions: v.baseAddress!)
            } else {
              try? envs.beginStep(group: g, actions: a.baseAddress!)
            }
          }
          for g in envs.groups.indices { try? envs.finishStep(group: g) }
        }
      }
      calls += 1
    }
    for _ in 0..<100 { step() }
    calls = 0
    func cpu() -> Double { threadCPUSeconds() + envs.hostPIDs.reduce(0) { $0 + processCPUSeconds($1) } }
    let cpu0 = cpu()
    let perCall = timePerCall(seconds: seconds) { step() }
    return (Double(k) / perCall, (cpu() - cpu0) * 1e6 / Double(calls * k))
  }

  /// CPU seconds of the calling thread.
  func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
  }

  /// CPU seconds (user + system) of process `pid`, from /proc (clock-tick resolution).
  func processCPUSeconds(_ pid: Int32) -> Double {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let close = text.lastIndex(of: ")")
    else { return 0 }
    // After "pid (comm)": state is field 3, utime 14 and stime 15.
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
  }

  /// Env steps/s of `python -m herd_env.bench --mode MODE`.
  func pythonRate(_ id: String, k: Int, mode: String) throws -> Double {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: interpreter.contains("/") ? interpreter : "/usr/bin/env")
    p.arguments = (interpreter.contains("/") ? [] : [interpreter]) + [
      "-m", "herd_env.bench", "--env", id, "--count", String(k), "--seconds", String(seconds), "--mode", mode,
    ]
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let rate = obj["steps_per_second"] as? Double
    else { throw CommandFailure("herd_env.bench --mode \(mode) failed: \(String(decoding: data, as: UTF8.self))") }
    return rate
  }

  /// Policy steps/s alone: the worker's batched forward and sampling on fixed observations.
  func inferenceRate(_ config: TrainingConfig, spec: EnvSpec) throws -> Double {
    let k = config.num_envs_per_worker
    let net = try PolicyNetwork(config: config, spec: spec)
    let a = net.actionCount
    var rng = SeededGenerator(seed: 1)
    let params = Parameters(layout: net.layout, rng: &rng)
    let ws = PolicyWorkspace()
    let bytes = spec.observation.flatIsBytes
    let obs = (0..<(k * net.observationSize)).map { _ in
      bytes ? Float(rng.next() % 256) : Float(rng.nextUnitFloat() - 0.5)
    }
    var h = [Float](repeating: 0, count: k * config.lstm_cell_size)
    var c = h
    let prev = [Int32](repeating: 0, count: k)
    let prevValues = [Float](repeating: 0, count: k * net.distribution.actionWidth)
    let rewards = [Float](repeating: 0, count: k)
    var sink = 0
    let perCall = timePerCall(seconds: seconds) {
      obs.withPointer { o in
        prev.withUnsafeBufferPointer { pa in
          prevValues.withUnsafeBufferPointer { pv in
            rewards.withPointer { pr in
              h.withMutablePointer { ph in
                c.withMutablePointer { pc in
                  net.step(
                    params, obs: o, prevActions: pa.baseAddress!, prevActionValues: pv.baseAddress, prevRewards: pr,
                    rows: k, h: ph, c: pc, ws: ws)
                }
              }
            }
          }
        }
      }
      if !net.distribution.isContinuous {
        for i in 0..<k { sink &+= sampleCategorical(ws.logits.pointer + i * a, count: a, rng: &rng) }
      }
    }
    if sink == -1 { print(sink) }
    return Double(k) / perCall
  }

  /// Env steps/s of a rollout worker over the host (fragments recorded, then dropped).
  func workerRate(_ config: TrainingConfig, processes: Int, groups: Int) throws -> Double {
    let envs = try EnvironmentFactory.make(
      config, count: config.num_envs_per_worker, seed: 1,
      host: EnvHostSettings(python: interpreter, processes: processes, groups: groups), log: { printError($0) })
    defer { envs.close() }
    let net = try PolicyNetwork(config: config, spec: envs.spec)
    var rng = SeededGenerator(seed: 1)
    let params = Parameters(layout: net.layout, rng: &rng)
    let worker = try RolloutWorker(config: config, network: net, envs: envs, workerID: 1, seed: 1)
    try worker.setWeights(params.flatValues, version: 0)
    _ = try? worker.step(emit: { _ in }, episode: { _ in })
    let perCall = timePerCall(seconds: seconds) { _ = try? worker.step(emit: { _ in }, episode: { _ in }) }
    worker.drain()
    return Double(config.num_envs_per_worker) / perCall
  }
}

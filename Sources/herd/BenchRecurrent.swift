import ArgumentParser
import Foundation
import HerdMath
import HerdNN
import HerdRL

/// `herd bench lstm`: recurrent layer forward+backward against its matrix-product floor.
struct BenchRecurrent: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "lstm",
    abstract: "Time LSTM/GRU forward+backward (BPTT) against the GEMMs it issues.",
    discussion: """
      Runs forward and backward over N sequences of T steps, records every
      cblas_sgemm call the layer makes, then times exactly those products alone on
      buffers of the same sizes: the floor. Rounds alternate between the two so both
      see the same machine. Prints timesteps/s, GFLOP/s (matrix-product FLOPs), and
      the ratio of the layer's speed to the floor's on a line of its own (1.0 = no
      time lost outside the matrix products).

      Example: herd bench lstm --threads 1
      """
  )

  @OptionGroup var shape: BatchShapeOptions
  @Flag(help: "Give sequences random lengths in 1...T instead of all T (packing skips the padding).")
  var unevenLengths = false
  @Option(parsing: .unconditional, help: "Random seed for weights and inputs.", transform: seedArgument)
  var seed: UInt64 = 1
  @Option(parsing: .unconditional, help: "Shards computed in parallel on this many threads (as learner_threads does).")
  var shards = 1
  @Flag(help: "Time the layer alone, without its GEMM floor (for profiling the layer: perf sees nothing else).")
  var noFloor = false

  func validate() throws {
    try shape.validate()
    try requirePositive([("--shards", shards)])
    guard shards <= shape.sequences else {
      throw ValidationError("--shards \(shards) is more than the \(shape.sequences) sequences to split")
    }
  }


  func run() throws {
    BLAS.setThreadCount(shape.threads)
    print(
      "herd bench lstm: cell=\(shape.cell) N=\(shape.sequences) T=\(shape.steps) F=\(shape.features) H=\(shape.hidden) lengths=\(unevenLengths ? "uneven" : "all T")"
    )
    print(openBLASLine())

    // Model and data.
    var layout = ParameterLayout()
    let layer: any RecurrentLayer =
      shape.cell == .lstm
      ? LSTM("rnn", inputSize: shape.features, hiddenSize: shape.hidden, layout: &layout)
      : GRU("rnn", inputSize: shape.features, hiddenSize: shape.hidden, layout: &layout)
    var rng = SeededGenerator(seed: seed)
    let p = Parameters(layout: layout, rng: &rng)
    let seqLens = (0..<shape.sequences).map { _ in unevenLengths ? 1 + Int(rng.next() % UInt64(shape.steps)) : shape.steps }
    let packing = try PackedSequences(seqLens: seqLens, maxLength: shape.steps)
    let rows = packing.rowCount
    guard shards > 1 || noFloor else {
      let whole = ShardWork(
        packing: packing, x: (0..<(rows * shape.features)).map { _ in 2 * rng.nextUnitFloat() - 1 },
        dH: (0..<(rows * shape.hidden)).map { _ in (2 * rng.nextUnitFloat() - 1) * 0.01 },
        h0: (0..<(shape.sequences * shape.hidden)).map { _ in 2 * rng.nextUnitFloat() - 1 },
        dx: [Float](repeating: 0, count: rows * shape.features), params: p, cache: RecurrentCache())
      benchAgainstFloor(
        label: "\(shape.cell.rawValue.uppercased()) forward+backward", timesteps: Double(rows), rounds: shape.rounds,
        seconds: shape.seconds, rng: &rng, step: { whole.run(layer) })
      return
    }
    // Shards: contiguous groups of sequences, each with its own cache, gradients and
    // part of the inputs; the gradients are summed into p's at the end, on both
    // threads, as the learner does.
    let bounds = (0...shards).map { $0 * shape.sequences / shards }
    let parts: [ShardWork] = try (0..<shards).map { s in
      let lens = Array(seqLens[bounds[s]..<bounds[s + 1]])
      let pk = try PackedSequences(seqLens: lens, maxLength: shape.steps)
      let xs = (0..<(pk.rowCount * shape.features)).map { _ in 2 * rng.nextUnitFloat() - 1 }
      let dHs = (0..<(pk.rowCount * shape.hidden)).map { _ in (2 * rng.nextUnitFloat() - 1) * 0.01 }
      let h0s = (0..<(lens.count * shape.hidden)).map { _ in 2 * rng.nextUnitFloat() - 1 }
      return ShardWork(
        packing: pk, x: xs, dH: dHs, h0: h0s, dx: [Float](repeating: 0, count: pk.rowCount * shape.features),
        params: Parameters(sharingValuesWith: p), cache: RecurrentCache())
    }
    let pool = ShardPool(count: shards)
    defer { pool.shutdown() }
    // The shards' gradients summed as the learner sums them: each thread its own
    // slice of the parameters.
    let grads = parts.map { UnsafePointer($0.params.grads.baseAddress.unsafelyUnwrapped) }
    func shardedStep() {
      pool.run { s in parts[s].run(layer) }
      pool.sum(grads, into: p.grads.baseAddress.unsafelyUnwrapped, count: p.count)
    }
    shardedStep()
    var rates: [Double] = []
    for round in 1...shape.rounds {
      rates.append(Double(rows) / timePerCall(seconds: shape.seconds, shardedStep))
      printError("round \(round)/\(shape.rounds): \(Int(rates[round - 1])) timesteps/s")
    }
    print(
      String(
        format: "%@ forward+backward: %.0f timesteps/s (median of %d rounds; %@, no GEMM floor measured)",
        shape.cell.rawValue.uppercased(), median(rates), shape.rounds,
        shards == 1 ? "one thread" : "\(shards) shards in parallel"))
  }
}

/// The sequences one thread runs in `herd bench lstm`: all of them, or one shard
/// with `--shards`; with their buffers and gradients.
final class ShardWork: @unchecked Sendable {
  let packing: PackedSequences
  let x: [Float]
  let dH: [Float]
  let h0: [Float]
  var dx: [Float]
  let params: Parameters
  let cache: RecurrentCache

  init(
    packing: PackedSequences, x: [Float], dH: [Float], h0: [Float], dx: [Float], params: Parameters,
    cache: RecurrentCache
  ) {
    (self.packing, self.x, self.dH, self.h0, self.dx, self.params, self.cache) = (packing, x, dH, h0, dx, params, cache)
  }

  /// Forward and backward on the calling thread, from zeroed gradients (as a
  /// training step starts).
  func run(_ layer: any RecurrentLayer) {
    params.zeroGrads()
    x.withPointer { px in
      h0.withPointer { ph in
        layer.forward(params, x: px, packing: packing, h0: ph, c0: ph, cache: cache)
        dH.withPointer { pdh in
          dx.withMutablePointer { pdx in
            layer.backward(params, x: px, dH: pdh, cache: cache, dx: pdx, dh0: nil, dc0: nil)
          }
        }
      }
    }
  }
}

/// Seconds per call of `body`, averaged over as many calls as fit in `seconds`.
func timePerCall(seconds: Double, _ body: () -> Void) -> Double {
  let clock = ContinuousClock()
  var calls = 0
  let start = clock.now
  var elapsed = 0.0
  repeat {
    body()
    calls += 1
    let d = clock.now - start
    elapsed = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
  } while elapsed < seconds
  return elapsed / Double(calls)
}

/// The median of a non-empty list.
func median(_ xs: [Double]) -> Double {
  let s = xs.sorted()
  return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Replays recorded GEMM shapes on buffers of the same sizes.
final class GemmReplay {
  let shapes: [GemmShape]
  let a: [Float]
  let b: [Float]
  var c: [Float]

  init<G: RandomNumberGenerator>(shapes recorded: [GemmShape], rng: inout G) {
    // A packed product may read overlapping rows of A (lda below k); cblas_sgemm
    // refuses that, so the replay gives A rows of their full length.
    let shapes = recorded.map { s -> GemmShape in
      let width = s.transA == .none ? s.k : s.m
      var full = s
      full.lda = max(s.lda, width)
      return full
    }
    self.shapes = shapes
    func rowsA(_ s: GemmShape) -> Int { s.transA == .none ? s.m : s.k }
    func rowsB(_ s: GemmShape) -> Int { s.transB == .none ? s.k : s.n }
    let na = shapes.map { rowsA($0) * $0.lda }.max() ?? 1
    let nb = shapes.map { rowsB($0) * $0.ldb }.max() ?? 1
    let nc = shapes.map { $0.m * $0.ldc }.max() ?? 1
    a = (0..<na).map { _ in rng.nextUnitFloat() - 0.5 }
    b = (0..<nb).map { _ in rng.nextUnitFloat() - 0.5 }
    c = [Float](repeating: 0, count: nc)
  }

  func run() {
    a.withPointer { pa in
      b.withPointer { pb in
        c.withMutablePointer { pc in
          for s in shapes {
            // beta 0: C's contents do not matter, and accumulation cannot overflow.
            BLAS.gemm(
              s.transA, s.transB, m: s.m, n: s.n, k: s.k, a: pa, lda: s.lda, b: pb, ldb: s.ldb,
              beta: s.beta == 0 ? 0 : 1, c: pc, ldc: s.ldc)
          }
        }
      }
    }
  }
}

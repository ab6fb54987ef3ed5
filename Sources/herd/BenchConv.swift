import ArgumentParser
import Foundation
import HerdEnvs
import HerdMath
import HerdNN
import HerdRL

extension ConvEncoderKind: ExpressibleByArgument {}

/// `herd bench cnn`: a convolutional encoder's forward+backward against its GEMM floor.
struct BenchConv: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cnn",
    abstract: "Time a convolutional encoder's forward+backward against the GEMMs it issues.",
    discussion: """
      Runs the encoder a policy with `conv_encoder` builds (the convolutions, then
      the fully connected layers) forward and backward over --frames images, as
      the learner does for a batch of N x T frames: parameter gradients only, none
      for the input. With one shard it also records every cblas_sgemm call and
      times exactly those products alone on buffers of the same sizes (the floor),
      in alternating rounds. With --shards S the frames are split over S threads,
      each with its own caches and gradients, summed at the end (as
      learner_threads does). With --bytes the frames are uint8 and the first
      convolution scales them by 1/255 as it reads them, as the learner does for
      uint8 images; without, they are floats already in [0, 1].

      On AVX-512 the convolutions with 16 output channels run on register
      tiles of 8 rows; HERD_NARROW_ROWS=16 runs them on 16 rows instead (the
      same results; the header says which ran), to time both on a new CPU.

      benchmarks/vs_torch.py runs this beside PyTorch's nn.Conv2d on the same shapes.

      Example: herd bench cnn --encoder impala_deep --frames 640
      """
  )

  @Option(help: "Encoder preset: impala_shallow, impala_deep or nature.")
  var encoder = ConvEncoderKind.impala_shallow
  @Option(parsing: .unconditional, help: "Frames per step (N x T of a batch).")
  var frames = 640
  @Option(parsing: .unconditional, help: "Image height.")
  var height = 84
  @Option(parsing: .unconditional, help: "Image width.")
  var width = 84
  @Option(parsing: .unconditional, help: "Image channels (stacked frames).")
  var channels = 4
  @Option(parsing: .unconditional, help: "Shards computed in parallel on this many threads (as learner_threads does).")
  var shards = 1
  @Option(parsing: .unconditional, help: "OpenBLAS threads for this run (set once at start-up).")
  var threads = 1
  @Option(parsing: .unconditional, help: "Alternating rounds; medians are reported.")
  var rounds = 5
  @Option(parsing: .unconditional, help: "Seconds per round per side.")
  var seconds = 1.0
  @Option(parsing: .unconditional, help: "Random seed for weights and inputs.", transform: seedArgument)
  var seed: UInt64 = 1
  @Flag(help: "Feed uint8 frames that the first convolution scales as it reads them (the learner's path for uint8 images).")
  var bytes = false
  @Flag(help: "Time the encoder alone, without its GEMM floor (for profiling the encoder: perf sees nothing else).")
  var noFloor = false

  func validate() throws {
    try requirePositive([
      ("--frames", frames), ("--height", height), ("--width", width), ("--channels", channels), ("--shards", shards),
      ("--threads", threads), ("--rounds", rounds),
    ])
    guard [.impala_shallow, .impala_deep, .nature].contains(encoder) else {
      throw ValidationError("--encoder \(encoder.rawValue): use impala_shallow, impala_deep or nature")
    }
    guard shards <= frames else { throw ValidationError("--shards \(shards) is more than the \(frames) frames to split") }
    guard seconds > 0 else { throw ValidationError("--seconds must be positive, got \(seconds)") }
  }

  func run() throws {
    BLAS.setThreadCount(threads)
    var config = TrainingConfig()
    config.conv_encoder = encoder
    let n = height * width * channels
    let space = Space.box(
      shape: [height, width, channels], dtype: "uint8", low: [Float](repeating: 0, count: n),
      high: [Float](repeating: 255, count: n))
    guard let plan = try ConvPlan.make(config: config, observation: space) else { return }
    var layout = ParameterLayout()
    let conv = try ConvNet("conv", input: plan.image, specs: plan.layers, activation: plan.activation, layout: &layout)
    let fc = MLP(
      "encoder", inFeatures: conv.output.count, hiddenSizes: plan.fcHiddens, activation: plan.activation,
      layout: &layout)
    var rng = SeededGenerator(seed: seed)
    let p = Parameters(layout: layout, rng: &rng)
    print(
      "herd bench cnn: \(encoder.rawValue) over \(frames) frames of \(plan.image) (\(bytes ? "uint8, scaled in the first layer" : "float32")), \(layout.count) parameters, \(shards) shard\(shards == 1 ? "" : "s")"
    )
    print(openBLASLine())
    let bounds = (0...shards).map { $0 * frames / shards }
    let parts: [ConvShard] = (0..<shards).map { s in
      let count = bounds[s + 1] - bounds[s]
      let pixels = (0..<(count * n)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
      return ConvShard(
        conv: conv, fc: fc, frames: count, x: bytes ? [] : pixels.map { Float($0) / 255 }, bytes: bytes ? pixels : nil,
        dy: (0..<(count * fc.outFeatures)).map { _ in (rng.nextUnitFloat() - 0.5) * 0.01 },
        params: shards == 1 ? p : Parameters(sharingValuesWith: p))
    }
    guard shards > 1 || noFloor else {
      benchAgainstFloor(
        label: "\(encoder.rawValue) forward+backward", timesteps: Double(frames), rounds: rounds, seconds: seconds,
        rng: &rng, step: { parts[0].run() }, unit: "frames")
      return
    }
    let pool = ShardPool(count: shards)
    defer { pool.shutdown() }
    // The shards' gradients summed as the learner sums them: each thread its own
    // slice of the parameters.
    let grads = parts.map { UnsafePointer($0.params.grads.baseAddress.unsafelyUnwrapped) }
    func shardedStep() {
      pool.run { s in parts[s].run() }
      pool.sum(grads, into: p.grads.baseAddress.unsafelyUnwrapped, count: p.count)
    }
    shardedStep()
    var rates: [Double] = []
    for round in 1...rounds {
      rates.append(Double(frames) / timePerCall(seconds: seconds, shardedStep))
      printError("round \(round)/\(rounds): \(Int(rates[round - 1])) frames/s")
    }
    print(
      String(
        format: "%@ forward+backward: %.0f frames/s (median of %d rounds; %@, no GEMM floor measured)",
        encoder.rawValue, median(rates), rounds, shards == 1 ? "one thread" : "\(shards) shards in parallel"))
  }
}

/// The frames one thread runs in `herd bench cnn`, with its caches and gradients.
final class ConvShard: @unchecked Sendable {
  let conv: ConvNet
  let fc: MLP
  let frames: Int
  let x: [Float]
  /// uint8 frames the first convolution scales (instead of `x`).
  let bytes: [UInt8]?
  let dy: [Float]
  let params: Parameters
  let convCache = ConvNetCache()
  let fcCache = MLPCache()
  let gradConv = FloatBuffer()

  init(conv: ConvNet, fc: MLP, frames: Int, x: [Float], bytes: [UInt8]?, dy: [Float], params: Parameters) {
    (self.conv, self.fc, self.frames, self.x, self.bytes, self.dy, self.params) = (conv, fc, frames, x, bytes, dy, params)
  }

  /// Forward and backward from zeroed gradients, as a training step.
  func run() {
    params.zeroGrads()
    let scale: Float = 1 / 255
    if let bytes {
      bytes.withUnsafeBufferPointer { b in
        let px = b.baseAddress.unsafelyUnwrapped
        let features = conv.forward(params, bytes: px, scale: scale, images: frames, cache: convCache)
        let dC = fullyConnected(features)
        conv.backward(params, bytes: px, scale: scale, dy: dC, cache: convCache)
      }
    } else {
      x.withPointer { px in
        let features = conv.forward(params, x: px, images: frames, cache: convCache)
        let dC = fullyConnected(features)
        conv.backward(params, x: px, dy: dC, cache: convCache, dx: nil)
      }
    }
  }

  /// The fully connected layers forward and backward; returns the gradient of the
  /// convolutions' output.
  private func fullyConnected(_ features: UnsafePointer<Float>) -> UnsafePointer<Float> {
    fc.forward(params, x: features, rows: frames, cache: fcCache)
    let dC = gradConv.reserve(frames * conv.output.count)
    dy.withPointer { pdy in fc.backward(params, x: features, dy: pdy, cache: fcCache, dx: dC) }
    return UnsafePointer(dC)
  }
}

import HerdMath

/// The encoder: fully connected layers, each followed by the activation
/// (RLlib's `fcnet_hiddens` and `fcnet_activation`).
///
/// Shapes: x `[M, in]` -> features `[M, outFeatures]`, where `outFeatures` is the
/// last hidden size (or `in` when there are no hidden layers: the identity).
public struct MLP: Sendable, Equatable {
  /// The layers, input side first.
  public let layers: [Linear]
  /// The activation after every layer.
  public let activation: Activation
  /// Input features.
  public let inFeatures: Int

  /// Declares `name.0`, `name.1`, ... in `layout`.
  public init(
    _ name: String, inFeatures: Int, hiddenSizes: [Int], activation: Activation,
    layout: inout ParameterLayout
  ) {
    self.inFeatures = inFeatures
    self.activation = activation
    var layers: [Linear] = []
    var n = inFeatures
    for (i, h) in hiddenSizes.enumerated() {
      layers.append(Linear("\(name).\(i)", inFeatures: n, outFeatures: h, layout: &layout))
      n = h
    }
    self.layers = layers
  }

  /// Output features.
  public var outFeatures: Int { layers.last?.outFeatures ?? inFeatures }

  /// Runs the encoder over `rows` rows, keeping each layer's output in `cache` for
  /// backward, and returns a pointer to the features (valid until the next forward
  /// with this cache). With no layers, returns `x` itself.
  @discardableResult
  public func forward(
    _ p: Parameters, x: UnsafePointer<Float>, rows: Int, cache: MLPCache
  ) -> UnsafePointer<Float> {
    cache.prepare(layerCount: layers.count)
    cache.rows = rows
    // A few rows (a rollout step) on Herd's kernels: the weights are packed once per
    // generation of `p` and kept in the cache, instead of on every call (a general
    // product packs its right side each time: for a convolutional encoder's first
    // fully connected layer, 3872 x 256 floats per step for 16 rows). The same bits:
    // both are one fused multiply-add chain over k in order per element.
    let keep = rows <= Self.packedRows && GemmBackend.active.backend == .herd
    if keep && cache.packedFor != p.generation {
      for (i, layer) in layers.enumerated() { layer.pack(p, into: cache.packed(i, outFeatures: layer.outFeatures)) }
      cache.packedFor = p.generation
    }
    var input = x
    for (i, layer) in layers.enumerated() {
      let y = cache.outputs[i].reserve(rows &* layer.outFeatures)
      if keep {
        layer.forward(p, x: input, rows: rows, y: y, packed: cache.packed(i, outFeatures: layer.outFeatures))
      } else {
        layer.forward(p, x: input, rows: rows, y: y)
      }
      activation.apply(y, y, count: rows &* layer.outFeatures)
      input = UnsafePointer(y)
    }
    return input
  }

  /// The most rows a forward runs on weights packed in its cache (more rows amortise
  /// the general product's packing, and its blocks of k keep B in the caches).
  public static let packedRows = 64

  /// Backpropagates `dy` (`[rows, outFeatures]`) through the layers of the last
  /// forward, accumulating parameter gradients; writes `dx` (`[rows, in]`) if asked.
  public func backward(
    _ p: Parameters, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, cache: MLPCache,
    dx: UnsafeMutablePointer<Float>?
  ) {
    let rows = cache.rows
    guard !layers.isEmpty else {
      if let dx { dx.update(from: dy, count: rows &* inFeatures) }
      return
    }
    // The activation's gradient always lands in `activationGrad`, each layer's
    // input gradient in `inputGrad`: the one read is never the one written.
    var grad = dy
    for i in stride(from: layers.count - 1, through: 0, by: -1) {
      let layer = layers[i]
      let n = rows &* layer.outFeatures
      let g = cache.activationGrad.reserve(n)
      activation.backward(output: cache.outputs[i].pointer, gradOutput: grad, gradInput: g, count: n)
      if i == 0 {
        layer.backward(p, x: x, dy: g, rows: rows, dx: dx)
      } else {
        let d = cache.inputGrad.reserve(rows &* layer.inFeatures)
        layer.backward(p, x: cache.outputs[i - 1].pointer, dy: g, rows: rows, dx: d)
        grad = UnsafePointer(d)
      }
    }
  }
}

/// What an ``MLP`` keeps between forward and backward, reused across steps.
public final class MLPCache {
  var outputs: [FloatBuffer] = []
  let activationGrad = FloatBuffer()
  let inputGrad = FloatBuffer()
  var rows = 0
  /// Each layer's weights packed for the kernels (`W^T`), and the parameters'
  /// generation they were packed from (see ``MLP/packedRows``).
  private var packings: [PackedMatrix] = []
  var packedFor: UInt64?

  /// Layer `i`'s packing, made as ``GeneralGemm`` makes its own (narrow panels for
  /// at most 16 columns), so that both give the same bits.
  func packed(_ i: Int, outFeatures: Int) -> PackedMatrix {
    while packings.count <= i { packings.append(PackedMatrix(isa: .preferred, narrow: outFeatures <= 16)) }
    return packings[i]
  }

  /// An empty cache; buffers grow on first use.
  public init() {}

  func prepare(layerCount: Int) {
    while outputs.count < layerCount { outputs.append(FloatBuffer()) }
  }
}

extension MLP {
  /// Tensor form of forward: `[M, in]` -> `[M, outFeatures]`.
  public func forward(_ p: Parameters, _ x: Tensor, cache: MLPCache) throws -> Tensor {
    guard x.rank == 2, x.shape[1] == inFeatures else {
      throw NNError.shapeMismatch(context: "MLP input", expected: [x.shape.first ?? 0, inFeatures], actual: x.shape)
    }
    let rows = x.shape[0]
    var y = Tensor(shape: [rows, outFeatures])
    x.scalars.withPointer { px in
      let out = forward(p, x: px, rows: rows, cache: cache)
      y.scalars.withMutablePointer { $0.update(from: out, count: rows * outFeatures) }
    }
    return y
  }

  /// Tensor form of backward after ``forward(_:_:cache:)``; returns dx `[M, in]`.
  public func backward(_ p: Parameters, x: Tensor, gradOutput dy: Tensor, cache: MLPCache) throws -> Tensor {
    try dy.require([cache.rows, outFeatures], "MLP gradOutput")
    try x.require([cache.rows, inFeatures], "MLP input")
    var dx = Tensor(shape: x.shape)
    x.scalars.withPointer { px in
      dy.scalars.withPointer { pdy in
        dx.scalars.withMutablePointer { backward(p, x: px, dy: pdy, cache: cache, dx: $0) }
      }
    }
    return dx
  }
}

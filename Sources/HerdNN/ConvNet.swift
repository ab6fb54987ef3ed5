import HerdMath

/// One layer of a convolutional stack as configured, before shapes are known.
public enum ConvLayerSpec: Sendable, Equatable, CustomStringConvertible {
  /// A convolution with a square kernel.
  case conv(outChannels: Int, kernel: Int, stride: Int, padding: Int)
  /// Max pooling with a square window.
  case maxPool(kernel: Int, stride: Int, padding: Int)
  /// IMPALA's residual block (Espeholt et al. 2018): `x + conv(act(conv(act(x))))`,
  /// both convolutions 3x3 with padding 1, keeping the channels.
  case residual
  /// The stack's activation.
  case activation

  public var description: String {
    switch self {
    case .conv(let c, let k, let s, let p): "conv \(k)x\(k) stride \(s) padding \(p) -> \(c) channels"
    case .maxPool(let k, let s, let p): "max-pool \(k)x\(k) stride \(s) padding \(p)"
    case .residual: "residual block"
    case .activation: "activation"
    }
  }
}

/// A configured stack whose shapes do not work out.
public struct ConvShapeError: Error, CustomStringConvertible, Equatable {
  public let description: String
  public init(_ description: String) { self.description = description }
}

/// IMPALA's residual block over a `C`-channel feature map: `y = x + conv1(act(conv0(act(x))))`.
public struct ResidualBlock: Sendable, Equatable {
  public let conv0: Conv2D
  public let conv1: Conv2D
  public var shape: ImageShape { conv0.input }
}

/// A convolutional stack over images stored channels last: convolutions, max
/// pools, residual blocks and activations in any order; its output is the last
/// feature map, which a caller flattens in its storage order (y, x, channel).
///
/// Parameters are named like an `nn.Sequential`: `name.i.weight` for the i-th
/// layer, `name.i.conv0.weight` and `name.i.conv1.weight` inside a residual block.
public struct ConvNet: Sendable, Equatable {
  /// One built layer.
  public enum Layer: Sendable, Equatable {
    case conv(Conv2D)
    case activation(ImageShape)
    case maxPool(MaxPool2D)
    case residual(ResidualBlock)

    /// The layer's output shape.
    public var output: ImageShape {
      switch self {
      case .conv(let c): c.output
      case .activation(let s): s
      case .maxPool(let m): m.output
      case .residual(let r): r.shape
      }
    }
  }

  public let input: ImageShape
  public let layers: [Layer]
  public let activation: Activation

  /// Builds the stack over `input`, declaring parameters in `layout`; a layer that
  /// does not fit its input throws, naming the layer and the shape it got.
  public init(
    _ name: String, input: ImageShape, specs: [ConvLayerSpec], activation: Activation,
    layout: inout ParameterLayout
  ) throws(ConvShapeError) {
    guard input.height > 0, input.width > 0, input.channels > 0 else {
      throw ConvShapeError("the image \(input) is empty")
    }
    self.input = input
    self.activation = activation
    var layers: [Layer] = []
    var shape = input
    for (i, spec) in specs.enumerated() {
      switch spec {
      case .conv(let oc, let k, let s, let pad):
        guard
          Conv2D.outputShape(input: shape, outChannels: oc, kernel: (k, k), stride: s, padding: pad) != nil
        else {
          throw ConvShapeError(
            "layer \(i) (\(spec)) does not fit its \(shape) input: channels, kernel and stride must be >= 1, padding >= 0, and the kernel at most the padded size"
          )
        }
        layers.append(
          .conv(
            Conv2D(
              "\(name).\(i)", input: shape, outChannels: oc, kernel: (k, k), stride: s, padding: pad,
              layout: &layout)))
      case .maxPool(let k, let s, let pad):
        guard MaxPool2D.outputShape(input: shape, kernel: k, stride: s, padding: pad) != nil else {
          throw ConvShapeError(
            "layer \(i) (\(spec)) does not fit its \(shape) input: kernel and stride must be >= 1, padding at most half the kernel, and the kernel at most the padded size"
          )
        }
        layers.append(.maxPool(MaxPool2D(input: shape, kernel: k, stride: s, padding: pad)))
      case .residual:
        let c0 = Conv2D(
          "\(name).\(i).conv0", input: shape, outChannels: shape.channels, kernel: (3, 3), stride: 1, padding: 1,
          layout: &layout)
        let c1 = Conv2D(
          "\(name).\(i).conv1", input: shape, outChannels: shape.channels, kernel: (3, 3), stride: 1, padding: 1,
          layout: &layout)
        layers.append(.residual(ResidualBlock(conv0: c0, conv1: c1)))
      case .activation:
        layers.append(.activation(shape))
      }
      shape = layers[layers.count - 1].output
    }
    self.layers = layers
  }

  /// The last feature map's shape.
  public var output: ImageShape { layers.last?.output ?? input }

  /// Multiply-adds of the convolutions per image.
  public var multiplyAddsPerImage: Int {
    layers.reduce(0) { sum, layer in
      switch layer {
      case .conv(let c): sum + c.multiplyAddsPerImage
      case .residual(let r): sum + r.conv0.multiplyAddsPerImage + r.conv1.multiplyAddsPerImage
      default: sum
      }
    }
  }

  /// Whether the stack can read uint8 images itself (``forward(_:bytes:scale:images:cache:)``):
  /// its first layer is a convolution, which widens and scales the bytes as it reads them.
  public var readsBytes: Bool {
    if case .conv = layers.first { return true }
    return false
  }

  /// Runs the stack over `n` images `x` `[n, H, W, C]`, keeping what backward needs
  /// in `cache`; returns the last feature map `[n, output]` (valid until the next
  /// forward with this cache; `x` itself for an empty stack).
  @discardableResult
  public func forward(
    _ p: Parameters, x: UnsafePointer<Float>, images n: Int, cache: ConvNetCache
  ) -> UnsafePointer<Float> {
    forward(p, source: .floats(x), images: n, cache: cache)
  }

  /// ``forward(_:x:images:cache:)`` over uint8 images, read by the first
  /// convolution as `Float(byte) * scale` (needs ``readsBytes``).
  @discardableResult
  public func forward(
    _ p: Parameters, bytes x: UnsafePointer<UInt8>, scale: Float, images n: Int, cache: ConvNetCache
  ) -> UnsafePointer<Float> {
    precondition(readsBytes, "ConvNet: bytes need a convolution first")
    return forward(p, source: .bytes(x, scale: scale), images: n, cache: cache)
  }

  /// The stack's input: floats, or bytes the first convolution scales.
  enum Source {
    case floats(UnsafePointer<Float>)
    case bytes(UnsafePointer<UInt8>, scale: Float)
  }

  func forward(_ p: Parameters, source: Source, images n: Int, cache: ConvNetCache) -> UnsafePointer<Float> {
    cache.prepare(layers.count)
    cache.images = n
    var current: UnsafePointer<Float>
    switch source {
    case .floats(let x): current = x
    case .bytes: current = UnsafePointer(bitPattern: 8).unsafelyUnwrapped  // layer 0 reads the bytes
    }
    for (i, layer) in layers.enumerated() {
      let count = n &* layer.output.count
      switch layer {
      case .conv(let conv):
        let y = cache.outputs[i].reserve(count)
        if i == 0, case .bytes(let bytes, let scale) = source {
          conv.forward(p, bytes: bytes, scale: scale, images: n, y: y, scratch: cache.scratch)
        } else {
          conv.forward(p, x: current, images: n, y: y, scratch: cache.scratch)
        }
        // Layer 0's input is the caller's, passed again to backward.
        cache.inputs[i] = current
        current = UnsafePointer(y)
      case .activation:
        // In place on the previous layer's output, which no backward reads (a
        // convolution's backward reads its input, a pool its argmax, a residual
        // block neither); into this layer's buffer after the caller's input or
        // another activation (whose backward reads its output).
        var ownBuffer = i == 0
        if i > 0, case .activation = layers[i - 1] { ownBuffer = true }
        let y = ownBuffer ? cache.outputs[i].reserve(count) : UnsafeMutablePointer(mutating: current)
        activation.apply(current, y, count: count)
        cache.inputs[i] = UnsafePointer(y)
        current = UnsafePointer(y)
      case .maxPool(let pool):
        let y = cache.outputs[i].reserve(count)
        cache.argmax[i].removeAll(keepingCapacity: true)
        cache.argmax[i].append(contentsOf: repeatElement(0, count: count))
        cache.argmax[i].withUnsafeMutableBufferPointer {
          pool.forward(x: current, images: n, y: y, argmax: $0.baseAddress.unsafelyUnwrapped)
        }
        cache.inputs[i] = current
        current = UnsafePointer(y)
      case .residual(let block):
        let a = cache.residualA[i].reserve(count)
        activation.apply(current, a, count: count)
        let u = cache.residualU[i].reserve(count)
        block.conv0.forward(p, x: a, images: n, y: u, scratch: cache.scratch)
        activation.apply(u, u, count: count)
        let y = cache.outputs[i].reserve(count)
        block.conv1.forward(p, x: u, images: n, y: y, scratch: cache.scratch)
        Conv2D.add(current, into: y, count: count)
        cache.inputs[i] = current
        current = UnsafePointer(y)
      }
    }
    return current
  }

  /// Backpropagates `dy` (`[n, output]`) through the last forward of `x`,
  /// accumulating parameter gradients; writes `dx` (`[n, input]`, overwritten) if asked.
  public func backward(
    _ p: Parameters, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, cache: ConvNetCache,
    dx: UnsafeMutablePointer<Float>?
  ) {
    backward(p, source: .floats(x), dy: dy, cache: cache, dx: dx)
  }

  /// ``backward(_:x:dy:cache:dx:)`` of a forward over uint8 images: the parameter
  /// gradients only (bytes have no gradient).
  public func backward(
    _ p: Parameters, bytes x: UnsafePointer<UInt8>, scale: Float, dy: UnsafePointer<Float>, cache: ConvNetCache
  ) {
    precondition(readsBytes, "ConvNet: bytes need a convolution first")
    backward(p, source: .bytes(x, scale: scale), dy: dy, cache: cache, dx: nil)
  }

  func backward(
    _ p: Parameters, source: Source, dy: UnsafePointer<Float>, cache: ConvNetCache, dx: UnsafeMutablePointer<Float>?
  ) {
    let n = cache.images
    guard !layers.isEmpty else {
      if let dx { dx.update(from: dy, count: n &* input.count) }
      return
    }
    // Gradients alternate between two buffers; the first layer writes `dx`.
    var grad = dy
    var which = 0
    var i = layers.count - 1
    while i >= 0 {
      let layer = layers[i]
      // A convolution whose input is an activation's output hands its input
      // gradient back through that activation's backward too (each image while it
      // is in cache), and this pass covers both layers.
      var through: Activation?
      if case .conv = layer, i > 0, case .activation = layers[i - 1] { through = activation }
      let first = through == nil ? i : i - 1
      let inCount = n &* (first == 0 ? input.count : layers[first - 1].output.count)
      let outCount = n &* layer.output.count
      let needInput = first > 0 || dx != nil
      let target: UnsafeMutablePointer<Float>? =
        first == 0 ? dx : (which == 0 ? cache.gradA : cache.gradB).reserve(inCount)
      switch layer {
      case .conv(let conv):
        switch source {
        case .bytes(let bytes, let scale) where i == 0:
          conv.backward(p, bytes: bytes, scale: scale, dy: grad, images: n, scratch: cache.scratchBackward)
        case .floats(let x) where i == 0:
          conv.backward(p, x: x, dy: grad, images: n, dx: needInput ? target : nil, scratch: cache.scratchBackward)
        default:
          conv.backward(
            p, x: cache.inputs[i], dy: grad, images: n, dx: needInput ? target : nil, scratch: cache.scratchBackward,
            through: through)
        }
      case .activation:
        if let target {
          activation.backward(output: cache.inputs[i], gradOutput: grad, gradInput: target, count: outCount)
        }
      case .maxPool(let pool):
        if let target {
          cache.argmax[i].withUnsafeBufferPointer {
            pool.backward(dy: grad, argmax: $0.baseAddress.unsafelyUnwrapped, images: n, dx: target)
          }
        }
      case .residual(let block):
        // Each convolution's input is the activation's output: both hand their
        // input gradients back through it.
        let dU = cache.residualGradU.reserve(outCount)
        block.conv1.backward(
          p, x: cache.residualU[i].pointer, dy: grad, images: n, dx: dU, scratch: cache.scratchBackward,
          through: activation)
        block.conv0.backward(
          p, x: cache.residualA[i].pointer, dy: dU, images: n, dx: target, scratch: cache.scratchBackward,
          through: activation)
        if let target { Conv2D.add(grad, into: target, count: outCount) }
      }
      guard let target else { return }
      grad = UnsafePointer(target)
      which ^= 1
      i = first - 1
    }
  }
}

/// What a ``ConvNet`` keeps between forward and backward, reused across batches.
public final class ConvNetCache {
  var outputs: [FloatBuffer] = []
  var inputs: [UnsafePointer<Float>] = []
  var argmax: [[Int32]] = []
  var residualA: [FloatBuffer] = []
  var residualU: [FloatBuffer] = []
  let residualGradU = FloatBuffer()
  let gradA = FloatBuffer()
  let gradB = FloatBuffer()
  let scratch = ConvScratch()
  let scratchBackward = ConvScratch()
  var images = 0

  /// An empty cache; buffers grow on first use.
  public init() {}

  func prepare(_ layerCount: Int) {
    guard outputs.count < layerCount else { return }
    let dummy = UnsafePointer<Float>(bitPattern: 8).unsafelyUnwrapped
    while outputs.count < layerCount {
      outputs.append(FloatBuffer())
      inputs.append(dummy)
      argmax.append([])
      residualA.append(FloatBuffer())
      residualU.append(FloatBuffer())
    }
  }
}

extension ConvNet {
  /// Tensor form of forward: `[n, H, W, C]` (or `[n, H*W*C]`) -> `[n, OH, OW, OC]`.
  public func forward(_ p: Parameters, _ x: Tensor, cache: ConvNetCache) throws -> Tensor {
    guard x.rank >= 2, x.count == x.shape[0] * input.count else {
      throw NNError.shapeMismatch(
        context: "ConvNet input", expected: [x.shape.first ?? 0, input.height, input.width, input.channels],
        actual: x.shape)
    }
    let n = x.shape[0]
    let out = output
    var y = Tensor(shape: [n, out.height, out.width, out.channels])
    x.scalars.withPointer { px in
      let r = forward(p, x: px, images: n, cache: cache)
      y.scalars.withMutablePointer { $0.update(from: r, count: n * out.count) }
    }
    return y
  }

  /// Tensor form of backward after ``forward(_:_:cache:)`` of `x`; returns dx `[n, H, W, C]`.
  public func backward(_ p: Parameters, x: Tensor, gradOutput dy: Tensor, cache: ConvNetCache) throws -> Tensor {
    let n = cache.images
    guard x.count == n * input.count else {
      throw NNError.shapeMismatch(
        context: "ConvNet input", expected: [n, input.height, input.width, input.channels], actual: x.shape)
    }
    guard dy.count == n * output.count else {
      throw NNError.shapeMismatch(
        context: "ConvNet gradOutput", expected: [n, output.height, output.width, output.channels], actual: dy.shape)
    }
    var dx = Tensor(shape: [n, input.height, input.width, input.channels])
    x.scalars.withPointer { px in
      dy.scalars.withPointer { pdy in
        dx.scalars.withMutablePointer { backward(p, x: px, dy: pdy, cache: cache, dx: $0) }
      }
    }
    return dx
  }
}

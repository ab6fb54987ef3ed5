/// Max pooling over images stored channels last (PyTorch's `nn.MaxPool2d` with a
/// square kernel, one stride and symmetric padding that never wins: it reads as
/// minus infinity).
///
/// Shapes: x `[n, H, W, C]` -> y `[n, OH, OW, C]`, `OH = (H + 2 pad - k) / stride + 1`.
/// Ties go to the first maximum in row-major window order, as PyTorch's CPU kernel.
public struct MaxPool2D: Sendable, Equatable {
  public let input: ImageShape
  public let output: ImageShape
  public let kernel: Int
  public let stride: Int
  public let padding: Int

  /// The output shape, or nil when the window does not fit or the padding is more
  /// than half the kernel (a window could then see padding only).
  public static func outputShape(input: ImageShape, kernel: Int, stride: Int, padding: Int) -> ImageShape? {
    guard kernel > 0, stride > 0, padding >= 0, 2 * padding <= kernel else { return nil }
    let h = input.height + 2 * padding - kernel
    let w = input.width + 2 * padding - kernel
    guard h >= 0, w >= 0 else { return nil }
    return ImageShape(height: h / stride + 1, width: w / stride + 1, channels: input.channels)
  }

  public init(input: ImageShape, kernel: Int, stride: Int, padding: Int) {
    guard let out = Self.outputShape(input: input, kernel: kernel, stride: stride, padding: padding) else {
      preconditionFailure("MaxPool2D: kernel \(kernel) stride \(stride) padding \(padding) does not fit \(input)")
    }
    self.input = input
    output = out
    self.kernel = kernel
    self.stride = stride
    self.padding = padding
  }

  /// `y = maxpool(x)` for `n` images; `argmax` `[n * output.count]` receives each
  /// output's input index within its image, for backward.
  public func forward(
    x: UnsafePointer<Float>, images n: Int, y: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>
  ) {
    let c = input.channels
    let lanes = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7)
    var o = 0
    for image in 0..<n {
      let base = image &* input.count
      for oy in 0..<output.height {
        let y0 = max(0, oy &* stride &- padding)
        let y1 = min(input.height, oy &* stride &- padding &+ kernel)
        for ox in 0..<output.width {
          let x0 = max(0, ox &* stride &- padding)
          let x1 = min(input.width, ox &* stride &- padding &+ kernel)
          let out = y + o
          let arg = argmax + o
          // The window's first pixel starts every channel's maximum.
          let first = (y0 &* input.width &+ x0) &* c
          var ch = 0
          // Eight channels at a time, the maximum and its index in registers across
          // the window (one scalar loop over every channel took 6% of impala_deep's
          // step); the channels past the last whole vector go through the scalar
          // loop below.
          while ch &+ 8 <= c {
            var best = UnsafeRawPointer(x + (base &+ first &+ ch)).loadUnaligned(as: SIMD8<Float>.self)
            var index = lanes &+ Int32(truncatingIfNeeded: first &+ ch)
            for iy in y0..<y1 {
              for ix in x0..<x1 {
                let at = (iy &* input.width &+ ix) &* c &+ ch
                if at == first &+ ch { continue }
                let v = UnsafeRawPointer(x + (base &+ at)).loadUnaligned(as: SIMD8<Float>.self)
                // NaN propagates, as in PyTorch.
                let take = (v .> best) .| (v .!= v)
                best.replace(with: v, where: take)
                index.replace(with: lanes &+ Int32(truncatingIfNeeded: at), where: take)
              }
            }
            UnsafeMutableRawPointer(out + ch).storeBytes(of: best, as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(arg + ch).storeBytes(of: index, as: SIMD8<Int32>.self)
            ch &+= 8
          }
          let tail = ch
          for ch in tail..<c {
            out[ch] = x[base &+ first &+ ch]
            arg[ch] = Int32(truncatingIfNeeded: first &+ ch)
          }
          if tail < c {
            for iy in y0..<y1 {
              for ix in x0..<x1 {
                let at = (iy &* input.width &+ ix) &* c
                if at == first { continue }
                for ch in tail..<c {
                  let v = x[base &+ at &+ ch]
                  if v > out[ch] || v.isNaN {
                    out[ch] = v
                    arg[ch] = Int32(truncatingIfNeeded: at &+ ch)
                  }
                }
              }
            }
          }
          o &+= c
        }
      }
    }
  }

  /// `dx` (overwritten, `[n, H, W, C]`) from `dy` and the forward's argmax.
  public func backward(
    dy: UnsafePointer<Float>, argmax: UnsafePointer<Int32>, images n: Int, dx: UnsafeMutablePointer<Float>
  ) {
    dx.update(repeating: 0, count: n &* input.count)
    var j = 0
    for image in 0..<n {
      let base = dx + image &* input.count
      for _ in 0..<output.count {
        base[Int(argmax[j])] += dy[j]
        j &+= 1
      }
    }
  }
}

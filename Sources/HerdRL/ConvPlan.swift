import HerdEnvs
import HerdNN

/// The convolutional encoder a config asks for over an observation space: the
/// image shape, the layers, the fully connected layers after the flattened
/// feature map and the input scale.
///
/// Images are a Box of rank 3, height x width x channels (channels last, as
/// Gymnasium's image spaces and RLlib's conv nets take them), or of rank 2, one
/// channel. uint8 images are scaled to [0, 1] before the first layer, unless the
/// `MeanStdFilter` normalises them.
public struct ConvPlan: Sendable, Equatable {
  /// What the stack reads.
  public let image: ImageShape
  /// The preset's name (`impala_shallow`, ...; `custom` for `conv_filters`).
  public let name: String
  /// The layers, input side first.
  public let layers: [ConvLayerSpec]
  /// Fully connected layers after the flattened last feature map.
  public let fcHiddens: [Int]
  /// After every convolution and fully connected layer.
  public let activation: Activation
  /// Multiplies the observation before the first layer (1/255 for uint8 images).
  public let inputScale: Float

  /// The image shape of `space`: a Box of rank 3 (H, W, C) or 2 (H, W; C = 1).
  public static func imageShape(_ space: Space) -> ImageShape? {
    guard case .box(let shape, _, _, _) = space, shape.allSatisfy({ $0 >= 1 }) else { return nil }
    switch shape.count {
    case 3: return ImageShape(height: shape[0], width: shape[1], channels: shape[2])
    case 2: return ImageShape(height: shape[0], width: shape[1], channels: 1)
    default: return nil
    }
  }

  /// The plan for `config` over observations `space`; nil for the MLP encoder
  /// alone. Throws a ``ConfigError`` when a preset is asked for over observations
  /// that are not an image, or a stack does not fit the image.
  public static func make(config: TrainingConfig, observation space: Space) throws -> ConvPlan? {
    var kind = config.conv_encoder
    let image = imageShape(space)
    let isBytes: Bool
    if case .box(_, let dtype, _, _) = space { isBytes = dtype == "uint8" } else { isBytes = false }
    if kind == .auto {
      if !config.conv_filters.isEmpty {
        kind = .custom
      } else if let image, isBytes, fits(.impala_shallow, image) {
        kind = .impala_shallow
      } else {
        kind = .none
      }
    }
    if kind == .none { return nil }
    guard let image else {
      throw ConfigError(
        "conv_encoder = \(kind.rawValue) needs image observations (a Box of shape [H, W, C] or [H, W]); \(config.env) observes \(space): use conv_encoder = none"
      )
    }
    let layers: [ConvLayerSpec]
    let fc: [Int]
    if let preset = preset(kind) {
      (layers, fc) = preset
    } else {
      guard !config.conv_filters.isEmpty else {
        throw ConfigError("conv_encoder = custom needs conv_filters, e.g. [[16, 8, 4], [32, 4, 2]]")
      }
      layers = config.conv_filters.flatMap { f -> [ConvLayerSpec] in
        [.conv(outChannels: f[0], kernel: f[1], stride: f[2], padding: f.count > 3 ? f[3] : 0), .activation]
      }
      fc = [256]
    }
    let plan = ConvPlan(
      image: image, name: kind.rawValue, layers: layers,
      fcHiddens: config.conv_fc_hiddens.isEmpty ? fc : config.conv_fc_hiddens, activation: config.conv_activation,
      inputScale: isBytes && config.observation_filter == .NoFilter ? 1 / 255 : 1)
    // Check the shapes now, so a bad stack is a config error, not a crash.
    var scratch = ParameterLayout()
    do {
      _ = try ConvNet("conv", input: image, specs: layers, activation: plan.activation, layout: &scratch)
    } catch {
      throw ConfigError("conv_encoder \(kind.rawValue) over \(image) images: \(error.description)")
    }
    return plan
  }

  /// Why `conv_encoder = auto` leaves the images of `space` to the fully connected
  /// encoder, when they are uint8 images too small for `impala_shallow` (MiniGrid's
  /// 7 x 7 views); nil otherwise.
  public static func autoNote(config: TrainingConfig, observation space: Space) -> String? {
    guard config.conv_encoder == .auto, config.conv_filters.isEmpty, let image = imageShape(space),
      case .box(_, "uint8", _, _) = space, !fits(.impala_shallow, image)
    else { return nil }
    return
      "conv_encoder auto: \(image) images are smaller than impala_shallow's 20 x 20, so the fully connected encoder reads them flat (conv_filters sets a stack of your own)"
  }

  /// Whether the preset's layers fit `image`.
  static func fits(_ kind: ConvEncoderKind, _ image: ImageShape) -> Bool {
    guard let (layers, _) = preset(kind) else { return false }
    var scratch = ParameterLayout()
    return (try? ConvNet("conv", input: image, specs: layers, activation: .relu, layout: &scratch)) != nil
  }

  /// A preset's layers and fully connected layers; nil for `custom`, `auto` and `none`.
  static func preset(_ kind: ConvEncoderKind) -> (layers: [ConvLayerSpec], fc: [Int])? {
    let layers: [ConvLayerSpec]
    let fc: [Int]
    switch kind {
    case .impala_shallow:
      layers = [
        .conv(outChannels: 16, kernel: 8, stride: 4, padding: 0), .activation,
        .conv(outChannels: 32, kernel: 4, stride: 2, padding: 0), .activation,
      ]
      fc = [256]
    case .impala_deep:
      var l: [ConvLayerSpec] = []
      for c in [16, 32, 32] {
        l += [
          .conv(outChannels: c, kernel: 3, stride: 1, padding: 1), .maxPool(kernel: 3, stride: 2, padding: 1),
          .residual, .residual,
        ]
      }
      layers = l + [.activation]
      fc = [256]
    case .nature:
      layers = [
        .conv(outChannels: 32, kernel: 8, stride: 4, padding: 0), .activation,
        .conv(outChannels: 64, kernel: 4, stride: 2, padding: 0), .activation,
        .conv(outChannels: 64, kernel: 3, stride: 1, padding: 0), .activation,
      ]
      fc = [512]
    case .custom, .auto, .none:
      return nil
    }
    return (layers, fc)
  }
}

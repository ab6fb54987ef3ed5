import HerdNN

/// A small ONNX model writer: the protobuf messages of `onnx.proto` that a one-step
/// policy graph needs (ModelProto, GraphProto, NodeProto, AttributeProto,
/// TensorProto, ValueInfoProto), encoded by hand.
///
/// Herd writes ONNX itself, so `herd export` needs neither Python nor PyTorch. The
/// field numbers are those of onnx.proto (IR version 8); onnxruntime and
/// `onnx.checker` read the result (tested in `make test` with onnxruntime).
struct ONNXModel {
  /// ONNX element types used here.
  enum ElementType: Int64 {
    case float = 1
    case int64 = 7
  }

  /// A graph input or output: a name, an element type and a shape whose dimensions
  /// are fixed sizes or named (dynamic) ones.
  struct Value {
    enum Dim {
      case fixed(Int)
      case named(String)
    }
    var name: String
    var type: ElementType
    var shape: [Dim]
  }

  /// A node attribute.
  enum Attribute {
    case int(String, Int64)
    case float(String, Float)
    case ints(String, [Int64])
  }

  struct Node {
    var op: String
    var inputs: [String]
    var outputs: [String]
    var name: String
    var attributes: [Attribute]
  }

  /// A constant tensor (an initializer).
  struct Constant {
    var name: String
    var type: ElementType
    var dims: [Int]
    /// Little-endian raw bytes.
    var raw: [UInt8]
  }

  var graphName: String
  var opset: Int64
  var irVersion: Int64 = 8
  var producerVersion: String
  var docString: String = ""
  var metadata: [(String, String)] = []
  var inputs: [Value] = []
  var outputs: [Value] = []
  var nodes: [Node] = []
  var constants: [Constant] = []
  private var counter = 0

  init(graphName: String, opset: Int64, producerVersion: String) {
    self.graphName = graphName
    self.opset = opset
    self.producerVersion = producerVersion
  }

  // MARK: Building

  /// Adds a node and returns its outputs' names: `outputs` given, or fresh names.
  @discardableResult
  mutating func node(_ op: String, _ inputs: [String], outputs: [String]? = nil, count: Int = 1, _ attributes: [Attribute] = []) -> [String] {
    counter += 1
    let outs = outputs ?? (0..<count).map { "\(op.lowercased())_\(counter)" + (count > 1 ? "_\($0)" : "") }
    nodes.append(Node(op: op, inputs: inputs, outputs: outs, name: "\(op)_\(counter)", attributes: attributes))
    return outs
  }

  /// A one-output node.
  mutating func op(_ op: String, _ inputs: String..., output: String? = nil, _ attributes: [Attribute] = []) -> String {
    node(op, inputs, outputs: output.map { [$0] }, attributes)[0]
  }

  /// A float constant named `name` (a weight, or a fresh name when nil).
  @discardableResult
  mutating func constant(_ name: String? = nil, floats: [Float], dims: [Int]) -> String {
    counter += 1
    let n = name ?? "const_\(counter)"
    var raw: [UInt8] = []
    raw.reserveCapacity(4 * floats.count)
    for v in floats { withUnsafeBytes(of: v.bitPattern.littleEndian) { raw += $0 } }
    constants.append(Constant(name: n, type: .float, dims: dims, raw: raw))
    return n
  }

  /// An int64 constant.
  mutating func constant(ints: [Int64], dims: [Int]) -> String {
    counter += 1
    let n = "const_\(counter)"
    var raw: [UInt8] = []
    for v in ints { withUnsafeBytes(of: v.littleEndian) { raw += $0 } }
    constants.append(Constant(name: n, type: .int64, dims: dims, raw: raw))
    return n
  }

  // MARK: Encoding (onnx.proto field numbers)

  func encoded() -> [UInt8] {
    var model = ProtoWriter()
    model.int(1, irVersion)  // ir_version
    model.string(2, "herd")  // producer_name
    model.string(3, producerVersion)  // producer_version
    if !docString.isEmpty { model.string(6, docString) }  // doc_string
    model.message(7) { g in  // graph
      for n in nodes { g.message(1) { Self.encode(n, into: &$0) } }  // node
      g.string(2, graphName)  // name
      for c in constants { g.message(5) { Self.encode(c, into: &$0) } }  // initializer
      for v in inputs { g.message(11) { Self.encode(v, into: &$0) } }  // input
      for v in outputs { g.message(12) { Self.encode(v, into: &$0) } }  // output
    }
    model.message(8) { o in  // opset_import: the default domain
      o.string(1, "")
      o.int(2, opset)
    }
    for (k, v) in metadata {
      model.message(14) { e in  // metadata_props (StringStringEntryProto)
        e.string(1, k)
        e.string(2, v)
      }
    }
    return model.bytes
  }

  private static func encode(_ n: Node, into w: inout ProtoWriter) {
    for i in n.inputs { w.string(1, i) }
    for o in n.outputs { w.string(2, o) }
    w.string(3, n.name)
    w.string(4, n.op)
    for a in n.attributes {
      w.message(5) { a2 in
        switch a {
        case .int(let name, let v):
          a2.string(1, name)
          a2.int(3, v)
          a2.int(20, 2)  // AttributeType INT
        case .float(let name, let v):
          a2.string(1, name)
          a2.float(2, v)
          a2.int(20, 1)  // FLOAT
        case .ints(let name, let vs):
          a2.string(1, name)
          for v in vs { a2.int(8, v) }
          a2.int(20, 7)  // INTS
        }
      }
    }
  }

  private static func encode(_ c: Constant, into w: inout ProtoWriter) {
    for d in c.dims { w.int(1, Int64(d)) }  // dims
    w.int(2, c.type.rawValue)  // data_type
    w.string(8, c.name)  // name
    w.bytes(9, c.raw)  // raw_data
  }

  private static func encode(_ v: Value, into w: inout ProtoWriter) {
    w.string(1, v.name)
    w.message(2) { t in  // type: TypeProto
      t.message(1) { tensor in  // tensor_type
        tensor.int(1, v.type.rawValue)  // elem_type
        tensor.message(2) { shape in  // shape: TensorShapeProto
          for d in v.shape {
            shape.message(1) { dim in
              switch d {
              case .fixed(let n): dim.int(1, Int64(n))  // dim_value
              case .named(let s): dim.string(2, s)  // dim_param
              }
            }
          }
        }
      }
    }
  }
}

import Foundation
import HerdRL
import Testing

@testable import HerdWire

/// Real ZeroMQ sockets on loopback (ephemeral ports).
@Suite(.serialized) struct SocketTests {
  @Test func pushPullCarriesFragmentBatches() throws {
    let ctx = try ZMQContext()
    let pull = try ZMQSocket(ctx, .pull)
    let endpoint = try pull.bind("tcp://127.0.0.1:*")
    #expect(endpoint.hasPrefix("tcp://127.0.0.1:") && !endpoint.hasSuffix(":*"))
    let push = try ZMQSocket(ctx, .push)
    try push.connect(endpoint)
    let bytes = try FragmentCodec.encodeBatch(
      [sampleFragment()], episodes: [], envSteps: 3, workerID: 3, runID: 77, spec: spec)
    try push.send([bytes])
    let got = try #require(try pull.receive(timeoutMs: 5000))
    #expect(got == [bytes])
    #expect(try FragmentCodec.decodeBatch(got[0], spec: spec).fragments == [sampleFragment()])
    #expect(try pull.receive(timeoutMs: 50) == nil, "timeout gives nil")
  }

  @Test func routerDealerRoundTripWithIdentities() throws {
    let ctx = try ZMQContext()
    let router = try ZMQSocket(ctx, .router)
    let endpoint = try router.bind("tcp://127.0.0.1:*")
    let dealer = try ZMQSocket(ctx, .dealer)
    try dealer.connect(endpoint)
    try dealer.send([try ControlCodec.encode(.hello(Hello(runID: 42, host: "worker-a", pid: 7, numEnvs: 8)))])
    let frames = try #require(try router.receive(timeoutMs: 5000))
    #expect(frames.count == 2, "identity + payload")
    guard case .hello(let h) = try ControlCodec.decode(frames[1]) else {
      Issue.record("not a hello")
      return
    }
    #expect(h.runID == 42 && h.host == "worker-a" && h.protocolVersion == protocolVersion)
    var r = Reject()
    r.reason = "test"
    try router.send([frames[0], try ControlCodec.encode(.reject(r))])
    let reply = try #require(try dealer.receive(timeoutMs: 5000))
    #expect(try ControlCodec.decode(reply[0]) == .reject(r))
  }

  @Test func pubSubDeliversWeightsToLateSubscribers() throws {
    let ctx = try ZMQContext()
    let pub = try ZMQSocket(ctx, .pub)
    let endpoint = try pub.bind("tcp://127.0.0.1:*")
    let sub = try ZMQSocket(ctx, .sub)
    try sub.subscribe()
    try sub.connect(endpoint)
    let bytes = try WeightsCodec.encode(version: 5, weights: [1, 2, 3, 4, 5, 6, 7])
    // PUB drops until the subscription arrives: publish until one gets through.
    var got: [[UInt8]]?
    for _ in 0..<100 where got == nil {
      try pub.send([bytes])
      got = try sub.receive(timeoutMs: 50)
    }
    let frames = try #require(got)
    #expect(try WeightsCodec.decode(frames[0], spec: spec).version == 5)
  }

  @Test func oversizedMessagesAreRefusedBySocketLimit() throws {
    let ctx = try ZMQContext()
    let pull = try ZMQSocket(ctx, .pull)
    try pull.setMaxMessageSize(1024)
    let endpoint = try pull.bind("tcp://127.0.0.1:*")
    let push = try ZMQSocket(ctx, .push)
    try push.connect(endpoint)
    try push.send([[UInt8](repeating: 1, count: 4096)])
    #expect(try pull.receive(timeoutMs: 300) == nil, "over ZMQ_MAXMSGSIZE: the peer is dropped, nothing delivered")
    // A new, well-behaved peer still gets through.
    let push2 = try ZMQSocket(ctx, .push)
    try push2.connect(endpoint)
    try push2.send([[1, 2, 3]])
    #expect(try pull.receive(timeoutMs: 5000) == [[1, 2, 3]])
  }

  @Test func bindErrorsAreTyped() throws {
    let ctx = try ZMQContext()
    let s = try ZMQSocket(ctx, .pull)
    #expect(throws: ZMQError.self) { try s.bind("tcp://no-such-interface-xyz:1") }
    s.close()
    #expect(throws: ZMQError.closed) { try s.bind("tcp://127.0.0.1:*") }
  }
}

/// The probe that tells a ZeroMQ port from another server by its first bytes.
@Suite struct ZMTPProbeTests {
  /// A TCP listener on loopback that accepts and then says nothing (an HTTP
  /// server waiting for its request); its port, and the descriptor to close.
  func silentListener() throws -> (port: Int, fd: Int32) {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let size = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, size) } }
    #expect(bound == 0 && listen(s, 4) == 0)
    var length = size
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &length) } }
    return (Int(UInt16(bigEndian: addr.sin_port)), s)
  }

  @Test func aZeroMQSocketOfAnyTypeIsToldFromAServerThatWaits() throws {
    let ctx = try ZMQContext()
    for type in [SocketType.pull, .pub, .router] {
      let socket = try ZMQSocket(ctx, type)
      let endpoint = try socket.bind("tcp://127.0.0.1:*")
      let port = try #require(Int(endpoint.split(separator: ":").last ?? ""))
      #expect(ZMTPProbe.speaksZeroMQ(host: "127.0.0.1", port: port) == true, "\(type) at \(endpoint)")
    }
    let (port, fd) = try silentListener()
    #expect(ZMTPProbe.speaksZeroMQ(host: "127.0.0.1", port: port, timeoutMs: 200) == false)
    close(fd)
    #expect(ZMTPProbe.speaksZeroMQ(host: "127.0.0.1", port: port) == nil, "nothing listens there now")
  }
}

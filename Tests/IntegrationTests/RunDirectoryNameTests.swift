import Testing

@testable import herd

/// The default run folder is one folder under runs/, whatever the environment's
/// name holds (a Gymnasium id's `/`, a prefix's `:`).
@Suite struct RunDirectoryNameTests {
  @Test func anEnvironmentsNameMakesOneFolder() {
    let pong = Train.defaultRunDirectory("gym:ALE/Pong-v5")
    #expect(pong.hasPrefix("runs/gym-ALE-Pong-v5-"), "\(pong)")
    #expect(!pong.dropFirst("runs/".count).contains("/"), "\(pong)")
    let game = Train.defaultRunDirectory("pz:classic/connect_four-v3")
    #expect(game.hasPrefix("runs/pz-classic-connect_four-v3-"), "\(game)")
    let builtIn = Train.defaultRunDirectory("StatelessCartPole-v1")
    #expect(builtIn.wholeMatch(of: /runs\/StatelessCartPole-v1-\d{8}-\d{6}/) != nil, "\(builtIn)")
  }
}

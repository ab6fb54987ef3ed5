// Herd as a library: a custom environment, trained from code, then played by its policy.
import Foundation
import HerdEnvs
import HerdLearner
import HerdMath
import HerdRL

/// A cue (+1 or -1) shows on the first step only; `delay` blank steps later the agent
/// must answer it (action 1 for +1, 0 for -1). Without memory it wins half the time.
struct Cue: Environment {
  let delay = 5
  var cue = 0, t = 0
  var rng = SeededGenerator(seed: 0)
  var observationSpace: Space { .box(low: [-1, 0], high: [1, 1]) }  // [cue, "answer now"]
  var actionSpace: Space { .discrete(2) }

  mutating func reset(seed: UInt64?, observation o: UnsafeMutablePointer<Float>) {
    if let seed { rng = SeededGenerator(seed: seed) }
    (cue, t) = (Int(rng.next() % 2), 0)
    (o[0], o[1]) = (cue == 1 ? 1 : -1, 0)
  }

  mutating func step(_ action: Int, observation o: UnsafeMutablePointer<Float>) -> StepOutcome {
    t += 1
    (o[0], o[1]) = (0, t == delay ? 1 : 0)
    return StepOutcome(reward: t <= delay ? 0 : action == cue ? 1 : -1, terminated: t > delay, truncated: false)
  }
}

BuildTarget.exitUnlessThisCPURunsIt()  // built for a newer CPU: say so, not SIGILL
try Environments.register(EnvironmentRegistration(id: "Cue-v0", summary: "answer a cue seen 5 steps ago") { _ in Cue() })
var config = TrainingConfig.defaults(for: "Cue-v0")
config.seed = 1
let folder = "/tmp/herd-example-cue"
try? FileManager.default.removeItem(atPath: folder)  // a new run each time: a folder with one needs settings.resume
var settings = LearnerSettings(runDirectory: folder, stop: StopCriteria(reward: 0.95, seconds: 120))
settings.inProcessWorkers = 1
let summary = try LearnerDaemon(config: config, settings: settings).run()
print("trained to \(summary.final_mean_return ?? .nan) in \(summary.env_steps) env steps, \(summary.wall_seconds) s")
let policy = try Policy(TrainedPolicy.load(settings.runDirectory + "/best.herd"))  // the weights that earned it
var env = Cue()
var wins = 0
for episode in 0..<100 {
  var (obs, state, action, reward, done) = (env.reset(seed: UInt64(episode)), policy.initialState(), Int32(0), Float(0), false)
  while !done {
    let out = policy.step(observations: obs, state: &state, prevActions: [action], prevRewards: [reward])
    action = policy.greedy(out.logits)[0]
    let (next, outcome) = env.step(Int(action))
    (obs, reward, done) = (next, outcome.reward, outcome.terminated || outcome.truncated)
  }
  wins += reward > 0 ? 1 : 0
}
print("greedy policy: \(wins)/100 cues answered")
guard wins >= 90 else { fatalError("the trained policy answered \(wins)/100 cues; memory should answer almost all") }

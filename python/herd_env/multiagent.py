"""PettingZoo environments: every agent a row of Herd's batch, one shared policy.

Herd's env id ``pz:ID`` names a PettingZoo environment:

- ``pz:classic/tictactoe-v3``: an id of PettingZoo's registry (``pettingzoo.make``,
  its parallel form when it has one, else the AEC one); ``pz:MODULE:ID`` imports
  ``MODULE`` first, so a package of your own registers its environments;
- ``pz:MODULE`` (``pz:pettingzoo.classic.tictactoe_v3``, PettingZoo's older form):
  ``MODULE.parallel_env(**env_config)`` when the module has one, else
  ``MODULE.env(**env_config)``; ``pz:MODULE:FUNCTION`` calls ``FUNCTION(**env_config)``.

Each game is one :class:`Game` that fills as many
consecutive rows as it has agents (``possible_agents``, in their order), so
``num_envs_per_worker`` counts agents and must be a multiple of them. Every agent
is played by the policy being trained, which is self-play in a game of
opponents; all agents must have the same observation and action spaces.

- A turn-based (AEC) game advances by one move of one agent per Herd step. The
  other agents' rows wait: their actions are ignored and their observations are
  what the game shows them (PettingZoo's classic games give a waiting player an
  ``action_mask`` of zeros, which Herd's ``action_mask_key`` reads: a row that
  may not act then learns nothing from the action it was made to draw).
- A parallel game steps every live agent at once.
- An agent that is done before the others waits too (reward 0, its last
  observation, its action ignored); every row of a game ends its episode when the
  game ends (the rows of agents still playing when it was cut short truncated,
  the others terminated), and the game is reset.
- A row's reward for a step is the sum of the agent's rewards over the moves
  made in it (``rewards`` after each of PettingZoo's steps). Episode info
  (``episode_info_keys``) is read from the agent's last ``infos`` entry.

``env_config`` may hold one key of Herd's own, taken out before the environment
is made: ``"herd_opponent": "random"`` plays every agent but one, chosen at
random for each game, with a random legal move (from its ``action_mask`` when the
observation has one); the game then fills one row. An evaluation against that
opponent (``evaluation_env_config``) measures a self-play policy's strength.
"""

import importlib
import re

import numpy as np

PREFIX = "pz:"
OPPONENTS = ("random",)


def is_pettingzoo(env_id):
    return env_id.startswith(PREFIX)


def _registered(name):
    """Whether ``name`` is written as a registry id (``classic/tictactoe-v3``), not a module."""
    return "/" in name or re.search(r"-v\d+$", name) is not None


def _from_registry(env_id, name):
    import pettingzoo

    for kind in ("parallel", "aec"):
        try:
            pettingzoo.spec(kind, name)
        except Exception:
            continue
        return lambda **kwargs: pettingzoo.make(kind, name, **kwargs)
    known = sorted(set(pettingzoo.aec_registry) | set(pettingzoo.parallel_registry))
    import difflib

    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean pz:{close[0]}?)" if close else ""
    raise ValueError(f"{env_id}: PettingZoo's registry has no {name!r}{hint}; it has {', '.join(known)}")


def factory(env_id):
    """The function that makes ``env_id``'s environment (the made object's kind,
    AEC or parallel, is read in :func:`make_game`)."""
    name = env_id[len(PREFIX):]
    if not name:
        raise ValueError(f"{env_id}: pz: needs an id, e.g. pz:classic/tictactoe-v3")
    if _registered(name) and ":" not in name:
        return _from_registry(env_id, name)
    module_name, _, function = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"{env_id}: cannot import {module_name!r}: {e}") from e
    if function and _registered(function):
        return _from_registry(env_id, function)
    if function:
        if not callable(getattr(module, function, None)):
            raise ValueError(f"{env_id}: {module_name!r} has no function {function!r}")
        return getattr(module, function)
    for attribute in ("parallel_env", "env"):
        if callable(getattr(module, attribute, None)):
            return getattr(module, attribute)
    raise ValueError(
        f"{env_id}: {module_name!r} has neither parallel_env() nor env() (a PettingZoo environment module has them; "
        f"pz:MODULE:FUNCTION names another function)"
    )


def split_config(env_id, config):
    """``(the environment's keyword arguments, Herd's opponent or None)``."""
    kwargs = dict(config or {})
    opponent = kwargs.pop("herd_opponent", None)
    if opponent is not None and opponent not in OPPONENTS:
        raise ValueError(f"{env_id}: herd_opponent {opponent!r} is not one of {', '.join(map(repr, OPPONENTS))}")
    return kwargs, opponent


def make_game(env_id, config=None, render_mode=None):
    """One :class:`Game` of ``env_id`` made with ``config``."""
    kwargs, opponent = split_config(env_id, config)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    env = factory(env_id)(**kwargs)
    from pettingzoo.utils.env import AECEnv, ParallelEnv

    if isinstance(env, ParallelEnv) or (hasattr(env, "agents") and not hasattr(env, "agent_selection")):
        return ParallelGame(env_id, env, opponent)
    if isinstance(env, AECEnv) or hasattr(env, "agent_selection"):
        return AECGame(env_id, env, opponent)
    raise ValueError(f"{env_id}: made a {type(env).__name__}, not a PettingZoo AEC or parallel environment")


def _same(spaces_by_agent, what, env_id):
    first_agent, first = next(iter(spaces_by_agent.items()))
    for agent, space in spaces_by_agent.items():
        if space != first:
            raise ValueError(
                f"{env_id}: agent {agent!r}'s {what} space {space} differs from {first_agent!r}'s {first}: "
                "Herd plays every agent with one policy, so they must be the same"
            )
    return first


class Game:
    """One PettingZoo game as ``rows`` rows: :meth:`reset` gives each row's
    observation, :meth:`step` takes each row's action (see the module)."""

    def __init__(self, env_id, env, opponent):
        self.env_id, self.env, self.opponent = env_id, env, opponent
        agents = list(env.possible_agents)
        if not agents:
            raise ValueError(f"{env_id}: the environment has no agents")
        self.agents = agents
        self.observation_space = _same({a: env.observation_space(a) for a in agents}, "observation", env_id)
        self.action_space = _same({a: env.action_space(a) for a in agents}, "action", env_id)
        self.rows = 1 if opponent else len(agents)
        self.rng = np.random.default_rng(0)
        self.played = agents[: self.rows]  # the agents the rows play, in row order

    def _pick_seats(self, seed):
        if seed is not None:  # a game reset after an episode goes on with its generator
            self.rng = np.random.default_rng(seed)
        if self.opponent:
            self.played = [self.agents[int(self.rng.integers(len(self.agents)))]]

    def _random_action(self, agent, observation):
        mask = observation.get("action_mask") if isinstance(observation, dict) else None
        if mask is not None:
            legal = np.flatnonzero(np.asarray(mask).reshape(-1) > 0.5)
            if len(legal):
                return int(self.rng.choice(legal))
        space = self.env.action_space(agent)
        space.seed(int(self.rng.integers(2**31)))
        return space.sample()

    def over(self):
        return all(self.done.values()) or not self.env.agents

    def _result(self):
        """``(observations, rewards, over, terminated, infos)``, one entry per row;
        agents cut short by a game that ended count as truncated."""
        over = self.over()
        if over:
            for a in self.played:
                if not self.done[a]:
                    self.terminated[a] = False
        return (
            [self._observation(a) for a in self.played],
            [self.rewards[a] for a in self.played],
            over,
            [self.terminated[a] for a in self.played],
            [self.infos[a] for a in self.played],
        )

    def close(self):
        self.env.close()


class AECGame(Game):
    """A turn-based game: one move per Herd step, by the agent whose turn it is."""

    def reset(self, seed=None):
        self._pick_seats(seed)
        self.env.reset(seed=seed)
        self.last = {a: self.env.observe(a) for a in self.played}
        self.done = {a: False for a in self.played}
        self.terminated = {a: False for a in self.played}
        self.infos = {a: {} for a in self.played}
        self.rewards = {a: 0.0 for a in self.played}
        self._advance()
        return [self._observation(a) for a in self.played]

    def _observation(self, agent):
        if agent in self.env.agents:
            self.last[agent] = self.env.observe(agent)
        return self.last[agent]

    def _collect(self):
        env = self.env
        for a in self.played:
            if self.done[a]:
                continue
            self.rewards[a] += float(env.rewards.get(a, 0.0))
            if a in env.infos:
                self.infos[a] = env.infos[a]
            if env.terminations.get(a, False) or env.truncations.get(a, False):
                self.done[a] = True
                self.terminated[a] = bool(env.terminations.get(a, False))
                self.last[a] = env.observe(a)

    def _advance(self):
        """Plays the moves that are not the rows' (the opponents', and the steps
        PettingZoo asks of agents that are done) until a row's agent is to move or
        the game is over."""
        env = self.env
        while not self.over():
            agent = env.agent_selection
            if env.terminations.get(agent, False) or env.truncations.get(agent, False):
                env.step(None)
            elif agent in self.played:
                return
            else:
                env.step(self._random_action(agent, env.observe(agent)))
            self._collect()

    def step(self, actions):
        """``(observations, rewards, over, terminated, infos)``, one entry per row."""
        for a in self.played:
            self.rewards[a] = 0.0
        agent = self.env.agent_selection
        self.env.step(actions[self.played.index(agent)])
        self._collect()
        self._advance()
        return self._result()


class ParallelGame(Game):
    """A game whose live agents all act at every step."""

    def reset(self, seed=None):
        self._pick_seats(seed)
        observations, infos = self.env.reset(seed=seed)
        missing = [a for a in self.played if a not in observations]
        if missing:
            raise ValueError(
                f"{self.env_id}: agents {missing} have no observation after reset: Herd gives each of "
                "possible_agents a row from the start of every game"
            )
        self.last = dict(observations)
        self.done = {a: False for a in self.played}
        self.terminated = {a: False for a in self.played}
        self.infos = {a: infos.get(a, {}) for a in self.played}
        self.rewards = {a: 0.0 for a in self.played}
        return [self.last[a] for a in self.played]

    def _observation(self, agent):
        return self.last[agent]

    def step(self, actions):
        actions_by_agent = {}
        for a in self.env.agents:
            if a in self.played:
                actions_by_agent[a] = actions[self.played.index(a)]
            else:
                actions_by_agent[a] = self._random_action(a, self.last.get(a))
        observations, rewards, terminations, truncations, infos = self.env.step(actions_by_agent)
        for a in self.played:
            self.rewards[a] = 0.0
            if self.done[a]:
                continue
            self.rewards[a] = float(rewards.get(a, 0.0))
            if a in observations:
                self.last[a] = observations[a]
            if a in infos:
                self.infos[a] = infos[a]
            if terminations.get(a, False) or truncations.get(a, False):
                self.done[a] = True
                self.terminated[a] = bool(terminations.get(a, False))
        for a, o in observations.items():
            if a not in self.played:
                self.last[a] = o
        return self._result()

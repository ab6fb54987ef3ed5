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
opponents, and parameter sharing in a team.

Agents whose spaces differ (MPE's adversaries and good agents, a speaker and a
listener) are made to look alike, as parameter sharing across kinds of agents
does it (Terry et al., 2020: "Revisiting parameter sharing in multi-agent deep
RL"): each observation, a Box, is flattened and padded with zeros to the
largest, and a one-hot of the agent's role (its name without a trailing
``_N``: ``adversary_0`` plays ``adversary``) follows it, so the one policy knows
whom it plays. Discrete actions of different sizes become the largest, with an
``action_mask`` that allows each agent its own (the observation is then a Dict of
``observation`` and ``action_mask``); Box actions must match. :class:`Padding`
does it; other differences are refused by name.

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


def _same(spaces_by_agent):
    first = next(iter(spaces_by_agent.values()))
    return all(space == first for space in spaces_by_agent.values())


def role(agent):
    """An agent's role: its name without a trailing ``_N`` (``adversary_0``: ``adversary``)."""
    return re.sub(r"_\d+$", "", str(agent))


class Padding:
    """One observation and action space for agents whose spaces differ (see the
    module): observations flattened, padded with zeros to the largest and followed
    by a one-hot of the agent's role; Discrete actions of the largest size with an
    ``action_mask`` allowing each agent its own."""

    def __init__(self, env_id, agents, observation_spaces, action_spaces):
        from gymnasium import spaces

        def refuse(agent, what, space, why):
            raise ValueError(
                f"{env_id}: the agents' {what} spaces differ and agent {agent!r}'s is {space}: {why}. Herd plays "
                "every agent with one policy; it pads Box observations and Discrete actions of different sizes "
                "(wrap the game in a function of your own module, pz:MODULE:FUNCTION, to make the rest alike)"
            )

        for agent, space in observation_spaces.items():
            if not isinstance(space, spaces.Box):
                refuse(agent, "observation", space, "only Box observations are padded")
        key = role
        self.roles = list(dict.fromkeys(role(a) for a in agents))
        if len(self.roles) == 1:  # one role name, different spaces: tell the agents apart
            key = str
            self.roles = [str(a) for a in agents]
        self.role_of = {a: self.roles.index(key(a)) for a in agents}
        self.sizes = {a: int(np.prod(s.shape)) for a, s in observation_spaces.items()}
        self.size = max(self.sizes.values())
        width = self.size + len(self.roles)
        low = np.zeros(width, np.float32)
        high = np.zeros(width, np.float32)
        high[self.size:] = 1
        for a, s in observation_spaces.items():
            n = self.sizes[a]
            low[:n] = np.minimum(low[:n], np.asarray(s.low, np.float32).reshape(-1))
            high[:n] = np.maximum(high[:n], np.asarray(s.high, np.float32).reshape(-1))
        body = spaces.Box(low, high, (width,), np.float32)
        first_agent, first = next(iter(action_spaces.items()))
        self.actions = None  # each agent's action count when they differ
        if _same(action_spaces):
            self.action_space = first
        elif all(isinstance(s, spaces.Discrete) for s in action_spaces.values()):
            for agent, space in action_spaces.items():
                if int(space.start) != 0:
                    refuse(agent, "action", space, "a Discrete action space is padded only when it starts at 0")
            self.actions = {a: int(s.n) for a, s in action_spaces.items()}
            self.action_space = spaces.Discrete(max(self.actions.values()))
        else:
            agent = next(a for a, s in action_spaces.items() if s != first)
            refuse(agent, "action", action_spaces[agent],
                   f"{first_agent!r}'s is {first}; only Discrete action spaces of different sizes are padded")
        if self.actions is None:
            self.observation_space = body
        else:
            n = self.action_space.n
            self.observation_space = spaces.Dict(
                {"observation": body, "action_mask": spaces.Box(0, 1, (n,), np.int8)})
            self.masks = {a: (np.arange(n) < k).astype(np.int8) for a, k in self.actions.items()}

    def describe(self):
        """What was made alike, in words, for the worker's log."""
        sizes = ", ".join(f"{a} {n}" for a, n in self.sizes.items())
        text = (f"the agents' spaces differ: observations ({sizes}) padded with zeros to {self.size} and followed "
                f"by a one-hot of the role ({', '.join(self.roles)})")
        if self.actions is not None:
            counts = ", ".join(f"{a} {n}" for a, n in self.actions.items())
            text += f"; actions Discrete({self.action_space.n}), masked to each agent's own ({counts})"
        return text

    def observation(self, agent, observation):
        out = np.zeros(self.size + len(self.roles), np.float32)
        flat = np.asarray(observation, np.float32).reshape(-1)
        out[:flat.size] = flat
        out[self.size + self.role_of[agent]] = 1
        if self.actions is None:
            return out
        return {"observation": out, "action_mask": self.masks[agent]}

    def action(self, agent, action):
        """The agent's own action: an index past its Discrete space (a row that
        waits draws from all of them) becomes 0."""
        if self.actions is None:
            return action
        a = int(np.asarray(action).reshape(-1)[0])
        return a if a < self.actions[agent] else 0


class Game:
    """One PettingZoo game as ``rows`` rows: :meth:`reset` gives each row's
    observation, :meth:`step` takes each row's action (see the module)."""

    def __init__(self, env_id, env, opponent):
        self.env_id, self.env, self.opponent = env_id, env, opponent
        agents = list(env.possible_agents)
        if not agents:
            raise ValueError(f"{env_id}: the environment has no agents")
        self.agents = agents
        observation_spaces = {a: env.observation_space(a) for a in agents}
        action_spaces = {a: env.action_space(a) for a in agents}
        self.padding = None
        if _same(observation_spaces) and _same(action_spaces):
            self.observation_space = observation_spaces[agents[0]]
            self.action_space = action_spaces[agents[0]]
        else:
            self.padding = Padding(env_id, agents, observation_spaces, action_spaces)
            self.observation_space = self.padding.observation_space
            self.action_space = self.padding.action_space
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

    def _shown(self, agent):
        """The observation a row of ``agent`` sees (padded when the agents' spaces differ)."""
        observation = self._observation(agent)
        return self.padding.observation(agent, observation) if self.padding else observation

    def _own(self, agent, action):
        """A row's action as ``agent``'s own space takes it."""
        return self.padding.action(agent, action) if self.padding else action

    def _result(self):
        """``(observations, rewards, over, terminated, infos)``, one entry per row;
        agents cut short by a game that ended count as truncated."""
        over = self.over()
        if over:
            for a in self.played:
                if not self.done[a]:
                    self.terminated[a] = False
        return (
            [self._shown(a) for a in self.played],
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
        return [self._shown(a) for a in self.played]

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
        self.env.step(self._own(agent, actions[self.played.index(agent)]))
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
        return [self._shown(a) for a in self.played]

    def _observation(self, agent):
        return self.last[agent]

    def step(self, actions):
        actions_by_agent = {}
        for a in self.env.agents:
            if a in self.played:
                actions_by_agent[a] = self._own(a, actions[self.played.index(a)])
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

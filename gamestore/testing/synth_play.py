"""The synthetic RingRift game player behind :mod:`gamestore.testing.synth`: board specs and turns.

:class:`Game` plays one game turn by turn through RingRift's phases (the
move skeleton: types, positions, players, legal-move lists); the record and
its numeric data are built by :mod:`gamestore.testing.synth`.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np

from ..ringrift.profile import BOARD_TYPES

__all__ = [
    "MOVE_TYPES", "BOOKKEEPING_MOVE_TYPES", "PHASES", "BoardSpec", "BOARDS", "Game", "game_seed", "iso",
    "initial_state",
]

#: RingRift's MoveType values (ai-service ``app/models``: canonical, legacy
#: aliases and experimental ones); the generator emits the canonical ones.
MOVE_TYPES: tuple[str, ...] = (
    "place_ring", "skip_placement", "no_placement_action",
    "move_stack", "move_ring", "build_stack", "no_movement_action",
    "overtaking_capture", "continue_capture_segment", "skip_capture",
    "swap_sides",
    "process_line", "choose_line_reward", "no_line_action",
    "process_territory_region", "skip_territory_processing", "no_territory_action",
    "eliminate_rings_from_stack",
    "line_formation", "territory_claim", "chain_capture",
    "forced_elimination", "choose_line_option", "choose_territory_option",
    "recovery_slide", "skip_recovery",
)

#: Forced no-op moves: recorded without policy or search statistics.
BOOKKEEPING_MOVE_TYPES = frozenset(
    {"no_placement_action", "no_movement_action", "no_line_action", "no_territory_action"}
)

PHASES: tuple[str, ...] = (
    "ring_placement", "movement", "capture", "chain_capture",
    "line_processing", "territory_processing", "forced_elimination",
)



@dataclass(frozen=True)
class BoardSpec:
    """Geometry and pacing of one RingRift board type."""

    name: str
    hex: bool
    size: int  # RingRift ``board.size``: side (square) or 2 * radius + 1 (hex)
    rings_per_player: int
    length: tuple[int, int]  # min, max moves of a game
    think_ms: float  # median think time of a searched move
    simulations: int  # MCTS simulations per searched move

    @property
    def radius(self) -> int:
        return (self.size - 1) // 2

    @property
    def game_interval(self) -> timedelta:
        """Time between the creations of consecutive games of a run (game ``i`` starts in slot ``i``)."""
        return timedelta(milliseconds=int(self.length[1] * self.think_ms * 1.2))


BOARDS: dict[str, BoardSpec] = {
    "square8": BoardSpec("square8", False, 8, 18, (100, 250), 120.0, 800),
    "hex8": BoardSpec("hex8", True, 9, 18, (130, 280), 110.0, 800),
    "square19": BoardSpec("square19", False, 19, 72, (400, 650), 450.0, 1600),
    "hexagonal": BoardSpec("hexagonal", True, 25, 96, (1000, 1400), 500.0, 1600),
}
assert set(BOARDS) == set(BOARD_TYPES)

# Longest turn the generator emits: placement, movement, capture, 3 chain
# segments, 2 line moves, 2 territory moves, forced elimination.
_MAX_TURN_MOVES = 11


# ---------------------------------------------------------------------------
# Per-board pools: cells, rays and every move key, built once per process.
# ---------------------------------------------------------------------------
class _Pool:
    """Cells, rays and RingRift move-key strings of one board."""

    def __init__(self, spec: BoardSpec) -> None:
        coords: list[tuple[int, int, int | None]]
        dirs: list[tuple[int, int, int | None]]
        if spec.hex:
            r = spec.radius
            coords = [(x, y, -x - y) for x in range(-r, r + 1) for y in range(-r, r + 1) if abs(-x - y) <= r]
            dirs = [(1, -1, 0), (1, 0, -1), (0, 1, -1), (-1, 1, 0), (-1, 0, 1), (0, -1, 1)]
        else:
            n = spec.size
            coords = [(x, y, None) for x in range(n) for y in range(n)]
            dirs = [(dx, dy, None) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy]
        index = {c: i for i, c in enumerate(coords)}
        self.coords = coords
        self.ncells = len(coords)
        # build_move_key uses x,y only; state keys (Position.to_key) add z on hex boards
        self.label = [f"{x},{y}" for x, y, _ in coords]
        self.state_key = [f"{x},{y}" if z is None else f"{x},{y},{z}" for x, y, z in coords]
        self.rays: list[list[list[int]]] = []
        for x, y, z in coords:
            cell_rays = []
            for dx, dy, dz in dirs:
                ray = []
                k = 1
                while True:
                    c = (x + k * dx, y + k * dy, None if z is None or dz is None else z + k * dz)
                    if c not in index:
                        break
                    ray.append(index[c])
                    k += 1
                if ray:
                    cell_rays.append(ray)
            self.rays.append(cell_rays)
        lab = self.label
        self.targets = [[t for ray in rays for t in ray] for rays in self.rays]
        self.target_pos = [{t: i for i, t in enumerate(ts)} for ts in self.targets]
        self.neighbours = [[ray[0] for ray in rays] for rays in self.rays]

        def along(prefix: str) -> list[list[str]]:
            return [[f"{prefix}_{lab[c]}_{lab[t]}" for t in ts] for c, ts in enumerate(self.targets)]

        def at(prefix: str) -> list[str]:
            return [f"{prefix}_{lab[c]}" for c in range(self.ncells)]

        self.move_keys = along("move_stack")
        self.capture_keys = along("overtaking_capture")
        self.continue_keys = along("continue_capture_segment")
        self.recovery_keys = [
            [f"recovery_slide_{lab[c]}_{lab[t]}" for t in nb] for c, nb in enumerate(self.neighbours)
        ]
        self.place_keys = at("place_ring")
        self.skip_place_keys = at("skip_placement")
        self.elim_keys = at("eliminate_rings_from_stack")
        self.forced_keys = at("forced_elimination")
        self.line_keys = at("choose_line_option")
        self.process_line_keys = at("process_line")
        self.territory_keys = at("choose_territory_option")

    def position(self, cell: int) -> dict:
        x, y, z = self.coords[cell]
        return {"x": x, "y": y, "z": z}


@lru_cache(maxsize=None)
def _pool(board_type: str) -> _Pool:
    return _Pool(BOARDS[board_type])


_BOARD_CODES = {"square8": 0, "square19": 1, "hex8": 2, "hexagonal": 3}


def game_seed(board_type: str, num_players: int, seed: int, i: int) -> int:
    h = hashlib.blake2b(f"{board_type}/{num_players}/{seed}/{i}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little") & ((1 << 63) - 1)


def _window(pool_len: int, chosen: int, n: int, rnd: random.Random) -> int:
    """Start of a length-``n`` window of ``range(pool_len)`` that contains ``chosen``."""
    lo = max(0, chosen - n + 1)
    hi = min(chosen, pool_len - n)
    return lo if hi <= lo else lo + int(rnd.random() * (hi - lo + 1))


# ---------------------------------------------------------------------------
# One game
# ---------------------------------------------------------------------------
class Game:
    """Plays one synthetic game: a turn skeleton first, numeric data in bulk after."""

    def __init__(self, spec: BoardSpec, num_players: int, game_seed: int, snapshot_every: int | None) -> None:
        self.spec = spec
        self.pool = _pool(spec.name)
        self.np_ = num_players
        self.rnd = random.Random(game_seed)
        self.rng = np.random.default_rng(game_seed)
        self.snapshot_every = snapshot_every
        self.moves: list[dict] = []
        self.searched: list[tuple[dict, list[str], int]] = []  # (move, legal keys, index of played key)
        self.snapshots: list[dict] = []
        self.stacks: dict[int, list[int]] = {}
        self.markers: dict[int, int] = {}
        self.collapsed: dict[int, int] = {}
        players = range(1, num_players + 1)
        self.hand = {p: spec.rings_per_player for p in players}
        self.eliminated = {p: 0 for p in players}  # rings each player has eliminated
        self.lost = {p: 0 for p in players}  # rings of each player eliminated
        self.territory = {p: 0 for p in players}
        self.turn = 0
        self.player = 1

    # -- emitting moves ----------------------------------------------------
    def _emit(self, phase: str, move_type: str, move_id: str | None, **fields: Any) -> dict:
        number = len(self.moves)
        m = {
            "move_number": number,
            "turn_number": self.turn,
            "player": self.player,
            "phase": phase,
            "move_type": move_type,
            "move_id": move_id if move_id is not None else "simulated",
        }
        for k, v in fields.items():
            m[k] = v
        self.moves.append(m)
        if self.snapshot_every and (number + 1) % self.snapshot_every == 0:
            self.snapshots.append({"move_number": number + 1, "state": self._state(phase), "state_hash": ""})
        return m

    def _bookkeeping(self, phase: str, move_type: str) -> None:
        n = len(self.moves) + 1
        self._emit(phase, move_type, f"{move_type.replace('_', '-')}-{n}", to={"x": 0, "y": 0, "z": None})

    def _searched(self, phase: str, move_type: str, move_id: str | None, legal: list[str], played: int,
                  **fields: Any) -> dict:
        m = self._emit(phase, move_type, move_id, **fields)
        self.searched.append((m, legal, played))
        return m

    # -- board helpers -------------------------------------------------------
    def _own_stacks(self, p: int) -> list[int]:
        return [c for c, rings in self.stacks.items() if rings[-1] == p]

    def _free(self, cell: int) -> bool:
        return cell not in self.stacks and cell not in self.collapsed

    def _cube(self, cell: int) -> str:
        return self.pool.state_key[cell]

    # -- phases ----------------------------------------------------------------
    def _placement(self) -> int | None:
        rnd, pool, p = self.rnd, self.pool, self.player
        if self.hand[p] <= 0:
            # out of rings: the placement phase is recorded as a no-op, or skipped outright
            if rnd.random() < 0.3:
                self._bookkeeping("ring_placement", "no_placement_action")
            return None
        free = pool.ncells - len(self.collapsed)
        n = max(1, min(pool.ncells, int(free * (0.55 + 0.45 * rnd.random()))))
        cell = int(rnd.random() * pool.ncells)
        for _ in range(8):
            if cell not in self.collapsed and len(self.stacks.get(cell, ())) < 5:
                break
            cell = int(rnd.random() * pool.ncells)
        start = _window(pool.ncells, cell, n, rnd)
        legal = pool.place_keys[start:start + n]
        if cell in self.stacks and self.stacks[cell][-1] != p and rnd.random() < 0.5:
            # occasionally decline to place (the stack to move already exists)
            own = self._own_stacks(p)
            if own:
                keys = [pool.skip_place_keys[cell]] + legal
                self._searched("ring_placement", "skip_placement", None, keys, 0, to=pool.position(cell))
                return None
        on_stack = cell in self.stacks
        count = 1 if on_stack else min(self.hand[p], (1, 1, 1, 1, 2, 2, 2, 3, 3, 3)[int(rnd.random() * 10)])
        self._searched(
            "ring_placement", "place_ring", None, legal, cell - start,
            to=pool.position(cell), placement_count=count, placedOnStack=on_stack,
        )
        self.hand[p] -= count
        self.stacks.setdefault(cell, []).extend([p] * count)
        return cell

    def _movement(self, placed: int | None) -> int | None:
        rnd, pool, p = self.rnd, self.pool, self.player
        if placed is not None:
            origin = placed
        else:
            own = self._own_stacks(p)
            if not own:
                mine = [c for c, q in self.markers.items() if q == p]
                if mine and rnd.random() < 0.6:
                    self._recovery(rnd.choice(mine))
                    return None
                self._bookkeeping("movement", "no_movement_action")
                return None
            origin = own[int(rnd.random() * len(own))]
        rays = pool.rays[origin]
        if rnd.random() < 0.12:
            cap = self._find_capture(origin)
            if cap is not None:
                self._capture("movement", "overtaking_capture", origin, *cap)
                return cap[1]
        dest = None
        for _ in range(6):
            ray = rays[int(rnd.random() * len(rays))]
            cand = ray[int(rnd.random() * len(ray))]
            if self._free(cand):
                dest = cand
                break
        if dest is None:
            self._bookkeeping("movement", "no_movement_action")
            return None
        keys = pool.move_keys[origin]
        n = max(1, int(len(keys) * (0.35 + 0.65 * rnd.random())))
        start = _window(len(keys), pool.target_pos[origin][dest], n, rnd)
        legal = keys[start:start + n]
        played = pool.target_pos[origin][dest] - start
        if rnd.random() < 0.3:
            caps = pool.capture_keys[origin]
            j = rnd.randrange(len(caps))
            legal = legal + caps[j:j + rnd.randint(1, 4)]
        self._searched("movement", "move_stack", None, legal, played,
                       **{"from": pool.position(origin)}, to=pool.position(dest))
        self.markers[origin] = p
        self.stacks[dest] = self.stacks.pop(origin)
        self.markers.pop(dest, None)
        return dest

    def _find_capture(self, origin: int) -> tuple[int, int] | None:
        """A (target, landing) pair along a ray from ``origin``, if any."""
        rays = self.pool.rays[origin]
        first = int(self.rnd.random() * len(rays))
        for k in range(len(rays)):
            ray = rays[(first + k) % len(rays)]
            for d, c in enumerate(ray):
                if c in self.collapsed:
                    break
                if c in self.stacks:
                    if d + 1 < len(ray) and self._free(ray[d + 1]) and self.stacks[c][-1] != self.player:
                        return c, ray[d + 1]
                    break
        return None

    def _capture(self, phase: str, move_type: str, origin: int, target: int, landing: int) -> None:
        pool, rnd = self.pool, self.rnd
        keys = pool.capture_keys[origin] if move_type == "overtaking_capture" else pool.continue_keys[origin]
        pos = pool.target_pos[origin][landing]
        n = min(len(keys), rnd.randint(1, 6))
        start = _window(len(keys), pos, n, rnd)
        legal = keys[start:start + n]
        played = pos - start
        if phase == "capture":
            legal = ["skip_capture_0,0"] + legal
            played += 1
        mid = f"capture-{self._cube(origin)}-{self._cube(target)}-{self._cube(landing)}-{len(self.moves) + 1}"
        self._searched(phase, move_type, mid, legal, played,
                       **{"from": pool.position(origin)}, to=pool.position(landing),
                       capture_target=pool.position(target))
        taken = self.stacks[target].pop()
        if not self.stacks[target]:
            del self.stacks[target]
        stack = self.stacks.pop(origin)
        stack.insert(0, taken)
        self.stacks[landing] = stack
        self.markers[origin] = self.player

    def _capture_phase(self, at: int) -> None:
        rnd = self.rnd
        if rnd.random() > 0.45:
            return
        cap = self._find_capture(at)
        if cap is None:
            return
        if rnd.random() < 0.45:
            pool = self.pool
            caps = pool.capture_keys[at]
            j = rnd.randrange(len(caps))
            legal = ["skip_capture_0,0"] + caps[j:j + rnd.randint(1, 5)]
            self._searched("capture", "skip_capture", f"skip-capture-{len(self.moves) + 1}", legal, 0,
                           to={"x": 0, "y": 0, "z": None})
            return
        self._capture("capture", "overtaking_capture", at, *cap)
        at = cap[1]
        for _ in range(3):
            if rnd.random() > 0.45:
                break
            cap = self._find_capture(at)
            if cap is None:
                break
            self._capture("chain_capture", "continue_capture_segment", at, *cap)
            at = cap[1]

    def _eliminate(self, phase: str, context: str) -> None:
        pool, rnd, p = self.pool, self.rnd, self.player
        own = self._own_stacks(p)
        if not own:
            return
        cell = rnd.choice(own)
        others = [c for c in own[:8] if c != cell]
        legal = [pool.elim_keys[cell]] + [pool.elim_keys[c] for c in others]
        stack = self.stacks[cell]
        count = 1 if context == "line" else sum(1 for _ in _cap(stack))
        for _ in range(count):
            self.lost[stack.pop()] += 1
        if not stack:
            del self.stacks[cell]
        self.eliminated[p] += count
        self._searched(phase, "eliminate_rings_from_stack", f"eliminate-{context}-{self._cube(cell)}",
                       legal, 0, to=pool.position(cell),
                       eliminatedRings=[{"player": p, "count": count}], eliminationContext=context)

    def _lines(self) -> None:
        rnd, pool, p = self.rnd, self.pool, self.player
        if rnd.random() > 0.05:
            self._bookkeeping("line_processing", "no_line_action")
            return
        mine = [c for c, q in self.markers.items() if q == p]
        if len(mine) < 4:
            self._bookkeeping("line_processing", "no_line_action")
            return
        origin = rnd.choice(mine)
        ray = max(pool.rays[origin], key=len)[:3]
        cells = [origin] + ray
        line = [pool.position(c) for c in cells]
        direction = [b - a if a is not None and b is not None else None for a, b in zip(pool.coords[origin], pool.coords[cells[1]])]
        legal = [pool.line_keys[origin], pool.process_line_keys[origin]]
        self._searched("line_processing", "choose_line_option", f"choose-line-option-0-{self._cube(origin)}-all",
                       legal, 0, to=pool.position(origin),
                       formedLines=[{"positions": line, "player": p, "length": len(line),
                                      "direction": {"x": direction[0], "y": direction[1], "z": direction[2]}}],
                       collapsedMarkers=[pool.position(c) for c in cells])
        for c in cells:
            self.markers.pop(c, None)
            if c not in self.stacks:
                self.collapsed[c] = p
        self._eliminate("line_processing", "line")

    def _territory(self) -> None:
        rnd, pool, p = self.rnd, self.pool, self.player
        u = rnd.random()
        if u > 0.2 or len(self.moves) < 20:
            self._bookkeeping("territory_processing", "no_territory_action")
            return
        regions = rnd.sample(range(pool.ncells), rnd.randint(1, 3))
        legal = ["skip_territory_processing_0,0"] + [pool.territory_keys[c] for c in regions]
        if u > 0.1:
            self._searched("territory_processing", "skip_territory_processing",
                           f"skip-territory-processing-{len(self.moves) + 1}", legal, 0,
                           to={"x": 0, "y": 0, "z": None})
            return
        cell = regions[0]
        spaces = [cell] + [t for t in pool.neighbours[cell][: rnd.randint(1, 4)]]
        self._searched("territory_processing", "choose_territory_option",
                       f"choose-territory-option-0-{self._cube(cell)}", legal, 1, to=pool.position(cell),
                       disconnectedRegions=[{"spaces": [pool.position(c) for c in spaces],
                                              "controllingPlayer": p, "isDisconnected": True}])
        for c in spaces:
            if c not in self.stacks:
                self.collapsed[c] = p
                self.markers.pop(c, None)
        self.territory[p] += len(spaces)
        self._eliminate("territory_processing", "territory")

    def _forced(self) -> None:
        rnd, pool, p = self.rnd, self.pool, self.player
        own = self._own_stacks(p)
        if not own or rnd.random() > 0.02:
            return
        cands = own[:6]
        j = rnd.randrange(len(cands))
        cell = cands[j]
        legal = [pool.forced_keys[c] for c in cands]
        self._searched("forced_elimination", "forced_elimination", None, legal, j,
                       to=pool.position(cell), placement_count=0, placedOnStack=False)
        stack = self.stacks.pop(cell)
        self.lost[p] += len(stack)
        self.eliminated[p] += len(stack)

    def _recovery(self, marker: int) -> None:
        rnd, pool, p = self.rnd, self.pool, self.player
        keys = pool.recovery_keys[marker]
        dest = rnd.randrange(len(keys))
        target = pool.neighbours[marker][dest]
        if rnd.random() < 0.3 or not self._free(target):
            self._searched("movement", "skip_recovery", f"skip-recovery-{len(self.moves) + 1}",
                           ["skip_recovery"] + keys, 0)
            return None
        extraction = [self._cube(c) for c in self._own_stacks(p)[:1]]
        self._searched("movement", "recovery_slide",
                       f"recovery-fallback-{self._cube(marker)}-{self._cube(target)}-{len(self.moves) + 1}",
                       keys, dest, **{"from": pool.position(marker)}, to=pool.position(target),
                       recoveryMode="fallback", extractionStacks=extraction)
        self.markers[target] = self.markers.pop(marker)
        return None

    # -- state snapshots -----------------------------------------------------
    def _state(self, phase: str) -> dict:
        pool = self.pool
        stacks = {}
        for c, rings in self.stacks.items():
            top = rings[-1]
            stacks[pool.state_key[c]] = {
                "position": pool.position(c), "rings": list(rings), "stackHeight": len(rings),
                "capHeight": sum(1 for _ in _cap(rings)), "controllingPlayer": top,
            }
        markers = {pool.state_key[c]: {"player": q, "position": pool.position(c), "type": "regular"}
                   for c, q in self.markers.items()}
        state = initial_state(self.spec, self.np_, self.created, self.rng_seed)
        state["board"]["stacks"] = stacks
        state["board"]["markers"] = markers
        state["board"]["collapsedSpaces"] = {pool.state_key[c]: q for c, q in self.collapsed.items()}
        state["board"]["eliminatedRings"] = {str(q): n for q, n in self.lost.items() if n}
        for pl in state["players"]:
            q = pl["playerNumber"]
            pl["ringsInHand"] = self.hand[q]
            pl["eliminatedRings"] = self.lost[q]
            pl["territorySpaces"] = self.territory[q]
        state["currentPhase"] = phase
        state["currentPlayer"] = self.player
        state["totalRingsEliminated"] = sum(self.lost.values())
        return state

    # -- the whole game --------------------------------------------------------
    def play(self, created: datetime, rng_seed: int) -> None:
        self.created, self.rng_seed = created, rng_seed
        lo, hi = self.spec.length
        target = lo + int((hi - _MAX_TURN_MOVES - lo) * self.rnd.betavariate(2.0, 2.5))
        while len(self.moves) < target:
            placed = self._placement()
            at = self._movement(placed)
            if at is not None and at in self.stacks:
                self._capture_phase(at)
            self._lines()
            self._territory()
            self._forced()
            self.turn += 1
            self.player = self.player % self.np_ + 1


def _cap(rings: list[int]):
    """The cap of a stack: the top run of the controlling player's rings."""
    top = rings[-1]
    for r in reversed(rings):
        if r != top:
            return
        yield r


def iso(t: datetime) -> str:
    return t.isoformat(timespec="microseconds")


def initial_state(spec: BoardSpec, num_players: int, created: datetime, rng_seed: int) -> dict:
    """A RingRift GameState at move 0 (camelCase, as GameReplayDB stores it), without move history."""
    rings = spec.rings_per_player
    cells = 3 * spec.radius * (spec.radius + 1) + 1 if spec.hex else spec.size * spec.size
    t = iso(created)
    return {
        "id": "self-play",
        "boardType": spec.name,
        "rngSeed": rng_seed,
        "board": {"type": spec.name, "size": spec.size, "stacks": {}, "markers": {}, "collapsedSpaces": {},
                  "eliminatedRings": {}, "formedLines": [], "territories": {}},
        "players": [
            {"id": f"p{p}", "username": f"AI {p}", "type": "ai", "playerNumber": p, "isReady": True,
             "timeRemaining": 600, "aiDifficulty": 10, "ringsInHand": rings, "eliminatedRings": 0,
             "territorySpaces": 0}
            for p in range(1, num_players + 1)
        ],
        "currentPhase": "ring_placement",
        "currentPlayer": 1,
        "timeControl": {"initialTime": 600, "increment": 0, "type": "blitz"},
        "spectators": [],
        "gameStatus": "active",
        "winner": None,
        "createdAt": t,
        "lastMoveAt": t,
        "isRated": False,
        "maxPlayers": num_players,
        "totalRingsInPlay": rings * num_players,
        "totalRingsEliminated": 0,
        "victoryThreshold": rings * (num_players + 1) // 3 if num_players > 2 else rings,
        "territoryVictoryThreshold": cells // 2 + 1,
        "territoryVictoryMinimum": None,
        "chainCaptureState": None,
        "mustMoveFromStackKey": None,
        "zobristHash": None,
        "lpsRoundIndex": 0,
        "lpsCurrentRoundActorMask": {},
        "lpsRoundsRequired": 3,
        "rulesOptions": {"swapRuleEnabled": False},
    }

"""SQL text of the compat connection: SQLite statements planned for the compatible views.

Tokenising (string literals and comments kept intact), statement kinds (queries, no-ops,
``PRAGMA table_info``, writes), RingRift's table names qualified to the compat schema,
point-query routing by ``game_id`` and SQLite's result column names (docs/ringrift.md, "Raw SQL").
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

from ..errors import CompatSQLError, ReadOnlySQLError

__all__ = ["SCHEMA", "Plan", "plan_for", "translate", "CompatSQLError", "ReadOnlySQLError"]

SCHEMA = "rr_compat"
_VIEWS = ("games", "game_players", "game_initial_state", "game_moves", "game_state_snapshots",
          "game_choices", "game_history_entries", "game_nnue_features")  # fmt: skip
#: tables whose rows come from the moves shards / the games files (point-routable by game_id)
_MOVE_TABLES = {"game_moves"}
_GAMES_FILE_TABLES = {"game_initial_state", "game_state_snapshots", "game_choices", "game_history_entries",
                      "game_nnue_features"}  # fmt: skip




# ---------------------------------------------------------------------------------------------
# statement translation
# ---------------------------------------------------------------------------------------------
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\?|\w+|\s+|.", re.S)
_WRITE = {"INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "VACUUM", "ATTACH", "DETACH",
          "REINDEX", "ANALYZE"}  # fmt: skip
_NOOP = {"BEGIN", "COMMIT", "ROLLBACK", "END", "SAVEPOINT", "RELEASE"}


@dataclass(frozen=True)
class Plan:
    kind: str  # "query", "noop", "table_info", "write"
    sql: str
    table: str | None = None  # point-routed table
    id_params: tuple[int, ...] = ()  # indexes of the game_id parameters
    names: tuple[str, ...] | None = None  # result column names as SQLite spells them


_IDENT = re.compile(r"^[A-Za-z_]\w*$|^\"(?:[^\"]|\"\")*\"$")


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def _sqlite_names(toks: list[str]) -> tuple[str, ...] | None:
    """Result column names as SQLite gives them: the alias, a column's name, else the expression's text."""
    i = next((k for k, t in enumerate(toks) if t.strip()), None)
    if i is None or toks[i].upper() != "SELECT":
        return None
    items: list[list[str]] = [[]]
    depth = 0
    for t in toks[i + 1 :]:
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        elif depth == 0 and t.upper() == "FROM":
            break
        elif depth == 0 and t == ",":
            items.append([])
            continue
        items[-1].append(t)
    names = []
    for n, item in enumerate(items):
        words = [t for t in item if t.strip() and not t.startswith(("--", "/*"))]
        if n == 0 and words and words[0].upper() in ("DISTINCT", "ALL"):
            item = item[item.index(words[0]) + 1 :]
            words = words[1:]
        if not words or words[-1] == "*":
            return None
        if len(words) >= 3 and words[-2].upper() == "AS" and _IDENT.match(words[-1]):
            names.append(_unquote(words[-1]))
        elif len(words) == 1 and _IDENT.match(words[0]):
            names.append(_unquote(words[0]))
        elif len(words) == 3 and words[1] == "." and _IDENT.match(words[2]):
            names.append(_unquote(words[2]))
        else:
            names.append("".join(item).strip())
    return tuple(names)


def _tokens(sql: str) -> list[str]:
    return _TOKEN.findall(sql)


def _point_route(toks: list[str]) -> tuple[str | None, tuple[int, ...]]:
    """The one game-keyed table and the ``game_id`` parameter positions of a conjunctive point query."""
    words = [t for t in toks if t.strip() and not t.startswith(("--", "/*"))]
    upper = [w.upper() for w in words]
    if any(w in ("JOIN", "OR", "UNION", "NOT", "EXCEPT", "INTERSECT", "HAVING") for w in upper):
        return None, ()
    if upper.count("SELECT") != 1 or upper.count("FROM") != 1 or upper.count("WHERE") != 1:
        return None, ()
    i_from = upper.index("FROM")
    table = words[i_from + 1].lower() if i_from + 1 < len(words) else ""
    if table not in _MOVE_TABLES | _GAMES_FILE_TABLES:
        return None, ()
    if words[i_from + 2 : i_from + 3] == [","]:
        return None, ()
    i_where = upper.index("WHERE")
    qpos = [i for i, w in enumerate(words) if w == "?"]
    depth = 0
    for i in range(i_where + 1, len(words)):
        w = words[i]
        depth += (w == "(") - (w == ")")
        if w.lower() not in ("game_id",) or depth != 0:
            continue
        prev = words[i - 1] if i > 0 else ""
        if prev == ".":
            continue
        nxt = words[i + 1 : i + 2]
        if nxt == ["="] and words[i + 2 : i + 3] == ["?"]:
            return table, (qpos.index(i + 2),)
        if nxt and nxt[0].upper() == "IN" and words[i + 2 : i + 3] == ["("]:
            j, params = i + 3, []
            while j < len(words) and words[j] != ")":
                if words[j] == "?":
                    params.append(qpos.index(j))
                elif words[j] != ",":
                    return None, ()
                j += 1
            return (table, tuple(params)) if params else (None, ())
    return None, ()


def translate(sql: str) -> Plan:
    toks = _tokens(sql)
    words = [t for t in toks if t.strip() and not t.startswith(("--", "/*"))]
    if not words:
        return Plan("noop", "")
    head = words[0].upper()
    if head in _NOOP:
        return Plan("noop", "")
    if head == "PRAGMA":
        low = [w.lower() for w in words]
        if len(low) >= 4 and low[1] == "table_info" and low[2] == "(":
            name = words[3].strip("'\"")
            return Plan("table_info", name)
        if "=" in low:
            return Plan("noop", "")
        return Plan("noop", "")
    if head in _WRITE:
        return Plan("write", sql)
    if head not in ("SELECT", "WITH", "VALUES", "EXPLAIN"):
        raise CompatSQLError(f"statement not supported by the compatible views: {sql.strip()[:80]!r}")
    table, params = _point_route(toks)
    return Plan("query", _qualify(toks), table, params, _sqlite_names(toks))


_TABLES = frozenset(_VIEWS) | {"sqlite_master", "schema_metadata", "orphaned_games"}


def _qualify(toks: list[str]) -> str:
    """The statement with RingRift's table names pointing at the compat schema (not column references)."""
    out = list(toks)
    for i, t in enumerate(toks):
        if t.lower() not in _TABLES:
            continue
        prev = next((toks[j] for j in range(i - 1, -1, -1) if toks[j].strip()), "")
        nxt = next((toks[j] for j in range(i + 1, len(toks)) if toks[j].strip()), "")
        if prev != "." and nxt != "(":
            out[i] = f"{SCHEMA}.{t.lower()}"
    return "".join(out)


_PLAN_CACHE: OrderedDict[str, Plan] = OrderedDict()
_PLAN_LOCK = threading.Lock()


def plan_for(sql: str) -> Plan:
    with _PLAN_LOCK:
        plan = _PLAN_CACHE.get(sql)
        if plan is not None:
            _PLAN_CACHE.move_to_end(sql)
            return plan
    plan = translate(sql)
    with _PLAN_LOCK:
        _PLAN_CACHE[sql] = plan
        if len(_PLAN_CACHE) > 512:
            _PLAN_CACHE.popitem(last=False)
    return plan

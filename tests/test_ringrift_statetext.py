"""State texts passed through as canonical text: ``_rrjson.canonical_object`` against its reference, and
the records and stores it gives against the parse-and-dump path (the same stored bytes, the same rows back)."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gamestore
from gamestore.rawjson import JSONText
from gamestore.records import dump_canonical_json, dump_json, games_equal
from gamestore.ringrift import _rrjson, jsontext, mapping
from gamestore.ringrift._rrcols import float_text
from gamestore.ringrift.fixtures import FIXTURE_NAMES
from gamestore.ringrift.tables import GAME_TABLES
from gamestore.ringrift.transfer import import_sqlite
from helpers.replaydb import replay_games

pytestmark = pytest.mark.single_backend  # the RingRift text path is the same for both encoder backends

canonical_object = _rrjson.canonical_object
reference = jsontext._py_canonical_object

_text = st.text(alphabet=st.sampled_from('ab,:{}[] "\\/\x00\x08\x09\x0a\x0c\x0d\x1f\x7fu0'), max_size=6)
_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.floats(width=32, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e-4, 9.5e-5, 1e16, 1e22, 5e-324, 15490398514521879870]), _text,
)  # fmt: skip
_json = st.recursive(_scalar, lambda k: st.lists(k, max_size=4) | st.dictionaries(_text, k, max_size=20), max_leaves=30)
_objects = st.dictionaries(_text, _json, max_size=6)
# what the float proof covers completely (RingRift's values): exponents of 10 within [-54, 27]
_plain_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), _text,
    st.floats(min_value=-1e15, max_value=1e15).filter(lambda x: x == 0 or abs(x) > 1e-30),
)  # fmt: skip
_plain = st.recursive(_plain_scalar, lambda k: st.lists(k, max_size=4) | st.dictionaries(_text, k, max_size=20),
                      max_leaves=30)


def _check(text: str, key: str = "moveHistory") -> None:
    got, ref = canonical_object(text, key), reference(text, key)
    assert got is None or got == ref, (text, got, ref)  # sound: never proves what is not canonical
    if got is not None and got[0] >= 0:
        assert text[got[1] : got[2]] == dump_json(key) + ":" + dump_json(json.loads(text)[key])


@settings(max_examples=150, deadline=None)
@given(_objects, st.integers(0, 8), _json)
def test_canonical_texts_are_never_proven_wrongly(obj, at, mh):
    items = list(obj.items())
    items.insert(min(at, len(items)), ("moveHistory", mh))
    for value in (obj, dict(items)):
        _check(dump_json(value))


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_text, _plain, max_size=6), st.integers(0, 8), _plain)
def test_canonical_texts_are_proven_and_located(obj, at, mh):
    items = list(obj.items())
    items.insert(min(at, len(items)), ("moveHistory", mh))
    for value in (obj, dict(items)):
        text = dump_json(value)
        _check(text)
        if all(float_text(repr(x)) is not None for x in _floats(value)):  # complete up to the float proof's cover
            assert canonical_object(text, "moveHistory") == reference(text, "moveHistory")


def _floats(v: object) -> list[float]:
    if type(v) is float:
        return [v]
    if type(v) is dict:
        v = list(v.values())
    return [x for item in v for x in _floats(item)] if type(v) is list else []


@settings(max_examples=150, deadline=None)
@given(_objects, st.integers(0, 10_000), st.sampled_from(["", " ", "0", "e", "-", ",", "\\", '"', "1e-05", "\\u0000",
                                                          "\\u000a", "\\/", "}", "{", "01", ".0", "E"]))
def test_altered_texts_are_never_proven_wrongly(obj, where, insert):
    text = dump_json(obj)
    k = where % (len(text) + 1)
    for altered in (text[:k] + insert + text[k:], text[:k] + insert + text[k + 1 :]):
        _check(altered)


@pytest.mark.parametrize(
    "text,ok",
    [
        ("{}", True), ('{"a":1,"a":2}', False), ('{"a":{"x":1,"x":1}}', False), ('[{"a":1}]', False),
        ("{" + ",".join(f'"k{i}":{i}' for i in range(40)) + "}", True),
        ("{" + ",".join(f'"k{i % 39}":{i}' for i in range(40)) + "}", False),  # duplicate among many keys
        ('{"a":"\\b\\f\\n\\r\\t\\"\\\\\\u0000\\u001f\x7f"}', True), ('{"a":"\\u0008"}', False), ('{"a":"\\/"}', False),
        ('{"a":"\\u001F"}', False), ('{"a":"\x01"}', False), ('{"a":-0}', False), ('{"a":01}', False),
        ('{"a":1.0e5}', False), ('{"a":100000.0}', True), ('{"a":1e+16}', True), ('{"a":1E+16}', False),
        ('{"a":Infinity}', False), ('{"a":NaN}', False), ('{"a":1e999}', False), ('{"a": 1}', False),
        ('{"a":1}\n', False), ('{"é":1}', False), ('{"a":' + "9" * 4000 + "}", True), ('{"a":' + "9" * 4001 + "}", False),
        ('{"a":' * 150 + "1" + "}" * 150, True), ('{"a":' * 152 + "1" + "}" * 152, False),
        ('{"a":tru}', False), ('{"a":[1,]}', False), ('{"a":[,1]}', False), ('{"a" :1}', False),
    ],
)  # fmt: skip
def test_edge_cases(text, ok):
    assert (canonical_object(text, "a") is not None) is ok
    _check(text, "a")


def _without_pass_through(monkeypatch) -> None:
    monkeypatch.setattr(jsontext, "_canonical_object", lambda text, key: None)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_records_equal_the_parsed_path(ringrift_dbs, name, monkeypatch):
    """Every state the fixtures hold: the text path's records equal the parse-and-dump path's, the stored JSON
    text is the same, and the rows come back byte for byte; the reference validator gives the same records."""
    games = replay_games(ringrift_dbs[name])
    fast = [mapping.rows_to_record(rows) for rows in games]
    monkeypatch.setattr(jsontext, "_canonical_object", reference)
    ref = [mapping.rows_to_record(rows) for rows in games]
    _without_pass_through(monkeypatch)
    slow = [mapping.rows_to_record(rows) for rows in games]
    states = 0
    for rows, f, r, s in zip(games, fast, ref, slow):
        fs = [x["state"] for x in f.get("snapshots", ())] + ([f["initial_state"]] if "initial_state" in f else [])
        rs = [x["state"] for x in r.get("snapshots", ())] + ([r["initial_state"]] if "initial_state" in r else [])
        ss = [x["state"] for x in s.get("snapshots", ())] + ([s["initial_state"]] if "initial_state" in s else [])
        for a, b, c in zip(fs, rs, ss):
            if type(a) is JSONText:
                states += 1
                assert type(b) is JSONText and a.text == b.text
                assert type(c) is not JSONText and dump_canonical_json(c) == a.text and json.loads(a.text) == c
        assert games_equal(f, s) and games_equal(f, r)
        back = mapping.record_to_rows(f)
        for table in GAME_TABLES:
            assert mapping.compare_rows(table, rows[table], back[table]) == [], table
    assert states > 0


def test_stores_equal_the_parsed_path(ringrift_dbs, tmp_path, monkeypatch):
    """The same fixture imported with and without the pass-through: equal games, equal stored snapshot columns."""
    name = next(n for n in FIXTURE_NAMES if "history" not in n)
    import_sqlite(ringrift_dbs[name], tmp_path / "fast", workers=0, progress=False)
    _without_pass_through(monkeypatch)
    import_sqlite(ringrift_dbs[name], tmp_path / "slow", workers=0, progress=False)
    with gamestore.open(tmp_path / "fast", create=False) as a, gamestore.open(tmp_path / "slow", create=False) as b:
        ids = sorted(a.sql("SELECT game_id FROM games").fetchnumpy()["game_id"].tolist())
        assert ids and ids == sorted(b.sql("SELECT game_id FROM games").fetchnumpy()["game_id"].tolist())
        for gid in ids:
            ga, gb = a.get_game(gid), b.get_game(gid)
            assert games_equal(ga, gb) and ga.get("snapshots")
            for sa, sb in zip(ga["snapshots"], gb["snapshots"]):
                assert dump_json(sa["state"]) == dump_json(sb["state"])

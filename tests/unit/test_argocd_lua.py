"""Argo CD's health check and resource actions for ModelDeployment (hack/argocd/), run as Argo CD runs them.

The harness is the one argo-cd's own tests use (util/lua/health_test.go, custom_actions_test.go),
on a real Lua 5.1 interpreter (lupa) with only what Argo CD's sandbox gives a script from argocd-cm
(util/lua/lua.go, oslib_safe.go): the base library, ``table``, ``require("os")`` with ``time`` and
``date`` only (no ``os`` global, no ``string`` or ``math`` library), and ``obj``. Each test in
``health_test.yaml`` runs health.lua on its inputPath and compares status and message; each test in
``actions/action_test.yaml`` runs discovery.lua (the actions and whether they are disabled) or an
action.lua, whose returned object goes through Argo CD's JSON encoding (an empty table is ``[]``,
then ``cleanReturnedObj``) before it is compared with expectedOutputPath. The testdata are written by
hack/argocd/make_testdata.py from the operator's planner; the first test checks they are current.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

lupa = pytest.importorskip("lupa.lua51")  # Argo CD runs gopher-lua, a Lua 5.1

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "hack" / "argocd" / "serving.headway.dev" / "ModelDeployment"
ACTIONS = HERE / "actions"
HEALTH_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("headway_argocd_testdata", ROOT / "hack" / "argocd" / "make_testdata.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()

# The sandbox: what util/lua/lua.go opens (package, base, table) and the safe os module.
SANDBOX = """
local script, name, obj, now = ...
local safe_os = {time = function() return now end, date = os.date}
local env = {obj = obj}
for _, key in ipairs({"assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "print", "rawequal", "rawget",
                      "rawset", "select", "setmetatable", "tonumber", "tostring", "type", "unpack", "xpcall"}) do
  env[key] = _G[key]
end
env.table = {concat = table.concat, insert = table.insert, maxn = table.maxn, remove = table.remove, sort = table.sort}
env.require = function(module)
  if module == "os" then return safe_os end
  error("module '" .. tostring(module) .. "' not found")
end
debug.setmetatable("", nil)  -- no string library: ("x"):sub() fails as in Argo CD
local chunk, err = loadstring(script, "=" .. name)
if chunk == nil then error(err) end
setfenv(chunk, env)
return chunk()
"""


def to_lua(runtime: Any, value: Any) -> Any:
    """decodeValue in util/lua/lua.go: maps and lists become tables, numbers Lua numbers."""
    if isinstance(value, dict):
        return runtime.table_from({k: to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([to_lua(runtime, v) for v in value])
    return value


def from_lua(lua_type: Any, value: Any) -> Any:
    """What gopher-json's Encode makes of a Lua value: a table with keys 1..n is an array (an empty table: [])."""
    if lua_type(value) != "table":
        return int(value) if isinstance(value, float) and value.is_integer() else value
    keys = list(value.keys())
    if all(isinstance(k, int) for k in keys) and sorted(keys) == list(range(1, len(keys) + 1)):
        return [from_lua(lua_type, value[k]) for k in range(1, len(keys) + 1)]
    return {str(k): from_lua(lua_type, v) for k, v in value.items()}


def clean_returned(new: Any, old: Any) -> Any:
    """cleanReturnedObj / cleanReturnedArray in util/lua/lua.go: an empty array where the live object had a map keeps the map."""
    if isinstance(new, dict) and isinstance(old, dict):
        out = dict(new)
        for key, old_value in old.items():
            if key not in new:
                continue
            value = new[key]
            if isinstance(value, list) and isinstance(old_value, dict) and not value:
                out[key] = old_value
            else:
                out[key] = clean_returned(value, old_value)
        return out
    if isinstance(new, list) and isinstance(old, list):
        return [clean_returned(n, o) if i < len(old) else n for i, (n, o) in enumerate(zip(new, old + [None] * len(new)))]
    return new


def run_source(script: str, name: str, obj: dict[str, Any], now: int = GENERATOR.ACTION_TIME) -> Any:
    """Run a script with ``obj`` in a fresh sandbox; its return value as Argo CD's JSON encoding sees it."""
    runtime = lupa.LuaRuntime(unpack_returned_tuples=False)
    result = runtime.execute(SANDBOX, script, name, to_lua(runtime, obj), now)
    return from_lua(lupa.lua_type, result)


def run_lua(path: Path, obj: dict[str, Any]) -> Any:
    return run_source(path.read_text(), path.name, obj)


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def test_testdata_are_what_the_planner_produces() -> None:
    assert GENERATOR.main(["--check"]) == 0, "run .venv/bin/python hack/argocd/make_testdata.py and review the diff"


HEALTH_TESTS = load(HERE / "health_test.yaml")["tests"]


@pytest.mark.parametrize("test", HEALTH_TESTS, ids=[t["inputPath"] for t in HEALTH_TESTS])
def test_health(test: dict[str, Any]) -> None:
    result = run_lua(HERE / "health.lua", load(HERE / test["inputPath"]))
    assert result["status"] in HEALTH_STATUSES
    assert result == test["healthStatus"]


def test_every_phase_has_a_health_test_and_none_is_unknown() -> None:
    phases: dict[str, set[str]] = {}
    for test in HEALTH_TESTS:
        status = load(HERE / test["inputPath"]).get("status") or {}
        phases.setdefault(str(status.get("phase")), set()).add(test["healthStatus"]["status"])
    from headway.api.status import Phase
    assert {p.value for p in Phase} | {"AwaitingApproval", "None"} <= set(phases)
    assert all("Unknown" not in found for found in phases.values())
    tested = {p.name for p in (HERE / "testdata").glob("*.yaml")}
    assert tested == {Path(t["inputPath"]).name for t in HEALTH_TESTS}, "every testdata file is tested"


def test_health_of_a_phase_it_does_not_know_follows_the_conditions() -> None:
    obj = load(HERE / "testdata" / "progressing_canaryStep.yaml")
    obj["status"]["phase"] = "Experimenting"
    assert run_lua(HERE / "health.lua", obj) == {"status": "Progressing", "message": "step 2/4: canary 10% until 2026-11-22T12:04:10Z"}
    obj["status"]["conditions"] = []
    assert run_lua(HERE / "health.lua", obj) == {"status": "Progressing", "message": "phase Experimenting: waiting for the operator"}


ACTION_TESTS = load(ACTIONS / "action_test.yaml")


@pytest.mark.parametrize("test", ACTION_TESTS["discoveryTests"], ids=[t["inputPath"] for t in ACTION_TESTS["discoveryTests"]])
def test_discovery(test: dict[str, Any]) -> None:
    found = run_lua(ACTIONS / "discovery.lua", load(ACTIONS / test["inputPath"]))
    assert isinstance(found, dict)
    got = sorted(({"name": name, **action} for name, action in found.items()), key=lambda a: a["name"])
    assert got == sorted(test["result"], key=lambda a: a["name"])


@pytest.mark.parametrize("test", ACTION_TESTS["actionTests"], ids=[f"{t['action']}/{t['inputPath']}" for t in ACTION_TESTS["actionTests"]])
def test_action(test: dict[str, Any]) -> None:
    live = load(ACTIONS / test["inputPath"])
    returned = run_lua(ACTIONS / test["action"] / "action.lua", live)
    assert clean_returned(returned, live) == load(ACTIONS / test["expectedOutputPath"])


def test_every_action_is_discovered_and_tested() -> None:
    defined = {p.parent.name for p in ACTIONS.glob("*/action.lua")}
    assert defined == {"promote", "promote-step", "abort", "retry", "pause", "resume"}
    assert {t["action"] for t in ACTION_TESTS["actionTests"]} == defined
    for test in ACTION_TESTS["discoveryTests"]:
        assert {a["name"] for a in test["result"]} == defined


def test_the_sandbox_is_as_strict_as_argo_cd() -> None:
    """Scripts that need more than Argo CD gives fail here too."""
    obj = {"metadata": {"name": "x"}}
    for script in ('return {status = string.upper("x")}', 'return {status = ("x"):upper()}', "return {status = os.time()}",
                   'return {status = math.floor(1.5)}', 'local io = require("io") return {}', "return {status = io.open}"):
        with pytest.raises(lupa.LuaError):
            run_source(script, "scratch.lua", obj)
    assert run_source('local os = require("os") return {t = os.time()}', "ok.lua", obj) == {"t": GENERATOR.ACTION_TIME}
    for name in ("health.lua", "actions/discovery.lua", *[str(p.relative_to(HERE)) for p in ACTIONS.glob("*/action.lua")]):
        text = (HERE / name).read_text()
        assert "goto" not in text and "//" not in text, f"{name}: not Lua 5.1"


def test_the_argocd_cm_data_carries_every_script_as_is() -> None:
    spec = importlib.util.spec_from_file_location("headway_argocd_cm", ROOT / "hack" / "argocd" / "argocd_cm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = yaml.safe_load(yaml.safe_dump({"data": module.data()}))["data"]
    assert data["resource.customizations.health.serving.headway.dev_ModelDeployment"] == (HERE / "health.lua").read_text()
    actions = yaml.safe_load(data["resource.customizations.actions.serving.headway.dev_ModelDeployment"])
    assert actions["discovery.lua"] == (ACTIONS / "discovery.lua").read_text()
    assert {d["name"]: d["action.lua"] for d in actions["definitions"]} == {
        p.parent.name: p.read_text() for p in ACTIONS.glob("*/action.lua")}

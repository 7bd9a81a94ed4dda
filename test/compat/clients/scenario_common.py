"""What the Python scenarios (pylibmc_scenario.py, pymemcache_scenario.py) share: the JSON line of a
step, how an outcome shows a value, and the stats counters compared before and after a scenario."""
import hashlib
import json

COUNTERS = ["cmd_get", "cmd_set", "cmd_touch", "cmd_flush", "get_hits", "get_misses", "delete_hits",
            "delete_misses", "incr_hits", "incr_misses", "decr_hits", "decr_misses", "cas_hits",
            "cas_misses", "cas_badval", "touch_hits", "touch_misses"]
STAT_NAMES = ["pid", "uptime", "time", "version", "curr_connections"] + COUNTERS


def out(step, outcome):
    print(json.dumps({"step": step, "outcome": outcome}), flush=True)


def show(v):
    """A value as an outcome: short text as itself, anything else by length and digest."""
    if isinstance(v, bytes):
        if len(v) <= 64 and all(32 <= b < 127 for b in v):
            return v.decode("ascii")
        return {"len": len(v), "sha1": hashlib.sha1(v).hexdigest()}
    if isinstance(v, dict):
        return {(x.decode("latin1") if isinstance(x, bytes) else x): show(y) for x, y in sorted(v.items())}
    if isinstance(v, (list, tuple)):
        return [show(x) for x in v]
    return v


def step(name, fn):
    """Runs one step: its value as the outcome, or the class of what it raised."""
    try:
        out(name, show(fn()))
    except Exception as e:  # noqa: BLE001 (the outcome is the exception class)
        out(name, "error:" + type(e).__name__)


def stats_delta(before, after):
    """How much each counter grew between two stats calls."""
    return {n: int(after[n]) - int(before[n]) for n in COUNTERS if n in before and n in after}

"""The compat scenario (test/compat/README.md) with pymemcache (text protocol).

Usage: python3 pymemcache_scenario.py '<json options>' (see pylibmc_scenario.py for the options).
Prints one JSON line per step: {"step": name, "outcome": value}.
"""
import json
import sys

import pymemcache
from pymemcache.client.base import Client

from scenario_common import STAT_NAMES, out, show, stats_delta, step

opts = json.loads(sys.argv[1])
P = opts.get("prefix", "")
MAX_KEY = opts.get("maxKey", 250)
c = Client(("127.0.0.1", opts["port"]), connect_timeout=5, timeout=10, default_noreply=False)



def k(name):
    return P + name


def stats():
    return {n.decode(): v for n, v in c.stats().items()}


out("client", {"name": "pymemcache", "version": pymemcache.__version__, "protocol": "text"})
before = stats()
out("stats_names", sorted(n for n in STAT_NAMES if n in before))
out("stats_version", show(before.get("version")))
step("version", lambda: c.version())

step("set", lambda: c.set(k("a"), b"alpha"))
step("get", lambda: c.get(k("a")))
step("get_miss", lambda: c.get(k("missing")))
step("set_multi", lambda: c.set_many({k("m1"): b"one", k("m2"): b"two", k("m3"): b"three"}))
step("get_multi", lambda: c.get_many([k("m1"), k("missing"), k("m3"), k("m2")]))
step("set_multi_100", lambda: c.set_many({k("n%d" % i): str(i).encode() for i in range(100)}))
step("get_multi_100", lambda: len(c.get_many([k("n%d" % i) for i in range(100)] + [k("nx")])))
step("add_existing", lambda: c.add(k("a"), b"x"))
step("add_new", lambda: c.add(k("added"), b"new"))
step("replace_existing", lambda: c.replace(k("a"), b"beta"))
step("replace_missing", lambda: c.replace(k("missing"), b"x"))
step("append", lambda: (c.append(k("a"), b"-end"), c.get(k("a"))))
step("prepend", lambda: (c.prepend(k("a"), b"start-"), c.get(k("a"))))
step("append_missing", lambda: c.append(k("missing"), b"x"))


def cas_steps():
    v, token = c.gets(k("a"))
    first = c.cas(k("a"), b"cas1", token)
    stale = c.cas(k("a"), b"cas2", token)
    return [show(v), first, stale, show(c.get(k("a")))]


step("gets_cas", cas_steps)
step("cas_missing", lambda: c.cas(k("missing"), b"x", b"12345"))
step("gets_missing", lambda: c.gets(k("missing")))
step("gets_many", lambda: sorted(c.gets_many([k("a"), k("missing")]).keys()))
step("incr", lambda: (c.set(k("n"), b"10"), c.incr(k("n"), 5)))
step("decr", lambda: c.decr(k("n"), 3))
step("decr_below_zero", lambda: c.decr(k("n"), 100))
step("incr_wrap", lambda: (c.set(k("w"), b"18446744073709551615"), c.incr(k("w"), 2)))
step("incr_missing", lambda: c.incr(k("missing"), 1))
step("incr_non_numeric", lambda: c.incr(k("a"), 1))
step("get_counter", lambda: c.get(k("n")))
step("touch", lambda: (c.touch(k("a"), 100), c.get(k("a"))))
step("touch_missing", lambda: c.touch(k("missing"), 100))
step("delete", lambda: c.delete(k("a")))
step("delete_missing", lambda: c.delete(k("a")))
step("get_deleted", lambda: c.get(k("a")))
step("delete_multi", lambda: (c.delete_many([k("m1"), k("m2")]), c.get_many([k("m1"), k("m2"), k("m3")])))
all_bytes = bytes(range(256))
step("bytes_256", lambda: (c.set(k("bin"), all_bytes), c.get(k("bin")) == all_bytes))
step("empty_value", lambda: (c.set(k("empty"), b""), c.get(k("empty"))))
big = bytes(i * 7 % 251 for i in range(1000 * 1000))
step("value_1mb", lambda: (c.set(k("big"), big), c.get(k("big")) == big))
longest = k("L" * (MAX_KEY - len(P)))
step("longest_key", lambda: (c.set(longest, b"long"), c.get(longest)))
step("key_too_long", lambda: c.set(longest + "X", b"x"))
step("get_key_too_long", lambda: c.get(longest + "X"))
step("flush_all", lambda: (c.set(k("f"), b"x"), c.flush_all(), c.get(k("f")), c.get(longest)))
after = stats()
out("stats_delta", stats_delta(before, after))
step("value_too_large", lambda: (c.set(k("big"), big), c.set(k("big"), big + big)))
step("get_after_too_large", lambda: c.get(k("big")) is None)
out("done", True)

"""RedisRateBudget: the rate budget of :class:`~zoom_s2s.stores.redis.RedisTokenStore`.

A bucket key ``<scope>.<name>`` (``zoom_s2s.stores.budget``) lives at::

    <prefix>:{<scope>}:rate:<name>   HASH {tat, until, daily, shift}, µs of Redis's clock,
                                     PEXPIRE = until the state no longer matters
    <prefix>:{<scope>}:notices       HASH <name> -> "<until µs>:<daily 1/0>": the scope's
                                     pauses, read in one step by ``notices()``

Every key of one scope (an account) shares the hash tag ``{<scope>}``, so the
scripts, which may touch a bucket and its scope's notices together, run on
one Cluster slot. Each permit or lease is one script (one round trip): GCRA on Redis's own clock
(``TIME``), so the clocks of the hosts never matter. The scripts follow the
rules of ``zoom_s2s.stores.redis.scripts``: arguments are checked before the first write,
and state read back is bounded (a ``tat`` or pause further ahead than
``MAX_AHEAD`` is ignored), so a planted value cannot stall the fleet for
longer than a day.

Beyond the token scripts' commands they call ``TIME``, ``HGETALL`` and ``HDEL``
(:data:`RATE_COMMANDS`).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..base import BaseTokenStore
from ..budget import MAX_AHEAD, Pause, Permit, RateBudget, Tally, check_key

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

__all__ = [
    "COUNT_SCRIPT",
    "NOTICES_SCRIPT",
    "PAUSED_SCRIPT",
    "PAUSE_SCRIPT",
    "PERMIT_SCRIPT",
    "RATE_COMMANDS",
    "RedisRateBudget",
]

RATE_COMMANDS = ("TIME", "HGETALL", "HDEL")
"""Commands the rate-limit scripts call beyond the token scripts' (for the ACL)."""

_US = 1_000_000

# Shared prelude: the clock and a bounded read of one bucket.
_PRELUDE = f"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ahead = now + {int(MAX_AHEAD * _US)}
local function load(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'hash' then return 0, 0, false, 0, kind ~= 'none' end
  local tat = tonumber(redis.call('HGET', key, 'tat') or '0') or 0
  local untl = tonumber(redis.call('HGET', key, 'until') or '0') or 0
  local daily = redis.call('HGET', key, 'daily') == '1'
  local shift = tonumber(redis.call('HGET', key, 'shift') or '0') or 0
  if tat ~= tat or tat > ahead then tat = 0 end
  if untl ~= untl or untl > ahead then untl = 0; daily = false end
  if shift ~= shift or shift < 0 or shift > 1e15 then shift = 0 end
  return tat, untl, daily, shift, false
end
local function fmt(x) return string.format('%.0f', x) end
local day = 86400000000
"""

# KEYS[1]: bucket.
# ARGV[1]: interval µs (1 .. 86400e6), ARGV[2]: burst (1 .. 10000),
# ARGV[3]: max_wait µs (0 .. 86400e6), ARGV[4]: cells (1 .. 100000).
# Returns {wait µs, granted 1/0, shift µs, ahead µs (to the first cell's theoretical time)}.
PERMIT_SCRIPT = (
    """
local interval, burst, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cells = tonumber(ARGV[4])
if not interval or interval < 1 or interval > 86400000000 or not burst or burst < 1
    or burst > 10000 or burst ~= math.floor(burst) or not max_wait or max_wait < 0
    or max_wait > 86400000000 or not cells or cells < 1 or cells > 100000
    or cells ~= math.floor(cells) then
  return redis.error_reply('ERR zoom_s2s: permit arguments out of range')
end
"""
    + _PRELUDE
    + """
local tat, untl, daily, shift, foreign = load(KEYS[1])
if daily and untl > now then return {untl - now, 0, shift, 0} end
local allow = math.max(now, tat - (burst - 1) * interval, untl)
local wait = allow - now
if wait > max_wait then return {wait, 0, shift, 0} end
local first = math.max(tat, allow)
local next_tat = first + cells * interval
if foreign then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'tat', fmt(next_tat))
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(next_tat, untl) - now) / 1000) + 1000)
return {wait, 1, shift, first - now}
"""
)

# KEYS[1]: bucket, KEYS[2]: the scope's notices. ARGV[1]: 's' (ARGV[2] is a span in µs,
# 0 .. MAX_PAUSE), 'u' (ARGV[2] is the end, µs of Unix time) or 'm' (the next 00:00 UTC);
# ARGV[3]: '1' daily, '0' not; ARGV[4]: the bucket's name (its field in the notices).
# A daily pause ends by the next 00:00 UTC (+ DAY_SLACK).
# Returns {left µs, daily 1/0}: the pause after this one.
PAUSE_SCRIPT = (
    """
local mode, value = ARGV[1], tonumber(ARGV[2])
if (mode ~= 's' and mode ~= 'u' and mode ~= 'm') or (mode ~= 'm' and not value)
    or (mode == 's' and (value < 0 or value > 86460000000))
    or (ARGV[3] ~= '1' and ARGV[3] ~= '0') or not ARGV[4] then
  return redis.error_reply('ERR zoom_s2s: pause arguments out of range')
end
"""
    + _PRELUDE
    + """
local tat, untl, daily, shift, foreign = load(KEYS[1])
local stop
if mode == 's' then stop = now + value
elseif mode == 'u' then stop = value
else stop = (math.floor(now / day) + 1) * day end
if ARGV[3] == '1' then
  stop = math.min(stop, (math.floor(now / day) + 1) * day + 60000000)
end
if stop <= untl then
  local left = math.max(0, untl - now)
  return {left, (daily and left > 0) and 1 or 0}
end
if ARGV[3] ~= '1' then
  local extension = stop - math.max(untl, now)
  tat = math.max(tat, now) + extension
  shift = shift + extension
end
if foreign then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'tat', fmt(tat), 'until', fmt(stop), 'daily', ARGV[3],
           'shift', fmt(shift))
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(tat, stop) - now) / 1000) + 1000)
if redis.call('TYPE', KEYS[2])['ok'] ~= 'hash' then redis.call('DEL', KEYS[2]) end
redis.call('HSET', KEYS[2], ARGV[4], fmt(stop) .. ':' .. ARGV[3])
local ttl = math.ceil((stop - now) / 1000) + 1000
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return {stop - now, tonumber(ARGV[3])}
"""
)

# KEYS[1]: counter. ARGV[1]: limit (1 .. 1e9), ARGV[2]: period µs (1e6 .. 86400e6; the
# whole day: until the next 00:00 UTC). The window's end is kept in 'tat', its count
# in 'shift'. Returns {granted 1/0, left µs, remaining}.
COUNT_SCRIPT = (
    """
local limit, period = tonumber(ARGV[1]), tonumber(ARGV[2])
if not limit or limit < 1 or limit > 1e9 or not period or period < 1000000
    or period > 86400000000 then
  return redis.error_reply('ERR zoom_s2s: count arguments out of range')
end
"""
    + _PRELUDE
    + """
local tat, untl, daily, used, foreign = load(KEYS[1])
if daily and untl > now then return {0, untl - now, 0} end
if tat <= now then
  if period == day then tat = (math.floor(now / day) + 1) * day else tat = now + period end
  used = 0
end
if used + 1 > limit then return {0, tat - now, 0} end
used = used + 1
if foreign then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'tat', fmt(tat), 'shift', fmt(used))
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(tat, untl) - now) / 1000) + 1000)
return {1, tat - now, limit - used}
"""
)

# KEYS[1]: the scope's notices. Returns {name, left µs, daily 1/0, ...} of the pauses
# still running; forgets the others.
NOTICES_SCRIPT = (
    _PRELUDE
    + """
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return {} end
local out, flat = {}, redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local stop, flag = string.match(flat[i + 1], '^(%d+):([01])$')
  stop = tonumber(stop)
  if stop and stop > now and stop <= ahead then
    table.insert(out, flat[i]); table.insert(out, stop - now); table.insert(out, tonumber(flag))
  else
    redis.call('HDEL', KEYS[1], flat[i])
  end
end
return out
"""
)

# KEYS[1]: bucket. Returns {left µs, daily 1/0, shift µs}.
PAUSED_SCRIPT = (
    _PRELUDE
    + """
local tat, untl, daily, shift = load(KEYS[1])
local left = math.max(0, untl - now)
return {left, (daily and left > 0) and 1 or 0, shift}
"""
)


class RedisRateBudget(RateBudget):
    """The five scripts, registered on the store's client, and the key layout.

    Args:
        store: The Redis store (its errors, and ``ready`` before the first command).
        client: Its client.
        prefix: Its key prefix.
        ready: Awaited before each script (a Cluster client learns its slots once).
    """

    def __init__(
        self,
        store: BaseTokenStore,
        client: Redis | RedisCluster,
        prefix: str,
        ready: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(store)
        self._prefix = prefix
        self._ready = ready
        self._permit = client.register_script(PERMIT_SCRIPT)
        self._pause_script = client.register_script(PAUSE_SCRIPT)
        self._paused_script = client.register_script(PAUSED_SCRIPT)
        self._count_script = client.register_script(COUNT_SCRIPT)
        self._notices_script = client.register_script(NOTICES_SCRIPT)

    def key(self, key: str) -> str:
        """The Redis key of bucket ``key`` (hash tag: its scope)."""
        scope = check_key(key)
        return f"{self._prefix}:{{{scope}}}:rate:{key[len(scope) + 1:]}"

    def _notices_key(self, scope: str) -> str:
        return f"{self._prefix}:{{{scope}}}:notices"

    async def _acquire(
        self, key: str, interval: float, burst: int, max_wait: float, cells: int
    ) -> Permit:
        """One script, one round trip: GCRA on Redis's clock (``TIME``)."""
        await self._ready()
        reply: Any = await self._permit(
            keys=[self.key(key)],
            args=[max(1, round(interval * _US)), burst, math.floor(max_wait * _US), cells],
        )
        wait, granted, shift, ahead = (int(value) for value in reply)
        return Permit(wait / _US, bool(granted), shift / _US, ahead / _US)

    async def _pause(
        self, key: str, seconds: float | None, daily: bool, until: float | None
    ) -> Pause:
        scope = check_key(key)
        if until is not None:
            mode, value = "u", max(0, math.ceil(until * _US))
        elif seconds is not None:
            mode, value = "s", math.ceil(seconds * _US)
        else:
            mode, value = "m", 0
        await self._ready()
        reply: Any = await self._pause_script(
            keys=[self.key(key), self._notices_key(scope)],
            args=[mode, value, "1" if daily else "0", key[len(scope) + 1:]],
        )
        left, is_daily = (int(v) for v in reply)
        return Pause(left / _US, bool(is_daily))

    async def _count(self, key: str, limit: int, period: float) -> Tally:
        await self._ready()
        reply: Any = await self._count_script(
            keys=[self.key(key)], args=[limit, round(period * _US)]
        )
        granted, left, remaining = (int(v) for v in reply)
        return Tally(bool(granted), left / _US, remaining)

    async def _notices(self, scope: str) -> dict[str, Pause]:
        await self._ready()
        reply: Any = await self._notices_script(keys=[self._notices_key(scope)])
        found = {}
        for i in range(0, len(reply) - 2, 3):
            name = reply[i].decode() if isinstance(reply[i], bytes) else str(reply[i])
            found[name] = Pause(int(reply[i + 1]) / _US, bool(int(reply[i + 2])))
        return found

    async def _paused(self, key: str) -> Pause:
        await self._ready()
        reply: Any = await self._paused_script(keys=[self.key(key)])
        left, daily, shift = (int(value) for value in reply)
        return Pause(left / _US, bool(daily), shift / _US)

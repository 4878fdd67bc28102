"""RedisRateBudget: the rate budget of :class:`~zoom_s2s.stores.redis.RedisTokenStore`.

A bucket key ``<scope>.<name>`` (``zoom_s2s.stores.budget``) lives at::

    <prefix>:{<scope>}:rate:<name>   HASH {tat, until, daily, shift}, µs of Redis's clock,
                                     PEXPIRE = until the state no longer matters

Every key of one scope (an account) shares the hash tag ``{<scope>}``, so the
scripts, which may touch a bucket and a hold together, run on one Cluster
slot. Each permit is one script (one round trip): GCRA on Redis's own clock
(``TIME``), so the clocks of the hosts never matter. The scripts follow the
rules of ``zoom_s2s.stores.redis.scripts``: arguments are checked before the first write,
and state read back is bounded (a ``tat`` or pause further ahead than
``MAX_AHEAD`` is ignored), so a planted value cannot stall the fleet for
longer than a day.

Beyond the token scripts' commands they call ``TIME`` (:data:`RATE_COMMANDS`).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..base import BaseTokenStore
from ..budget import MAX_AHEAD, Pause, Permit, RateBudget, check_key

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

__all__ = ["PAUSED_SCRIPT", "PAUSE_SCRIPT", "PERMIT_SCRIPT", "RATE_COMMANDS", "RedisRateBudget"]

RATE_COMMANDS = ("TIME",)
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
"""

# KEYS[1]: bucket, KEYS[2]: hold (KEYS[1] again when there is none).
# ARGV[1]: interval µs (1 .. 86400e6), ARGV[2]: burst (1 .. 10000),
# ARGV[3]: max_wait µs (0 .. 86400e6).
# Returns {wait µs, granted 1/0, shift µs}.
PERMIT_SCRIPT = (
    """
local interval, burst, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if not interval or interval < 1 or interval > 86400000000 or not burst or burst < 1
    or burst > 10000 or burst ~= math.floor(burst) or not max_wait or max_wait < 0
    or max_wait > 86400000000 then
  return redis.error_reply('ERR zoom_s2s: permit arguments out of range')
end
"""
    + _PRELUDE
    + """
local tat, untl, daily, shift, foreign = load(KEYS[1])
if KEYS[2] ~= KEYS[1] then
  local _, huntil = load(KEYS[2])
  if huntil > now then return {huntil - now, 0, shift} end
end
if daily and untl > now then return {untl - now, 0, shift} end
local allow = math.max(now, tat - (burst - 1) * interval, untl)
local wait = allow - now
if wait > max_wait then return {wait, 0, shift} end
local next_tat = math.max(tat, allow) + interval
if foreign then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'tat', fmt(next_tat))
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(next_tat, untl) - now) / 1000) + 1000)
return {wait, 1, shift}
"""
)

# KEYS[1]: bucket. ARGV[1]: seconds in µs (0 .. MAX_PAUSE), ARGV[2]: '1' daily, '0' not.
# Returns 1 if the pause was extended, 0 if it already lasted longer.
PAUSE_SCRIPT = (
    """
local span = tonumber(ARGV[1])
if not span or span < 0 or span > 86460000000 or (ARGV[2] ~= '1' and ARGV[2] ~= '0') then
  return redis.error_reply('ERR zoom_s2s: pause arguments out of range')
end
"""
    + _PRELUDE
    + """
local tat, untl, daily, shift, foreign = load(KEYS[1])
local stop = now + span
if stop <= untl then return 0 end
if ARGV[2] ~= '1' then
  local extension = stop - math.max(untl, now)
  tat = math.max(tat, now) + extension
  shift = shift + extension
end
if foreign then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'tat', fmt(tat), 'until', fmt(stop), 'daily', ARGV[2],
           'shift', fmt(shift))
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(tat, stop) - now) / 1000) + 1000)
return 1
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
    """The three scripts, registered on the store's client, and the key layout.

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

    def key(self, key: str) -> str:
        """The Redis key of bucket ``key`` (hash tag: its scope)."""
        scope = check_key(key)
        return f"{self._prefix}:{{{scope}}}:rate:{key[len(scope) + 1:]}"

    async def _acquire(
        self, key: str, interval: float, burst: int, max_wait: float, hold: str | None
    ) -> Permit:
        """One script, one round trip: GCRA on Redis's clock (``TIME``)."""
        bucket = self.key(key)
        held = bucket if hold is None else self.key(hold)
        await self._ready()
        reply: Any = await self._permit(
            keys=[bucket, held],
            args=[max(1, round(interval * _US)), burst, math.floor(max_wait * _US)],
        )
        wait, granted, shift = (int(value) for value in reply)
        return Permit(wait / _US, bool(granted), shift / _US)

    async def _pause(self, key: str, seconds: float, daily: bool) -> None:
        await self._ready()
        await self._pause_script(
            keys=[self.key(key)], args=[math.ceil(seconds * _US), "1" if daily else "0"]
        )

    async def _paused(self, key: str) -> Pause:
        await self._ready()
        reply: Any = await self._paused_script(keys=[self.key(key)])
        left, daily, shift = (int(value) for value in reply)
        return Pause(left / _US, bool(daily), shift / _US)

"""RedisClaims: the webhook claims of :class:`~zoom_s2s.stores.redis.RedisTokenStore`.

A claim or order mark ``<key>`` lives at::

    <prefix>:{webhooks}:claim:<key>   STRING "r:<owner>" (running) or "d" (done);
                                      or the newest event_ts (an order mark)
                                      PX = the lease, or how long it is kept

Every key shares the hash tag ``{webhooks}``, so a claim that checks an order
mark runs on one Cluster slot. Each step is one script (one round trip):
``SET ... PX`` only where no live claim is, and extend, finish and release
only by the owner (its string is checked inside the script). Expiry is
Redis's own: the clocks of the hosts never matter.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..base import BaseTokenStore
from ..claims import ClaimAnswer, Outcome, WebhookClaims

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

__all__ = ["CLAIM_SCRIPT", "OWNED_SCRIPT", "RedisClaims"]

# KEYS[1]: claim, KEYS[2]: order mark (KEYS[1] again when there is none).
# ARGV[1]: owner, ARGV[2]: lease ms, ARGV[3]: event_ts, ARGV[4]: '1' drop stale, ARGV[5]: keep ms.
# Returns {outcome, stale 1/0}.
CLAIM_SCRIPT = """
local held = redis.call('GET', KEYS[1])
if held then
  if held == 'd' then return {'done', 0} end
  return {'busy', 0}
end
local stale = 0
if KEYS[2] ~= KEYS[1] then
  local newest = tonumber(redis.call('GET', KEYS[2]) or '')
  local ts = tonumber(ARGV[3])
  if newest and ts < newest then
    stale = 1
    if ARGV[4] == '1' then return {'dropped', 1} end
  else
    redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[5])
  end
end
redis.call('SET', KEYS[1], 'r:' .. ARGV[1], 'PX', ARGV[2])
return {'claimed', stale}
"""

# KEYS[1]: claim. ARGV[1]: owner, ARGV[2]: 'extend' | 'finish' | 'release', ARGV[3]: ms.
# Returns 1 if the owner held the running claim (and the step was done), else 0.
OWNED_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= 'r:' .. ARGV[1] then return 0 end
if ARGV[2] == 'extend' then redis.call('PEXPIRE', KEYS[1], ARGV[3])
elseif ARGV[2] == 'finish' then redis.call('SET', KEYS[1], 'd', 'PX', ARGV[3])
else redis.call('DEL', KEYS[1]) end
return 1
"""


_OUTCOMES: dict[str, Outcome] = {
    "claimed": "claimed", "done": "done", "busy": "busy", "dropped": "dropped"
}


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisClaims(WebhookClaims):
    """The two scripts, registered on the store's client, and the key layout.

    Args:
        store: The Redis store (its errors).
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
        self._claim_script = client.register_script(CLAIM_SCRIPT)
        self._owned_script = client.register_script(OWNED_SCRIPT)

    def key(self, key: str) -> str:
        """The Redis key of claim or order mark ``key``."""
        return f"{self._prefix}:{{webhooks}}:claim:{key}"

    async def _claim(
        self, key: str, owner: str, lease: float, keep: float, order: str | None,
        event_ts: int, drop_stale: bool,
    ) -> ClaimAnswer:
        claim = self.key(key)
        await self._ready()
        reply: Any = await self._claim_script(
            keys=[claim, claim if order is None else self.key(order)],
            args=[owner, _ms(lease), event_ts, "1" if drop_stale else "0", _ms(keep)],
        )
        outcome, stale = reply
        text = outcome.decode() if isinstance(outcome, bytes) else str(outcome)
        return ClaimAnswer(_OUTCOMES[text], bool(int(stale)))

    async def _owned(self, key: str, owner: str, step: str, seconds: float) -> bool:
        await self._ready()
        reply: Any = await self._owned_script(
            keys=[self.key(key)], args=[owner, step, _ms(seconds)]
        )
        return bool(int(reply))

    async def _extend(self, key: str, owner: str, lease: float) -> bool:
        return await self._owned(key, owner, "extend", lease)

    async def _finish(self, key: str, owner: str, keep: float) -> bool:
        return await self._owned(key, owner, "finish", keep)

    async def _release(self, key: str, owner: str) -> bool:
        return await self._owned(key, owner, "release", 0.001)

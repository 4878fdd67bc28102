"""The Lua scripts of :class:`~zoom_s2s.stores.redis.RedisTokenStore`.

Each runs atomically and touches only keys that share one hash tag, so they
work on Redis Cluster. ``PUBLISH`` goes through ``redis.pcall``: waking waiters
is best effort, and an ACL user without channel rights can still write and
release (waiters then poll).
"""

__all__ = [
    "DELETE_SCRIPT",
    "NEXT_GENERATION_SCRIPT",
    "READ_SCRIPT",
    "RELEASE_SCRIPT",
    "WRITE_SCRIPT",
]

# KEYS[1]: token hash. ARGV: none.
# Returns {data, pttl_ms}: data is the record (nil if absent); pttl is PTTL's
# answer, or -3 if the key exists but is not a hash.
READ_SCRIPT = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then return {false, -2} end
if kind ~= 'hash' then return {false, -3} end
return {redis.call('HGET', KEYS[1], 'data'), redis.call('PTTL', KEYS[1])}
"""

# KEYS[1]: token hash, KEYS[2]: fence.
# ARGV[1]: generation, ARGV[2]: record, ARGV[3]: fingerprint, ARGV[4]: TTL in ms
# (0: the token already expired, store none), ARGV[5]: channel.
# Returns 1 if written, 0 if ARGV[1] is below the fence (nothing changed).
WRITE_SCRIPT = """
if tonumber(ARGV[1]) < tonumber(redis.call('GET', KEYS[2]) or '0') then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
if tonumber(ARGV[4]) > 0 then
  redis.call('HSET', KEYS[1], 'fp', ARGV[3], 'gen', ARGV[1], 'data', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
redis.pcall('PUBLISH', ARGV[5], 'written')
return 1
"""

# KEYS[1]: token hash. ARGV[1]: fingerprint, ARGV[2]: channel.
# Returns 1 if the token had that fingerprint and was deleted, else 0.
DELETE_SCRIPT = """
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return 0 end
if redis.call('HGET', KEYS[1], 'fp') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.pcall('PUBLISH', ARGV[2], 'deleted')
return 1
"""

# KEYS[1]: lock. ARGV[1]: owner, ARGV[2]: channel.
# Returns 1 if ARGV[1] held the lock and it was released, 0 if expired or taken over.
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.pcall('PUBLISH', ARGV[2], 'released')
return 1
"""

# KEYS[1]: generation counter, KEYS[2]: fence. ARGV: none.
# Returns the next generation, above every one issued or written (even if the
# counter was lost while the fence survived).
NEXT_GENERATION_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
local fence = tonumber(redis.call('GET', KEYS[2]) or '0')
if n <= fence then
  n = fence + 1
  redis.call('SET', KEYS[1], n)
end
return n
"""

//! The Redis release limitkv follows. A leaf: the command layer reports it (`INFO`'s
//! `redis_version`, `HELLO`'s `version`) and the Lua sandbox exposes it
//! (`redis.REDIS_VERSION`, `redis.REDIS_VERSION_NUM`), so it lives below both.

/// The version limitkv reports as `redis_version` / HELLO `version`: the Redis release whose
/// command surface and replies it follows.
pub const REDIS_COMPAT_VERSION: &str = "7.4.0";

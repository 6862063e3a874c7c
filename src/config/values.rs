//! Settings whose values are more than a number or a word: `client-output-buffer-limit`'s
//! per-class limits, `tls-auth-clients`, `tls-protocols`, and Redis's encoding thresholds. Parsing and rendering only, with
//! Redis's texts; [`super::Config`] stores them.

use super::{parse_memory, ConfigError};

/// `tls-auth-clients`: whether clients on the TLS port must present a certificate signed by
/// one of the configured CAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsAuthClients {
    /// A client without a valid certificate is refused (Redis's default).
    #[default]
    Yes,
    /// No certificate is asked for.
    No,
    /// A certificate is asked for and, if one is sent, verified; none is accepted.
    Optional,
}

impl TlsAuthClients {
    /// Redis's name for the setting.
    pub fn name(self) -> &'static str {
        match self {
            TlsAuthClients::Yes => "yes",
            TlsAuthClients::No => "no",
            TlsAuthClients::Optional => "optional",
        }
    }
}

/// Parses `tls-protocols` (`"TLSv1.2 TLSv1.3"`, case-insensitive; empty means both) into
/// (TLS 1.2 allowed, TLS 1.3 allowed). rustls implements neither TLSv1 nor TLSv1.1, so
/// those are refused rather than silently dropped.
pub fn parse_tls_protocols(value: &str) -> Result<(bool, bool), String> {
    let (mut v12, mut v13) = (false, false);
    for token in value.split_whitespace() {
        match token.to_ascii_lowercase().as_str() {
            "tlsv1.2" => v12 = true,
            "tlsv1.3" => v13 = true,
            "tlsv1" | "tlsv1.1" => {
                return Err(format!(
                    "{token} is not supported (limitkv's TLS offers TLSv1.2 and TLSv1.3)"
                ))
            }
            _ => return Err(
                "Invalid tls-protocols specified. Use a combination of 'TLSv1.2' and 'TLSv1.3'."
                    .into(),
            ),
        }
    }
    if !v12 && !v13 {
        return Ok((true, true));
    }
    Ok((v12, v13))
}

/// One client class's `client-output-buffer-limit`: a client whose pending output reaches
/// `hard` bytes, or stays at or above `soft` bytes for more than `soft_seconds`, is
/// disconnected. Zero bytes disables a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputBufferLimit {
    /// Disconnect at once at this many pending bytes (0 = no hard limit).
    pub hard: u64,
    /// Disconnect when pending bytes stay at or above this ... (0 = no soft limit).
    pub soft: u64,
    /// ... for more than this many seconds.
    pub soft_seconds: u64,
}

/// `client-output-buffer-limit` for Redis's three client classes. limitkv enforces the
/// `pubsub` class (on queued Pub/Sub messages); `normal` and `replica` are kept so that
/// `CONFIG GET` / `CONFIG SET` round-trip as in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputBufferLimits {
    /// Ordinary clients (Redis's default: no limit).
    pub normal: OutputBufferLimit,
    /// Replicas (`slave` / `replica`); limitkv has none.
    pub replica: OutputBufferLimit,
    /// Clients subscribed to at least one channel, pattern or shard channel.
    pub pubsub: OutputBufferLimit,
}

impl Default for OutputBufferLimits {
    fn default() -> Self {
        const MB: u64 = 1024 * 1024;
        OutputBufferLimits {
            normal: OutputBufferLimit::default(),
            replica: OutputBufferLimit {
                hard: 256 * MB,
                soft: 64 * MB,
                soft_seconds: 60,
            },
            pubsub: OutputBufferLimit {
                hard: 32 * MB,
                soft: 8 * MB,
                soft_seconds: 60,
            },
        }
    }
}

impl OutputBufferLimits {
    /// Applies `<class> <hard> <soft> <soft seconds>` groups (any number, each class
    /// independently), all or nothing, with Redis's error texts.
    pub fn apply(&mut self, value: &str) -> Result<(), ConfigError> {
        let words: Vec<&str> = value.split_whitespace().collect();
        if words.len() % 4 != 0 {
            return Err(ConfigError::Invalid(
                "Wrong number of arguments in buffer limit configuration.".into(),
            ));
        }
        let mut next = *self;
        for group in words.chunks_exact(4) {
            let class = match group[0].to_ascii_lowercase().as_str() {
                "normal" => &mut next.normal,
                "slave" | "replica" => &mut next.replica,
                "pubsub" => &mut next.pubsub,
                _ => {
                    return Err(ConfigError::Invalid(
                        "Invalid client class specified in buffer limit configuration.".into(),
                    ))
                }
            };
            let bad = || {
                ConfigError::Invalid(
                    "Error in hard, soft or soft_seconds setting in buffer limit configuration."
                        .into(),
                )
            };
            let hard = parse_memory(group[1]).ok_or_else(bad)?;
            let soft = parse_memory(group[2]).ok_or_else(bad)?;
            let soft_seconds = group[3]
                .parse::<i64>()
                .ok()
                .and_then(|s| u64::try_from(s).ok())
                .ok_or_else(bad)?;
            *class = OutputBufferLimit {
                hard,
                soft,
                soft_seconds,
            };
        }
        *self = next;
        Ok(())
    }

    /// The value as `CONFIG GET` prints it: `normal 0 0 0 slave ... pubsub ...`.
    pub fn render(&self) -> String {
        [
            ("normal", self.normal),
            ("slave", self.replica),
            ("pubsub", self.pubsub),
        ]
        .iter()
        .map(|(name, l)| format!("{name} {} {} {}", l.hard, l.soft, l.soft_seconds))
        .collect::<Vec<_>>()
        .join(" ")
    }
}

/// One of Redis's encoding thresholds: its name, its older alias, its default and bounds, and
/// whether it is a memory value (`64mb`).
struct EncodingParam {
    name: &'static str,
    alias: Option<&'static str>,
    default: i64,
    min: i64,
    max: i64,
    memory: bool,
}

const fn param(
    name: &'static str,
    alias: Option<&'static str>,
    default: i64,
    min: i64,
    memory: bool,
) -> EncodingParam {
    EncodingParam {
        name,
        alias,
        default,
        min,
        max: if min < 0 { i32::MAX as i64 } else { i64::MAX },
        memory,
    }
}

/// Redis 7.0's encoding thresholds (and 7.2's set listpack pair), with Redis's defaults.
const ENCODING_PARAMS: &[EncodingParam] = &[
    param(
        "hash-max-listpack-entries",
        Some("hash-max-ziplist-entries"),
        512,
        0,
        false,
    ),
    param(
        "hash-max-listpack-value",
        Some("hash-max-ziplist-value"),
        64,
        0,
        true,
    ),
    param(
        "zset-max-listpack-entries",
        Some("zset-max-ziplist-entries"),
        128,
        0,
        false,
    ),
    param(
        "zset-max-listpack-value",
        Some("zset-max-ziplist-value"),
        64,
        0,
        true,
    ),
    param("set-max-intset-entries", None, 512, 0, false),
    param("set-max-listpack-entries", None, 128, 0, false),
    param("set-max-listpack-value", None, 64, 0, true),
    param(
        "list-max-listpack-size",
        Some("list-max-ziplist-size"),
        -2,
        i32::MIN as i64,
        false,
    ),
    param("list-compress-depth", None, 0, 0, false),
    param("stream-node-max-bytes", None, 4096, 0, true),
    param("stream-node-max-entries", None, 100, 0, false),
];

/// Redis's encoding thresholds (`hash-max-listpack-entries`, `set-max-intset-entries`, ...).
/// limitkv stores every value the same way whatever its size, so these change no behaviour:
/// they are accepted (config file, `CONFIG SET`) and reported (`CONFIG GET`) so tools and test
/// suites that tune them work, and `OBJECT ENCODING` reads them to name the encoding Redis
/// would use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodingLimits {
    values: Vec<i64>,
}

impl Default for EncodingLimits {
    fn default() -> Self {
        EncodingLimits {
            values: ENCODING_PARAMS.iter().map(|p| p.default).collect(),
        }
    }
}

impl EncodingLimits {
    fn index(name: &str) -> Option<usize> {
        ENCODING_PARAMS
            .iter()
            .position(|p| p.name == name || p.alias == Some(name))
    }

    /// True for a threshold's name or alias.
    pub fn knows(name: &str) -> bool {
        Self::index(name).is_some()
    }

    /// The value of `name` (or its alias).
    pub fn get(&self, name: &str) -> Option<i64> {
        Self::index(name).map(|i| self.values[i])
    }

    /// Every name and alias with its value, as `CONFIG GET` lists them.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (p, v) in ENCODING_PARAMS.iter().zip(&self.values) {
            out.push((p.name, v.to_string()));
            if let Some(alias) = p.alias {
                out.push((alias, v.to_string()));
            }
        }
        out
    }

    /// Sets `name` from text, with Redis's parse, bounds and error texts.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let i = Self::index(name)
            .ok_or_else(|| ConfigError::Invalid(format!("unknown setting '{name}'")))?;
        let p = &ENCODING_PARAMS[i];
        let n = if p.memory {
            parse_memory(value)
                .and_then(|n| i64::try_from(n).ok())
                .ok_or_else(|| ConfigError::Invalid("argument must be a memory value".into()))?
        } else {
            // Redis's strict integers: no sign but `-`, no blanks.
            value
                .parse::<i64>()
                .ok()
                .filter(|_| !value.starts_with('+'))
                .ok_or_else(|| {
                    ConfigError::Invalid("argument couldn't be parsed into an integer".into())
                })?
        };
        if !(p.min..=p.max).contains(&n) {
            return Err(ConfigError::Invalid(format!(
                "argument must be between {} and {} inclusive",
                p.min, p.max
            )));
        }
        self.values[i] = n;
        Ok(())
    }

    /// A threshold by its (current) name, for the encoding rules; its default if unknown.
    pub fn limit(&self, name: &str) -> i64 {
        self.get(name).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_buffer_limits_parse_and_render_like_redis() {
        let mut l = OutputBufferLimits::default();
        assert_eq!(
            l.render(),
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
        l.apply("PUBSUB 64mb 16mb 30 replica 1 2 3").unwrap();
        l.apply("").unwrap();
        assert_eq!(
            l.render(),
            "normal 0 0 0 slave 1 2 3 pubsub 67108864 16777216 30"
        );
        let msg = |v: &str| {
            OutputBufferLimits::default()
                .apply(v)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            msg("pubsub 1 2"),
            "Wrong number of arguments in buffer limit configuration."
        );
        assert_eq!(
            msg("foo 1 2 3"),
            "Invalid client class specified in buffer limit configuration."
        );
        for bad in [
            "pubsub x 2 3",
            "pubsub 1 2 -1",
            "pubsub -1 2 3",
            "pubsub 1.5 2 3",
        ] {
            assert_eq!(
                msg(bad),
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
                "{bad}"
            );
        }
        // All or nothing: a bad group leaves the earlier ones unapplied.
        let mut l = OutputBufferLimits::default();
        assert!(l.apply("pubsub 1 2 3 foo 1 2 3").is_err());
        assert_eq!(l, OutputBufferLimits::default());
    }
}

/// `maxmemory-policy`: what limitkv does when memory in use goes over `maxmemory`.
///
/// The default is `noeviction`: a rate limiter that evicts a key forgets that identity's spent
/// budget and admits it afresh, so by default it refuses commands that may grow memory
/// instead. The evicting policies are opt-in (docs/operations.md, "Memory"); eviction is
/// approximated by sampling, as in Redis (the store's `evict` module). The LFU policies are
/// recognised and refused: limitkv keeps no access frequency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxmemoryPolicy {
    /// Refuse commands that may grow memory with `-OOM` (Redis's default).
    #[default]
    NoEviction,
    /// Evict the least recently used of any keys (by the states' own timestamps).
    AllKeysLru,
    /// Evict random keys.
    AllKeysRandom,
    /// Evict the least recently used of the keys with an expiry.
    VolatileLru,
    /// Evict random keys with an expiry.
    VolatileRandom,
    /// Evict the keys with an expiry closest to expiring.
    VolatileTtl,
}

impl MaxmemoryPolicy {
    /// Every policy limitkv offers, in Redis's spelling.
    pub const ALL: &'static [MaxmemoryPolicy] = &[
        MaxmemoryPolicy::NoEviction,
        MaxmemoryPolicy::AllKeysLru,
        MaxmemoryPolicy::AllKeysRandom,
        MaxmemoryPolicy::VolatileLru,
        MaxmemoryPolicy::VolatileRandom,
        MaxmemoryPolicy::VolatileTtl,
    ];

    /// Redis's LFU policies, which limitkv refuses (it keeps no access counter per key).
    pub const REFUSED: &'static [&'static str] = &["volatile-lfu", "allkeys-lfu"];

    /// Parses a policy name (case-insensitive), explaining a refusal.
    pub fn parse(value: &str) -> Result<MaxmemoryPolicy, String> {
        let name = value.trim().to_ascii_lowercase();
        if let Some(p) = MaxmemoryPolicy::ALL.iter().find(|p| p.name() == name) {
            return Ok(*p);
        }
        if MaxmemoryPolicy::REFUSED.contains(&name.as_str()) {
            return Err(format!(
                "maxmemory-policy '{name}' is not supported: limitkv keeps no access frequency \
                 per key; use allkeys-lru or volatile-lru (see docs/operations.md)"
            ));
        }
        Err(format!(
            "argument '{value}' is invalid for 'maxmemory-policy'"
        ))
    }

    /// Redis's name.
    pub fn name(self) -> &'static str {
        match self {
            MaxmemoryPolicy::NoEviction => "noeviction",
            MaxmemoryPolicy::AllKeysLru => "allkeys-lru",
            MaxmemoryPolicy::AllKeysRandom => "allkeys-random",
            MaxmemoryPolicy::VolatileLru => "volatile-lru",
            MaxmemoryPolicy::VolatileRandom => "volatile-random",
            MaxmemoryPolicy::VolatileTtl => "volatile-ttl",
        }
    }
}

//! `notify-keyspace-events`: which keyspace notifications are published, as Redis's class
//! letters (`K E g $ l s h z x e t m d n A`). Parsing and rendering follow Redis 7.0's
//! `keyspaceEventsStringToFlags` / `keyspaceEventsFlagsToString`, so `CONFIG GET` answers the
//! canonical string (`KA` reads back as `AK`).

use super::ConfigError;

/// The classes of keyspace events, as a bit set (the same bits as Redis's `NOTIFY_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NotifyFlags(pub u32);

impl NotifyFlags {
    /// `K`: `__keyspace@<db>__:<key>` channels.
    pub const KEYSPACE: u32 = 1 << 0;
    /// `E`: `__keyevent@<db>__:<event>` channels.
    pub const KEYEVENT: u32 = 1 << 1;
    /// `g`: generic commands (`DEL`, `EXPIRE`, `RENAME`, ...).
    pub const GENERIC: u32 = 1 << 2;
    /// `$`: string commands.
    pub const STRING: u32 = 1 << 3;
    /// `l`: list commands.
    pub const LIST: u32 = 1 << 4;
    /// `s`: set commands.
    pub const SET: u32 = 1 << 5;
    /// `h`: hash commands.
    pub const HASH: u32 = 1 << 6;
    /// `z`: sorted set commands.
    pub const ZSET: u32 = 1 << 7;
    /// `x`: keys that expired.
    pub const EXPIRED: u32 = 1 << 8;
    /// `e`: keys evicted by `maxmemory` (limitkv never evicts; accepted for compatibility).
    pub const EVICTED: u32 = 1 << 9;
    /// `t`: stream commands.
    pub const STREAM: u32 = 1 << 10;
    /// `m`: key misses (accepted; limitkv publishes none, see docs/commands.md).
    pub const KEY_MISS: u32 = 1 << 11;
    /// `d`: module key-space events; limitkv's limiter commands publish in this class.
    pub const MODULE: u32 = 1 << 13;
    /// `n`: a key was created.
    pub const NEW: u32 = 1 << 14;
    /// `A`: every class but `m` and `n`.
    pub const ALL: u32 = Self::GENERIC
        | Self::STRING
        | Self::LIST
        | Self::SET
        | Self::HASH
        | Self::ZSET
        | Self::EXPIRED
        | Self::EVICTED
        | Self::STREAM
        | Self::MODULE;

    /// Parses Redis's class letters; any other character is Redis's error.
    pub fn parse(value: &str) -> Result<NotifyFlags, ConfigError> {
        let mut flags = 0;
        for c in value.chars() {
            flags |= match c {
                'A' => Self::ALL,
                'g' => Self::GENERIC,
                '$' => Self::STRING,
                'l' => Self::LIST,
                's' => Self::SET,
                'h' => Self::HASH,
                'z' => Self::ZSET,
                'x' => Self::EXPIRED,
                'e' => Self::EVICTED,
                'K' => Self::KEYSPACE,
                'E' => Self::KEYEVENT,
                't' => Self::STREAM,
                'm' => Self::KEY_MISS,
                'd' => Self::MODULE,
                'n' => Self::NEW,
                _ => {
                    return Err(ConfigError::Invalid(
                        "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into(),
                    ))
                }
            };
        }
        Ok(NotifyFlags(flags))
    }

    /// The canonical letters, as `CONFIG GET` shows them.
    pub fn render(self) -> String {
        let f = self.0;
        let mut out = String::new();
        if f & Self::ALL == Self::ALL {
            out.push('A');
        } else {
            for (bit, c) in [
                (Self::GENERIC, 'g'),
                (Self::STRING, '$'),
                (Self::LIST, 'l'),
                (Self::SET, 's'),
                (Self::HASH, 'h'),
                (Self::ZSET, 'z'),
                (Self::EXPIRED, 'x'),
                (Self::EVICTED, 'e'),
                (Self::STREAM, 't'),
                (Self::MODULE, 'd'),
                (Self::NEW, 'n'),
            ] {
                if f & bit != 0 {
                    out.push(c);
                }
            }
        }
        for (bit, c) in [
            (Self::KEYSPACE, 'K'),
            (Self::KEYEVENT, 'E'),
            (Self::KEY_MISS, 'm'),
        ] {
            if f & bit != 0 {
                out.push(c);
            }
        }
        out
    }

    /// True when some event would be published: a channel kind and a class are both on.
    pub fn publishes(self) -> bool {
        self.0 & (Self::KEYSPACE | Self::KEYEVENT) != 0
            && self.0 & !(Self::KEYSPACE | Self::KEYEVENT) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_as_redis_does() {
        let r = |s: &str| NotifyFlags::parse(s).unwrap().render();
        assert_eq!(r("gKE"), "gKE");
        assert_eq!(r("$lshzxeKE"), "$lshzxeKE");
        assert_eq!(r("KA"), "AK");
        assert_eq!(r("EA"), "AE");
        assert_eq!(r(""), "");
        assert_eq!(r("nmdE"), "dnEm");
        assert_eq!(r("An"), "A");
    }

    #[test]
    fn rejects_unknown_letters() {
        let e = NotifyFlags::parse("KEq").unwrap_err().to_string();
        assert!(e.contains("Invalid event class character. Use 'Ag$lshzxeKEtmdn'."));
    }

    #[test]
    fn publishes_needs_a_channel_and_a_class() {
        assert!(!NotifyFlags::parse("KE").unwrap().publishes());
        assert!(!NotifyFlags::parse("A").unwrap().publishes());
        assert!(NotifyFlags::parse("Kg").unwrap().publishes());
    }
}

//! The replication settings (`replicaof`, `masterauth`, `repl-backlog-size`, ...), with
//! Redis's names, defaults and checks. Kept apart from `config.rs` so that file stays small;
//! [`crate::config::Config::set`] hands every name it does not know to [`ReplConfig::set`].

use super::{parse_memory, parse_yes_no, ConfigError};

/// Replication settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplConfig {
    /// The master this server replicates (`replicaof HOST PORT`; `slaveof` is an alias).
    pub replicaof: Option<(String, u16)>,
    /// Password sent to the master with `AUTH` (`masterauth`).
    pub masterauth: Option<String>,
    /// User sent to the master with `AUTH` (`masteruser`); without it `AUTH` has one argument.
    pub masteruser: Option<String>,
    /// A replica refuses writes (`replica-read-only`, alias `slave-read-only`; default yes).
    pub replica_read_only: bool,
    /// Sentinel promotes the replica with the lowest non-zero priority (`replica-priority`,
    /// alias `slave-priority`; default 100; 0 = never promoted).
    pub replica_priority: u32,
    /// Whether Sentinel lists this replica (`replica-announced`; default yes).
    pub replica_announced: bool,
    /// Bytes of the replication stream kept for partial resync (`repl-backlog-size`).
    pub repl_backlog_size: u64,
    /// Writes are refused unless this many replicas acknowledged within `min-replicas-max-lag`
    /// seconds (`min-replicas-to-write`, alias `min-slaves-to-write`; 0 = off).
    pub min_replicas_to_write: u32,
    /// See `min_replicas_to_write` (`min-replicas-max-lag`; default 10).
    pub min_replicas_max_lag: u32,
    /// Seconds between the master's pings in the stream (`repl-ping-replica-period`).
    pub repl_ping_replica_period: u32,
    /// Seconds without traffic after which a link is considered dead (`repl-timeout`).
    pub repl_timeout: u32,
    /// Address announced to the master instead of the connection's (`replica-announce-ip`).
    pub replica_announce_ip: Option<String>,
    /// Port announced to the master instead of the listening port (`replica-announce-port`).
    pub replica_announce_port: u16,
}

impl Default for ReplConfig {
    fn default() -> Self {
        ReplConfig {
            replicaof: None,
            masterauth: None,
            masteruser: None,
            replica_read_only: true,
            replica_priority: 100,
            replica_announced: true,
            repl_backlog_size: crate::persist::feed::DEFAULT_BACKLOG as u64,
            min_replicas_to_write: 0,
            min_replicas_max_lag: 10,
            repl_ping_replica_period: 10,
            repl_timeout: 60,
            replica_announce_ip: None,
            replica_announce_port: 0,
        }
    }
}

/// The replication settings `CONFIG SET` may change (Redis's mutable ones).
pub const MUTABLE: &[&str] = &[
    "masterauth",
    "masteruser",
    "replica-read-only",
    "slave-read-only",
    "replica-priority",
    "slave-priority",
    "replica-announced",
    "repl-backlog-size",
    "min-replicas-to-write",
    "min-slaves-to-write",
    "min-replicas-max-lag",
    "min-slaves-max-lag",
    "repl-ping-replica-period",
    "repl-ping-slave-period",
    "repl-timeout",
    "replica-announce-ip",
    "slave-announce-ip",
    "replica-announce-port",
    "slave-announce-port",
];

/// Parses `HOST PORT` (or `no one`) as `replicaof` takes it.
pub fn parse_replicaof(value: &str) -> Result<Option<(String, u16)>, ConfigError> {
    let words: Vec<&str> = value.split_whitespace().collect();
    match words.as_slice() {
        [] => Ok(None),
        [no, one] if no.eq_ignore_ascii_case("no") && one.eq_ignore_ascii_case("one") => Ok(None),
        [host, port] => {
            let port: u16 = port
                .parse()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| ConfigError::Invalid(format!("Invalid master port '{port}'")))?;
            Ok(Some(((*host).to_owned(), port)))
        }
        _ => Err(ConfigError::Invalid(
            "replicaof takes a host and a port, or 'no one'".into(),
        )),
    }
}

impl ReplConfig {
    /// Sets `name` if it is a replication setting: `None` when it is not one.
    pub fn set(&mut self, name: &str, value: &str) -> Option<Result<(), ConfigError>> {
        let bad = || ConfigError::Invalid(format!("argument '{value}' is invalid for '{name}'"));
        let num = |v: &str| v.trim().parse::<u32>().map_err(|_| bad());
        let text = |v: &str| Some(v.to_owned()).filter(|v| !v.is_empty());
        let r = (|| {
            match name {
                "replicaof" | "slaveof" => self.replicaof = parse_replicaof(value)?,
                "masterauth" => self.masterauth = text(value),
                "masteruser" => self.masteruser = text(value),
                "replica-read-only" | "slave-read-only" => {
                    self.replica_read_only = parse_yes_no(value).ok_or_else(bad)?
                }
                "replica-priority" | "slave-priority" => self.replica_priority = num(value)?,
                "replica-announced" => {
                    self.replica_announced = parse_yes_no(value).ok_or_else(bad)?
                }
                "repl-backlog-size" => {
                    self.repl_backlog_size = parse_memory(value)
                        .filter(|n| (1..=1 << 40).contains(n))
                        .ok_or_else(bad)?
                }
                "min-replicas-to-write" | "min-slaves-to-write" => {
                    self.min_replicas_to_write = num(value)?
                }
                "min-replicas-max-lag" | "min-slaves-max-lag" => {
                    self.min_replicas_max_lag = num(value)?
                }
                "repl-ping-replica-period" | "repl-ping-slave-period" => {
                    self.repl_ping_replica_period = num(value)?.max(1)
                }
                "repl-timeout" => self.repl_timeout = num(value)?.max(1),
                "replica-announce-ip" | "slave-announce-ip" => {
                    self.replica_announce_ip = text(value)
                }
                "replica-announce-port" | "slave-announce-port" => {
                    self.replica_announce_port = u16::try_from(num(value)?).map_err(|_| bad())?
                }
                // Accepted with their only meaningful value for limitkv: the snapshot always
                // goes over the socket, and there is no RDB to serve stale data from.
                "repl-diskless-sync"
                | "repl-diskless-load"
                | "replica-serve-stale-data"
                | "slave-serve-stale-data"
                | "repl-diskless-sync-delay" => {}
                _ => return Err(ConfigError::Invalid(String::new())),
            }
            Ok(())
        })();
        match r {
            Err(ConfigError::Invalid(m)) if m.is_empty() => None,
            r => Some(r),
        }
    }

    /// Every replication setting with its value, as `CONFIG GET` reports them (like Redis,
    /// `replicaof` is not among them: `REPLICAOF` and `ROLE` handle it).
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let yes = |b: bool| if b { "yes" } else { "no" }.to_owned();
        vec![
            ("masterauth", self.masterauth.clone().unwrap_or_default()),
            ("masteruser", self.masteruser.clone().unwrap_or_default()),
            ("replica-read-only", yes(self.replica_read_only)),
            ("slave-read-only", yes(self.replica_read_only)),
            ("replica-priority", self.replica_priority.to_string()),
            ("slave-priority", self.replica_priority.to_string()),
            ("replica-announced", yes(self.replica_announced)),
            ("repl-backlog-size", self.repl_backlog_size.to_string()),
            (
                "min-replicas-to-write",
                self.min_replicas_to_write.to_string(),
            ),
            (
                "min-slaves-to-write",
                self.min_replicas_to_write.to_string(),
            ),
            (
                "min-replicas-max-lag",
                self.min_replicas_max_lag.to_string(),
            ),
            ("min-slaves-max-lag", self.min_replicas_max_lag.to_string()),
            (
                "repl-ping-replica-period",
                self.repl_ping_replica_period.to_string(),
            ),
            (
                "repl-ping-slave-period",
                self.repl_ping_replica_period.to_string(),
            ),
            ("repl-timeout", self.repl_timeout.to_string()),
            (
                "replica-announce-ip",
                self.replica_announce_ip.clone().unwrap_or_default(),
            ),
            (
                "replica-announce-port",
                self.replica_announce_port.to_string(),
            ),
            ("repl-diskless-sync", "yes".to_owned()),
            ("repl-diskless-load", "swapdb".to_owned()),
            ("replica-serve-stale-data", "yes".to_owned()),
        ]
    }

    /// The values `CONFIG REWRITE` writes: Redis's canonical names only, with the default
    /// values marked so that a rewrite leaves a default out of a file that lacks it.
    pub fn rewrite_lines(&self) -> Vec<(&'static str, String, bool)> {
        let d = ReplConfig::default();
        let p = self.params();
        let dp = d.params();
        const CANONICAL: &[&str] = &[
            "replicaof",
            "masterauth",
            "masteruser",
            "replica-read-only",
            "replica-priority",
            "replica-announced",
            "repl-backlog-size",
            "min-replicas-to-write",
            "min-replicas-max-lag",
            "repl-ping-replica-period",
            "repl-timeout",
            "replica-announce-ip",
            "replica-announce-port",
        ];
        let replicaof = self
            .replicaof
            .as_ref()
            .map(|(h, p)| format!("{h} {p}"))
            .unwrap_or_default();
        let mut out = vec![("replicaof", replicaof.clone(), replicaof.is_empty())];
        out.extend(
            p.into_iter()
                .zip(dp)
                .filter(|((n, _), _)| CANONICAL.contains(n))
                .map(|((n, v), (_, dv))| (n, v.clone(), v == dv)),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicaof_takes_host_and_port_or_no_one() {
        let mut c = ReplConfig::default();
        assert!(c.set("replicaof", "127.0.0.1 6380").unwrap().is_ok());
        assert_eq!(c.replicaof, Some(("127.0.0.1".into(), 6380)));
        assert!(c.set("slaveof", "NO ONE").unwrap().is_ok());
        assert_eq!(c.replicaof, None);
        assert!(c.set("replicaof", "h 0").unwrap().is_err(), "port 0");
        assert!(c.set("replicaof", "h").unwrap().is_err(), "no port");
        assert!(c.set("maxclients", "1").is_none(), "not a replication key");
    }

    #[test]
    fn replicaof_is_a_flag_and_a_file_line_like_redis_servers() {
        use crate::config::Config;
        let args = [
            "limitkv",
            "--replicaof",
            "127.0.0.1 6380",
            "--masterauth",
            "pw",
        ];
        let c = Config::from_args(args.map(std::ffi::OsString::from)).unwrap();
        assert_eq!(c.repl.replicaof, Some(("127.0.0.1".into(), 6380)));
        assert_eq!(c.repl.masterauth.as_deref(), Some("pw"));
        let mut c = Config::default();
        c.load_str("slaveof 10.0.0.1 7000\nmin-slaves-to-write 2\n", "t.conf")
            .unwrap();
        assert_eq!(c.repl.replicaof, Some(("10.0.0.1".into(), 7000)));
        assert_eq!(c.repl.min_replicas_to_write, 2);
        assert!(c.load_str("replicaof 10.0.0.1\n", "t.conf").is_err());
    }

    #[test]
    fn aliases_and_sizes() {
        let mut c = ReplConfig::default();
        assert!(c.set("repl-backlog-size", "16mb").unwrap().is_ok());
        assert_eq!(c.repl_backlog_size, 16 << 20);
        assert!(c.set("slave-priority", "7").unwrap().is_ok());
        assert_eq!(c.replica_priority, 7);
        assert!(c.set("slave-read-only", "maybe").unwrap().is_err());
        let rewrite = c.rewrite_lines();
        assert!(rewrite.contains(&("replica-priority", "7".into(), false)));
        assert!(rewrite.contains(&("replica-read-only", "yes".into(), true)));
    }
}

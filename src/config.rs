//! Server configuration: one [`Config`] struct built from defaults, an optional Redis-style
//! config file (`key value` lines) and command-line flags, in that order of precedence.
//! Nothing else in the crate reads the environment or the command line.

use std::path::{Path, PathBuf};

use clap::Parser;

use crate::persist::FsyncPolicy;
use thiserror::Error;

mod notify;
mod repl;
pub mod rewrite;
mod values;
mod webhook;
pub use notify::NotifyFlags;
pub use repl::{parse_replicaof, ReplConfig, MUTABLE as REPL_MUTABLE};
pub use values::{
    parse_tls_protocols, EncodingLimits, MaxmemoryPolicy, OutputBufferLimit, OutputBufferLimits,
    TlsAuthClients,
};
pub use webhook::{WebhookConfig, MUTABLE as WEBHOOK_MUTABLE};

/// A configuration problem found at startup or by `CONFIG SET`.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A directive in the config file is unknown or malformed.
    #[error("config file {file}, line {line}: {message}")]
    File {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The config file could not be read.
    #[error("cannot read config file {0}: {1}")]
    Read(String, String),
    /// A value is invalid; holds the explanation.
    #[error("{0}")]
    Invalid(String),
}

/// Log verbosity, in Redis's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// Informational detail.
    Verbose,
    /// Normal operation (the default).
    Notice,
    /// Only warnings and errors.
    Warning,
    /// Nothing.
    Nothing,
}

impl LogLevel {
    /// Parses Redis's names.
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s.to_ascii_lowercase().as_str() {
            "debug" => LogLevel::Debug,
            "verbose" => LogLevel::Verbose,
            "notice" => LogLevel::Notice,
            "warning" => LogLevel::Warning,
            "nothing" => LogLevel::Nothing,
            _ => return None,
        })
    }

    /// Redis's name for the level.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Verbose => "verbose",
            LogLevel::Notice => "notice",
            LogLevel::Warning => "warning",
            LogLevel::Nothing => "nothing",
        }
    }

    /// The equivalent `tracing` filter directive.
    pub fn tracing_filter(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Verbose | LogLevel::Notice => "info",
            LogLevel::Warning => "warn",
            LogLevel::Nothing => "off",
        }
    }
}

/// Every setting of the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// TCP port; 0 picks a free one.
    pub port: u16,
    /// Addresses to listen on.
    pub bind: Vec<String>,
    /// Most simultaneous client connections.
    pub maxclients: usize,
    /// Password for the `default` user; `None` disables authentication.
    pub requirepass: Option<String>,
    /// ACL file loaded at start and by `ACL LOAD`, written by `ACL SAVE` (`aclfile`).
    pub aclfile: Option<PathBuf>,
    /// `user NAME rules...` lines of the config file (without `user `), applied at start.
    pub users: Vec<String>,
    /// Most entries kept in the `ACL LOG` (`acllog-max-len`).
    pub acllog_max_len: u64,
    /// Redis's protected mode: while the default user has no password, only loopback clients
    /// are served; others get `-DENIED ...` and are closed.
    pub protected_mode: bool,
    /// Log verbosity.
    pub loglevel: LogLevel,
    /// Number of keyspace shards (rounded up to a power of two).
    pub shards: usize,
    /// Background task frequency (active expiry ticks per second), 1..=500.
    pub hz: u32,
    /// Entries the active expiry examines per shard per tick.
    pub active_expire_budget: usize,
    /// Largest bulk string a client may send.
    pub proto_max_bulk_len: usize,
    /// Largest number of arguments in one request.
    pub max_multibulk_len: usize,
    /// Close clients idle for this many seconds (0 = never).
    pub timeout: u64,
    /// Number of databases (`SELECT 0` .. `SELECT databases-1`).
    pub databases: usize,
    /// Log every change to an append-only file in `dir` and replay it at start.
    pub appendonly: bool,
    /// Directory of the append-only file.
    pub dir: PathBuf,
    /// When the append-only file is fsynced.
    pub appendfsync: FsyncPolicy,
    /// At start, cut a torn or corrupt tail off the file instead of refusing to start.
    pub aof_load_truncated: bool,
    /// Bytes of zeros kept ahead of the file's last record, so fsyncs flush data only
    /// (`aof-preallocate`; 0 turns it off). See [`crate::persist::writer::PREALLOCATE`].
    pub aof_preallocate: u64,
    /// Rewrite the file when it grew by this percentage over its size after the last rewrite
    /// (0 disables automatic rewrites).
    pub auto_aof_rewrite_percentage: u64,
    /// ... but only once it is at least this large (bytes).
    pub auto_aof_rewrite_min_size: u64,
    /// Worker threads serving connections (0 = one per CPU core but one, at least two; see main.rs).
    pub threads: usize,
    /// Milliseconds a script may run before other clients get `BUSY` and `SCRIPT KILL` may
    /// stop it (`busy-reply-threshold`, alias `lua-time-limit`).
    pub busy_reply_threshold: u64,
    /// Where the configuration was read from, if anywhere.
    pub config_file: Option<PathBuf>,
    /// Output buffer limits per client class (`client-output-buffer-limit`).
    pub client_output_buffer_limit: OutputBufferLimits,
    /// A client whose unparsed input grows past this many bytes is closed
    /// (`client-query-buffer-limit`, at least 1mb as in Redis).
    pub client_query_buffer_limit: u64,
    /// Policies defined in the config file, one `NAME RULES...` line each (`policy`
    /// directives), applied at every start after the AOF is loaded.
    pub policies: Vec<String>,
    /// Files of `NAME RULES...` lines (`policy-file` directives), applied after `policies`.
    pub policy_files: Vec<PathBuf>,
    /// Share of admitted policy checks published as `allowed` events, in parts per million
    /// (`policy-events-allowed-sample`, given as a fraction 0..1).
    pub policy_events_sample_ppm: u32,
    /// The stream every limiter event is also appended to (`events-stream`; empty = off),
    /// in database 0, so a consumer that was down reads what it missed.
    pub events_stream: String,
    /// Entries the events stream keeps, about (`events-stream-maxlen`, trimmed `MAXLEN ~`).
    pub events_stream_maxlen: u64,
    /// Record the usage history (`usage-history yes|no`): per-minute counts per policy and
    /// per top identity for 48 hours (see docs/operations.md).
    pub usage_history: bool,
    /// Counters of each of the history's two top-identity sketches (by denials, by usage):
    /// at most twice this many identities have a per-minute series (`usage-history-identities`;
    /// 0 keeps the per-policy series only).
    pub usage_history_identities: usize,
    /// TLS port (0 = no TLS listener). With `port 0` the server listens on TLS only.
    pub tls_port: u16,
    /// Port of the HTTP listener (`/healthz`, `/readyz`; the check API, metrics and dashboard
    /// attach to it); 0 = off. It listens on the `bind` addresses.
    pub http_port: u16,
    /// Serve the HTTP listener over TLS (HTTPS) with the `tls-*` certificates.
    pub http_tls: bool,
    /// The request header the HTTP check API takes the identity from when a request names
    /// none (`http-identity-header`, e.g. `X-Api-Key`; `X-Forwarded-For` gives its first
    /// address). Empty: none, the identity must be given.
    pub http_identity_header: String,
    /// PEM file with the server's certificate (and its chain).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM file with the server's private key.
    pub tls_key_file: Option<PathBuf>,
    /// PEM file of CA certificates that client certificates are verified against.
    pub tls_ca_cert_file: Option<PathBuf>,
    /// Directory of PEM CA certificate files, as an alternative or addition to the file.
    pub tls_ca_cert_dir: Option<PathBuf>,
    /// Whether TLS clients must present a certificate.
    pub tls_auth_clients: TlsAuthClients,
    /// `tls-protocols` as given (checked by [`parse_tls_protocols`]; empty = TLSv1.2 and 1.3).
    pub tls_protocols: String,
    /// Redis's encoding thresholds (reported and settable; no storage effect).
    pub encoding: EncodingLimits,
    /// Which keyspace notifications are published (`notify-keyspace-events`, default none).
    pub notify_keyspace_events: NotifyFlags,
    /// Memory limit in bytes (0 = none): over it, commands that may grow memory are refused
    /// with `-OOM` (`maxmemory`).
    pub maxmemory: u64,
    /// What happens over `maxmemory` (`maxmemory-policy`).
    pub maxmemory_policy: MaxmemoryPolicy,
    /// Keys sampled per eviction (`maxmemory-samples`, 1..=64, as Redis).
    pub maxmemory_samples: u32,
    /// Speak the Redis Cluster protocol (`cluster-enabled`; docs/cluster.md). Fixed at start.
    pub cluster_enabled: bool,
    /// With some slot unassigned, refuse every keyed command (`-CLUSTERDOWN The cluster is
    /// down`) rather than only those of the unassigned slots (`cluster-require-full-coverage`).
    pub cluster_require_full_coverage: bool,
    /// File in `dir` keeping this node's id and the pushed topology across restarts
    /// (`cluster-config-file`, default `nodes.conf`).
    pub cluster_config_file: String,
    /// Replication (`replicaof`, `masterauth`, `repl-backlog-size`, ...).
    pub repl: ReplConfig,
    /// Webhook delivery (`webhook-queue-max`, `webhook-timeout`, ...).
    pub webhook: WebhookConfig,
    /// Commands that run at least this many microseconds go to the slow log
    /// (`slowlog-log-slower-than`; negative: none; 0: all).
    pub slowlog_log_slower_than: i64,
    /// Entries the slow log keeps (`slowlog-max-len`).
    pub slowlog_max_len: u64,
    /// Milliseconds from which an event is sampled by the latency monitor (`LATENCY`;
    /// `latency-monitor-threshold`, 0 = off).
    pub latency_monitor_threshold: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 6379,
            bind: vec!["127.0.0.1".to_owned()],
            maxclients: 10_000,
            requirepass: None,
            protected_mode: true,
            aclfile: None,
            users: Vec::new(),
            acllog_max_len: 128,
            loglevel: LogLevel::Notice,
            shards: 128,
            hz: 10,
            active_expire_budget: 64,
            proto_max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: 1024 * 1024,
            timeout: 0,
            threads: 0,
            databases: 16,
            appendonly: false,
            dir: PathBuf::from("."),
            appendfsync: FsyncPolicy::EverySec,
            aof_load_truncated: false,
            aof_preallocate: crate::persist::writer::PREALLOCATE,
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 * 1024 * 1024,
            busy_reply_threshold: crate::script::DEFAULT_BUSY_REPLY_THRESHOLD_MS,
            config_file: None,
            client_output_buffer_limit: OutputBufferLimits::default(),
            client_query_buffer_limit: 1024 * 1024 * 1024,
            policies: Vec::new(),
            policy_files: Vec::new(),
            policy_events_sample_ppm: 0,
            events_stream: String::new(),
            events_stream_maxlen: 10_000,
            usage_history: true,
            usage_history_identities: 100,
            tls_port: 0,
            http_port: 0,
            http_tls: false,
            http_identity_header: String::new(),
            tls_cert_file: None,
            tls_key_file: None,
            tls_ca_cert_file: None,
            tls_ca_cert_dir: None,
            tls_auth_clients: TlsAuthClients::Yes,
            tls_protocols: String::new(),
            encoding: EncodingLimits::default(),
            notify_keyspace_events: NotifyFlags::default(),
            maxmemory: 0,
            maxmemory_policy: MaxmemoryPolicy::NoEviction,
            maxmemory_samples: 5,
            cluster_enabled: false,
            cluster_require_full_coverage: true,
            cluster_config_file: "nodes.conf".to_owned(),
            repl: ReplConfig::default(),
            webhook: WebhookConfig::default(),
            slowlog_log_slower_than: 10_000,
            slowlog_max_len: 128,
            latency_monitor_threshold: 0,
        }
    }
}

/// Command-line flags, in Redis's style. Each overrides the config file.
#[derive(Debug, Parser, Default)]
#[command(
    name = "limitkv",
    version,
    about = "Rate-limiter server speaking the Redis protocol"
)]
pub struct Cli {
    /// Config file with `key value` lines (may also be given as the first positional argument).
    #[arg(long = "config")]
    pub config: Option<PathBuf>,
    /// Config file given positionally, as `redis-server /path/redis.conf` accepts it.
    #[arg(value_name = "CONFIG_FILE")]
    pub config_positional: Option<PathBuf>,
    /// TCP port (default 6379; 0 picks a free port).
    #[arg(long)]
    pub port: Option<u16>,
    /// Listen addresses, space separated (default 127.0.0.1).
    #[arg(long, num_args = 1..)]
    pub bind: Option<Vec<String>>,
    /// Maximum simultaneous clients (default 10000).
    #[arg(long)]
    pub maxclients: Option<usize>,
    /// Require clients to AUTH with this password.
    #[arg(long)]
    pub requirepass: Option<String>,
    /// debug | verbose | notice | warning | nothing (default notice).
    #[arg(long)]
    pub loglevel: Option<String>,
    /// Keyspace shards (default 128).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Background ticks per second (default 10).
    #[arg(long)]
    pub hz: Option<u32>,
    /// Largest bulk string, e.g. 512mb (default 512mb).
    #[arg(long = "proto-max-bulk-len")]
    pub proto_max_bulk_len: Option<String>,
    /// Close clients idle this many seconds (default 0 = never).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Worker threads (default 0 = one per CPU core but one, at least two; see main.rs).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Number of databases (default 16).
    #[arg(long)]
    pub databases: Option<usize>,
    /// yes | no: log changes to DIR/appendonly.aof and replay it at start (default no).
    #[arg(long)]
    pub appendonly: Option<String>,
    /// Directory of the append-only file (default: the working directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// always | everysec | no (default everysec).
    #[arg(long)]
    pub appendfsync: Option<String>,
    /// yes | no: cut a torn tail off the AOF at start instead of refusing (default no).
    #[arg(long = "aof-load-truncated")]
    pub aof_load_truncated: Option<String>,
    /// Zeros kept ahead of the AOF's last record, e.g. 4mb (default 4mb; 0 = off; at most 1gb).
    #[arg(long = "aof-preallocate")]
    pub aof_preallocate: Option<String>,
    /// Rewrite the AOF when it grew by this percentage (default 100; 0 = never automatically).
    #[arg(long = "auto-aof-rewrite-percentage")]
    pub auto_aof_rewrite_percentage: Option<String>,
    /// Smallest AOF size for an automatic rewrite, e.g. 64mb (default 64mb).
    #[arg(long = "auto-aof-rewrite-min-size")]
    pub auto_aof_rewrite_min_size: Option<String>,
    /// Close a client whose unparsed input exceeds this, e.g. 1gb (default 1gb, at least 1mb).
    #[arg(long = "client-query-buffer-limit")]
    pub client_query_buffer_limit: Option<String>,
    /// Header the HTTP check API reads the identity from when a request gives none, e.g.
    /// X-Api-Key or X-Forwarded-For (default empty = none).
    #[arg(long = "http-identity-header")]
    pub http_identity_header: Option<String>,
    /// TLS port (default 0 = no TLS; with --port 0 the server listens on TLS only).
    #[arg(long = "tls-port")]
    pub tls_port: Option<String>,
    /// PEM file with the server certificate (and chain).
    #[arg(long = "tls-cert-file")]
    pub tls_cert_file: Option<String>,
    /// PEM file with the server's private key.
    #[arg(long = "tls-key-file")]
    pub tls_key_file: Option<String>,
    /// PEM file of CA certificates for verifying client certificates.
    #[arg(long = "tls-ca-cert-file")]
    pub tls_ca_cert_file: Option<String>,
    /// Directory of PEM CA certificates for verifying client certificates.
    #[arg(long = "tls-ca-cert-dir")]
    pub tls_ca_cert_dir: Option<String>,
    /// yes | no | optional: require client certificates (default yes).
    #[arg(long = "tls-auth-clients")]
    pub tls_auth_clients: Option<String>,
    // Settings whose value has several words (`--tls-protocols TLSv1.2 TLSv1.3`,
    // `--client-output-buffer-limit normal 64mb 16mb 60`), and every other config key, are
    // taken by `split_args` as redis-server takes them, not by clap.
}

/// Largest `usage-history-identities` (each tracked identity may hold 48 h of minutes).
pub const MAX_USAGE_IDENTITIES: usize = 1_000_000;

/// Parses a Redis memory amount: `1024`, `64kb`, `512mb`, `1g` (k/m/g are powers of 1000,
/// kb/mb/gb powers of 1024, as in Redis).
pub fn parse_memory(s: &str) -> Option<u64> {
    let lower = s.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mul)
}

pub(crate) fn parse_yes_no(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

/// Splits a command line into the arguments [`Cli`] parses and `--name value ...` options for
/// every other config key, as redis-server takes any config-file directive as a flag: the words
/// after `--name` up to the next `--` word are its value, joined by spaces (`--save "" `,
/// `--client-output-buffer-limit pubsub 64mb 16mb 60`). An unknown name is reported by
/// [`Config::from_cli_with`] as the config file would report it.
pub fn split_args(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> (Vec<std::ffi::OsString>, Vec<(String, String)>) {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let known: Vec<&str> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long())
        .chain(["help", "version"])
        .collect();
    let mut clap_args = Vec::new();
    let mut extra: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_extra = false;
    for (i, arg) in args.into_iter().enumerate() {
        let text = arg.to_str();
        let option = text
            .filter(|t| i > 0 && t.len() > 2 && t.starts_with("--"))
            .map(|t| &t[2..]);
        match option {
            Some(name) if !known.contains(&name.split('=').next().unwrap_or(name)) => {
                extra.push((name.to_ascii_lowercase(), Vec::new()));
                in_extra = true;
            }
            Some(_) => {
                clap_args.push(arg);
                in_extra = false;
            }
            None if in_extra => {
                let value = arg.to_string_lossy().into_owned();
                if let Some((_, values)) = extra.last_mut() {
                    values.push(value);
                }
            }
            None => clap_args.push(arg),
        }
    }
    let extra = extra
        .into_iter()
        .map(|(name, values)| (name, values.join(" ")))
        .collect();
    (clap_args, extra)
}

impl Config {
    /// Builds the configuration from a whole command line (see [`split_args`]); clap's usage
    /// errors and `--help` exit the process as clap does.
    pub fn from_args(
        args: impl IntoIterator<Item = std::ffi::OsString>,
    ) -> Result<Config, ConfigError> {
        let (clap_args, extra) = split_args(args);
        Config::from_cli_with(Cli::parse_from(clap_args), &extra)
    }

    /// Builds the configuration from parsed flags: defaults, then the config file, then flags.
    pub fn from_cli(cli: Cli) -> Result<Config, ConfigError> {
        Config::from_cli_with(cli, &[])
    }

    /// [`Config::from_cli`], then `extra` `--name value` options for any other config key, in
    /// order (they override the file, as on redis-server's command line).
    pub fn from_cli_with(cli: Cli, extra: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        if let Some(path) = cli.config.or(cli.config_positional) {
            cfg.load_file(&path)?;
            cfg.config_file = Some(path);
        }
        if let Some(v) = cli.port {
            cfg.port = v;
        }
        if let Some(v) = cli.bind {
            cfg.bind = v
                .iter()
                .flat_map(|s| s.split_whitespace())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = cli.maxclients {
            cfg.maxclients = v;
        }
        if let Some(v) = cli.requirepass {
            cfg.requirepass = Some(v).filter(|p| !p.is_empty());
        }
        if let Some(v) = cli.loglevel {
            cfg.set("loglevel", &v)?;
        }
        if let Some(v) = cli.shards {
            cfg.shards = v;
        }
        if let Some(v) = cli.hz {
            cfg.hz = v;
        }
        if let Some(v) = cli.proto_max_bulk_len {
            cfg.set("proto-max-bulk-len", &v)?;
        }
        if let Some(v) = cli.timeout {
            cfg.timeout = v;
        }
        if let Some(v) = cli.threads {
            cfg.threads = v;
        }
        if let Some(v) = cli.databases {
            cfg.databases = v;
        }
        for (name, value) in [
            ("appendonly", cli.appendonly),
            ("appendfsync", cli.appendfsync),
            ("aof-load-truncated", cli.aof_load_truncated),
            ("aof-preallocate", cli.aof_preallocate),
            (
                "auto-aof-rewrite-percentage",
                cli.auto_aof_rewrite_percentage,
            ),
            ("auto-aof-rewrite-min-size", cli.auto_aof_rewrite_min_size),
            ("client-query-buffer-limit", cli.client_query_buffer_limit),
            ("tls-port", cli.tls_port),
            ("http-identity-header", cli.http_identity_header),
            ("tls-cert-file", cli.tls_cert_file),
            ("tls-key-file", cli.tls_key_file),
            ("tls-ca-cert-file", cli.tls_ca_cert_file),
            ("tls-ca-cert-dir", cli.tls_ca_cert_dir),
            ("tls-auth-clients", cli.tls_auth_clients),
        ] {
            if let Some(v) = value {
                cfg.set(name, &v)?;
            }
        }
        if let Some(v) = cli.dir {
            cfg.dir = v;
        }
        for (name, value) in extra {
            cfg.set_directive(name, value)
                .map_err(|e| ConfigError::Invalid(format!("--{name}: {e}")))?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads `key value` lines from `path` (blank lines and `#` comments ignored).
    pub fn load_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read(path.display().to_string(), e.to_string()))?;
        self.load_str(&text, &path.display().to_string())
    }

    /// Applies config-file text; `file` names it in errors.
    pub fn load_str(&mut self, text: &str, file: &str) -> Result<(), ConfigError> {
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = match line.split_once(char::is_whitespace) {
                Some((k, v)) => (k, unquote(v.trim())),
                None => (line, String::new()),
            };
            let err = |message: String| ConfigError::File {
                file: file.to_owned(),
                line: i + 1,
                message,
            };
            // A policy line keeps its own quoting (scope names may be quoted), a user line its
            // rules as written.
            let value = if key.eq_ignore_ascii_case("policy") || key.eq_ignore_ascii_case("user") {
                line[key.len()..].trim().to_owned()
            } else {
                value
            };
            self.set_directive(&key.to_ascii_lowercase(), &value)
                .map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    }

    /// Applies one config-file directive (or `--name value` flag): the settings `CONFIG SET`
    /// knows, plus the directives that only a file or the command line may give (`policy`).
    pub fn set_directive(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        match name {
            "policy" if value.trim().is_empty() => {
                Err(ConfigError::Invalid("policy needs a name and rules".into()))
            }
            "policy" => {
                self.policies.push(value.trim().to_owned());
                Ok(())
            }
            "user" if value.trim().is_empty() => {
                Err(ConfigError::Invalid("user needs a name and rules".into()))
            }
            "user" => {
                self.users.push(value.trim().to_owned());
                Ok(())
            }
            _ => self.set(name, value),
        }
    }

    /// Sets one parameter by its Redis name (as the config file and `CONFIG SET` do).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let bad = || ConfigError::Invalid(format!("argument '{value}' is invalid for '{name}'"));
        let num = |v: &str| v.trim().parse::<u64>().map_err(|_| bad());
        if let Some(r) = self.repl.set(name, value) {
            return r;
        }
        if let Some(r) = self.webhook.set(name, value) {
            return r;
        }
        match name {
            "port" => self.port = u16::try_from(num(value)?).map_err(|_| bad())?,
            "bind" => self.bind = value.split_whitespace().map(str::to_owned).collect(),
            "maxclients" => self.maxclients = num(value)? as usize,
            "requirepass" => self.requirepass = Some(value.to_owned()).filter(|p| !p.is_empty()),
            "loglevel" => self.loglevel = LogLevel::parse(value).ok_or_else(bad)?,
            "shards" => self.shards = num(value)? as usize,
            "hz" => self.hz = u32::try_from(num(value)?).map_err(|_| bad())?,
            "active-expire-budget" => self.active_expire_budget = num(value)? as usize,
            "proto-max-bulk-len" => {
                self.proto_max_bulk_len = parse_memory(value).ok_or_else(bad)? as usize
            }
            "max-multibulk-len" => self.max_multibulk_len = num(value)? as usize,
            "timeout" => self.timeout = num(value)?,
            "busy-reply-threshold" | "lua-time-limit" => self.busy_reply_threshold = num(value)?,
            "threads" => self.threads = num(value)? as usize,
            "databases" => self.databases = num(value)? as usize,
            // Accepted for compatibility with stock redis.conf files; limitkv has no RDB
            // snapshots and does not daemonize, so these only take their neutral values.
            "save" | "daemonize" | "tcp-keepalive" | "logfile" => {}
            "protected-mode" => self.protected_mode = parse_yes_no(value).ok_or_else(bad)?,
            "aclfile" => self.aclfile = (!value.is_empty()).then(|| PathBuf::from(value)),
            "acllog-max-len" => self.acllog_max_len = num(value)?,
            "appendonly" => self.appendonly = parse_yes_no(value).ok_or_else(bad)?,
            "dir" => self.dir = PathBuf::from(value),
            "appendfsync" => {
                self.appendfsync = match value.to_ascii_lowercase().as_str() {
                    "always" => FsyncPolicy::Always,
                    "everysec" => FsyncPolicy::EverySec,
                    "no" => FsyncPolicy::No,
                    _ => return Err(bad()),
                }
            }
            "aof-load-truncated" => {
                self.aof_load_truncated = parse_yes_no(value).ok_or_else(bad)?
            }
            // Bounded: the zeros are written in one commit.
            "aof-preallocate" => {
                self.aof_preallocate = parse_memory(value)
                    .filter(|&n| n <= 1 << 30)
                    .ok_or_else(bad)?
            }
            "auto-aof-rewrite-percentage" => self.auto_aof_rewrite_percentage = num(value)?,
            "auto-aof-rewrite-min-size" => {
                self.auto_aof_rewrite_min_size = parse_memory(value).ok_or_else(bad)?
            }
            "appendfilename" if value == crate::persist::AOF_FILE => {}
            "tls-port" => self.tls_port = u16::try_from(num(value)?).map_err(|_| bad())?,
            "http-port" => self.http_port = u16::try_from(num(value)?).map_err(|_| bad())?,
            "http-tls" => self.http_tls = parse_yes_no(value).ok_or_else(bad)?,
            // An HTTP field name (RFC 9110 token), or empty for none.
            "http-identity-header" => {
                let name = value.trim();
                if !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                {
                    return Err(bad());
                }
                self.http_identity_header = name.to_ascii_lowercase();
            }
            // An empty value unsets a file, as in Redis.
            "tls-cert-file" => self.tls_cert_file = optional_path(value),
            "tls-key-file" => self.tls_key_file = optional_path(value),
            "tls-ca-cert-file" => self.tls_ca_cert_file = optional_path(value),
            "tls-ca-cert-dir" => self.tls_ca_cert_dir = optional_path(value),
            "tls-auth-clients" => {
                self.tls_auth_clients = match value.to_ascii_lowercase().as_str() {
                    "yes" => TlsAuthClients::Yes,
                    "no" => TlsAuthClients::No,
                    "optional" => TlsAuthClients::Optional,
                    _ => return Err(bad()),
                }
            }
            "tls-protocols" => {
                parse_tls_protocols(value).map_err(ConfigError::Invalid)?;
                self.tls_protocols = value.trim().to_owned();
            }
            "client-output-buffer-limit" => self.client_output_buffer_limit.apply(value)?,
            "client-query-buffer-limit" => {
                self.client_query_buffer_limit = parse_memory(value).ok_or_else(bad)?
            }
            "policy-file" => self.policy_files.push(PathBuf::from(value)),
            "maxmemory" => self.maxmemory = parse_memory(value).ok_or_else(bad)?,
            "slowlog-log-slower-than" => {
                self.slowlog_log_slower_than = value.trim().parse().map_err(|_| bad())?
            }
            "slowlog-max-len" => self.slowlog_max_len = num(value)?,
            "latency-monitor-threshold" => self.latency_monitor_threshold = num(value)?,
            "maxmemory-policy" => {
                self.maxmemory_policy =
                    MaxmemoryPolicy::parse(value).map_err(ConfigError::Invalid)?
            }
            "maxmemory-samples" => {
                self.maxmemory_samples = u32::try_from(num(value)?)
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(bad)?
            }
            "usage-history" => self.usage_history = parse_yes_no(value).ok_or_else(bad)?,
            "usage-history-identities" => {
                self.usage_history_identities = usize::try_from(num(value)?)
                    .ok()
                    .filter(|n| *n <= MAX_USAGE_IDENTITIES)
                    .ok_or_else(bad)?
            }
            "cluster-enabled" => self.cluster_enabled = parse_yes_no(value).ok_or_else(bad)?,
            "cluster-require-full-coverage" => {
                self.cluster_require_full_coverage = parse_yes_no(value).ok_or_else(bad)?
            }
            // A file name inside `dir`, as Redis's `cluster-config-file`.
            "cluster-config-file" if !value.trim().is_empty() && !value.contains('/') => {
                self.cluster_config_file = value.trim().to_owned()
            }
            "cluster-config-file" => return Err(bad()),
            n if EncodingLimits::knows(n) => self.encoding.set(n, value)?,
            "notify-keyspace-events" => self.notify_keyspace_events = NotifyFlags::parse(value)?,
            "events-stream" => self.events_stream = value.trim().to_owned(),
            "events-stream-maxlen" => self.events_stream_maxlen = num(value)?,
            "policy-events-allowed-sample" => {
                let f: f64 = value.trim().parse().map_err(|_| bad())?;
                if !(0.0..=1.0).contains(&f) {
                    return Err(bad());
                }
                // 0 <= f <= 1, so the product is within 0..=10^6.
                self.policy_events_sample_ppm = (f * 1e6).round() as u32;
            }
            _ => {
                return Err(ConfigError::Invalid(format!(
                    "Bad directive or wrong number of arguments: '{name}'"
                )))
            }
        }
        Ok(())
    }

    /// Checks ranges that no single setter can check on its own.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bind.is_empty() {
            return Err(ConfigError::Invalid(
                "bind needs at least one address".into(),
            ));
        }
        if self.maxclients == 0 {
            return Err(ConfigError::Invalid("maxclients must be at least 1".into()));
        }
        if !(1..=500).contains(&self.hz) {
            return Err(ConfigError::Invalid("hz must be between 1 and 500".into()));
        }
        if self.shards == 0 || self.shards > 65_536 {
            return Err(ConfigError::Invalid(
                "shards must be between 1 and 65536".into(),
            ));
        }
        if self.proto_max_bulk_len < 1024 {
            return Err(ConfigError::Invalid(
                "proto-max-bulk-len must be at least 1kb".into(),
            ));
        }
        if self.databases == 0 || self.databases > 1024 {
            return Err(ConfigError::Invalid(
                "databases must be between 1 and 1024".into(),
            ));
        }
        if self.threads > 1024 {
            return Err(ConfigError::Invalid("threads must be at most 1024".into()));
        }
        if self.client_query_buffer_limit < 1024 * 1024 {
            return Err(ConfigError::Invalid(
                "client-query-buffer-limit must be at least 1mb".into(),
            ));
        }
        if self.max_multibulk_len == 0 {
            return Err(ConfigError::Invalid(
                "max-multibulk-len must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// `tls-protocols` as (TLS 1.2 allowed, TLS 1.3 allowed).
    pub fn tls_protocol_versions(&self) -> (bool, bool) {
        // The setter only stores values that parse.
        parse_tls_protocols(&self.tls_protocols).unwrap_or((true, true))
    }

    /// The decoder limits for authenticated clients.
    pub fn decode_limits(&self) -> crate::protocol::DecodeLimits {
        crate::protocol::DecodeLimits {
            max_bulk_len: self.proto_max_bulk_len,
            max_multibulk_len: self.max_multibulk_len,
            max_inline_len: 64 * 1024,
            unauthenticated: false,
        }
    }
}

fn optional_path(value: &str) -> Option<PathBuf> {
    Some(PathBuf::from(value)).filter(|_| !value.is_empty())
}

fn unquote(v: &str) -> String {
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        v[1..v.len() - 1].to_owned()
    } else {
        v.to_owned()
    }
}

#[cfg(test)]
mod tests;

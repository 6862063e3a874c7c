//! Tests of the configuration: defaults, the file, flags, CONFIG SET values.
use super::*;

#[test]
fn file_then_flags_override_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limitkv.conf");
    std::fs::write(
        &path,
        "# comment\nport 7000\nbind 0.0.0.0 ::1\nrequirepass \"s3cret\"\nmaxclients 5\n",
    )
    .unwrap();
    let cli = Cli::parse_from([
        "limitkv",
        "--config",
        path.to_str().unwrap(),
        "--port",
        "7001",
    ]);
    let cfg = Config::from_cli(cli).unwrap();
    assert_eq!(cfg.port, 7001);
    assert_eq!(cfg.bind, vec!["0.0.0.0", "::1"]);
    assert_eq!(cfg.requirepass.as_deref(), Some("s3cret"));
    assert_eq!(cfg.maxclients, 5);
}

#[test]
fn any_config_key_is_also_a_double_dash_flag_as_redis_server_takes_it() {
    let args = [
        "limitkv",
        "--port",
        "7001",
        "--protected-mode",
        "no",
        "--client-output-buffer-limit",
        "pubsub",
        "1mb",
        "0",
        "0",
        "--max-multibulk-len",
        "64",
        "--policy",
        "free",
        "RATE",
        "10/1m",
    ]
    .map(std::ffi::OsString::from);
    let cfg = Config::from_args(args).unwrap();
    assert_eq!(cfg.port, 7001);
    assert!(!cfg.protected_mode);
    assert_eq!(cfg.client_output_buffer_limit.pubsub.hard, 1024 * 1024);
    assert_eq!(cfg.max_multibulk_len, 64);
    assert_eq!(cfg.policies, ["free RATE 10/1m"]);
    let (clap_args, extra) = split_args(["limitkv", "--bogus-key", "1"].map(Into::into));
    assert_eq!(clap_args, ["limitkv"]);
    let err = Config::from_cli_with(Cli::parse_from(clap_args), &extra).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--bogus-key: Bad directive or wrong number of arguments: 'bogus-key'"
    );
    assert!(Config::from_args(["limitkv", "--protected-mode", "maybe"].map(Into::into)).is_err());
}

#[test]
fn protected_mode_is_on_by_default_and_set_by_file_or_flag() {
    assert!(Config::default().protected_mode);
    let mut cfg = Config::default();
    cfg.load_str("protected-mode no\n", "x.conf").unwrap();
    assert!(!cfg.protected_mode);
    cfg.load_str("protected-mode yes\n", "x.conf").unwrap();
    assert!(cfg.protected_mode);
    assert!(cfg.load_str("protected-mode 1\n", "x.conf").is_err());
}

#[test]
fn aof_preallocate_takes_a_memory_size_from_the_file_or_a_flag() {
    assert_eq!(Config::default().aof_preallocate, 4 << 20);
    let mut cfg = Config::default();
    cfg.load_str("aof-preallocate 64mb\n", "x.conf").unwrap();
    assert_eq!(cfg.aof_preallocate, 64 * 1024 * 1024);
    cfg.load_str("aof-preallocate 0\n", "x.conf").unwrap();
    assert_eq!(cfg.aof_preallocate, 0);
    assert!(cfg.load_str("aof-preallocate lots\n", "x.conf").is_err());
    cfg.load_str("aof-preallocate 1gb\n", "x.conf").unwrap();
    assert!(cfg.load_str("aof-preallocate 2gb\n", "x.conf").is_err());
    let cli = Cli::parse_from(["limitkv", "--aof-preallocate", "1mb"]);
    assert_eq!(Config::from_cli(cli).unwrap().aof_preallocate, 1024 * 1024);
}

#[test]
fn unknown_directive_names_its_line() {
    let mut cfg = Config::default();
    let err = cfg
        .load_str("port 1\nfrobnicate 3\n", "x.conf")
        .unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[test]
fn policy_lines_keep_their_quotes() {
    let mut cfg = Config::default();
    cfg.load_str(
        "policy free RATE 100/1m SCOPE \"POST /chat\" RATE 10/1m\npolicy-file /etc/p.conf\n\
         policy-events-allowed-sample 0.25\n",
        "x.conf",
    )
    .unwrap();
    assert_eq!(
        cfg.policies,
        ["free RATE 100/1m SCOPE \"POST /chat\" RATE 10/1m"]
    );
    assert_eq!(cfg.policy_files, [PathBuf::from("/etc/p.conf")]);
    assert_eq!(cfg.policy_events_sample_ppm, 250_000);
    assert!(cfg
        .load_str("policy-events-allowed-sample 2\n", "x")
        .is_err());
}

#[test]
fn memory_units_follow_redis() {
    assert_eq!(parse_memory("512mb"), Some(512 * 1024 * 1024));
    assert_eq!(parse_memory("1k"), Some(1000));
    assert_eq!(parse_memory("12xb"), None);
}

#[test]
fn output_buffer_limits_come_from_the_file_and_flags() {
    let mut cfg = Config::default();
    cfg.load_str("client-output-buffer-limit pubsub 1kb 0 0\n", "x.conf")
        .unwrap();
    assert_eq!(cfg.client_output_buffer_limit.pubsub.hard, 1024);
    let cfg = Config::from_args(
        [
            "limitkv",
            "--client-output-buffer-limit",
            "normal",
            "4mb",
            "1mb",
            "10",
            "--client-query-buffer-limit",
            "2mb",
        ]
        .map(Into::into),
    )
    .unwrap();
    assert_eq!(cfg.client_output_buffer_limit.normal.hard, 4 << 20);
    assert_eq!(cfg.client_query_buffer_limit, 2 << 20);
    let cli = Cli::parse_from(["limitkv", "--client-query-buffer-limit", "1000kb"]);
    assert!(
        Config::from_cli(cli).is_err(),
        "below Redis's minimum of 1mb"
    );
}

#[test]
fn tls_settings_come_from_the_file_and_flags() {
    let mut cfg = Config::default();
    assert_eq!(cfg.tls_auth_clients, TlsAuthClients::Yes);
    assert_eq!(cfg.tls_protocol_versions(), (true, true));
    cfg.load_str(
        "tls-port 6380\ntls-cert-file /etc/s.crt\ntls-key-file /etc/s.key\n\
         tls-ca-cert-file /etc/ca.crt\ntls-auth-clients optional\ntls-protocols \"TLSv1.3\"\n",
        "x.conf",
    )
    .unwrap();
    assert_eq!(cfg.tls_port, 6380);
    assert_eq!(cfg.tls_cert_file, Some(PathBuf::from("/etc/s.crt")));
    assert_eq!(cfg.tls_auth_clients, TlsAuthClients::Optional);
    assert_eq!(cfg.tls_protocol_versions(), (false, true));
    assert!(cfg.set("tls-protocols", "TLSv1.1").is_err());
    assert!(cfg.set("tls-protocols", "SSLv3").is_err());
    assert!(cfg.set("tls-auth-clients", "maybe").is_err());
    cfg.set("tls-ca-cert-file", "").unwrap();
    assert_eq!(cfg.tls_ca_cert_file, None);
    let cli = Cli::parse_from([
        "limitkv",
        "--tls-port",
        "7443",
        "--tls-auth-clients",
        "no",
        "--port",
        "0",
    ]);
    let cfg = Config::from_cli(cli).unwrap();
    assert_eq!((cfg.port, cfg.tls_port), (0, 7443));
    assert_eq!(cfg.tls_auth_clients, TlsAuthClients::No);
}

#[test]
fn validate_rejects_nonsense() {
    let cfg = Config {
        hz: 0,
        ..Config::default()
    };
    assert!(cfg.validate().is_err());
}

#[test]
fn cluster_settings_are_flags_and_directives() {
    let cfg = Config::from_args(
        [
            "limitkv",
            "--cluster-enabled",
            "yes",
            "--cluster-require-full-coverage",
            "no",
            "--cluster-config-file",
            "nodes-7001.conf",
        ]
        .map(std::ffi::OsString::from),
    )
    .unwrap();
    assert!(cfg.cluster_enabled);
    assert!(!cfg.cluster_require_full_coverage);
    assert_eq!(cfg.cluster_config_file, "nodes-7001.conf");
    assert!(!Config::default().cluster_enabled);
    let mut cfg = Config::default();
    assert!(cfg.set("cluster-enabled", "maybe").is_err());
    assert!(cfg.set("cluster-config-file", "../x").is_err());
    assert!(cfg.set("cluster-config-file", "").is_err());
}

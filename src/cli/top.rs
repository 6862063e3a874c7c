//! `limitkv top`: a live view of what the limiter is doing, like `redis-cli --stat`: the
//! identities denied most over a window (`LIMIT.TOP`), decisions and denials per second per
//! policy, and the decision latency's p99 when the server reports it (`INFO latencystats`).
//!
//! ```text
//! limitkv top [--host 127.0.0.1] [--port 6379] [--user U] [--pass P] [--interval 1]
//!             [--count 10] [--window 1h] [--policy P] [--once] [--json | --csv]
//! ```
//! Rates: between two refreshes, from the difference of the `INFO policies` counters; for the
//! first (or only, with `--once`) sample, from the previous and the current minute of
//! `LIMIT.HISTORY`.
//! `--json` prints one JSON object per refresh (one line), `--csv` the top identities as CSV
//! with a header line. Exits 1 with a message on stderr when the server cannot be reached or
//! refuses a command (e.g. `NOAUTH`, `NOPERM`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use redis::Value;
use serde_json::{json, Value as Json};

/// `limitkv top`'s options.
#[derive(Debug, Parser)]
#[command(
    name = "limitkv top",
    about = "Live view of the top denied identities and per-policy rates",
    // `-h` is the host, as in redis-cli; help is `--help` only.
    disable_help_flag = true
)]
pub struct TopArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Server hostname.
    #[arg(short = 'h', long, default_value = "127.0.0.1")]
    pub host: String,
    /// Server port.
    #[arg(short = 'p', long, default_value_t = 6379)]
    pub port: u16,
    /// ACL user name (with --pass).
    #[arg(long)]
    pub user: Option<String>,
    /// Password (the default user's, or --user's).
    #[arg(short = 'a', long = "pass")]
    pub pass: Option<String>,
    /// Seconds between refreshes.
    #[arg(short = 'i', long, default_value_t = 1.0)]
    pub interval: f64,
    /// Identities to show.
    #[arg(long, default_value_t = 10)]
    pub count: u32,
    /// Window of the ranking (1m to 48h).
    #[arg(long, default_value = "1h")]
    pub window: String,
    /// Only this policy's identities.
    #[arg(long)]
    pub policy: Option<String>,
    /// Print one sample and exit.
    #[arg(long)]
    pub once: bool,
    /// One JSON object per sample.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// The top identities as CSV.
    #[arg(long)]
    pub csv: bool,
}

/// One policy's line.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRate {
    /// The policy.
    pub policy: String,
    /// Decisions since the server started.
    pub decisions: u64,
    /// Denials since the server started.
    pub denied: u64,
    /// Decisions per second.
    pub decisions_per_s: f64,
    /// Denials per second.
    pub denials_per_s: f64,
}

/// One sample of the server.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Per policy, sorted by name.
    pub policies: Vec<PolicyRate>,
    /// `LIMIT.TOP DENIED`'s entries, as field maps.
    pub top: Vec<BTreeMap<String, Json>>,
    /// p99 decision latency per command, in microseconds, when INFO reports it.
    pub p99_usec: BTreeMap<String, f64>,
    taken: Instant,
}

/// Runs `limitkv top` with `args` (the words after `top`); returns the process's exit code.
pub fn run(args: &[OsString]) -> ExitCode {
    let argv = std::iter::once(OsString::from("limitkv top")).chain(args.iter().cloned());
    let a = match TopArgs::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match serve(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(a: &TopArgs) -> Result<(), String> {
    let mut con = connect(a)?;
    let mut prev: Option<Sample> = None;
    let out = std::io::stdout();
    let tty = std::io::IsTerminal::is_terminal(&out);
    let mut first = true;
    loop {
        let s = sample(&mut con, a, prev.as_ref())?;
        let text = if a.json {
            format!("{}\n", to_json(a, &s))
        } else if a.csv {
            to_csv(&s, first)
        } else {
            to_table(a, &s, tty)
        };
        let mut o = out.lock();
        let _ = o.write_all(text.as_bytes());
        let _ = o.flush();
        if a.once {
            return Ok(());
        }
        first = false;
        prev = Some(s);
        std::thread::sleep(Duration::from_secs_f64(a.interval.clamp(0.1, 3600.0)));
    }
}

fn connect(a: &TopArgs) -> Result<redis::Connection, String> {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let auth = match (&a.user, &a.pass) {
        (Some(u), Some(p)) => format!("{}:{}@", enc(u), enc(p)),
        (None, Some(p)) => format!(":{}@", enc(p)),
        (Some(u), None) => format!("{}@", enc(u)),
        (None, None) => String::new(),
    };
    let host = if a.host.contains(':') {
        format!("[{}]", a.host)
    } else {
        a.host.clone()
    };
    let url = format!("redis://{auth}{host}:{}/", a.port);
    let fail = |e: redis::RedisError| {
        format!("Could not connect to limitkv at {}:{}: {e}", a.host, a.port)
    };
    let client = redis::Client::open(url.as_str()).map_err(fail)?;
    client
        .get_connection_with_timeout(Duration::from_secs(5))
        .map_err(fail)
}

fn query(con: &mut redis::Connection, args: &[&str]) -> Result<Value, String> {
    redis::cmd(args[0])
        .arg(&args[1..])
        .query::<Value>(con)
        .map_err(|e| format!("{}: {e}", args.join(" ")))
}

/// A reply's field/value pairs (a RESP3 map, or RESP2's flat array).
fn pairs(v: Value) -> Vec<(String, Value)> {
    match v {
        Value::Map(m) => m.into_iter().map(|(k, v)| (text(&k), v)).collect(),
        Value::Array(items) => {
            let mut it = items.into_iter();
            let mut out = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((text(&k), v));
            }
            out
        }
        _ => Vec::new(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::Int(n) => n.to_string(),
        Value::Okay => "OK".into(),
        _ => String::new(),
    }
}

fn json_of(v: Value) -> Json {
    match v {
        Value::Int(n) => json!(n),
        Value::Boolean(b) => json!(b),
        Value::Double(d) => json!(d),
        Value::Nil => Json::Null,
        other => Json::String(text(&other)),
    }
}

fn int_of(v: &Value) -> u64 {
    match v {
        Value::Int(n) => u64::try_from(*n).unwrap_or(0),
        other => text(other).parse().unwrap_or(0),
    }
}

/// `policy_<name>:checks=..,allowed=..,denied=..` lines of `INFO policies`.
pub fn parse_policy_counters(info: &str) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for line in info.lines() {
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        let Some(name) = key.strip_prefix("policy_") else {
            continue;
        };
        let field = |f: &str| {
            value
                .split(',')
                .find_map(|kv| kv.strip_prefix(f)?.strip_prefix('='))
                .and_then(|n| n.parse::<u64>().ok())
        };
        if let (Some(checks), Some(denied)) = (field("checks"), field("denied")) {
            let denylisted = field("denylisted").unwrap_or(0);
            let allowlisted = field("allowlisted").unwrap_or(0);
            out.insert(
                name.to_owned(),
                (checks + allowlisted + denylisted, denied + denylisted),
            );
        }
    }
    out
}

/// p99 values of `latency_percentiles_usec_<command>:p50=..,p99=..,p99.9=..` lines (Redis 7's
/// `INFO latencystats`), for the limiter commands.
pub fn parse_p99(info: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in info.lines() {
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        let Some(cmd) = key.strip_prefix("latency_percentiles_usec_") else {
            continue;
        };
        let p99 = value
            .split(',')
            .find_map(|kv| kv.strip_prefix("p99="))
            .and_then(|n| n.parse::<f64>().ok());
        if let Some(p) = p99 {
            out.insert(cmd.to_owned(), p);
        }
    }
    out
}

fn sample(
    con: &mut redis::Connection,
    a: &TopArgs,
    prev: Option<&Sample>,
) -> Result<Sample, String> {
    let info = text(&query(con, &["INFO", "policies"])?);
    let counters = parse_policy_counters(&info);
    let latency = query(con, &["INFO", "latencystats"])
        .map(|v| parse_p99(&text(&v)))
        .unwrap_or_default();
    let count = a.count.to_string();
    let mut top_args = vec!["LIMIT.TOP", "DENIED", "WINDOW", &a.window, "COUNT", &count];
    if let Some(p) = &a.policy {
        top_args.extend(["POLICY", p.as_str()]);
    }
    let top = match query(con, &top_args)? {
        Value::Array(items) => items
            .into_iter()
            .map(|e| pairs(e).into_iter().map(|(k, v)| (k, json_of(v))).collect())
            .collect(),
        _ => Vec::new(),
    };
    let taken = Instant::now();
    let mut policies = Vec::new();
    for (name, (decisions, denied)) in counters {
        if a.policy.as_ref().is_some_and(|p| *p != name) {
            continue;
        }
        let (dps, nps) = match prev.and_then(|p| {
            p.policies
                .iter()
                .find(|x| x.policy == name)
                .map(|x| (x, p.taken))
        }) {
            Some((x, then)) => {
                let secs = taken.duration_since(then).as_secs_f64().max(1e-3);
                (
                    decisions.saturating_sub(x.decisions) as f64 / secs,
                    denied.saturating_sub(x.denied) as f64 / secs,
                )
            }
            None => last_minute_rates(con, &name)?,
        };
        policies.push(PolicyRate {
            policy: name,
            decisions,
            denied,
            decisions_per_s: dps,
            denials_per_s: nps,
        });
    }
    Ok(Sample {
        policies,
        top,
        p99_usec: latency,
        taken,
    })
}

/// Rates over the previous minute and the current one so far, from the policy's history.
fn last_minute_rates(con: &mut redis::Connection, policy: &str) -> Result<(f64, f64), String> {
    let series = match query(con, &["LIMIT.HISTORY", policy, "WINDOW", "2m"])? {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (mut decisions, mut denied, mut secs) = (0u64, 0u64, 0f64);
    for (i, minute) in series.into_iter().enumerate() {
        let f: BTreeMap<String, Value> = pairs(minute).into_iter().collect();
        let get = |k: &str| f.get(k).map_or(0, int_of);
        decisions += get("decisions");
        denied += get("denied");
        secs += if i == 0 {
            60.0
        } else {
            (now_ms.saturating_sub(get("minute_ms")) as f64 / 1000.0).clamp(1.0, 60.0)
        };
    }
    if secs == 0.0 {
        return Ok((0.0, 0.0));
    }
    Ok((decisions as f64 / secs, denied as f64 / secs))
}

fn to_json(a: &TopArgs, s: &Sample) -> Json {
    json!({
        "server": format!("{}:{}", a.host, a.port),
        "time_ms": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        "window": a.window,
        "policies": s.policies.iter().map(|p| json!({
            "policy": p.policy,
            "decisions": p.decisions,
            "denied": p.denied,
            "decisions_per_s": round2(p.decisions_per_s),
            "denials_per_s": round2(p.denials_per_s),
        })).collect::<Vec<_>>(),
        "top_denied": s.top,
        "p99_usec": s.p99_usec,
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

const CSV_FIELDS: [&str; 7] = [
    "policy",
    "identity",
    "denied",
    "allowed",
    "decisions",
    "tokens",
    "cost",
];

fn csv_cell(v: Option<&Json>) -> String {
    let s = match v {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn to_csv(s: &Sample, header: bool) -> String {
    let mut out = String::new();
    if header {
        out.push_str(&CSV_FIELDS.join(","));
        out.push('\n');
    }
    for e in &s.top {
        let row: Vec<String> = CSV_FIELDS.iter().map(|f| csv_cell(e.get(*f))).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

fn to_table(a: &TopArgs, s: &Sample, tty: bool) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    if tty {
        // Clear the screen and go home, as `top` does.
        o.push_str("\x1b[2J\x1b[H");
    }
    let _ = writeln!(
        o,
        "limitkv top  {}:{}  window {}{}",
        a.host,
        a.port,
        a.window,
        s.p99_usec
            .iter()
            .filter(|(c, _)| c.starts_with("limit.") || c.starts_with("cl."))
            .map(|(c, p)| format!("  p99 {c} {p:.0}us"))
            .collect::<String>()
    );
    let _ = writeln!(
        o,
        "\n{:<24} {:>12} {:>12} {:>14} {:>12}",
        "POLICY", "DECISIONS/S", "DENIALS/S", "DECISIONS", "DENIED"
    );
    for p in &s.policies {
        let _ = writeln!(
            o,
            "{:<24} {:>12.1} {:>12.1} {:>14} {:>12}",
            clip(&p.policy, 24),
            p.decisions_per_s,
            p.denials_per_s,
            p.decisions,
            p.denied
        );
    }
    let _ = writeln!(
        o,
        "\n{:<4} {:<32} {:<16} {:>10} {:>10} {:>12} {:>12}",
        "#", "IDENTITY", "POLICY", "DENIED", "ALLOWED", "TOKENS", "COST"
    );
    let cell =
        |e: &BTreeMap<String, Json>, k: &str| csv_cell(e.get(k)).trim_matches('"').to_owned();
    for (i, e) in s.top.iter().enumerate() {
        let _ = writeln!(
            o,
            "{:<4} {:<32} {:<16} {:>10} {:>10} {:>12} {:>12}",
            i + 1,
            clip(&cell(e, "identity"), 32),
            clip(&cell(e, "policy"), 16),
            cell(e, "denied"),
            cell(e, "allowed"),
            cell(e, "tokens"),
            cell(e, "cost")
        );
    }
    if s.top.is_empty() {
        let _ = writeln!(o, "(no denials in the window)");
    }
    if !tty {
        o.push('\n');
    }
    o
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_counters_are_read_from_info() {
        let info = "# Policies\r\npolicies:2\r\npolicy_free:checks=10,allowed=7,denied=3,allowlisted=1,denylisted=2,overridden=0\r\nrule_free_rate-1m:allowed=7,denied=3\r\n";
        let c = parse_policy_counters(info);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c["free"], (13, 5));
    }

    #[test]
    fn p99_is_read_from_latencystats() {
        let info = "# Latencystats\r\nlatency_percentiles_usec_limit.check:p50=12.1,p99=40.9,p99.9=80.1\r\n";
        assert_eq!(parse_p99(info)["limit.check"], 40.9);
    }

    #[test]
    fn csv_cells_are_quoted_when_needed() {
        assert_eq!(csv_cell(Some(&json!("a,b"))), "\"a,b\"");
        assert_eq!(csv_cell(Some(&json!("say \"hi\""))), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell(Some(&json!(3))), "3");
    }
}

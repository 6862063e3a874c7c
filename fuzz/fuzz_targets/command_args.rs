//! Every command's argument parser and handler, through the dispatcher, on argument vectors
//! built from the input, on a manual clock the input moves (forwards, backwards, to extremes).
//!
//! Commands come from `limitkv::cmd::all_commands()`, minus those that run arbitrary Lua
//! (`EVAL*`, `FCALL*`, `SCRIPT`, `FUNCTION`) or stop the server (`SHUTDOWN`); none of the
//! others blocks or sleeps. Arguments mix the grammar's keywords, a few shared keys, numbers,
//! durations and raw bytes, so the fuzzer gets past the first keyword check quickly.
//!
//! Invariants: no panic; every reply encodes in RESP2 and RESP3 as exactly the well-formed
//! replies it stands for (a status or error line echoing a CR or LF would split the stream),
//! with a `Fields` reply encoding as the map it stands for (as the test harness checks); no
//! single allocation grows past what the input justifies.

#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use limitkv::clock::Nanos;
use limitkv::cmd::testing::Harness;
use limitkv::cmd::{all_commands, dispatch, CommandSpec, Ctx};
use limitkv::config::Config;
use limitkv::protocol::{encode, RespVersion};

/// Commands left out: arbitrary Lua may loop until the busy timeout, and SHUTDOWN stops the
/// server the harness stands for.
const EXCLUDED: &[&str] = &[
    "EVAL",
    "EVALSHA",
    "EVAL_RO",
    "EVALSHA_RO",
    "FCALL",
    "FCALL_RO",
    "SCRIPT",
    "FUNCTION",
    "SHUTDOWN",
];

/// Words of the policy and limiter grammars that do not appear in the command docs.
const EXTRA_WORDS: &[&str] = &[
    "RATE",
    "WINDOW",
    "QUOTA",
    "TOKENS",
    "COST",
    "LEASE",
    "BURST",
    "TTL",
    "SCOPE",
    "TZ",
    "ANCHOR",
    "CARRY",
    "ACTION",
    "WARN",
    "DRYRUN",
    "PER",
    "CAP",
    "DENY",
    "ALLOW",
    "LOG",
    "FOR",
    "POLICY",
    "REASON",
    "EXPIRE",
    "EXPIREAT",
    "SUCCESS",
    "FAILURE",
    "THRESHOLD",
    "COOLDOWN",
    "PROBES",
    "MINCALLS",
    "RATIO",
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "minute",
    "hour",
    "day",
    "week",
    "month",
    "100/1m",
    "1000/day",
    "5/1s",
    "1.00/day",
    "0.5",
    "1e3",
    "-1",
    "0",
    "inf",
    "-inf",
    "nan",
    "1ms",
    "10s",
    "2m",
    "1h",
    "7d",
    "00:00",
    "23:59",
    "10%",
    "0.25",
    "*",
    "?",
    "[a-z]",
    "\\",
    "",
];

static COMMANDS: LazyLock<Vec<&'static CommandSpec>> = LazyLock::new(|| {
    all_commands()
        .into_iter()
        .filter(|s| !EXCLUDED.contains(&s.name))
        .collect()
});

/// Upper-case words of every command's argument grammar, every subcommand name and
/// [`EXTRA_WORDS`].
static WORDS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut words: Vec<&'static str> = EXTRA_WORDS.to_vec();
    let add_spec = |s: &'static CommandSpec, words: &mut Vec<&'static str>| {
        words.push(s.name);
        for w in s
            .args
            .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            if w.len() >= 2 && w.chars().all(|c| !c.is_ascii_lowercase()) {
                words.push(w);
            }
        }
    };
    for s in all_commands() {
        add_spec(s, &mut words);
        for sub in s.subcommands {
            add_spec(sub, &mut words);
        }
    }
    words.sort_unstable();
    words.dedup();
    words
});

#[derive(Debug, Arbitrary)]
enum Unit {
    None,
    Ms,
    S,
    M,
    H,
    D,
}

#[derive(Debug, Arbitrary)]
enum Arg {
    /// A keyword of the grammars.
    Word(u16),
    /// One of a few keys, so that commands meet each other's values.
    Key(u8),
    Int(i64),
    Small(u8),
    Duration(u16, Unit),
    Float(f64),
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Step {
    Stay,
    Forward(u16),
    ForwardSecs(u32),
    BackMs(u32),
    Set(u64),
}

#[derive(Debug, Arbitrary)]
struct Call {
    step: Step,
    command: u16,
    /// For a container command, which subcommand goes first.
    sub: u8,
    args: Vec<Arg>,
}

const KEYS: &[&str] = &["k", "k2", "{t}a", "{t}b", "limitkv:p:"];

fn render(arg: &Arg) -> Bytes {
    match arg {
        Arg::Word(i) => {
            let w = WORDS[usize::from(*i) % WORDS.len()];
            Bytes::from_static(w.as_bytes())
        }
        Arg::Key(i) => Bytes::from_static(KEYS[usize::from(*i) % KEYS.len()].as_bytes()),
        Arg::Int(n) => Bytes::from(n.to_string()),
        Arg::Small(n) => Bytes::from(n.to_string()),
        Arg::Duration(n, unit) => {
            let suffix = match unit {
                Unit::None => "",
                Unit::Ms => "ms",
                Unit::S => "s",
                Unit::M => "m",
                Unit::H => "h",
                Unit::D => "d",
            };
            Bytes::from(format!("{n}{suffix}"))
        }
        Arg::Float(f) => Bytes::from(f.to_string()),
        Arg::Raw(b) => Bytes::copy_from_slice(b),
    }
}

fn input_size(calls: &[Call]) -> usize {
    calls
        .iter()
        .map(|c| {
            c.args
                .iter()
                .map(|a| match a {
                    Arg::Raw(b) => b.len() + 8,
                    _ => 24,
                })
                .sum::<usize>()
                + 8
        })
        .sum()
}

fuzz_target!(|calls: Vec<Call>| {
    if calls.len() > 64 {
        return;
    }
    // Strings are capped at 1 MiB (proto-max-bulk-len), so SETRANGE, SETBIT and APPEND, which
    // may grow a string to that size by design, stay within the allocation bound below.
    let cfg = Config {
        databases: 2,
        shards: 4,
        proto_max_bulk_len: 1024 * 1024,
        ..Config::default()
    };
    let mut h = Harness::with_config(cfg);
    let start = h.clock_now();
    // Generous: replies may list keys, INFO and COMMAND DOCS are a few hundred kB at most.
    let cap = 64 * input_size(&calls) + (4 << 20);
    for call in &calls {
        match call.step {
            Step::Stay => {}
            Step::Forward(ms) => h.clock.advance(Duration::from_millis(u64::from(ms))),
            Step::ForwardSecs(s) => h.clock.advance(Duration::from_secs(u64::from(s))),
            Step::BackMs(ms) => h.clock.set(Nanos(
                h.clock_now().0.saturating_sub(u64::from(ms) * 1_000_000),
            )),
            // Anywhere from the epoch to the end of u64 nanoseconds (year 2554).
            Step::Set(t) => h
                .clock
                .set(Nanos(if t % 4 == 0 { t } else { start.0 ^ (t >> 20) })),
        }
        let spec = COMMANDS[usize::from(call.command) % COMMANDS.len()];
        let mut req = vec![Bytes::from_static(spec.name.as_bytes())];
        if !spec.subcommands.is_empty() {
            let sub = &spec.subcommands[usize::from(call.sub) % spec.subcommands.len()];
            req.push(Bytes::from_static(sub.name.as_bytes()));
        }
        req.extend(call.args.iter().map(render));
        let now = h.clock_now();
        limitkv_fuzz::reset_peak();
        let reply = dispatch(&mut Ctx::new(&h.shared, &mut h.session, now), &req);
        limitkv_fuzz::assert_peak_at_most(cap, "dispatch");
        let replies = limitkv_fuzz::wire_values(&reply);
        let maps = reply.clone().into_maps();
        for v in [RespVersion::Resp2, RespVersion::Resp3] {
            let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
            encode(&reply, v, &mut a);
            encode(&maps, v, &mut b);
            assert_eq!(a, b, "{req:?}: fields and map encode differently in {v:?}");
            limitkv_fuzz::assert_replies(&a, replies, &(&req, v));
        }
    }
});

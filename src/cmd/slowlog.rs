//! `SLOWLOG GET | LEN | RESET | HELP` and the slow log itself: commands that ran for at least
//! `slowlog-log-slower-than` microseconds (negative: none; 0: every command), the newest
//! `slowlog-max-len` of them, as Redis 7.0 keeps and reports them. The dispatcher offers every
//! command that ran (not those flagged `skip_slowlog`, such as `EXEC`, whose commands are
//! offered one by one) with its run time; the threshold is an atomic, so the common case costs
//! one load and one compare.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use super::flags::*;
use super::{args, dispatch_sub, help_reply, CommandSpec, Ctx, BASE, HELP_SUBCOMMAND};
use crate::error::CommandError;
use crate::protocol::Frame;

/// Most arguments an entry keeps (Redis's `SLOWLOG_ENTRY_MAX_ARGC`).
const MAX_ARGC: usize = 32;
/// Longest argument an entry keeps (Redis's `SLOWLOG_ENTRY_MAX_STRING`).
const MAX_STRING: usize = 128;

/// One slow command.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Unique, increasing id.
    pub id: u64,
    /// When it ran, in Unix seconds (the server's clock).
    pub time_secs: u64,
    /// How long it ran, in microseconds.
    pub duration_us: u64,
    /// Its arguments, shortened as Redis shortens them.
    pub args: Vec<Bytes>,
    /// The client's address.
    pub addr: String,
    /// The client's name, empty if none.
    pub name: Bytes,
}

/// The slow log and its settings.
#[derive(Debug)]
pub struct Slowlog {
    /// `slowlog-log-slower-than`, in microseconds (negative: off).
    slower_than_us: AtomicI64,
    /// `slowlog-max-len`.
    max_len: AtomicU64,
    next_id: AtomicU64,
    entries: Mutex<VecDeque<Entry>>,
}

impl Slowlog {
    /// An empty log with these settings.
    pub fn new(slower_than_us: i64, max_len: u64) -> Slowlog {
        Slowlog {
            slower_than_us: AtomicI64::new(slower_than_us),
            max_len: AtomicU64::new(max_len),
            next_id: AtomicU64::new(0),
            entries: Mutex::new(VecDeque::new()),
        }
    }

    /// Applies changed settings (`CONFIG SET`); a shorter length drops the oldest entries.
    pub fn configure(&self, slower_than_us: i64, max_len: u64) {
        self.slower_than_us.store(slower_than_us, Ordering::Relaxed);
        self.max_len.store(max_len, Ordering::Relaxed);
        let mut entries = self.entries.lock();
        entries.truncate(usize::try_from(max_len).unwrap_or(usize::MAX));
    }

    /// Whether a command that ran for `nanos` belongs in the log.
    pub fn is_slow(&self, nanos: u64) -> bool {
        let threshold = self.slower_than_us.load(Ordering::Relaxed);
        threshold >= 0 && nanos / 1000 >= threshold.unsigned_abs()
    }

    /// Records a command that [`Slowlog::is_slow`] found slow.
    pub fn push(&self, req: &[Bytes], nanos: u64, time_secs: u64, addr: &str, name: Bytes) {
        let max_len = usize::try_from(self.max_len.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
        if max_len == 0 {
            return;
        }
        let entry = Entry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            time_secs,
            duration_us: nanos / 1000,
            args: shorten(req),
            addr: addr.to_owned(),
            name,
        };
        let mut entries = self.entries.lock();
        entries.push_front(entry);
        entries.truncate(max_len);
    }

    /// The newest `count` entries, newest first.
    pub fn newest(&self, count: usize) -> Vec<Entry> {
        self.entries.lock().iter().take(count).cloned().collect()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether the log holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties the log (ids keep increasing, as in Redis).
    pub fn reset(&self) {
        self.entries.lock().clear();
    }
}

/// Redis's shortening: at most 32 arguments, the last saying how many more there were; each at
/// most 128 bytes, then how many more bytes it had.
fn shorten(req: &[Bytes]) -> Vec<Bytes> {
    let keep = req.len().min(MAX_ARGC);
    let mut out = Vec::with_capacity(keep);
    for (i, arg) in req.iter().take(keep).enumerate() {
        if keep != req.len() && i == keep - 1 {
            out.push(Bytes::from(format!(
                "... ({} more arguments)",
                req.len() - keep + 1
            )));
        } else if arg.len() > MAX_STRING {
            let mut s = arg[..MAX_STRING].to_vec();
            s.extend_from_slice(format!("... ({} more bytes)", arg.len() - MAX_STRING).as_bytes());
            out.push(Bytes::from(s));
        } else {
            out.push(arg.clone());
        }
    }
    out
}

/// Offers a command that ran for `nanos` to the slow log (called by the dispatcher).
pub(crate) fn offer(ctx: &Ctx<'_>, spec: &CommandSpec, req: &[Bytes], nanos: u64) {
    let log = &ctx.shared.slowlog;
    if !log.is_slow(nanos) || spec.has(SKIP_SLOWLOG) {
        return;
    }
    let info = &ctx.session.info;
    let name = info.name.lock().clone().unwrap_or_default();
    let redacted;
    let req = if spec.name == "AUTH" || spec.name == "HELLO" {
        redacted = redact(req);
        &redacted[..]
    } else {
        req
    };
    log.push(req, nanos, ctx.now.as_secs(), &info.addr, name);
}

/// Passwords never reach the log: `AUTH`'s arguments and `HELLO ... AUTH user pass`'s
/// credentials become `(redacted)`, as Redis writes them.
fn redact(req: &[Bytes]) -> Vec<Bytes> {
    let hidden = Bytes::from_static(b"(redacted)");
    let mut out = req.to_vec();
    if req[0].eq_ignore_ascii_case(b"AUTH") {
        for a in out.iter_mut().skip(1) {
            *a = hidden.clone();
        }
    } else if let Some(at) = req.iter().position(|a| a.eq_ignore_ascii_case(b"AUTH")) {
        for a in out.iter_mut().skip(at + 1).take(2) {
            *a = hidden.clone();
        }
    }
    out
}

/// The `SLOWLOG` container command.
pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "SLOWLOG",
    arity: -2,
    flags: 0,
    group: "server",
    summary: "A container for slow log commands.",
    since: "2.2.12",
    complexity: "Depends on subcommand.",
    subcommands: SUBCOMMANDS,
    handler: dispatch_sub,
    ..BASE
}];

const SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "GET",
        arity: -2,
        flags: ADMIN | LOADING | STALE,
        summary: "Returns the slow log's entries.",
        since: "2.2.12",
        complexity: "O(N) where N is the number of entries returned",
        args: "[count:integer]",
        handler: get,
        ..BASE
    },
    CommandSpec {
        name: "LEN",
        arity: 2,
        flags: ADMIN | LOADING | STALE,
        summary: "Returns the number of entries in the slow log.",
        since: "2.2.12",
        complexity: "O(1)",
        handler: |ctx, _| Ok(Frame::Integer(ctx.shared.slowlog.len() as i64)),
        ..BASE
    },
    CommandSpec {
        name: "RESET",
        arity: 2,
        flags: ADMIN | LOADING | STALE,
        summary: "Clears all entries from the slow log.",
        since: "2.2.12",
        complexity: "O(N) where N is the number of entries in the slowlog",
        handler: |ctx, _| {
            ctx.shared.slowlog.reset();
            Ok(Frame::OK)
        },
        ..BASE
    },
    CommandSpec {
        handler: |_, _| {
            Ok(help_reply(
                "SLOWLOG",
                &[
                    "GET [<count>]",
                    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                    "    Entries are made of:",
                    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                    "    client name",
                    "LEN",
                    "    Return the length of the slowlog.",
                    "RESET",
                    "    Reset the slowlog.",
                ],
            ))
        },
        ..HELP_SUBCOMMAND
    },
];

/// `SLOWLOG GET [count]`: newest first; `-1` (or any negative count Redis accepts) for all.
fn get(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if req.len() > 3 {
        return Err(CommandError::WrongArity("slowlog|get".into()));
    }
    let count = match req.get(2) {
        None => 10,
        Some(a) => match args::parse_i64(a) {
            Some(-1) => usize::MAX,
            Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
            _ => {
                return Err(CommandError::other(
                    "count should be greater than or equal to -1",
                ))
            }
        },
    };
    let entries = ctx.shared.slowlog.newest(count);
    Ok(Frame::Array(
        entries
            .into_iter()
            .map(|e| {
                Frame::Array(vec![
                    Frame::Integer(e.id as i64),
                    Frame::Integer(e.time_secs as i64),
                    Frame::Integer(e.duration_us as i64),
                    Frame::Array(e.args.into_iter().map(Frame::Bulk).collect()),
                    Frame::Bulk(Bytes::from(e.addr)),
                    Frame::Bulk(e.name),
                ])
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    fn entries(f: Frame) -> Vec<Vec<Frame>> {
        match f {
            Frame::Array(v) => v
                .into_iter()
                .map(|e| match e {
                    Frame::Array(fields) => fields,
                    other => panic!("{other:?}"),
                })
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn logs_every_command_at_threshold_zero_newest_first_and_resets() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]),
            Frame::OK
        );
        h.run(&["SLOWLOG", "RESET"]);
        h.run(&["CLIENT", "SETNAME", "worker-1"]);
        h.run(&["SET", "k", "v"]);
        h.run(&["CL.THROTTLE", "b", "1", "1", "60"]);
        let got = entries(h.run(&["SLOWLOG", "GET", "2"]));
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0][3],
            Frame::Array(vec![
                bulk("CL.THROTTLE"),
                bulk("b"),
                bulk("1"),
                bulk("1"),
                bulk("60")
            ])
        );
        assert_eq!(
            got[1][3],
            Frame::Array(vec![bulk("SET"), bulk("k"), bulk("v")])
        );
        let (Frame::Integer(newer), Frame::Integer(older)) = (&got[0][0], &got[1][0]) else {
            panic!("{got:?}")
        };
        assert_eq!(*newer, older + 1);
        assert_eq!(got[0][1], Frame::Integer(h.clock_ms() as i64 / 1000));
        assert_eq!(got[0][4], bulk("127.0.0.1:50000"));
        assert_eq!(got[0][5], bulk("worker-1"));
        // Passwords are redacted.
        h.run(&["AUTH", "secret"]);
        let got = entries(h.run(&["SLOWLOG", "GET", "1"]));
        assert_eq!(
            got[0][3],
            Frame::Array(vec![bulk("AUTH"), bulk("(redacted)")])
        );
        // SLOWLOG RESET, then the RESET itself is the one entry.
        h.run(&["SLOWLOG", "RESET"]);
        assert_eq!(h.run(&["SLOWLOG", "LEN"]), Frame::Integer(1));
    }

    #[test]
    fn long_commands_are_shortened_as_redis_shortens_them() {
        let mut h = Harness::new();
        h.run(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
        let big = "x".repeat(200);
        let mut words = vec!["RPUSH", "list"];
        let many: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        words.push(&big);
        words.extend(many.iter().map(String::as_str));
        h.run(&words);
        let got = entries(h.run(&["SLOWLOG", "GET", "1"]));
        let Frame::Array(a) = &got[0][3] else {
            panic!()
        };
        assert_eq!(a.len(), 32);
        assert_eq!(
            a[2],
            bulk(&format!("{}... (72 more bytes)", "x".repeat(128)))
        );
        assert_eq!(a[31], bulk("... (12 more arguments)"));
    }

    #[test]
    fn threshold_max_len_and_bad_counts() {
        let mut h = Harness::new();
        // A threshold of 100 s logs none of these quick commands.
        h.run(&["CONFIG", "SET", "slowlog-log-slower-than", "100000000"]);
        h.run(&["SET", "k", "v"]);
        assert_eq!(h.run(&["SLOWLOG", "LEN"]), Frame::Integer(0));
        h.run(&[
            "CONFIG",
            "SET",
            "slowlog-log-slower-than",
            "0",
            "slowlog-max-len",
            "3",
        ]);
        for _ in 0..10 {
            h.run(&["PING"]);
        }
        assert_eq!(h.run(&["SLOWLOG", "LEN"]), Frame::Integer(3));
        assert_eq!(entries(h.run(&["SLOWLOG", "GET", "-1"])).len(), 3);
        assert_eq!(entries(h.run(&["SLOWLOG", "GET", "0"])).len(), 0);
        assert_eq!(
            h.run(&["SLOWLOG", "GET", "-2"]),
            Frame::Error("ERR count should be greater than or equal to -1".into())
        );
        assert_eq!(
            h.run(&["CONFIG", "GET", "slowlog-*"]),
            Frame::Map(vec![
                (bulk("slowlog-log-slower-than"), bulk("0")),
                (bulk("slowlog-max-len"), bulk("3")),
            ])
        );
        // A negative threshold turns logging off.
        h.run(&["SLOWLOG", "RESET"]);
        h.run(&["CONFIG", "SET", "slowlog-log-slower-than", "-1"]);
        h.run(&["PING"]);
        // Only the RESET, logged before the threshold changed.
        assert_eq!(h.run(&["SLOWLOG", "LEN"]), Frame::Integer(1));
    }
}

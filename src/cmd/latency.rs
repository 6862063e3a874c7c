//! `LATENCY LATEST | HISTORY | RESET | GRAPH | DOCTOR | HELP`: the latency monitor's
//! ([`crate::latency`]) events in Redis 7.0's reply shapes. Events are sampled when they last
//! at least `latency-monitor-threshold` milliseconds (0, the default, turns sampling off):
//! `command` and `fast-command` (a command's run time, by whether it is flagged `fast`, fed by
//! the dispatcher), `aof-write` and `aof-fsync-always` (the append-only file's writer), and
//! `expire-cycle` (the background expiry sweep).

use bytes::Bytes;

use super::flags::*;
use super::{dispatch_sub, help_reply, CommandSpec, Ctx, BASE, HELP_SUBCOMMAND};
use crate::error::CommandError;
use crate::latency::{graph, stats};
use crate::protocol::Frame;

/// The `LATENCY` container command.
pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "LATENCY",
    arity: -2,
    flags: 0,
    group: "server",
    summary: "A container for latency diagnostics commands.",
    since: "2.8.13",
    complexity: "Depends on subcommand.",
    subcommands: SUBCOMMANDS,
    handler: dispatch_sub,
    ..BASE
}];

const FLAGS: u32 = ADMIN | NOSCRIPT | LOADING | STALE;

const SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "LATEST",
        arity: 2,
        flags: FLAGS,
        summary: "Returns the latest latency samples for all events.",
        since: "2.8.13",
        handler: latest,
        ..BASE
    },
    CommandSpec {
        name: "HISTORY",
        arity: 3,
        flags: FLAGS,
        summary: "Returns timestamp-latency samples for an event.",
        since: "2.8.13",
        args: "event:string",
        handler: history,
        ..BASE
    },
    CommandSpec {
        name: "RESET",
        arity: -2,
        flags: FLAGS,
        summary: "Resets the latency data for one or more events.",
        since: "2.8.13",
        args: "[event:string...]",
        handler: reset,
        ..BASE
    },
    CommandSpec {
        name: "GRAPH",
        arity: 3,
        flags: FLAGS,
        summary: "Returns a latency graph for an event.",
        since: "2.8.13",
        args: "event:string",
        handler: latency_graph,
        ..BASE
    },
    CommandSpec {
        name: "DOCTOR",
        arity: 2,
        flags: FLAGS,
        summary: "Returns a human-readable latency analysis report.",
        since: "2.8.13",
        handler: doctor,
        ..BASE
    },
    CommandSpec {
        handler: |_, _| {
            Ok(help_reply(
                "LATENCY",
                &[
                    "DOCTOR",
                    "    Return a human readable latency analysis report.",
                    "GRAPH <event>",
                    "    Return an ASCII latency graph for the <event> class.",
                    "HISTORY <event>",
                    "    Return time-latency samples for the <event> class.",
                    "LATEST",
                    "    Return the latest latency samples for all events.",
                    "RESET [<event> ...]",
                    "    Reset latency data of one or more <event> classes.",
                    "    (default: reset all data for all event classes)",
                ],
            ))
        },
        ..HELP_SUBCOMMAND
    },
];

fn now_secs(ctx: &Ctx<'_>) -> u64 {
    ctx.now.as_secs()
}

/// ```text
/// LATENCY LATEST
/// ```
/// One `[event, time of the latest spike, its latency ms, all-time worst ms]` per event.
fn latest(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    let events = ctx.shared.engine.latency.events();
    Ok(Frame::Array(
        events
            .into_iter()
            .map(|(name, s)| {
                let last = s.latest();
                Frame::Array(vec![
                    Frame::bulk(name),
                    Frame::Integer(last.time as i64),
                    Frame::Integer(last.latency_ms as i64),
                    Frame::Integer(s.max_ms as i64),
                ])
            })
            .collect(),
    ))
}

/// ```text
/// LATENCY HISTORY event
/// ```
/// `[time, latency ms]` pairs, oldest first; empty for an unknown event.
fn history(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let Some((_, s)) = ctx.shared.engine.latency.series(&req[2]) else {
        return Ok(Frame::Array(Vec::new()));
    };
    Ok(Frame::Array(
        s.samples
            .iter()
            .map(|x| {
                Frame::Array(vec![
                    Frame::Integer(x.time as i64),
                    Frame::Integer(x.latency_ms as i64),
                ])
            })
            .collect(),
    ))
}

/// ```text
/// LATENCY RESET [event ...]
/// ```
/// The number of events forgotten (all without arguments).
fn reset(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let m = &ctx.shared.engine.latency;
    let n = if req.len() == 2 {
        m.reset(None)
    } else {
        req[2..].iter().map(|e| m.reset(Some(e))).sum()
    };
    Ok(Frame::Integer(n as i64))
}

/// ```text
/// LATENCY GRAPH event
/// ```
/// Verbatim text: an ASCII graph of the event's samples. `ERR No samples available for event
/// 'x'` for an unknown event.
fn latency_graph(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let Some((name, s)) = ctx.shared.engine.latency.series(&req[2]) else {
        return Err(CommandError::other(format!(
            "No samples available for event '{}'",
            String::from_utf8_lossy(&req[2])
        )));
    };
    Ok(Frame::Verbatim(
        "txt",
        Bytes::from(graph(name, &s, now_secs(ctx))),
    ))
}

/// ```text
/// LATENCY DOCTOR
/// ```
/// Verbatim text: per event its spikes (Redis's line: count, average, mean deviation, period,
/// worst), then advice for the events seen.
fn doctor(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    let m = &ctx.shared.engine.latency;
    let events = m.events();
    let threshold = m.threshold_ms();
    let (slowlog_us, fsync_always) = {
        let c = ctx.shared.engine.config.read();
        (
            c.slowlog_log_slower_than,
            c.appendfsync == crate::persist::FsyncPolicy::Always,
        )
    };
    let mut out = String::new();
    if events.is_empty() {
        if threshold == 0 {
            out.push_str(
                "Latency monitoring is disabled in this limitkv instance. Use \"CONFIG SET \
                 latency-monitor-threshold <milliseconds>\" to enable it.\n",
            );
        } else {
            out.push_str(&format!(
                "No latency spike of {threshold} ms or more was observed since the monitor was \
                 enabled or reset.\n"
            ));
        }
        return Ok(Frame::Verbatim("txt", Bytes::from(out)));
    }
    out.push_str("I have observed latency spikes in this limitkv instance.\n\n");
    let mut advice: Vec<String> = Vec::new();
    for (i, (name, s)) in events.iter().enumerate() {
        let (n, avg, mad, period) = stats(s, now_secs(ctx));
        out.push_str(&format!(
            "{}. {name}: {n} latency spikes (average {avg}ms, mean deviation {mad}ms, period \
             {period:.2} sec). Worst all time event {}ms.\n",
            i + 1,
            s.max_ms
        ));
        match *name {
            "command" => {
                if slowlog_us < 0 {
                    advice.push(format!(
                        "- Slow commands caused spikes, but the slow log is off: enable it with \
                         'CONFIG SET slowlog-log-slower-than {}'.",
                        threshold * 1000
                    ));
                } else if slowlog_us / 1000 > threshold as i64 {
                    advice.push(format!(
                        "- The slow log only keeps commands slower than the latency threshold: \
                         use 'CONFIG SET slowlog-log-slower-than {}'.",
                        threshold * 1000
                    ));
                }
                advice.push(
                    "- Check SLOWLOG GET for the commands that ran too long (large KEYS, SCAN \
                     counts, scripts, big collections)."
                        .into(),
                );
            }
            "fast-command" => advice.push(
                "- Commands that should take microseconds took milliseconds: the host does not \
                 give limitkv enough CPU time (load, noisy neighbours, CPU throttling of the \
                 container)."
                    .into(),
            ),
            "aof-write" => advice.push(
                "- Writes to the append-only file were slow: use a local disk (an SSD if the \
                 write load is high) and lower other disk activity on the host."
                    .into(),
            ),
            "aof-fsync-always" if fsync_always => advice.push(
                "- appendfsync is 'always', which waits for the disk on every write: consider \
                 'everysec' if a second of decisions may be lost in a crash."
                    .into(),
            ),
            "expire-cycle" => advice.push(
                "- The expiry sweep ran long: many keys expire at once; spread their TTLs or \
                 lower active-expire-budget."
                    .into(),
            ),
            _ => {}
        }
    }
    if advice.is_empty() {
        out.push_str("\nI have no advice for these events.\n");
    } else {
        out.push_str("\nI have a few advices for you:\n\n");
        for a in advice {
            out.push_str(&a);
            out.push('\n');
        }
    }
    Ok(Frame::Verbatim("txt", Bytes::from(out)))
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    const MS: u64 = 1_000_000;

    #[test]
    fn replies_have_redis_shapes() {
        let mut h = Harness::new();
        let t = h.clock_now().as_secs();
        assert_eq!(h.run(&["LATENCY", "LATEST"]), Frame::Array(vec![]));
        assert_eq!(
            h.run(&["LATENCY", "HISTORY", "command"]),
            Frame::Array(vec![])
        );
        assert_eq!(
            h.run(&["LATENCY", "GRAPH", "command"]),
            err("ERR No samples available for event 'command'")
        );
        let Frame::Verbatim(_, off) = h.run(&["LATENCY", "DOCTOR"]) else {
            panic!("verbatim")
        };
        assert!(String::from_utf8_lossy(&off).contains("disabled"));
        h.shared.engine.latency.set_threshold_ms(5);
        h.shared.engine.latency.sample("command", 7 * MS, t);
        h.shared.engine.latency.sample("command", 9 * MS, t + 1);
        h.shared.engine.latency.sample("aof-write", 6 * MS, t);
        assert_eq!(
            h.run(&["LATENCY", "LATEST"]),
            Frame::Array(vec![
                Frame::Array(vec![bulk("aof-write"), int(t as i64), int(6), int(6)]),
                Frame::Array(vec![bulk("command"), int(t as i64 + 1), int(9), int(9)]),
            ])
        );
        assert_eq!(
            h.run(&["LATENCY", "HISTORY", "command"]),
            Frame::Array(vec![
                Frame::Array(vec![int(t as i64), int(7)]),
                Frame::Array(vec![int(t as i64 + 1), int(9)]),
            ])
        );
        let Frame::Verbatim(_, report) = h.run(&["LATENCY", "DOCTOR"]) else {
            panic!("verbatim")
        };
        let report = String::from_utf8_lossy(&report).into_owned();
        assert!(
            report.contains("2. command: 2 latency spikes (average 8ms, mean deviation 1ms"),
            "{report}"
        );
        assert!(report.contains("SLOWLOG GET"), "{report}");
        assert_eq!(h.run(&["LATENCY", "RESET", "command", "nope"]), int(1));
        assert_eq!(h.run(&["LATENCY", "RESET"]), int(1));
        assert_eq!(h.run(&["LATENCY", "LATEST"]), Frame::Array(vec![]));
        assert_eq!(
            h.run(&["LATENCY", "NOPE"]),
            err("ERR unknown subcommand 'NOPE'. Try LATENCY HELP.")
        );
    }
}

//! Replication commands: `REPLICAOF`/`SLAVEOF`, `ROLE`, `WAIT`, and the replica's side of
//! the handshake (`REPLCONF`, `PSYNC`, `SYNC`), plus `INFO replication`'s section.
//!
//! `PSYNC`/`SYNC` and a `WAIT` that must block only set [`Session::blocked`]; the connection
//! task finishes them (`server::replication`), since a handler never touches a socket.
//! See docs/replication.md.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args::{self, is};
use super::flags::*;
use super::{Blocked, CommandSpec, Ctx, Session, Shared, BASE};
use crate::engine::Engine;
use crate::error::CommandError;
use crate::persist::{Record, Seq};
use crate::protocol::Frame;
use crate::repl::{Host, LinkState, Repl, NO_REPLID};

/// The replication commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "REPLICAOF",
        arity: 3,
        flags: ADMIN | NOSCRIPT | STALE,
        group: "server",
        summary: "Configures a server as replica of another, or promotes it to a master.",
        since: "5.0.0",
        args: "args=(host-port=(host:string port:integer)|no-one=(NO ONE))",
        handler: replicaof,
        ..BASE
    },
    CommandSpec {
        name: "SLAVEOF",
        arity: 3,
        flags: ADMIN | NOSCRIPT | STALE,
        group: "server",
        summary: "Sets a Redis server as a replica of another, or promotes it to being a master.",
        since: "1.0.0",
        args: "args=(host-port=(host:string port:integer)|no-one=(NO ONE))",
        handler: replicaof,
        ..BASE
    },
    CommandSpec {
        name: "ROLE",
        arity: 1,
        flags: NOSCRIPT | LOADING | STALE | FAST,
        group: "server",
        summary: "Returns the replication role.",
        since: "2.8.12",
        handler: role,
        ..BASE
    },
    CommandSpec {
        name: "WAIT",
        arity: 3,
        flags: NOSCRIPT,
        group: "generic",
        summary: "Blocks until the asynchronous replication of all preceding write commands \
                  sent by the connection is completed.",
        since: "3.0.0",
        complexity: "O(1)",
        args: "numreplicas:integer timeout:integer",
        handler: wait,
        ..BASE
    },
    CommandSpec {
        name: "WAITAOF",
        arity: 4,
        flags: NOSCRIPT,
        group: "generic",
        summary: "Blocks until all of the preceding write commands sent by the connection are \
                  written to the append-only file of the master and/or replicas.",
        since: "7.2.0",
        complexity: "O(1)",
        args: "numlocal:integer numreplicas:integer timeout:integer",
        handler: waitaof,
        ..BASE
    },
    CommandSpec {
        name: "REPLCONF",
        arity: -1,
        flags: ADMIN | NOSCRIPT | LOADING | STALE | ALLOW_BUSY,
        group: "server",
        summary: "An internal command for configuring the replication stream.",
        since: "3.0.0",
        handler: replconf,
        ..BASE
    },
    CommandSpec {
        name: "PSYNC",
        arity: -3,
        flags: ADMIN | NOSCRIPT | NO_MULTI,
        group: "server",
        summary: "An internal command used in replication.",
        since: "2.8.0",
        args: "replicationid:string offset:integer",
        handler: psync,
        ..BASE
    },
    CommandSpec {
        name: "SYNC",
        arity: 1,
        flags: ADMIN | NOSCRIPT | NO_MULTI,
        group: "server",
        summary: "An internal command used in replication.",
        handler: psync,
        ..BASE
    },
];

impl Host for Shared {
    fn engine(&self) -> &Engine {
        &self.engine
    }
    fn repl(&self) -> &Repl {
        &self.repl
    }
    fn script_records(&self) -> Vec<Record> {
        super::scripting::snapshot(self)
    }
    fn restore_script(&self, record: Record) {
        super::scripting::restore(self, record);
    }
    fn listening_port(&self) -> u16 {
        u16::try_from(self.tcp_port.load(Ordering::Relaxed)).unwrap_or(0)
    }
    fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
    fn run_id(&self) -> &str {
        &self.run_id
    }
}

/// Who asked, for the log: Redis's `id=.. addr=..` of the client.
fn requester(s: &Session) -> String {
    format!("id={} addr={}", s.info.id, s.info.addr)
}

/// `REPLICAOF host port` / `REPLICAOF NO ONE` (and `SLAVEOF`).
///
/// ```text
/// REPLICAOF host port | REPLICAOF NO ONE
/// ```
/// Reply: `+OK`, or `+OK Already connected to specified master`. Errors: `-ERR Invalid master
/// port` for a port that is not an integer in 0..65535.
fn replicaof(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let shared = ctx.shared;
    let master = if is(&req[1], "no") && is(&req[2], "one") {
        None
    } else {
        // Redis 7.0's check and text: an integer in 0..=65535 (0 is accepted, and fails to
        // connect like any closed port).
        let port = args::parse_i64(&req[2])
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| CommandError::other("Invalid master port"))?;
        Some((args::text(&req[1]), port))
    };
    let changed = shared.repl.set_master(&shared.engine, master.clone());
    shared.engine.config.write().repl.replicaof = master.clone();
    match (&master, changed) {
        (Some(_), false) => Ok(Frame::simple("OK Already connected to specified master")),
        (Some((h, p)), true) => {
            tracing::info!(
                "REPLICAOF {h}:{p} enabled (user request from '{}')",
                requester(ctx.session)
            );
            Ok(Frame::OK)
        }
        (None, changed) => {
            if changed {
                tracing::info!(
                    "MASTER MODE enabled (user request from '{}')",
                    requester(ctx.session)
                );
            }
            Ok(Frame::OK)
        }
    }
}

/// `ROLE`: `[master, offset, [[ip, port, offset], ...]]` or
/// `[slave, host, port, state, offset]`, exactly as Redis shapes them.
fn role(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Result<Frame, CommandError> {
    let shared = ctx.shared;
    let ids = shared.repl.ids();
    let offset = i64::try_from(shared.engine.feed.offset()).unwrap_or(i64::MAX);
    Ok(match ids.master {
        None => {
            let replicas = shared
                .repl
                .online_replicas()
                .iter()
                .map(|r| {
                    Frame::Array(vec![
                        Frame::bulk(&r.ip),
                        Frame::bulk(r.port.load(Ordering::Relaxed).to_string()),
                        Frame::bulk(r.ack_offset.load(Ordering::Relaxed).to_string()),
                    ])
                })
                .collect();
            Frame::Array(vec![
                Frame::bulk("master"),
                Frame::Integer(offset),
                Frame::Array(replicas),
            ])
        }
        Some((host, port)) => {
            let state = shared.repl.link.lock().state;
            let offset = if state == LinkState::Connected {
                i64::try_from(shared.repl.replica_offset.load(Ordering::Acquire)).unwrap_or(-1)
            } else {
                -1
            };
            Frame::Array(vec![
                Frame::bulk("slave"),
                Frame::bulk(host),
                Frame::Integer(i64::from(port)),
                Frame::bulk(state.name()),
                Frame::Integer(offset),
            ])
        }
    })
}

/// `WAIT numreplicas timeout`.
///
/// ```text
/// WAIT numreplicas timeout
/// ```
/// Reply: integer, the replicas that acknowledged every change made so far (at least
/// `numreplicas` unless `timeout` milliseconds passed first; 0 waits without limit). Inside a
/// transaction, or when enough replicas already acknowledged, it answers at once. Errors:
/// non-integer arguments, a negative timeout, and `WAIT` on a replica.
fn wait(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let shared = ctx.shared;
    if shared.repl.is_replica() {
        return Err(CommandError::WaitOnReplica);
    }
    let numreplicas = args::parse_i64(&req[1]).ok_or(CommandError::NotAnInteger)?;
    let timeout = args::parse_i64(&req[2])
        .ok_or_else(|| CommandError::other("timeout is not an integer or out of range"))?;
    if timeout < 0 {
        return Err(CommandError::other("timeout is negative"));
    }
    let offset = shared.engine.feed.offset();
    let acked = shared.repl.count_acked(offset);
    let in_exec = ctx.locked.is_some();
    if i64::try_from(acked).unwrap_or(i64::MAX) >= numreplicas || in_exec {
        return Ok(Frame::Integer(i64::try_from(acked).unwrap_or(i64::MAX)));
    }
    ctx.session.blocked = Some(Blocked::Wait {
        numreplicas: u64::try_from(numreplicas).unwrap_or(0),
        timeout_ms: u64::try_from(timeout).unwrap_or(0),
        offset,
    });
    Ok(Frame::Null)
}

/// `WAITAOF numlocal numreplicas timeout` (Redis 7.2).
///
/// ```text
/// WAITAOF numlocal numreplicas timeout
/// ```
/// Reply: `[local, replicas]`: 1 if the local AOF has fsynced every change made so far (0
/// otherwise), and the replicas that reported fsyncing them to their own AOF. It waits until
/// `local >= numlocal` and `replicas >= numreplicas`, or `timeout` milliseconds (0 waits
/// without limit); inside a transaction, or when already satisfied, it answers at once.
/// Errors: `numlocal` not 0 or 1, a negative `numreplicas` or `timeout`, `WAITAOF` on a
/// replica, `numlocal` 1 with `appendonly no`.
fn waitaof(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let shared = ctx.shared;
    let numlocal = args::parse_i64(&req[1]).ok_or(CommandError::NotAnInteger)?;
    if !(0..=1).contains(&numlocal) {
        // Redis 7.2's text, grammar included.
        return Err(CommandError::other(
            "value is out of range, value must between 0 and 1",
        ));
    }
    let numreplicas = args::parse_i64(&req[2]).ok_or(CommandError::NotAnInteger)?;
    if numreplicas < 0 {
        return Err(CommandError::other(
            "value is out of range, must be positive",
        ));
    }
    let timeout = args::parse_i64(&req[3])
        .ok_or_else(|| CommandError::other("timeout is not an integer or out of range"))?;
    if timeout < 0 {
        return Err(CommandError::other("timeout is negative"));
    }
    if shared.repl.is_replica() {
        return Err(CommandError::WaitAofOnReplica);
    }
    let writer = shared.engine.aof.get();
    if numlocal > 0 && writer.is_none() {
        return Err(CommandError::WaitAofWithoutAof);
    }
    // Like WAIT, the target is every change made so far (not only this connection's): the
    // stream's offset for the replicas, the AOF's last record for the local file.
    let offset = shared.engine.feed.offset();
    let seq = writer.map_or(Seq(0), |w| w.last_seq());
    let local = u64::from(writer.is_some_and(|w| w.synced() >= seq));
    let acked = u64::try_from(shared.repl.count_aof_acked(offset)).unwrap_or(u64::MAX);
    let numreplicas = u64::try_from(numreplicas).unwrap_or(0);
    let numlocal = u64::try_from(numlocal).unwrap_or(0);
    let in_exec = ctx.locked.is_some();
    if (local >= numlocal && acked >= numreplicas) || in_exec {
        return Ok(Frame::Array(vec![
            Frame::Integer(i64::try_from(local).unwrap_or(0)),
            Frame::Integer(i64::try_from(acked).unwrap_or(i64::MAX)),
        ]));
    }
    ctx.session.blocked = Some(Blocked::WaitAof {
        numlocal,
        numreplicas,
        timeout_ms: u64::try_from(timeout).unwrap_or(0),
        offset,
        seq,
    });
    Ok(Frame::Null)
}

/// `REPLCONF option value ...`: what a replica tells its master before and after `PSYNC`.
/// `listening-port`, `ip-address` are kept for `INFO`/`ROLE`; `capa`, `rdb-*` are accepted;
/// `ack` (with Redis 7.2's `fack`) and `getack` are handled on the replica link itself. limitkv replicas also send
/// `runid <id>` so a server told to replicate itself refuses at once.
fn replconf(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if req.len() % 2 == 0 {
        return Err(CommandError::Syntax);
    }
    for pair in req[1..].chunks_exact(2) {
        let (opt, val) = (&pair[0], &pair[1]);
        if is(opt, "listening-port") {
            let port = args::parse_i64(val)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or(CommandError::NotAnInteger)?;
            ctx.session.replconf.listening_port = port;
        } else if is(opt, "ip-address") {
            ctx.session.replconf.ip_address = Some(args::text(val));
        } else if is(opt, "runid") {
            if val.as_ref() == ctx.shared.run_id.as_bytes() {
                return Err(CommandError::other(
                    "a server cannot replicate itself (REPLICAOF names this server)",
                ));
            }
        } else if is(opt, "capa")
            || is(opt, "ack")
            || is(opt, "fack")
            || is(opt, "getack")
            || is(opt, "rdb-only")
            || is(opt, "rdb-filter-only")
        {
        } else {
            return Err(CommandError::other(format!(
                "Unrecognized REPLCONF option: {}",
                args::text(opt)
            )));
        }
    }
    Ok(Frame::OK)
}

/// `PSYNC replid offset` / `SYNC`: the connection becomes a replica's link (the connection
/// task answers `+FULLRESYNC`/`+CONTINUE` and streams). Errors: `-NOMASTERLINK` on a replica
/// not connected to its own master; a non-integer offset.
fn psync(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let shared = ctx.shared;
    if shared.repl.is_replica() && shared.repl.link.lock().state != LinkState::Connected {
        return Err(CommandError::NoMasterLink);
    }
    let psync = if req.len() >= 3 {
        let offset = args::parse_i64(&req[2]).ok_or(CommandError::NotAnInteger)?;
        Some((args::text(&req[1]), offset))
    } else {
        None
    };
    ctx.session.blocked = Some(Blocked::Sync { psync });
    Ok(Frame::Null)
}

/// `INFO replication`, with the fields Redis 7.0 reports, in its order.
pub fn info_section(shared: &Shared) -> String {
    let mut out = String::from("# Replication\r\n");
    let mut w = |k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(out, "{k}:{v}\r\n");
    };
    let ids = shared.repl.ids();
    let feed = shared.engine.feed.info();
    let cfg = shared.engine.config.read().repl.clone();
    match &ids.master {
        None => w("role", &"master"),
        Some((host, port)) => {
            let link = shared.repl.link.lock().clone();
            let up = link.state == LinkState::Connected;
            w("role", &"slave");
            w("master_host", host);
            w("master_port", port);
            w("master_link_status", &if up { "up" } else { "down" });
            let io = link.last_io.map_or(-1, |t| t.elapsed().as_secs() as i64);
            w("master_last_io_seconds_ago", &io);
            let syncing = link.state == LinkState::Sync;
            w("master_sync_in_progress", &u8::from(syncing));
            let offset = shared.repl.replica_offset.load(Ordering::Acquire);
            w("slave_read_repl_offset", &offset);
            w("slave_repl_offset", &offset);
            if let (true, Some((read, total))) = (syncing, link.transfer) {
                w("master_sync_total_bytes", &total);
                w("master_sync_read_bytes", &read);
                w("master_sync_left_bytes", &total.saturating_sub(read));
                w("master_sync_perc", &format!("{:.2}", pct(read, total)));
                w("master_sync_last_io_seconds_ago", &io.max(0));
            }
            if !up {
                w(
                    "master_link_down_since_seconds",
                    &link.down_since.elapsed().as_secs(),
                );
                // limitkv's own field: why the last attempt failed (Redis only logs it).
                if let Some(e) = &link.last_error {
                    w("master_link_last_error", &e.replace(['\r', '\n'], " "));
                }
            }
            w("slave_priority", &cfg.replica_priority);
            w("slave_read_only", &u8::from(cfg.replica_read_only));
            w("replica_announced", &u8::from(cfg.replica_announced));
        }
    }
    let online = shared.repl.online_replicas();
    w("connected_slaves", &online.len());
    for (i, r) in online.iter().enumerate() {
        w(
            &format!("slave{i}"),
            &format!(
                "ip={},port={},state=online,offset={},lag={}",
                r.ip,
                r.port.load(Ordering::Relaxed),
                r.ack_offset.load(Ordering::Relaxed),
                r.lag_secs()
            ),
        );
    }
    if ids.master.is_none() && cfg.min_replicas_to_write > 0 && cfg.min_replicas_max_lag > 0 {
        w(
            "min_slaves_good_slaves",
            &shared.repl.good_replicas(cfg.min_replicas_max_lag),
        );
    }
    w("master_failover_state", &"no-failover");
    w("master_replid", &ids.replid);
    w("master_replid2", &ids.replid2);
    w("master_repl_offset", &feed.offset);
    // Redis reports offsets 1-based here: the first offset the old id is not valid for.
    let second = if ids.replid2 == NO_REPLID {
        -1
    } else {
        ids.second_offset.saturating_add(1)
    };
    w("second_repl_offset", &second);
    w("repl_backlog_active", &u8::from(feed.active));
    w("repl_backlog_size", &feed.size);
    w("repl_backlog_first_byte_offset", &(feed.first + 1));
    w("repl_backlog_histlen", &feed.histlen);
    out
}

fn pct(read: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        read as f64 * 100.0 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    fn text(f: Frame) -> String {
        match f {
            Frame::Verbatim(_, b) | Frame::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("expected text, got {other:?}"),
        }
    }

    #[test]
    fn role_and_info_of_a_master() {
        let mut h = Harness::new();
        let role = h.run(&["ROLE"]);
        assert_eq!(
            role,
            Frame::Array(vec![
                Frame::bulk("master"),
                Frame::Integer(0),
                Frame::Array(vec![])
            ])
        );
        let info = text(h.run(&["INFO", "replication"]));
        for field in [
            "role:master\r\n",
            "connected_slaves:0\r\n",
            "master_failover_state:no-failover\r\n",
            "master_replid2:0000000000000000000000000000000000000000\r\n",
            "master_repl_offset:0\r\n",
            "second_repl_offset:-1\r\n",
            "repl_backlog_active:0\r\n",
            "repl_backlog_size:1048576\r\n",
            "repl_backlog_first_byte_offset:1\r\n",
            "repl_backlog_histlen:0\r\n",
        ] {
            assert!(info.contains(field), "missing {field:?} in {info}");
        }
    }

    #[test]
    fn a_replica_refuses_writes_and_serves_reads() {
        let mut h = Harness::new();
        h.run(&["CL.THROTTLE", "k", "4", "1", "60"]);
        assert_eq!(h.run(&["REPLICAOF", "127.0.0.1", "1"]), Frame::OK);
        assert_eq!(
            h.run(&["REPLICAOF", "127.0.0.1", "1"]),
            Frame::simple("OK Already connected to specified master")
        );
        assert_eq!(
            h.run(&["CL.THROTTLE", "k", "4", "1", "60"]),
            Frame::Error("READONLY You can't write against a read only replica.".into())
        );
        assert_eq!(
            h.run(&["EXISTS", "k"]),
            Frame::Integer(1),
            "reads are served"
        );
        // In MULTI the write is refused when queued, and EXEC aborts.
        assert_eq!(h.run(&["MULTI"]), Frame::OK);
        assert!(matches!(h.run(&["SET", "a", "1"]), Frame::Error(_)));
        assert!(matches!(h.run(&["EXEC"]), Frame::Error(e) if e.starts_with(b"EXECABORT")));
        let role = h.run(&["ROLE"]);
        assert_eq!(
            role,
            Frame::Array(vec![
                Frame::bulk("slave"),
                Frame::bulk("127.0.0.1"),
                Frame::Integer(1),
                Frame::bulk("connect"),
                Frame::Integer(-1),
            ])
        );
        let info = text(h.run(&["INFO", "replication"]));
        for field in [
            "role:slave\r\n",
            "master_host:127.0.0.1\r\n",
            "master_port:1\r\n",
            "master_link_status:down\r\n",
            "master_sync_in_progress:0\r\n",
            "slave_priority:100\r\n",
            "slave_read_only:1\r\n",
            "replica_announced:1\r\n",
            "master_link_down_since_seconds:",
        ] {
            assert!(info.contains(field), "missing {field:?} in {info}");
        }
        assert_eq!(
            h.run(&["WAIT", "1", "0"]),
            Frame::Error("ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.".into())
        );
        assert_eq!(
            h.run(&["PSYNC", "?", "-1"]),
            Frame::Error("NOMASTERLINK Can't SYNC while not connected with my master".into())
        );
        assert_eq!(h.run(&["REPLICAOF", "NO", "ONE"]), Frame::OK);
        assert!(matches!(
            h.run(&["CL.THROTTLE", "k", "4", "1", "60"]),
            Frame::Array(_)
        ));
        let info = text(h.run(&["INFO", "replication"]));
        assert!(info.contains("role:master\r\n"), "{info}");
        assert!(
            !info.contains("master_replid2:0000"),
            "promotion keeps replid2: {info}"
        );
    }

    #[test]
    fn promotion_inside_a_transaction_holding_shards_does_not_deadlock() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["REPLICAOF", "127.0.0.1", "1"]), Frame::OK);
        assert_eq!(h.run(&["MULTI"]), Frame::OK);
        h.run(&["GET", "k"]);
        h.run(&["SLAVEOF", "NO", "ONE"]);
        h.run(&["EXISTS", "k"]);
        assert_eq!(
            h.run(&["EXEC"]),
            Frame::Array(vec![Frame::Null, Frame::OK, Frame::Integer(0)])
        );
        assert!(matches!(
            h.run(&["CL.THROTTLE", "k", "4", "1", "60"]),
            Frame::Array(_)
        ));
    }

    #[test]
    fn wait_and_replconf_errors() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["WAIT", "0", "0"]), Frame::Integer(0));
        assert_eq!(
            h.run(&["WAIT", "x", "0"]),
            Frame::Error("ERR value is not an integer or out of range".into())
        );
        assert_eq!(
            h.run(&["WAIT", "1", "-1"]),
            Frame::Error("ERR timeout is negative".into())
        );
        assert_eq!(
            h.run(&["REPLCONF", "listening-port"]),
            Frame::Error("ERR syntax error".into())
        );
        assert_eq!(
            h.run(&["REPLCONF", "bogus", "1"]),
            Frame::Error("ERR Unrecognized REPLCONF option: bogus".into())
        );
        assert_eq!(
            h.run(&["REPLCONF", "listening-port", "6380", "capa", "eof"]),
            Frame::OK
        );
        assert_eq!(
            h.run(&["REPLICAOF", "host", "99999"]),
            Frame::Error("ERR Invalid master port".into())
        );
    }

    #[test]
    fn waitaof_arguments_and_refusals_are_redis_7_2s() {
        let mut h = Harness::new();
        let pair = |l, r| Frame::Array(vec![Frame::Integer(l), Frame::Integer(r)]);
        assert_eq!(h.run(&["WAITAOF", "0", "0", "0"]), pair(0, 0));
        for (args, err) in [
            (
                ["1", "0", "0"],
                "ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.",
            ),
            (
                ["2", "0", "0"],
                "ERR value is out of range, value must between 0 and 1",
            ),
            (
                ["x", "0", "0"],
                "ERR value is not an integer or out of range",
            ),
            (
                ["0", "-1", "0"],
                "ERR value is out of range, must be positive",
            ),
            (["0", "0", "-1"], "ERR timeout is negative"),
            (
                ["0", "0", "x"],
                "ERR timeout is not an integer or out of range",
            ),
        ] {
            let mut cmd = vec!["WAITAOF"];
            cmd.extend_from_slice(&args);
            assert_eq!(h.run(&cmd), Frame::Error(err.into()), "{args:?}");
        }
        // Inside a transaction it answers at once, even when not satisfied.
        assert_eq!(h.run(&["MULTI"]), Frame::OK);
        h.run(&["WAITAOF", "0", "1", "0"]);
        assert_eq!(h.run(&["EXEC"]), Frame::Array(vec![pair(0, 0)]));
        // Not from a script (NOSCRIPT), as in Redis.
        let from_script = h.run(&["EVAL", "return redis.call('WAITAOF', '0', '0', '0')", "0"]);
        assert!(
            matches!(&from_script, Frame::Error(e)
                if e.starts_with(b"ERR This Redis command is not allowed from script")),
            "{from_script:?}"
        );
        assert_eq!(h.run(&["REPLICAOF", "127.0.0.1", "1"]), Frame::OK);
        assert_eq!(
            h.run(&["WAITAOF", "0", "0", "0"]),
            Frame::Error("ERR WAITAOF cannot be used with replica instances. Please also note that writes to replicas are just local and are not propagated.".into())
        );
    }

    #[test]
    fn min_replicas_to_write_refuses_writes_without_replicas() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["CONFIG", "SET", "min-replicas-to-write", "1"]),
            Frame::OK
        );
        assert_eq!(
            h.run(&["CL.THROTTLE", "k", "4", "1", "60"]),
            Frame::Error("NOREPLICAS Not enough good replicas to write.".into())
        );
        assert_eq!(h.run(&["GET", "k"]), Frame::Null, "reads are served");
        assert_eq!(
            h.run(&["CONFIG", "SET", "min-replicas-to-write", "0"]),
            Frame::OK
        );
        assert!(matches!(
            h.run(&["CL.THROTTLE", "k", "4", "1", "60"]),
            Frame::Array(_)
        ));
    }
}

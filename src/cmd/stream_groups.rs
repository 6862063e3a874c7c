//! Consumer group commands: XGROUP (CREATE, SETID, DESTROY, CREATECONSUMER, DELCONSUMER,
//! HELP), XACK, XPENDING, XCLAIM, XAUTOCLAIM, with Redis 7.0's replies and error texts.
//! Delivery times and idle times are milliseconds of the injected clock.

use bytes::Bytes;

use super::args;
use super::flags::*;
use super::streams::{create, entry_frame, interval_id, notify, owned, read, strict_id, write};
use super::{dispatch_sub, help_reply, CommandSpec, Ctx, BASE, HELP_SUBCOMMAND};
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::stream::{Group, Stream, StreamId};

/// XGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "XGROUP",
        arity: -2,
        // KEYSPACE (internal): the container has no key positions of its own, so EXEC locks
    // every shard for it (as for OBJECT).
    flags: super::flags::KEYSPACE,
        group: "stream",
        summary: "A container for consumer groups commands.",
        since: "5.0.0",
        complexity: "Depends on subcommand.",
        subcommands: XGROUP_SUBCOMMANDS,
        handler: dispatch_sub,
        ..BASE
    },
    CommandSpec {
        name: "XACK",
        arity: -4,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "stream",
        summary: "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream.",
        since: "5.0.0",
        complexity: "O(1) for each message ID processed.",
        args: "key:key group:string id:string...",
        handler: xack,
        ..BASE
    },
    CommandSpec {
        name: "XPENDING",
        arity: -3,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "stream",
        summary: "Returns the information and entries from a stream consumer group's pending entries list.",
        since: "5.0.0",
        complexity: "O(N) with N being the number of elements returned, so asking for a small fixed number of entries per call is O(1). O(M), where M is the total number of entries scanned when used with the IDLE filter. When the command returns just the summary and the list of consumers is small, it runs in O(1) time; otherwise, an additional O(N) time for iterating every consumer.",
        args: "key:key group:string [filters=([IDLE min-idle-time:integer] start:string end:string count:integer [consumer:string])]",
        handler: xpending,
        ..BASE
    },
    CommandSpec {
        name: "XCLAIM",
        arity: -6,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "stream",
        summary: "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member.",
        since: "5.0.0",
        complexity: "O(log N) with N being the number of messages in the PEL of the consumer group.",
        args: "key:key group:string consumer:string min-idle-time:string id:string... [IDLE ms:integer] [TIME unix-time-milliseconds:unix-time] [RETRYCOUNT count:integer] [FORCE] [JUSTID] [LASTID lastid:string]",
        handler: xclaim,
        ..BASE
    },
    CommandSpec {
        name: "XAUTOCLAIM",
        arity: -6,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "stream",
        summary: "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member.",
        since: "6.2.0",
        complexity: "O(1) if COUNT is small.",
        args: "key:key group:string consumer:string min-idle-time:string start:string [COUNT count:integer] [JUSTID]",
        handler: xautoclaim,
        ..BASE
    },
];

const SUB: CommandSpec = CommandSpec {
    flags: WRITE | DENYOOM,
    first_key: 2,
    last_key: 2,
    key_step: 1,
    group: "stream",
    ..BASE
};

const XGROUP_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "CREATE",
        arity: -5,
        summary: "Creates a consumer group.",
        since: "5.0.0",
        args: "key:key group:string id-selector=(id:string|$) [MKSTREAM] [ENTRIESREAD entries-read:integer]",
        handler: xgroup,
        ..SUB
    },
    CommandSpec {
        name: "SETID",
        arity: -5,
        flags: WRITE,
        summary: "Sets the last-delivered ID of a consumer group.",
        since: "5.0.0",
        args: "key:key group:string id-selector=(id:string|$) [ENTRIESREAD entries-read:integer]",
        handler: xgroup,
        ..SUB
    },
    CommandSpec {
        name: "DESTROY",
        arity: 4,
        flags: WRITE,
        summary: "Destroys a consumer group.",
        since: "5.0.0",
        complexity: "O(N) where N is the number of entries in the group's pending entries list (PEL).",
        args: "key:key group:string",
        handler: xgroup,
        ..SUB
    },
    CommandSpec {
        name: "CREATECONSUMER",
        arity: 5,
        summary: "Creates a consumer in a consumer group.",
        since: "6.2.0",
        args: "key:key group:string consumer:string",
        handler: xgroup,
        ..SUB
    },
    CommandSpec {
        name: "DELCONSUMER",
        arity: 5,
        flags: WRITE,
        summary: "Deletes a consumer from a consumer group.",
        since: "5.0.0",
        args: "key:key group:string consumer:string",
        handler: xgroup,
        ..SUB
    },
    CommandSpec {
        handler: |_, _| {
            Ok(help_reply(
                "XGROUP",
                &[
                    "CREATE <key> <groupname> <id|$> [option]",
                    "    Create a new consumer group. Options are:",
                    "    * MKSTREAM",
                    "      Create the empty stream if it does not exist.",
                    "    * ENTRIESREAD entries_read",
                    "      Set the group's entries_read counter (internal use).",
                    "CREATECONSUMER <key> <groupname> <consumer>",
                    "    Create a new consumer in the specified group.",
                    "DELCONSUMER <key> <groupname> <consumer>",
                    "    Remove the specified consumer.",
                    "DESTROY <key> <groupname>",
                    "    Remove the specified group.",
                    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
                    "    Set the current group ID and entries_read counter.",
                ],
            ))
        },
        ..HELP_SUBCOMMAND
    },
];

fn subcommand_syntax(req: &[Bytes]) -> CommandError {
    CommandError::SubcommandSyntax(args::text(&req[1]), "XGROUP".into())
}

/// Redis's `xgroupCommand` for every subcommand but HELP.
fn xgroup(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let sub = req[1].to_ascii_uppercase();
    let (create_sub, setid_sub) = (sub == b"CREATE", sub == b"SETID");
    let mut mkstream = false;
    let mut entries_read: Option<u64> = None;
    let mut i = 5;
    while i < req.len() {
        if create_sub && args::is(&req[i], "MKSTREAM") {
            mkstream = true;
            i += 1;
        } else if (create_sub || setid_sub) && args::is(&req[i], "ENTRIESREAD") && i + 1 < req.len()
        {
            let n = args::int(&req[i + 1])?;
            if n < -1 {
                return Err(CommandError::other(
                    "value for ENTRIESREAD must be positive or -1",
                ));
            }
            entries_read = u64::try_from(n).ok();
            i += 2;
        } else {
            return Err(subcommand_syntax(req));
        }
    }
    let arity_ok = match &sub[..] {
        b"CREATE" => (5..=8).contains(&req.len()),
        b"SETID" => req.len() == 5 || req.len() == 7,
        _ => true,
    };
    let (now, now_ms) = (ctx.now, ctx.now.as_millis());
    let key = &req[2];
    let gname = &req[3];
    let (shared, db) = (ctx.shared, ctx.session.db);
    ctx.with_shard(key, |s| {
        let st = read(s, key, now)?;
        let group = st.and_then(|st| st.groups.get(gname));
        if !mkstream {
            let Some(st) = st else {
                return Err(CommandError::other(
                    "The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
                ));
            };
            if group.is_none() && matches!(&sub[..], b"SETID" | b"CREATECONSUMER" | b"DELCONSUMER")
            {
                return Err(CommandError::Coded(format!(
                    "NOGROUP No such consumer group '{}' for key name '{}'",
                    String::from_utf8_lossy(gname),
                    String::from_utf8_lossy(key)
                )));
            }
            let _ = st;
        }
        if !arity_ok {
            return Err(subcommand_syntax(req));
        }
        let last_of = |st: Option<&Stream>| st.map_or(StreamId::MIN, |s| s.last_id);
        match &sub[..] {
            b"CREATE" => {
                let id = match &req[4][..] {
                    b"$" => last_of(st),
                    arg => strict_id(arg, 0)?,
                };
                if group.is_some() {
                    return Err(CommandError::Coded(
                        "BUSYGROUP Consumer Group name already exists".into(),
                    ));
                }
                let st = match st {
                    Some(_) => write(s, key, now),
                    None => create(s, key, now),
                };
                st.groups.insert(owned(gname), Group::new(id, entries_read));
                notify(shared, db, "xgroup-create", key);
                Ok(Frame::OK)
            }
            b"SETID" => {
                let id = match &req[4][..] {
                    b"$" => last_of(st),
                    arg => super::streams::any_id(arg, 0)?,
                };
                let g = write(s, key, now)
                    .groups
                    .get_mut(gname)
                    .expect("invariant: checked above under the same lock");
                g.last_id = id;
                g.entries_read = entries_read;
                notify(shared, db, "xgroup-setid", key);
                Ok(Frame::OK)
            }
            b"DESTROY" => {
                if group.is_none() {
                    return Ok(Frame::Integer(0));
                }
                write(s, key, now).groups.remove(gname);
                notify(shared, db, "xgroup-destroy", key);
                Ok(Frame::Integer(1))
            }
            b"CREATECONSUMER" => {
                if group.is_some_and(|g| g.consumers.contains_key(&req[4])) {
                    return Ok(Frame::Integer(0));
                }
                let g = write(s, key, now)
                    .groups
                    .get_mut(gname)
                    .expect("invariant: checked above under the same lock");
                g.touch_consumer(&req[4], now_ms, false);
                notify(shared, db, "xgroup-createconsumer", key);
                Ok(Frame::Integer(1))
            }
            b"DELCONSUMER" => {
                if !group.is_some_and(|g| g.consumers.contains_key(&req[4])) {
                    return Ok(Frame::Integer(0));
                }
                let g = write(s, key, now)
                    .groups
                    .get_mut(gname)
                    .expect("invariant: checked above under the same lock");
                let pending = g.delete_consumer(&req[4]).unwrap_or(0);
                notify(shared, db, "xgroup-delconsumer", key);
                Ok(Frame::Integer(pending as i64))
            }
            _ => Err(subcommand_syntax(req)),
        }
    })
}

fn nogroup(key: &[u8], group: &[u8]) -> CommandError {
    CommandError::Coded(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

fn xack(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let Some(g) = read(s, key, now)?.and_then(|st| st.groups.get(&req[2])) else {
            return Ok(Frame::Integer(0));
        };
        let ids = req[3..]
            .iter()
            .map(|a| strict_id(a, 0))
            .collect::<Result<Vec<_>, _>>()?;
        if !ids.iter().any(|id| g.pel.contains_key(id)) {
            return Ok(Frame::Integer(0));
        }
        let g = write(s, key, now)
            .groups
            .get_mut(&req[2])
            .expect("invariant: found above under the same lock");
        let acked = ids.into_iter().filter(|&id| g.ack(id)).count();
        Ok(Frame::Integer(acked as i64))
    })
}

fn xpending(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let summary = req.len() == 3;
    if !summary && !(6..=9).contains(&req.len()) {
        return Err(CommandError::Syntax);
    }
    let (mut min_idle, mut start, mut end, mut count) = (0i64, StreamId::MIN, StreamId::MAX, 0);
    let mut consumer: Option<&Bytes> = None;
    if !summary {
        let mut at = 3;
        if args::is(&req[3], "IDLE") {
            min_idle = args::int(&req[4])?;
            if req.len() < 8 {
                return Err(CommandError::Syntax);
            }
            at += 2;
        }
        count = args::int(&req[at + 2])?.max(0);
        start = interval_id(&req[at], true)?;
        end = interval_id(&req[at + 1], false)?;
        consumer = req.get(at + 3);
    }
    let (now, now_ms) = (ctx.now, ctx.now.as_millis() as i64);
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let Some(g) = read(s, key, now)?.and_then(|st| st.groups.get(&req[2])) else {
            return Err(nogroup(key, &req[2]));
        };
        if summary {
            let (Some((first, _)), Some((last, _))) =
                (g.pel.first_key_value(), g.pel.last_key_value())
            else {
                return Ok(Frame::Array(vec![
                    Frame::Integer(0),
                    Frame::Null,
                    Frame::Null,
                    Frame::NullArray,
                ]));
            };
            let owners = g
                .consumers
                .iter()
                .filter(|(_, c)| !c.pel.is_empty())
                .map(|(name, c)| {
                    Frame::Array(vec![
                        Frame::Bulk(name.clone()),
                        Frame::Bulk(Bytes::from(c.pel.len().to_string())),
                    ])
                })
                .collect();
            return Ok(Frame::Array(vec![
                Frame::Integer(g.pel.len() as i64),
                Frame::Bulk(first.to_bytes()),
                Frame::Bulk(last.to_bytes()),
                Frame::Array(owners),
            ]));
        }
        let ids: Box<dyn Iterator<Item = &StreamId>> = match consumer {
            Some(name) => match g.consumers.get(name) {
                Some(c) => Box::new(c.pel.range(start..=end.max(start))),
                None => return Ok(Frame::Array(Vec::new())),
            },
            None => Box::new(g.pel.range(start..=end.max(start)).map(|(id, _)| id)),
        };
        let mut out = Vec::new();
        for id in ids {
            if out.len() as i64 >= count || *id > end {
                break;
            }
            let p = &g.pel[id];
            let idle = now_ms - p.delivery_time as i64;
            if min_idle != 0 && idle < min_idle {
                continue;
            }
            out.push(Frame::Array(vec![
                Frame::Bulk(id.to_bytes()),
                Frame::Bulk(p.consumer.clone()),
                Frame::Integer(idle.max(0)),
                Frame::Integer(p.delivery_count as i64),
            ]));
        }
        Ok(Frame::Array(out))
    })
}

fn xclaim(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let (now, now_ms) = (ctx.now, ctx.now.as_millis() as i64);
    let key = &req[1];
    let opt_int = |arg: &[u8], what: &str| {
        args::parse_i64(arg)
            .ok_or_else(|| CommandError::other(format!("Invalid {what} argument for XCLAIM")))
    };
    let (shared, db) = (ctx.shared, ctx.session.db);
    ctx.with_shard(key, |s| {
        let Some(g) = read(s, key, now)?.and_then(|st| st.groups.get(&req[2])) else {
            return Err(nogroup(key, &req[2]));
        };
        let last_delivered = g.last_id;
        let min_idle = opt_int(&req[4], "min-idle-time")?.max(0);
        let mut ids = Vec::new();
        let mut j = 5;
        while j < req.len() {
            match StreamId::parse(&req[j], 0, true, false) {
                Some(p) => ids.push(p.id),
                None => break,
            }
            j += 1;
        }
        let (mut force, mut justid) = (false, false);
        let (mut time, mut retrycount, mut last_id) = (None::<i64>, None::<i64>, StreamId::MIN);
        while j < req.len() {
            let more = req.len() - 1 - j;
            let o = &req[j];
            if args::is(o, "FORCE") {
                force = true;
            } else if args::is(o, "JUSTID") {
                justid = true;
            } else if args::is(o, "IDLE") && more > 0 {
                j += 1;
                time = Some(now_ms.saturating_sub(opt_int(&req[j], "IDLE option")?));
            } else if args::is(o, "TIME") && more > 0 {
                j += 1;
                time = Some(opt_int(&req[j], "TIME option")?);
            } else if args::is(o, "RETRYCOUNT") && more > 0 {
                j += 1;
                retrycount = Some(opt_int(&req[j], "RETRYCOUNT option")?);
            } else if args::is(o, "LASTID") && more > 0 {
                j += 1;
                last_id = strict_id(&req[j], 0)?;
            } else {
                return Err(CommandError::other(format!(
                    "Unrecognized XCLAIM option '{}'",
                    String::from_utf8_lossy(o)
                )));
            }
            j += 1;
        }
        let time = match time {
            Some(t) if (0..=now_ms).contains(&t) => t,
            _ => now_ms,
        } as u64;
        let changes =
            last_id > last_delivered || ids.iter().any(|id| g.pel.contains_key(id) || force);
        if !changes {
            return Ok(Frame::Array(Vec::new()));
        }
        let st = write(s, key, now);
        let Stream {
            entries, groups, ..
        } = st;
        let g = groups
            .get_mut(&req[2])
            .expect("invariant: found above under the same lock");
        if last_id > g.last_id {
            g.last_id = last_id;
        }
        let name = owned(&req[3]);
        let mut consumer_seen = false;
        let mut out = Vec::new();
        for id in ids {
            let Some(entry) = entries.get(&id) else {
                g.ack(id);
                continue;
            };
            // A forced claim of an id nobody owns starts from Redis's new NACK (count 1).
            let base = match g.pel.get(&id) {
                Some(p) => {
                    if min_idle != 0 && now_ms - (p.delivery_time as i64) < min_idle {
                        continue;
                    }
                    p.delivery_count
                }
                None if force => 1,
                None => continue,
            };
            let next_count = match retrycount {
                Some(r) if r >= 0 => r as u64,
                _ if justid => base,
                _ => base + 1,
            };
            if !consumer_seen {
                if g.touch_consumer(&name, now_ms as u64, true) {
                    notify(shared, db, "xgroup-createconsumer", key);
                }
                consumer_seen = true;
            }
            g.assign(id, &name, time, Some(next_count));
            out.push(claimed(id, entry, justid));
        }
        Ok(Frame::Array(out))
    })
}

fn claimed(id: StreamId, e: &crate::store::stream::StreamEntry, justid: bool) -> Frame {
    if justid {
        Frame::Bulk(id.to_bytes())
    } else {
        entry_frame(id, e)
    }
}

fn xautoclaim(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let min_idle = args::parse_i64(&req[4])
        .ok_or_else(|| CommandError::other("Invalid min-idle-time argument for XAUTOCLAIM"))?
        .max(0);
    let start = interval_id(&req[5], true)?;
    let (mut count, mut justid) = (100i64, false);
    let mut j = 6;
    while j < req.len() {
        let more = req.len() - 1 - j;
        if args::is(&req[j], "COUNT") && more > 0 {
            count = args::parse_i64(&req[j + 1])
                .filter(|n| (1..=i64::MAX / 16).contains(n))
                .ok_or_else(|| CommandError::other("COUNT must be > 0"))?;
            j += 1;
        } else if args::is(&req[j], "JUSTID") {
            justid = true;
        } else {
            return Err(CommandError::Syntax);
        }
        j += 1;
    }
    let (now, now_ms) = (ctx.now, ctx.now.as_millis() as i64);
    let key = &req[1];
    let (shared, db) = (ctx.shared, ctx.session.db);
    ctx.with_shard(key, |s| {
        if read(s, key, now)?
            .and_then(|st| st.groups.get(&req[2]))
            .is_none()
        {
            return Err(nogroup(key, &req[2]));
        }
        let st = write(s, key, now);
        let Stream {
            entries, groups, ..
        } = st;
        let g = groups
            .get_mut(&req[2])
            .expect("invariant: found above under the same lock");
        let name = owned(&req[3]);
        let mut attempts = count.saturating_mul(10);
        let (mut claimed_out, mut deleted) = (Vec::new(), Vec::new());
        let mut consumer_seen = false;
        let mut cursor = Some(start);
        while attempts > 0 && count > 0 {
            let Some(from) = cursor else { break };
            let Some((&id, p)) = g.pel.range(from..).next() else {
                cursor = None;
                break;
            };
            cursor = id.next();
            attempts -= 1;
            let Some(entry) = entries.get(&id) else {
                g.ack(id);
                deleted.push(Frame::Bulk(id.to_bytes()));
                count -= 1;
                continue;
            };
            if min_idle != 0 && now_ms - (p.delivery_time as i64) < min_idle {
                continue;
            }
            let next_count = if justid {
                p.delivery_count
            } else {
                p.delivery_count + 1
            };
            if !consumer_seen {
                if g.touch_consumer(&name, now_ms as u64, true) {
                    notify(shared, db, "xgroup-createconsumer", key);
                }
                consumer_seen = true;
            }
            g.assign(id, &name, now_ms as u64, Some(next_count));
            claimed_out.push(claimed(id, entry, justid));
            count -= 1;
        }
        let next = cursor
            .and_then(|from| g.pel.range(from..).next().map(|(id, _)| *id))
            .unwrap_or(StreamId::MIN);
        Ok(Frame::Array(vec![
            Frame::Bulk(next.to_bytes()),
            Frame::Array(claimed_out),
            Frame::Array(deleted),
        ]))
    })
}

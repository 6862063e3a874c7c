//! XREAD and XREADGROUP, non-blocking and with `BLOCK` (Redis 7.0's `xreadCommand`).
//!
//! Both lock every stream they name, check them all (WRONGTYPE, NOGROUP) before serving any,
//! then serve each stream that has something: XREAD the entries after the given id (`$`
//! resolves to the stream's last id), XREADGROUP with `>` the entries never delivered to the
//! group (creating PEL entries unless NOACK) or, with an id, the consumer's own history. The
//! reply is an array of `[key, entries]` pairs in RESP2 and a map in RESP3, or a null array.
//!
//! With `BLOCK` and nothing to serve, the client blocks through `cmd::blocking` on every
//! stream, with `$` already resolved: when one of them gets entries, its non-blocking
//! form runs for that one stream on the client's behalf (as Redis 7.0 serves one key).

use bytes::Bytes;

use super::args;
use super::blocking::Block;
use super::flags::*;
use super::streams::{entry_frame, owned, read, strict_id};
use super::{CommandSpec, Ctx, BASE};
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::stream::{Group, Stream, StreamId};
use crate::store::Value;

/// XREAD and XREADGROUP.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "XREAD",
        arity: -4,
        flags: READONLY | BLOCKING | MOVABLEKEYS,
        group: "stream",
        summary: "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise.",
        since: "5.0.0",
        args: "[COUNT count:integer] [BLOCK milliseconds:integer] STREAMS key:key... id:string...",
        handler: |ctx, req| xread(ctx, req, false),
        ..BASE
    },
    CommandSpec {
        name: "XREADGROUP",
        arity: -7,
        flags: WRITE | BLOCKING | MOVABLEKEYS,
        group: "stream",
        summary: "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise.",
        since: "5.0.0",
        complexity: "For each stream mentioned: O(M) with M being the number of elements returned. If M is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1). On the other side when XREADGROUP blocks, XADD will pay the O(N) time in order to serve the N clients blocked on the stream getting new data.",
        args: "GROUP group:string consumer:string [COUNT count:integer] [BLOCK milliseconds:integer] [NOACK] STREAMS key:key... id:string...",
        handler: |ctx, req| xread(ctx, req, true),
        ..BASE
    },
];

/// The keys of an XREAD / XREADGROUP request: the first half of the words after `STREAMS`
/// (none if the request is malformed; the handler then reports the error).
pub fn keys_range(req: &[Bytes]) -> std::ops::Range<usize> {
    let at = req
        .iter()
        .position(|w| args::is(w, "STREAMS"))
        .map(|i| i + 1);
    match at {
        Some(at) if at < req.len() && (req.len() - at) % 2 == 0 => at..at + (req.len() - at) / 2,
        _ => 0..0,
    }
}

struct ReadArgs {
    block_ms: Option<u64>,
    /// 0 = no limit.
    count: usize,
    group: Option<(Bytes, Bytes)>,
    noack: bool,
    streams_at: usize,
    n: usize,
}

/// Milliseconds as Redis's `getTimeoutFromObjectOrReply(UNIT_MILLISECONDS)` reads them.
fn timeout_ms(arg: &[u8]) -> Result<u64, CommandError> {
    let ms = args::parse_i64(arg)
        .ok_or_else(|| CommandError::other("timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(CommandError::other("timeout is negative"));
    }
    if ms as u64 > (i64::MAX as u64) / 2 {
        return Err(CommandError::other("timeout is out of range"));
    }
    Ok(ms as u64)
}

fn parse(ctx: &Ctx<'_>, req: &[Bytes], group_cmd: bool) -> Result<ReadArgs, CommandError> {
    let mut out = ReadArgs {
        block_ms: None,
        count: 0,
        group: None,
        noack: false,
        streams_at: 0,
        n: 0,
    };
    let mut i = 1;
    while i < req.len() {
        let more = req.len() - i - 1;
        let o = &req[i];
        if args::is(o, "BLOCK") && more > 0 {
            if ctx.session.in_script {
                return Err(CommandError::other(format!(
                    "{} command is not allowed with BLOCK option from scripts",
                    String::from_utf8_lossy(&req[0])
                )));
            }
            out.block_ms = Some(timeout_ms(&req[i + 1])?);
            i += 2;
        } else if args::is(o, "COUNT") && more > 0 {
            out.count = args::int(&req[i + 1])?.max(0) as usize;
            i += 2;
        } else if args::is(o, "STREAMS") && more > 0 {
            out.streams_at = i + 1;
            let rest = req.len() - out.streams_at;
            if rest % 2 != 0 {
                return Err(CommandError::other(
                    "Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            out.n = rest / 2;
            break;
        } else if args::is(o, "GROUP") && more >= 2 {
            if !group_cmd {
                return Err(CommandError::other(
                    "The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            out.group = Some((req[i + 1].clone(), req[i + 2].clone()));
            i += 3;
        } else if args::is(o, "NOACK") {
            if !group_cmd {
                return Err(CommandError::other(
                    "The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            out.noack = true;
            i += 1;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if out.streams_at == 0 {
        return Err(CommandError::Syntax);
    }
    if group_cmd && out.group.is_none() {
        return Err(CommandError::other("Missing GROUP option for XREADGROUP"));
    }
    Ok(out)
}

/// The streams served (key and entries) and every stream's id with `$` resolved.
type Served = (Vec<(Bytes, Frame)>, Vec<Bytes>);

/// What to read from one stream: after `gt`, or (`None`, XREADGROUP's `>`) new entries.
#[derive(Clone, Copy)]
enum From {
    After(StreamId),
    New,
}

fn nogroup(key: &[u8], group: &[u8]) -> CommandError {
    CommandError::Coded(format!(
        "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

fn xread(ctx: &mut Ctx<'_>, req: &[Bytes], group_cmd: bool) -> Result<Frame, CommandError> {
    let a = parse(ctx, req, group_cmd)?;
    let keys = &req[a.streams_at..a.streams_at + a.n];
    let ids = &req[a.streams_at + a.n..];
    let (now, now_ms) = (ctx.now, ctx.now.as_millis());
    let resp3 = ctx.resp3();
    let group = a.group.clone();
    let (shared, db) = (ctx.shared, ctx.session.db);
    let body = |g: &mut crate::store::MultiGuard<'_>| -> Result<Served, CommandError> {
        // Check every stream (and resolve `$`) before serving any.
        let mut from = Vec::with_capacity(keys.len());
        for (key, id) in keys.iter().zip(ids) {
            let st = read(g.shard(key), key, now)?;
            if let Some((gname, _)) = &group {
                if st.is_none_or(|s| !s.groups.contains_key(gname)) {
                    return Err(nogroup(key, gname));
                }
            }
            from.push(match &id[..] {
                b"$" if group_cmd => {
                    return Err(CommandError::other(
                        "The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
                    ))
                }
                b"$" => From::After(st.map_or(StreamId::MIN, |s| s.last_id)),
                b">" if !group_cmd => {
                    return Err(CommandError::other(
                        "The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
                    ))
                }
                b">" => From::New,
                _ => From::After(strict_id(id, 0)?),
            });
        }
        let mut served = Vec::new();
        for (key, f) in keys.iter().zip(&from) {
            let shard = g.shard(key);
            let Some(st) = read(shard, key, now)? else {
                continue;
            };
            let entries = match &group {
                None => {
                    let From::After(gt) = *f else { continue };
                    if st
                        .entries
                        .last_key_value()
                        .is_none_or(|(top, _)| *top <= gt)
                    {
                        continue;
                    }
                    let start = gt.next().unwrap_or(StreamId::MAX);
                    st.range(start, StreamId::MAX, false)
                        .take(if a.count == 0 { usize::MAX } else { a.count })
                        .map(|(id, e)| entry_frame(*id, e))
                        .collect()
                }
                Some((gname, consumer)) => {
                    let last = st.groups[gname].last_id;
                    if matches!(f, From::New)
                        && st
                            .entries
                            .last_key_value()
                            .is_none_or(|(top, _)| *top <= last)
                    {
                        continue;
                    }
                    let Some(Value::Stream(st)) = shard.get_mut(key, now).map(|e| &mut e.value)
                    else {
                        unreachable!("invariant: read() found a stream under the same lock");
                    };
                    let (entries, created) =
                        serve_group(st, gname, consumer, *f, a.count, a.noack, now_ms);
                    if created {
                        super::streams::notify(shared, db, "xgroup-createconsumer", key);
                    }
                    entries
                }
            };
            served.push((key.clone(), Frame::Array(entries)));
        }
        let resolved = from
            .iter()
            .map(|f| match f {
                From::After(id) => id.to_bytes(),
                From::New => Bytes::from_static(b">"),
            })
            .collect();
        Ok((served, resolved))
    };
    let (served, resolved) = if group_cmd {
        ctx.with_keys_writing(keys, keys, body)?
    } else {
        ctx.with_keys(keys, body)?
    };
    if !served.is_empty() {
        return Ok(if resp3 {
            Frame::Map(
                served
                    .into_iter()
                    .map(|(k, v)| (Frame::Bulk(k), v))
                    .collect(),
            )
        } else {
            Frame::Array(
                served
                    .into_iter()
                    .map(|(k, v)| Frame::Array(vec![Frame::Bulk(k), v]))
                    .collect(),
            )
        });
    }
    let Some(timeout_ms) = a.block_ms else {
        return Ok(Frame::NullArray);
    };
    if ctx.locked.is_some() {
        // Inside EXEC or a script a blocking read does not block.
        return Ok(Frame::NullArray);
    }
    // Served later one stream at a time, by the non-blocking form with the ids resolved.
    let mut prefix = vec![Bytes::from_static(if group_cmd {
        b"XREADGROUP"
    } else {
        b"XREAD"
    })];
    if let Some((g, c)) = &a.group {
        prefix.extend([Bytes::from_static(b"GROUP"), g.clone(), c.clone()]);
    }
    let count = if a.count == 0 { 1000 } else { a.count };
    prefix.extend([Bytes::from_static(b"COUNT"), Bytes::from(count.to_string())]);
    if a.noack {
        prefix.push(Bytes::from_static(b"NOACK"));
    }
    let streams = keys.iter().cloned().zip(resolved).collect();
    ctx.session.block = Some(Block::stream(timeout_ms, prefix, streams));
    Ok(Frame::Null)
}

/// Serves XREADGROUP on one stream: new entries (`From::New`) or the consumer's history; and
/// whether the consumer was created on the way (it then publishes `xgroup-createconsumer`).
fn serve_group(
    st: &mut Stream,
    gname: &Bytes,
    consumer: &Bytes,
    from: From,
    count: usize,
    noack: bool,
    now_ms: u64,
) -> (Vec<Frame>, bool) {
    let limit = if count == 0 { usize::MAX } else { count };
    let Some(mut g) = st.groups.remove(gname) else {
        return (Vec::new(), false);
    };
    let created = g.touch_consumer(consumer, now_ms, true);
    let consumer = g
        .consumers
        .get_key_value(&consumer[..])
        .map(|(k, _)| k.clone())
        .unwrap_or_else(|| owned(consumer));
    let out = match from {
        From::New => {
            let start = g.last_id.next().unwrap_or(StreamId::MAX);
            let ids: Vec<StreamId> = st
                .range(start, StreamId::MAX, false)
                .take(limit)
                .map(|(id, _)| *id)
                .collect();
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                advance(st, &mut g, id);
                if !noack {
                    g.assign(id, &consumer, now_ms, Some(1));
                }
                out.push(entry_frame(id, &st.entries[&id]));
            }
            out
        }
        From::After(gt) => {
            let Some(start) = gt.next() else {
                st.groups.insert(gname.clone(), g);
                return (Vec::new(), created);
            };
            let ids: Vec<StreamId> = g.consumers[&consumer]
                .pel
                .range(start..)
                .take(limit)
                .copied()
                .collect();
            ids.into_iter()
                .map(|id| match st.entries.get(&id) {
                    Some(e) => {
                        if let Some(p) = g.pel.get_mut(&id) {
                            p.delivery_time = now_ms;
                            p.delivery_count += 1;
                        }
                        entry_frame(id, e)
                    }
                    None => Frame::Array(vec![Frame::Bulk(id.to_bytes()), Frame::NullArray]),
                })
                .collect()
        }
    };
    st.groups.insert(gname.clone(), g);
    (out, created)
}

/// [`Stream::advance_group`] for a group taken out of the stream.
fn advance(st: &Stream, g: &mut Group, id: StreamId) {
    st.advance_group(g, id);
}

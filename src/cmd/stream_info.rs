//! `XINFO STREAM [FULL [COUNT n]] | GROUPS | CONSUMERS | HELP`, Redis 7.0's replies: maps in
//! RESP3, flat name/value arrays in RESP2.
//!
//! `radix-tree-keys` counts the stream's virtual nodes (see `store::stream`), and
//! `radix-tree-nodes` is that count plus one: compatibility answers, since limitkv keeps no
//! radix tree.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::args;
use super::streams::{entry_frame, read};
use super::{dispatch_sub, help_reply, CommandSpec, Ctx, BASE, HELP_SUBCOMMAND};
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::stream::{Group, Stream, StreamId};

/// XINFO.
pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "XINFO",
    arity: -2,
    // KEYSPACE (internal): the container has no key positions of its own, so EXEC locks
    // every shard for it (as for OBJECT).
    flags: super::flags::KEYSPACE,
    group: "stream",
    summary: "A container for stream introspection commands.",
    since: "5.0.0",
    complexity: "Depends on subcommand.",
    subcommands: SUBCOMMANDS,
    handler: dispatch_sub,
    ..BASE
}];

const SUB: CommandSpec = CommandSpec {
    flags: super::flags::READONLY,
    first_key: 2,
    last_key: 2,
    key_step: 1,
    group: "stream",
    ..BASE
};

const SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "CONSUMERS",
        arity: 4,
        summary: "Returns a list of the consumers in a consumer group.",
        since: "5.0.0",
        args: "key:key group:string",
        handler: consumers,
        ..SUB
    },
    CommandSpec {
        name: "GROUPS",
        arity: 3,
        summary: "Returns a list of the consumer groups of a stream.",
        since: "5.0.0",
        args: "key:key",
        handler: groups,
        ..SUB
    },
    CommandSpec {
        name: "STREAM",
        arity: -3,
        summary: "Returns information about a stream.",
        since: "5.0.0",
        args: "key:key [full-block=(FULL [COUNT count:integer])]",
        handler: stream,
        ..SUB
    },
    CommandSpec {
        handler: |_, _| {
            Ok(help_reply(
                "XINFO",
                &[
                    "CONSUMERS <key> <groupname>",
                    "    Show consumers of <groupname>.",
                    "GROUPS <key>",
                    "    Show the stream consumer groups.",
                    "STREAM <key> [FULL [COUNT <count>]",
                    "    Show information about the stream.",
                ],
            ))
        },
        ..HELP_SUBCOMMAND
    },
];

/// A map with bulk-string names (a flat array in RESP2, as Redis's `addReplyMapLen`).
fn map(fields: Vec<(&'static str, Frame)>) -> Frame {
    Frame::Map(
        fields
            .into_iter()
            .map(|(k, v)| (Frame::Bulk(Bytes::from_static(k.as_bytes())), v))
            .collect(),
    )
}

fn id(id: StreamId) -> Frame {
    Frame::Bulk(id.to_bytes())
}

fn int(n: usize) -> Frame {
    Frame::Integer(n as i64)
}

/// Runs `f` on the stream named by `req[2]`, or answers Redis's errors.
fn with_stream(
    ctx: &mut Ctx<'_>,
    req: &[Bytes],
    f: impl FnOnce(&Stream, u64) -> Result<Frame, CommandError>,
) -> Result<Frame, CommandError> {
    let (now, now_ms) = (ctx.now, ctx.now.as_millis());
    ctx.with_shard(&req[2], |s| match read(s, &req[2], now)? {
        Some(st) => f(st, now_ms),
        None => Err(CommandError::other("no such key")),
    })
}

fn consumers(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    with_stream(ctx, req, |st, now_ms| {
        let Some(g) = st.groups.get(&req[3]) else {
            return Err(CommandError::Coded(format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                String::from_utf8_lossy(&req[3]),
                String::from_utf8_lossy(&req[2])
            )));
        };
        Ok(Frame::Array(
            g.consumers
                .iter()
                .map(|(name, c)| {
                    map(vec![
                        ("name", Frame::Bulk(name.clone())),
                        ("pending", int(c.pel.len())),
                        (
                            "idle",
                            Frame::Integer(now_ms.saturating_sub(c.seen_time) as i64),
                        ),
                    ])
                })
                .collect(),
        ))
    })
}

fn entries_read(g: &Group) -> Frame {
    g.entries_read
        .map_or(Frame::Null, |r| Frame::Integer(r as i64))
}

fn lag(st: &Stream, g: &Group) -> Frame {
    st.lag(g).map_or(Frame::Null, |l| Frame::Integer(l as i64))
}

fn groups(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    with_stream(ctx, req, |st, _| {
        Ok(Frame::Array(
            st.groups
                .iter()
                .map(|(name, g)| {
                    map(vec![
                        ("name", Frame::Bulk(name.clone())),
                        ("consumers", int(g.consumers.len())),
                        ("pending", int(g.pel.len())),
                        ("last-delivered-id", id(g.last_id)),
                        ("entries-read", entries_read(g)),
                        ("lag", lag(st, g)),
                    ])
                })
                .collect(),
        ))
    })
}

fn stream(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let opts = &req[3..];
    let syntax = || CommandError::SubcommandSyntax(args::text(&req[1]), "XINFO".into());
    let full = !opts.is_empty();
    let mut count = 10usize;
    if full {
        if (opts.len() != 1 && opts.len() != 3) || !args::is(&opts[0], "FULL") {
            return Err(syntax());
        }
        if opts.len() == 3 {
            if !args::is(&opts[1], "COUNT") {
                return Err(syntax());
            }
            let n = args::int(&opts[2])?;
            count = if n < 0 { 10 } else { n as usize };
        }
    }
    let limit = if count == 0 { usize::MAX } else { count };
    with_stream(ctx, req, |st, _| {
        let nodes: BTreeSet<u64> = st.entries.values().map(|e| e.node).collect();
        let mut fields = vec![
            ("length", int(st.len())),
            ("radix-tree-keys", int(nodes.len())),
            ("radix-tree-nodes", int(nodes.len() + 1)),
            ("last-generated-id", id(st.last_id)),
            ("max-deleted-entry-id", id(st.max_deleted_id)),
            ("entries-added", Frame::Integer(st.entries_added as i64)),
            ("recorded-first-entry-id", id(st.first_id())),
        ];
        if !full {
            let edge = |e: Option<(&StreamId, &crate::store::stream::StreamEntry)>| {
                e.map_or(Frame::Null, |(i, e)| entry_frame(*i, e))
            };
            fields.push(("groups", int(st.groups.len())));
            fields.push(("first-entry", edge(st.entries.first_key_value())));
            fields.push(("last-entry", edge(st.entries.last_key_value())));
            return Ok(map(fields));
        }
        let entries = st
            .entries
            .iter()
            .take(limit)
            .map(|(i, e)| entry_frame(*i, e))
            .collect();
        fields.push(("entries", Frame::Array(entries)));
        let groups = st
            .groups
            .iter()
            .map(|(name, g)| {
                let pending = g
                    .pel
                    .iter()
                    .take(limit)
                    .map(|(i, p)| {
                        Frame::Array(vec![
                            id(*i),
                            Frame::Bulk(p.consumer.clone()),
                            Frame::Integer(p.delivery_time as i64),
                            Frame::Integer(p.delivery_count as i64),
                        ])
                    })
                    .collect();
                let consumers = g
                    .consumers
                    .iter()
                    .map(|(cname, c)| {
                        let own = c
                            .pel
                            .iter()
                            .take(limit)
                            .filter_map(|i| g.pel.get(i).map(|p| (i, p)))
                            .map(|(i, p)| {
                                Frame::Array(vec![
                                    id(*i),
                                    Frame::Integer(p.delivery_time as i64),
                                    Frame::Integer(p.delivery_count as i64),
                                ])
                            })
                            .collect();
                        map(vec![
                            ("name", Frame::Bulk(cname.clone())),
                            ("seen-time", Frame::Integer(c.seen_time as i64)),
                            ("pel-count", int(c.pel.len())),
                            ("pending", Frame::Array(own)),
                        ])
                    })
                    .collect();
                map(vec![
                    ("name", Frame::Bulk(name.clone())),
                    ("last-delivered-id", id(g.last_id)),
                    ("entries-read", entries_read(g)),
                    ("lag", lag(st, g)),
                    ("pel-count", int(g.pel.len())),
                    ("pending", Frame::Array(pending)),
                    ("consumers", Frame::Array(consumers)),
                ])
            })
            .collect();
        fields.push(("groups", Frame::Array(groups)));
        Ok(map(fields))
    })
}

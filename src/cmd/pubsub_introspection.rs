//! `PUBSUB` (CHANNELS, NUMSUB, NUMPAT, SHARDCHANNELS, SHARDNUMSUB, HELP): introspection of the
//! Pub/Sub registry in [`crate::pubsub`]. Subscribing and publishing are in [`super::pubsub`].

use bytes::Bytes;

use super::args;
use super::flags::*;
use super::pubsub::count;
use super::{dispatch_sub, help_reply, CommandSpec, Ctx, BASE, HELP_SUBCOMMAND};
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::pubsub::ChannelKind;

/// The `PUBSUB` container command.
pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "PUBSUB",
    arity: -2,
    flags: 0,
    group: "pubsub",
    summary: "A container for Pub/Sub commands.",
    since: "2.8.0",
    complexity: "Depends on subcommand.",
    subcommands: PUBSUB_SUBCOMMANDS,
    handler: dispatch_sub,
    ..BASE
}];

const PUBSUB_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "CHANNELS",
        arity: -2,
        flags: PUBSUB | LOADING | STALE,
        summary: "Returns the active channels.",
        since: "2.8.0",
        complexity: "O(N) where N is the number of active channels, and assuming constant time pattern matching (relatively short channels and patterns)",
        args: "[pattern:pattern]",
        handler: |ctx, req| channels(ctx, req, ChannelKind::Global),
        ..BASE
    },
    CommandSpec {
        name: "NUMSUB",
        arity: -2,
        flags: PUBSUB | LOADING | STALE,
        summary: "Returns a count of subscribers to channels.",
        since: "2.8.0",
        complexity: "O(N) for the NUMSUB subcommand, where N is the number of requested channels",
        args: "[channel:string...]",
        handler: |ctx, req| numsub(ctx, req, ChannelKind::Global),
        ..BASE
    },
    CommandSpec {
        name: "NUMPAT",
        arity: 2,
        flags: PUBSUB | LOADING | STALE,
        summary: "Returns a count of unique pattern subscriptions.",
        since: "2.8.0",
        handler: |ctx, _| Ok(Frame::Integer(count(ctx.shared.engine.pubsub.numpat()))),
        ..BASE
    },
    CommandSpec {
        name: "SHARDCHANNELS",
        arity: -2,
        flags: PUBSUB | LOADING | STALE,
        summary: "Returns the active shard channels.",
        since: "7.0.0",
        complexity: "O(N) where N is the number of active shard channels, and assuming constant time pattern matching (relatively short shard channels).",
        args: "[pattern:pattern]",
        handler: |ctx, req| channels(ctx, req, ChannelKind::Shard),
        ..BASE
    },
    CommandSpec {
        name: "SHARDNUMSUB",
        arity: -2,
        flags: PUBSUB | LOADING | STALE,
        summary: "Returns the count of subscribers of shard channels.",
        since: "7.0.0",
        complexity: "O(N) for the SHARDNUMSUB subcommand, where N is the number of requested shard channels",
        args: "[shardchannel:string...]",
        handler: |ctx, req| numsub(ctx, req, ChannelKind::Shard),
        ..BASE
    },
    CommandSpec {
        handler: |_, _| {
            Ok(help_reply(
                "PUBSUB",
                &[
                    "CHANNELS [<pattern>]",
                    "    Return the currently active channels matching a <pattern> (default: '*').",
                    "NUMPAT",
                    "    Return number of subscriptions to patterns.",
                    "NUMSUB [<channel> ...]",
                    "    Return the number of subscribers for the specified channels, excluding",
                    "    pattern subscriptions(default: no channels).",
                    "SHARDCHANNELS [<pattern>]",
                    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                    "SHARDNUMSUB [<shardchannel> ...]",
                    "    Return the number of subscribers for the specified shard level channel(s)",
                ],
            ))
        },
        ..HELP_SUBCOMMAND
    },
];

/// ```text
/// PUBSUB CHANNELS [pattern]
/// PUBSUB SHARDCHANNELS [pattern]
/// ```
/// Array of the active channels (at least one subscriber) matching `pattern`, in no particular
/// order. More than one pattern: `ERR unknown subcommand or wrong number of arguments`.
fn channels(ctx: &mut Ctx<'_>, req: &[Bytes], kind: ChannelKind) -> Result<Frame, CommandError> {
    if req.len() > 3 {
        return Err(CommandError::SubcommandSyntax(
            args::text(&req[1]),
            "PUBSUB".into(),
        ));
    }
    let names = ctx
        .shared
        .engine
        .pubsub
        .channel_names(kind, req.get(2).map(|p| &p[..]));
    Ok(Frame::Array(names.into_iter().map(Frame::Bulk).collect()))
}

/// ```text
/// PUBSUB NUMSUB [channel ...]
/// PUBSUB SHARDNUMSUB [shardchannel ...]
/// ```
/// Flat array `[channel, subscribers, ...]` in request order (pattern subscriptions are not
/// counted).
fn numsub(ctx: &mut Ctx<'_>, req: &[Bytes], kind: ChannelKind) -> Result<Frame, CommandError> {
    let mut out = Vec::with_capacity((req.len() - 2) * 2);
    for ch in &req[2..] {
        out.push(Frame::Bulk(ch.clone()));
        out.push(Frame::Integer(count(
            ctx.shared.engine.pubsub.numsub(kind, ch),
        )));
    }
    Ok(Frame::Array(out))
}

#[cfg(test)]
mod tests {
    use crate::cmd::pubsub::tests::{other, run_as};
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    #[test]
    fn pubsub_introspection() {
        let mut h = Harness::new();
        let mut b = other(&h);
        h.run(&["SUBSCRIBE", "news", "sport"]);
        run_as(&h.shared, &mut b, &["SUBSCRIBE", "news"]);
        run_as(&h.shared, &mut b, &["PSUBSCRIBE", "n*"]);
        h.run(&["PSUBSCRIBE", "n*", "s*"]);
        h.run(&["SSUBSCRIBE", "shard"]);
        let mut p = other(&h);
        let mut names = |words: &[&str]| -> Vec<Frame> {
            match run_as(&h.shared, &mut p, words) {
                Frame::Array(mut v) => {
                    v.sort_by_key(|f| format!("{f:?}"));
                    v
                }
                other => panic!("{words:?}: {other:?}"),
            }
        };
        assert_eq!(
            names(&["PUBSUB", "CHANNELS"]),
            vec![bulk("news"), bulk("sport")]
        );
        assert_eq!(names(&["PUBSUB", "CHANNELS", "n*"]), vec![bulk("news")]);
        assert_eq!(names(&["PUBSUB", "SHARDCHANNELS"]), vec![bulk("shard")]);
        assert_eq!(names(&["PUBSUB", "CHANNELS", "x*"]), Vec::<Frame>::new());
        assert_eq!(
            run_as(
                &h.shared,
                &mut p,
                &["PUBSUB", "NUMSUB", "news", "sport", "none", "news"]
            ),
            Frame::Array(vec![
                bulk("news"),
                int(2),
                bulk("sport"),
                int(1),
                bulk("none"),
                int(0),
                bulk("news"),
                int(2)
            ])
        );
        assert_eq!(
            run_as(&h.shared, &mut p, &["PUBSUB", "NUMSUB"]),
            Frame::Array(vec![])
        );
        assert_eq!(
            run_as(&h.shared, &mut p, &["PUBSUB", "SHARDNUMSUB", "shard"]),
            Frame::Array(vec![bulk("shard"), int(1)])
        );
        assert_eq!(run_as(&h.shared, &mut p, &["PUBSUB", "NUMPAT"]), int(2));
        assert_eq!(
            run_as(&h.shared, &mut p, &["PUBSUB", "CHANNELS", "a", "b"]),
            err("ERR unknown subcommand or wrong number of arguments for 'CHANNELS'. Try PUBSUB HELP.")
        );
        assert_eq!(
            run_as(&h.shared, &mut p, &["PUBSUB", "NUMPAT", "x"]),
            err("ERR wrong number of arguments for 'pubsub|numpat' command")
        );
        assert_eq!(
            run_as(&h.shared, &mut p, &["PUBSUB", "foo"]),
            err("ERR unknown subcommand 'foo'. Try PUBSUB HELP.")
        );
        let Frame::Verbatim(_, list) = run_as(&h.shared, &mut p, &["CLIENT", "LIST"]) else {
            panic!("CLIENT LIST is verbatim text")
        };
        let list = String::from_utf8_lossy(&list).into_owned();
        assert!(
            list.contains(" flags=P db=0 sub=2 psub=2 ssub=1 "),
            "{list}"
        );
        assert!(
            list.contains(" flags=N db=0 sub=0 psub=0 ssub=0 "),
            "{list}"
        );
        let mut listed = |words: &[&str]| -> usize {
            match run_as(&h.shared, &mut p, words) {
                Frame::Verbatim(_, b) => String::from_utf8_lossy(&b).lines().count(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(listed(&["CLIENT", "LIST", "TYPE", "pubsub"]), 2);
        assert_eq!(listed(&["CLIENT", "LIST", "TYPE", "normal"]), 1);
        assert_eq!(listed(&["CLIENT", "LIST", "TYPE", "replica"]), 0);
        let info = match run_as(&h.shared, &mut p, &["INFO", "stats"]) {
            Frame::Verbatim(_, b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("{other:?}"),
        };
        for field in [
            "pubsub_channels:2\r\n",
            "pubsub_patterns:2\r\n",
            "pubsubshard_channels:1\r\n",
            "client_output_buffer_limit_disconnections:0\r\n",
        ] {
            assert!(info.contains(field), "{field} in {info}");
        }
        let clients = match run_as(&h.shared, &mut p, &["INFO", "clients"]) {
            Frame::Verbatim(_, b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("{other:?}"),
        };
        assert!(clients.contains("pubsub_clients:2\r\n"), "{clients}");
        assert_eq!(
            run_as(&h.shared, &mut p, &["CLIENT", "KILL", "TYPE", "pubsub"]),
            int(2)
        );
        assert!(h
            .session
            .info
            .killed
            .load(std::sync::atomic::Ordering::Relaxed));
        assert!(!p.info.killed.load(std::sync::atomic::Ordering::Relaxed));
    }
}

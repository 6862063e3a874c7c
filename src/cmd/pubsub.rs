//! Pub/Sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, SSUBSCRIBE,
//! SUNSUBSCRIBE and SPUBLISH. The `PUBSUB` introspection container is in
//! [`super::pubsub_introspection`].
//!
//! The registry and the delivery queues live in [`crate::pubsub`]; handlers register, reply
//! and keep the session's Pub/Sub flags. Shard channels behave as in a non-cluster Redis 7:
//! their own namespace, no patterns, a count of their own in confirmations.

use bytes::Bytes;

use super::flags::*;
use super::{CommandSpec, Ctx, BASE};
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::pubsub::ChannelKind;

const CONTEXT: u32 = PUBSUB | NOSCRIPT | LOADING | STALE | PUBSUB_CONTEXT;

/// Pub/Sub commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "SUBSCRIBE",
        arity: -2,
        flags: CONTEXT | CHANNELS,
        group: "pubsub",
        summary: "Listens for messages published to channels.",
        since: "2.0.0",
        complexity: "O(N) where N is the number of channels to subscribe to.",
        args: "channel:string...",
        handler: |ctx, req| subscribe(ctx, req, ChannelKind::Global),
        ..BASE
    },
    CommandSpec {
        name: "UNSUBSCRIBE",
        arity: -1,
        flags: CONTEXT,
        group: "pubsub",
        summary: "Stops listening to messages posted to channels.",
        since: "2.0.0",
        complexity: "O(N) where N is the number of channels to unsubscribe.",
        args: "[channel:string...]",
        handler: |ctx, req| unsubscribe(ctx, req, ChannelKind::Global),
        ..BASE
    },
    CommandSpec {
        name: "PSUBSCRIBE",
        arity: -2,
        flags: CONTEXT | CHANNELS | CHANNEL_PATTERNS,
        group: "pubsub",
        summary: "Listens for messages published to channels that match one or more patterns.",
        since: "2.0.0",
        complexity: "O(N) where N is the number of patterns to subscribe to.",
        args: "pattern:pattern...",
        handler: psubscribe,
        ..BASE
    },
    CommandSpec {
        name: "PUNSUBSCRIBE",
        arity: -1,
        flags: CONTEXT,
        group: "pubsub",
        summary:
            "Stops listening to messages published to channels that match one or more patterns.",
        since: "2.0.0",
        complexity: "O(N) where N is the number of patterns to unsubscribe.",
        args: "[pattern:pattern...]",
        handler: punsubscribe,
        ..BASE
    },
    CommandSpec {
        name: "PUBLISH",
        arity: 3,
        flags: PUBSUB | LOADING | STALE | FAST | CHANNELS,
        group: "pubsub",
        summary: "Posts a message to a channel.",
        since: "2.0.0",
        complexity: "O(N+M) where N is the number of clients subscribed to the receiving channel and M is the total number of subscribed patterns (by any client).",
        args: "channel:string message:string",
        handler: |ctx, req| publish(ctx, req, ChannelKind::Global),
        ..BASE
    },
    CommandSpec {
        name: "SSUBSCRIBE",
        arity: -2,
        flags: CONTEXT | NOT_KEY | CHANNELS,
        first_key: 1,
        last_key: -1,
        key_step: 1,
        group: "pubsub",
        summary: "Listens for messages published to shard channels.",
        since: "7.0.0",
        complexity: "O(N) where N is the number of shard channels to subscribe to.",
        args: "shardchannel:string...",
        handler: |ctx, req| subscribe(ctx, req, ChannelKind::Shard),
        ..BASE
    },
    CommandSpec {
        name: "SUNSUBSCRIBE",
        arity: -1,
        flags: CONTEXT | NOT_KEY,
        first_key: 1,
        last_key: -1,
        key_step: 1,
        group: "pubsub",
        summary: "Stops listening to messages posted to shard channels.",
        since: "7.0.0",
        complexity: "O(N) where N is the number of shard channels to unsubscribe.",
        args: "[shardchannel:string...]",
        handler: |ctx, req| unsubscribe(ctx, req, ChannelKind::Shard),
        ..BASE
    },
    CommandSpec {
        name: "SPUBLISH",
        arity: 3,
        flags: PUBSUB | LOADING | STALE | FAST | NOT_KEY | CHANNELS,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "pubsub",
        summary: "Post a message to a shard channel",
        since: "7.0.0",
        complexity: "O(N) where N is the number of clients subscribed to the receiving shard channel.",
        args: "shardchannel:string message:string",
        handler: |ctx, req| publish(ctx, req, ChannelKind::Shard),
        ..BASE
    },
];

/// A subscriber or subscription count as a RESP integer (saturating).
pub(super) fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The confirmation word for a (un)subscription of `kind`.
fn word(kind: ChannelKind, subscribe: bool) -> &'static str {
    match (kind, subscribe) {
        (ChannelKind::Global, true) => "subscribe",
        (ChannelKind::Global, false) => "unsubscribe",
        (ChannelKind::Shard, true) => "ssubscribe",
        (ChannelKind::Shard, false) => "sunsubscribe",
    }
}

/// `[word, name or nil, count]`: a push in RESP3, an array in RESP2.
fn confirm(word: &'static str, name: Option<Bytes>, n: usize) -> Frame {
    Frame::Push(vec![
        Frame::Bulk(Bytes::from_static(word.as_bytes())),
        name.map_or(Frame::Null, Frame::Bulk),
        Frame::Integer(count(n)),
    ])
}

/// One reply per confirmation, written back to back.
fn replies(mut frames: Vec<Frame>) -> Frame {
    if frames.len() == 1 {
        frames.remove(0)
    } else {
        Frame::Seq(frames)
    }
}

/// Updates the session after its subscriptions changed.
fn update_mode(ctx: &mut Ctx<'_>) {
    ctx.session.pubsub_used = true;
    ctx.session.pubsub_mode = ctx.session.info.pubsub.total() > 0;
}

/// Drops every subscription of the connection without confirmations, and the messages queued
/// since the current command started (`RESET`: the connection wrote what was queued before
/// it ran, and nothing may follow its reply).
pub fn leave(ctx: &mut Ctx<'_>) {
    if !ctx.session.pubsub_used {
        return;
    }
    let sub = &ctx.session.info.pubsub;
    ctx.shared.engine.pubsub.remove(sub);
    sub.discard();
    ctx.session.pubsub_mode = false;
}

/// ```text
/// SUBSCRIBE channel [channel ...]
/// SSUBSCRIBE shardchannel [shardchannel ...]
/// ```
/// One confirmation per channel: `[subscribe, channel, channels + patterns]`
/// (`[ssubscribe, channel, shard channels]`). Messages follow as `[message, channel, payload]`
/// (`smessage`).
fn subscribe(ctx: &mut Ctx<'_>, req: &[Bytes], kind: ChannelKind) -> Result<Frame, CommandError> {
    let sub = ctx.session.info.pubsub.clone();
    let out = req[1..]
        .iter()
        .map(|ch| {
            let n = ctx.shared.engine.pubsub.subscribe(&sub, kind, ch);
            confirm(word(kind, true), Some(ch.clone()), n)
        })
        .collect();
    update_mode(ctx);
    Ok(replies(out))
}

/// ```text
/// UNSUBSCRIBE [channel ...]
/// SUNSUBSCRIBE [shardchannel ...]
/// ```
/// One confirmation per channel, `[unsubscribe, channel, remaining]`; without arguments, one per
/// subscribed channel, or `[unsubscribe, nil, remaining]` when there is none.
fn unsubscribe(ctx: &mut Ctx<'_>, req: &[Bytes], kind: ChannelKind) -> Result<Frame, CommandError> {
    let sub = ctx.session.info.pubsub.clone();
    let names = if req.len() > 1 {
        req[1..].to_vec()
    } else {
        sub.channels(kind)
    };
    let mut confirmations: Vec<Frame> = names
        .into_iter()
        .map(|ch| {
            let n = ctx.shared.engine.pubsub.unsubscribe(&sub, kind, &ch);
            confirm(word(kind, false), Some(ch), n)
        })
        .collect();
    if confirmations.is_empty() {
        confirmations.push(confirm(word(kind, false), None, sub.count(kind)));
    }
    Ok(after_pending(ctx, confirmations))
}

/// ```text
/// PSUBSCRIBE pattern [pattern ...]
/// ```
/// One confirmation per pattern: `[psubscribe, pattern, channels + patterns]`. Messages follow
/// as `[pmessage, pattern, channel, payload]`.
fn psubscribe(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let sub = ctx.session.info.pubsub.clone();
    let out = req[1..]
        .iter()
        .map(|p| {
            let n = ctx.shared.engine.pubsub.psubscribe(&sub, p);
            confirm("psubscribe", Some(p.clone()), n)
        })
        .collect();
    update_mode(ctx);
    Ok(replies(out))
}

/// ```text
/// PUNSUBSCRIBE [pattern ...]
/// ```
/// As `UNSUBSCRIBE`, for patterns: `[punsubscribe, pattern or nil, remaining]`.
fn punsubscribe(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let sub = ctx.session.info.pubsub.clone();
    let names = if req.len() > 1 {
        req[1..].to_vec()
    } else {
        sub.patterns()
    };
    let mut confirmations: Vec<Frame> = names
        .into_iter()
        .map(|p| {
            let n = ctx.shared.engine.pubsub.punsubscribe(&sub, &p);
            confirm("punsubscribe", Some(p), n)
        })
        .collect();
    if confirmations.is_empty() {
        confirmations.push(confirm(
            "punsubscribe",
            None,
            sub.count(ChannelKind::Global),
        ));
    }
    Ok(after_pending(ctx, confirmations))
}

/// Places the messages still queued before `confirmations`. They were published while the
/// subscriptions just dropped were live (a publisher queues under the registry lock the
/// unsubscription then takes), so they precede the confirmations, as in Redis; a RESP2 client
/// that reads a count of 0 leaves subscribed mode and must not see a message after it.
fn after_pending(ctx: &mut Ctx<'_>, confirmations: Vec<Frame>) -> Frame {
    let mut out = if ctx.session.pubsub_used {
        ctx.session.info.pubsub.take_frames()
    } else {
        Vec::new()
    };
    out.extend(confirmations);
    if ctx.session.pubsub_used {
        update_mode(ctx);
    }
    replies(out)
}

/// ```text
/// PUBLISH channel message
/// SPUBLISH shardchannel message
/// ```
/// Integer reply: the number of deliveries (channel subscribers plus matching pattern
/// subscriptions; for `SPUBLISH`, shard channel subscribers).
fn publish(ctx: &mut Ctx<'_>, req: &[Bytes], kind: ChannelKind) -> Result<Frame, CommandError> {
    // One copy shared by every delivery; it must not pin this connection's read buffer.
    let payload = Bytes::copy_from_slice(&req[2]);
    let n = match kind {
        ChannelKind::Global => ctx.shared.engine.pubsub.publish(&req[1], payload),
        ChannelKind::Shard => ctx.shared.engine.pubsub.spublish(&req[1], payload),
    };
    let reply = Frame::Integer(count(n));
    // A subscriber publishing to itself (RESP3, or inside EXEC) gets the message before the
    // reply, as Redis writes it into the client's buffer while PUBLISH runs.
    if ctx.session.pubsub_used {
        let mut out = ctx.session.info.pubsub.take_frames();
        if !out.is_empty() {
            out.push(reply);
            return Ok(Frame::Seq(out));
        }
    }
    Ok(reply)
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use bytes::{Bytes, BytesMut};

    use crate::clock::{Clock, ManualClock, Nanos};
    use crate::cmd::testing::*;
    use crate::cmd::{ClientInfo, Ctx, Session, Shared};
    use crate::config::{Config, OutputBufferLimit};
    use crate::protocol::{Frame, RespVersion};
    use crate::pubsub::{ChannelKind, PubSub, Subscriber};

    fn push(items: &[&str]) -> Frame {
        Frame::Push(items.iter().map(|s| bulk(s)).collect())
    }

    fn confirm(word: &str, name: Option<&str>, n: i64) -> Frame {
        Frame::Push(vec![bulk(word), name.map_or(Frame::Null, bulk), int(n)])
    }

    /// A second session on the harness's server, for a publisher or another subscriber.
    pub(in crate::cmd) fn other(h: &Harness) -> Session {
        let info = Arc::new(ClientInfo::new(
            h.shared.clients.next_id(),
            "127.0.0.1:50001".into(),
            "127.0.0.1:6379".into(),
        ));
        h.shared.clients.register(info.clone());
        Session::new(info, &h.shared.acl)
    }

    /// Runs `words` as `session`'s command.
    pub(in crate::cmd) fn run_as(shared: &Shared, session: &mut Session, words: &[&str]) -> Frame {
        let req: Vec<Bytes> = words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        let now = shared.engine.clock.now();
        crate::cmd::dispatch(&mut Ctx::new(shared, session, now), &req)
    }

    fn queued(session: &Session) -> Vec<Frame> {
        session.info.pubsub.take_frames()
    }

    #[test]
    fn subscribe_confirms_each_channel_with_the_running_count() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["SUBSCRIBE", "a", "b", "a"]),
            Frame::Seq(vec![
                confirm("subscribe", Some("a"), 1),
                confirm("subscribe", Some("b"), 2),
                confirm("subscribe", Some("a"), 2),
            ])
        );
        assert_eq!(
            h.run(&["PSUBSCRIBE", "n*"]),
            confirm("psubscribe", Some("n*"), 3)
        );
        assert_eq!(
            h.run(&["SSUBSCRIBE", "s"]),
            confirm("ssubscribe", Some("s"), 1)
        );
        assert!(h.session.pubsub_mode);
        assert_eq!(h.shared.engine.pubsub.num_clients(), 1);
    }

    #[test]
    fn publish_reaches_channel_and_pattern_subscribers_in_that_order() {
        let mut h = Harness::new();
        h.run(&["SUBSCRIBE", "news"]);
        h.run(&["PSUBSCRIBE", "n*", "x*", "[mn]ews"]);
        let mut publisher = other(&h);
        assert_eq!(
            run_as(&h.shared, &mut publisher, &["PUBLISH", "news", "hi"]),
            int(3)
        );
        assert_eq!(
            queued(&h.session),
            vec![
                push(&["message", "news", "hi"]),
                push(&["pmessage", "n*", "news", "hi"]),
                push(&["pmessage", "[mn]ews", "news", "hi"]),
            ]
        );
        assert_eq!(
            run_as(&h.shared, &mut publisher, &["PUBLISH", "other", "x"]),
            int(0)
        );
        // Shard channels are a namespace of their own, without patterns.
        assert_eq!(
            run_as(&h.shared, &mut publisher, &["SPUBLISH", "news", "x"]),
            int(0)
        );
        h.run(&["SSUBSCRIBE", "news"]);
        assert_eq!(
            run_as(&h.shared, &mut publisher, &["SPUBLISH", "news", "s"]),
            int(1)
        );
        assert_eq!(queued(&h.session), vec![push(&["smessage", "news", "s"])]);
    }

    #[test]
    fn unsubscribe_without_arguments_drops_everything_in_subscription_order() {
        let mut h = Harness::new();
        h.run(&["SUBSCRIBE", "a", "b", "c"]);
        h.run(&["PSUBSCRIBE", "p*"]);
        assert_eq!(
            h.run(&["UNSUBSCRIBE"]),
            Frame::Seq(vec![
                confirm("unsubscribe", Some("a"), 3),
                confirm("unsubscribe", Some("b"), 2),
                confirm("unsubscribe", Some("c"), 1),
            ])
        );
        assert_eq!(h.run(&["UNSUBSCRIBE"]), confirm("unsubscribe", None, 1));
        assert!(h.session.pubsub_mode, "still subscribed to a pattern");
        assert_eq!(
            h.run(&["PUNSUBSCRIBE", "nope", "p*"]),
            Frame::Seq(vec![
                confirm("punsubscribe", Some("nope"), 1),
                confirm("punsubscribe", Some("p*"), 0),
            ])
        );
        assert!(!h.session.pubsub_mode);
        assert_eq!(h.run(&["PUNSUBSCRIBE"]), confirm("punsubscribe", None, 0));
        assert_eq!(h.run(&["SUNSUBSCRIBE"]), confirm("sunsubscribe", None, 0));
        assert_eq!(h.shared.engine.pubsub.num_clients(), 0);
        assert_eq!(h.run(&["PUBSUB", "NUMPAT"]), int(0));
    }

    #[test]
    fn messages_queued_before_an_unsubscribe_precede_its_confirmation() {
        let mut h = Harness::new();
        h.run(&["SUBSCRIBE", "a"]);
        let mut publisher = other(&h);
        run_as(&h.shared, &mut publisher, &["PUBLISH", "a", "1"]);
        assert_eq!(
            h.run(&["UNSUBSCRIBE", "a"]),
            Frame::Seq(vec![
                push(&["message", "a", "1"]),
                confirm("unsubscribe", Some("a"), 0),
            ])
        );
        assert_eq!(
            run_as(&h.shared, &mut publisher, &["PUBLISH", "a", "2"]),
            int(0)
        );
        assert!(queued(&h.session).is_empty());
    }

    #[test]
    fn resp2_subscribed_context_allows_only_pubsub_commands() {
        let mut h = Harness::new();
        h.run(&["SUBSCRIBE", "a"]);
        let refused = |what: &str| {
            err(&format!(
                "ERR Can't execute '{what}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
            ))
        };
        assert_eq!(h.run(&["GET", "k"]), refused("get"));
        assert_eq!(h.run(&["CLIENT", "LIST"]), refused("client|list"));
        assert_eq!(h.run(&["PUBLISH", "a", "x"]), refused("publish"));
        assert_eq!(
            h.run(&["EXEC"]),
            err("EXECABORT Transaction discarded because of: Can't execute 'exec': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
        );
        // Unknown commands and arity are checked first.
        assert_eq!(
            h.run(&["GET"]),
            err("ERR wrong number of arguments for 'get' command")
        );
        assert_eq!(h.run(&["PING"]), Frame::Array(vec![bulk("pong"), bulk("")]));
        assert_eq!(
            h.run(&["PING", "x"]),
            Frame::Array(vec![bulk("pong"), bulk("x")])
        );
        // RESP3 multiplexes: anything goes, and PING is PING again.
        h.session.resp = RespVersion::Resp3;
        assert_eq!(h.run(&["GET", "k"]), Frame::Null);
        assert_eq!(h.run(&["PING"]), simple("PONG"));
        h.session.resp = RespVersion::Resp2;
        assert_eq!(h.run(&["RESET"]), simple("RESET"));
        assert_eq!(h.run(&["GET", "k"]), Frame::Null);
        assert_eq!(
            h.run(&["PUBSUB", "NUMSUB", "a"]),
            Frame::Array(vec![bulk("a"), int(0)])
        );
    }

    #[test]
    fn commands_inside_exec_run_after_a_queued_subscribe() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v"]);
        h.run(&["MULTI"]);
        h.run(&["SUBSCRIBE", "a"]);
        h.run(&["GET", "k"]);
        assert_eq!(
            h.run(&["EXEC"]),
            Frame::Array(vec![confirm("subscribe", Some("a"), 1), bulk("v")])
        );
        assert!(h.session.pubsub_mode);
    }

    #[test]
    fn a_subscriber_publishing_to_itself_gets_the_message_before_the_reply() {
        let mut h = Harness::new();
        h.session.resp = RespVersion::Resp3;
        h.run(&["SUBSCRIBE", "me"]);
        assert_eq!(
            h.run(&["PUBLISH", "me", "hi"]),
            Frame::Seq(vec![push(&["message", "me", "hi"]), int(1)])
        );
        assert_eq!(h.run(&["PUBLISH", "other", "x"]), int(0));
    }

    #[test]
    fn publish_is_queued_inside_multi() {
        let mut h = Harness::new();
        let mut sub = other(&h);
        run_as(&h.shared, &mut sub, &["SUBSCRIBE", "a"]);
        h.run(&["MULTI"]);
        assert_eq!(h.run(&["PUBLISH", "a", "m"]), simple("QUEUED"));
        assert!(queued(&sub).is_empty());
        assert_eq!(h.run(&["EXEC"]), Frame::Array(vec![int(1)]));
        assert_eq!(queued(&sub), vec![push(&["message", "a", "m"])]);
    }

    #[test]
    fn empty_channel_is_not_matched_by_star() {
        let mut h = Harness::new();
        h.run(&["PSUBSCRIBE", "*"]);
        let mut p = other(&h);
        assert_eq!(run_as(&h.shared, &mut p, &["PUBLISH", "", "x"]), int(0));
        assert_eq!(run_as(&h.shared, &mut p, &["PUBLISH", "a", "x"]), int(1));
    }

    #[test]
    fn config_sets_the_pubsub_output_buffer_limit() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&[
                "CONFIG",
                "SET",
                "client-output-buffer-limit",
                "pubsub 1kb 0 0"
            ]),
            Frame::OK
        );
        assert_eq!(
            h.run(&["CONFIG", "GET", "client-output-buffer-limit"]),
            Frame::Map(vec![(
                bulk("client-output-buffer-limit"),
                bulk("normal 0 0 0 slave 268435456 67108864 60 pubsub 1024 0 0")
            )])
        );
        assert_eq!(
            h.run(&["CONFIG", "SET", "client-output-buffer-limit", "pubsub 1 2"]),
            err("ERR CONFIG SET failed (possibly related to argument 'client-output-buffer-limit') - Wrong number of arguments in buffer limit configuration.")
        );
        let mut p = other(&h);
        h.run(&["SUBSCRIBE", "a"]);
        let big = "x".repeat(600);
        assert_eq!(run_as(&h.shared, &mut p, &["PUBLISH", "a", &big]), int(1));
        assert!(!h.session.info.pubsub.is_closing());
        // Still counted as a receiver, as Redis counts a client it is about to close.
        assert_eq!(run_as(&h.shared, &mut p, &["PUBLISH", "a", &big]), int(1));
        assert!(h.session.info.pubsub.is_closing());
        assert!(
            queued(&h.session).is_empty(),
            "the backlog is freed at once"
        );
        assert_eq!(h.shared.engine.pubsub.limit_disconnections(), 1);
        assert_eq!(
            run_as(&h.shared, &mut p, &["CONFIG", "RESETSTAT"]),
            Frame::OK
        );
        assert_eq!(h.shared.engine.pubsub.limit_disconnections(), 0);
    }

    fn registry(limit: OutputBufferLimit) -> (PubSub, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(Nanos::from_secs(1_767_225_600)));
        (PubSub::new(limit, clock.clone() as Arc<dyn Clock>), clock)
    }

    #[test]
    fn soft_limit_needs_to_hold_for_more_than_its_seconds() {
        let (ps, clock) = registry(OutputBufferLimit {
            hard: 0,
            soft: 1000,
            soft_seconds: 2,
        });
        let sub = Arc::new(Subscriber::new(1));
        ps.subscribe(&sub, ChannelKind::Global, b"c");
        let msg = Bytes::from(vec![b'x'; 1000]);
        ps.publish(b"c", msg.clone()); // over the soft limit: the clock starts
        clock.advance(std::time::Duration::from_secs(2));
        ps.publish(b"c", msg.clone());
        assert!(!sub.is_closing(), "2 s is not more than 2 s");
        clock.advance(std::time::Duration::from_secs(1));
        ps.publish(b"c", msg.clone());
        assert!(sub.is_closing());
        assert_eq!(ps.limit_disconnections(), 1);
    }

    #[test]
    fn dropping_below_the_soft_limit_restarts_its_clock() {
        let (ps, clock) = registry(OutputBufferLimit {
            hard: 0,
            soft: 1000,
            soft_seconds: 1,
        });
        let sub = Arc::new(Subscriber::new(1));
        ps.subscribe(&sub, ChannelKind::Global, b"c");
        let big = Bytes::from(vec![b'x'; 1000]);
        ps.publish(b"c", big.clone());
        // The connection writes its backlog.
        let mut out = BytesMut::new();
        sub.drain_into(RespVersion::Resp2, &mut out);
        sub.written();
        assert_eq!(sub.backlog(), (0, 0));
        clock.advance(std::time::Duration::from_secs(5));
        ps.publish(b"c", Bytes::from_static(b"small"));
        ps.publish(b"c", big.clone());
        assert!(
            !sub.is_closing(),
            "the soft clock restarted below the limit"
        );
        clock.advance(std::time::Duration::from_secs(2));
        ps.publish(b"c", big);
        assert!(sub.is_closing());
    }

    #[test]
    fn bytes_stay_charged_until_written() {
        let (ps, _) = registry(OutputBufferLimit {
            hard: 3000,
            soft: 0,
            soft_seconds: 0,
        });
        let sub = Arc::new(Subscriber::new(1));
        ps.subscribe(&sub, ChannelKind::Global, b"c");
        let msg = Bytes::from(vec![b'x'; 1000]);
        ps.publish(b"c", msg.clone());
        ps.publish(b"c", msg.clone());
        let mut out = BytesMut::new();
        sub.drain_into(RespVersion::Resp3, &mut out);
        assert!(out.starts_with(b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1000\r\n"));
        assert_eq!(sub.backlog().0, 0);
        // Taken but not yet written: still charged, so a third message crosses the limit.
        ps.publish(b"c", msg);
        assert!(sub.is_closing());
    }

    #[test]
    fn registry_forgets_a_removed_client() {
        let (ps, _) = registry(Config::default().client_output_buffer_limit.pubsub);
        let a = Arc::new(Subscriber::new(1));
        let b = Arc::new(Subscriber::new(2));
        ps.subscribe(&a, ChannelKind::Global, b"c");
        ps.subscribe(&b, ChannelKind::Global, b"c");
        ps.psubscribe(&a, b"c*");
        ps.subscribe(&a, ChannelKind::Shard, b"s");
        assert!(ps.has_subscribers(b"c"));
        assert!(ps.has_subscribers(b"cat"), "through the pattern");
        assert!(!ps.has_subscribers(b"dog"));
        assert_eq!(ps.num_clients(), 2);
        ps.remove(&a);
        assert_eq!(ps.numsub(ChannelKind::Global, b"c"), 1);
        assert_eq!(ps.numpat(), 0);
        assert_eq!(ps.num_channels(ChannelKind::Shard), 0);
        assert!(!ps.has_subscribers(b"cat"));
        assert_eq!(ps.publish(b"c", Bytes::from_static(b"x")), 1);
        assert_eq!(a.backlog(), (0, 0));
        ps.remove(&b);
        assert_eq!(ps.num_clients(), 0);
        assert_eq!(ps.num_channels(ChannelKind::Global), 0);
        assert!(!ps.has_subscribers(b"c"));
        assert_eq!(ps.publish(b"c", Bytes::from_static(b"x")), 0);
    }

    #[test]
    fn concurrent_publishers_and_subscribers_lose_nothing() {
        let (ps, _) = registry(OutputBufferLimit::default());
        let ps = Arc::new(ps);
        let subs: Vec<Arc<Subscriber>> = (0..8).map(|i| Arc::new(Subscriber::new(i))).collect();
        for s in &subs {
            ps.subscribe(s, ChannelKind::Global, b"c");
        }
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let ps = ps.clone();
                std::thread::spawn(move || {
                    let mut n = 0;
                    for i in 0..500 {
                        n += ps.publish(b"c", Bytes::from(format!("{t}:{i}")));
                        // Churn another channel on the same registry meanwhile.
                        let x = Arc::new(Subscriber::new(100 + t));
                        ps.subscribe(&x, ChannelKind::Global, format!("tmp{i}").as_bytes());
                        ps.remove(&x);
                    }
                    n
                })
            })
            .collect();
        let total: usize = threads
            .into_iter()
            .map(|t| t.join().expect("no panic"))
            .sum();
        assert_eq!(total, 4 * 500 * 8);
        for s in &subs {
            let frames = s.take_frames();
            assert_eq!(frames.len(), 2000);
            // Each publisher's messages arrive in the order it sent them.
            for t in 0..4 {
                let seq: Vec<usize> = frames
                    .iter()
                    .filter_map(|f| match f {
                        Frame::Push(items) => match &items[2] {
                            Frame::Bulk(b) => {
                                let s = std::str::from_utf8(b).expect("ascii");
                                let (who, i) = s.split_once(':').expect("t:i");
                                (who == t.to_string()).then(|| i.parse().expect("number"))
                            }
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect();
                assert_eq!(seq, (0..500).collect::<Vec<_>>(), "publisher {t}");
            }
        }
        assert_eq!(ps.num_channels(ChannelKind::Global), 1);
    }
}

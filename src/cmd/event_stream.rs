//! The `events-stream` config: every limiter event published on Pub/Sub (denials, warnings,
//! overages, sampled admissions, breaker transitions, overrides, suspensions, reservations)
//! is also appended to a stream in database 0, so a consumer that was down reads what it
//! missed (`XREAD ... STREAMS <key> <last id>`, or a consumer group).
//!
//! The engine queues the events ([`crate::engine::events::StreamEvents`]) because it emits
//! them under shard locks; [`flush`] runs after each command (and on the server's tick) and
//! appends each as `XADD <key> MAXLEN ~ <events-stream-maxlen> * channel <ch> event <json>`
//! through the XADD handler, so the entry and its id are journaled (AOF, replicas) like any
//! other write. A replica appends nothing: its master's entries arrive by replication.

use std::sync::Arc;

use bytes::Bytes;

use super::{ClientInfo, Ctx, Session, Shared};
use crate::clock::Nanos;

/// Appends the queued events to the configured stream.
pub fn flush(shared: &Shared, now: Nanos) {
    if !shared.engine.stream_events.is_pending() {
        return;
    }
    let events = shared.engine.stream_events.take();
    let (key, maxlen) = {
        let cfg = shared.engine.config.read();
        (cfg.events_stream.clone(), cfg.events_stream_maxlen)
    };
    if key.is_empty() || shared.repl.is_replica() {
        return;
    }
    let Some(xadd) = super::lookup(b"XADD") else {
        unreachable!("invariant: XADD is in the command table");
    };
    let info = Arc::new(ClientInfo::new(0, String::new(), String::new()));
    let mut session = Session::new(info, &shared.acl);
    session.unmonitored = true;
    let (key, maxlen) = (Bytes::from(key), Bytes::from(maxlen.to_string()));
    for (channel, message) in events {
        let req = [
            Bytes::from_static(b"XADD"),
            key.clone(),
            Bytes::from_static(b"MAXLEN"),
            Bytes::from_static(b"~"),
            maxlen.clone(),
            Bytes::from_static(b"*"),
            Bytes::from_static(b"channel"),
            channel,
            Bytes::from_static(b"event"),
            message,
        ];
        let mut ctx = Ctx::new(shared, &mut session, now);
        if let Err(e) = (xadd.handler)(&mut ctx, &req) {
            // The key holds another type: the event stays on Pub/Sub only.
            tracing::warn!(error = %e, "events-stream: cannot append the event");
        }
    }
    shared.metrics.flush(&mut session.stats);
}

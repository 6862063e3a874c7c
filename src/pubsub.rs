//! Pub/Sub delivery: the registry of who listens to which channel, pattern or shard channel
//! ([`PubSub`], one per server, `Shared::pubsub`), and each connection's queue of messages not
//! yet written ([`Subscriber`], one per connection, `ClientInfo::pubsub`).
//!
//! Publishing never touches a socket. [`PubSub::publish`] finds the listeners under a read lock
//! and appends the message to each listener's queue (reference-counted `Bytes`: one copy of the
//! payload however many listeners), then wakes the listener's connection task, which encodes
//! the queue into its output buffer in its own RESP version and writes it between command
//! batches. Channels are spread over lock shards, so publishers on different channels do not
//! contend; patterns sit under one read-mostly lock, consulted only while at least one pattern
//! is subscribed.
//!
//! Each queue is accounted in bytes from the moment a message is queued until the connection
//! has written it to the socket. Past `client-output-buffer-limit pubsub` (hard limit, or soft
//! limit held for longer than its seconds) the queue is dropped and the connection closed, as
//! Redis does, so a subscriber that stops reading cannot exhaust memory.
//!
//! Depends on `glob`, `protocol` (to encode messages), `clock` and `config` only: it knows
//! nothing of commands or sockets.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use indexmap::{IndexMap, IndexSet};
use parking_lot::{Mutex, RwLock};
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::config::OutputBufferLimit;
use crate::glob::glob_match;
use crate::protocol::{encode, Frame, RespVersion};

type Hasher = foldhash::fast::RandomState;
type Listeners = IndexMap<u64, Arc<Subscriber>, Hasher>;

/// Lock shards of each channel namespace.
const SHARDS: usize = 64;

/// Bytes a queued message is charged beyond its channel, pattern and payload: its queue entry
/// plus room for the RESP framing it is encoded with.
const MESSAGE_OVERHEAD: usize = std::mem::size_of::<Message>() + 48;

/// The two channel namespaces: `SUBSCRIBE`/`PUBLISH` channels (which patterns also match) and
/// `SSUBSCRIBE`/`SPUBLISH` shard channels (which they do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// `SUBSCRIBE`, `PUBLISH`.
    Global,
    /// `SSUBSCRIBE`, `SPUBLISH`.
    Shard,
}

/// The kind of a `MONITOR` line queued with [`Subscriber::push_line`] (written as a status
/// reply, not a push).
const MONITOR_KIND: &str = "monitor";

/// One delivery, as queued for one listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// `message`, `pmessage` or `smessage`.
    kind: &'static str,
    /// The pattern that matched (`pmessage` only).
    pattern: Option<Bytes>,
    channel: Bytes,
    payload: Bytes,
}

impl Message {
    /// The wire frame: a push (`>` in RESP3, an array in RESP2) of
    /// `[message, channel, payload]`, `[pmessage, pattern, channel, payload]` or
    /// `[smessage, channel, payload]`.
    pub fn frame(&self) -> Frame {
        if self.kind == MONITOR_KIND {
            return Frame::Simple(self.payload.clone());
        }
        let mut items = Vec::with_capacity(4);
        items.push(Frame::Bulk(Bytes::from_static(self.kind.as_bytes())));
        if let Some(p) = &self.pattern {
            items.push(Frame::Bulk(p.clone()));
        }
        items.push(Frame::Bulk(self.channel.clone()));
        items.push(Frame::Bulk(self.payload.clone()));
        Frame::Push(items)
    }

    /// Bytes charged to the listener's output buffer.
    fn cost(&self) -> usize {
        self.payload.len()
            + self.channel.len()
            + self.pattern.as_ref().map_or(0, Bytes::len)
            + MESSAGE_OVERHEAD
    }
}

/// What one connection subscribed to, in subscription order (the order `UNSUBSCRIBE` without
/// arguments answers in).
#[derive(Debug, Default)]
struct Subscriptions {
    channels: IndexSet<Bytes, Hasher>,
    patterns: IndexSet<Bytes, Hasher>,
    shard_channels: IndexSet<Bytes, Hasher>,
}

impl Subscriptions {
    fn total(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard_channels.len()
    }

    /// The count a (un)subscribe confirmation reports: channels plus patterns, or shard
    /// channels alone.
    fn count(&self, kind: ChannelKind) -> usize {
        match kind {
            ChannelKind::Global => self.channels.len() + self.patterns.len(),
            ChannelKind::Shard => self.shard_channels.len(),
        }
    }

    fn set(&mut self, kind: ChannelKind) -> &mut IndexSet<Bytes, Hasher> {
        match kind {
            ChannelKind::Global => &mut self.channels,
            ChannelKind::Shard => &mut self.shard_channels,
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Message>,
    /// Bytes charged for `items`.
    queued: usize,
    /// Bytes taken out of `items` into the connection's output buffer and not yet written.
    taken: usize,
    /// When (Unix seconds) the queue was first seen at or above the soft limit, while it
    /// stays there.
    soft_since: Option<u64>,
}

/// One connection's side of Pub/Sub: what it subscribed to, its queue of undelivered
/// messages, and the wake-up its connection task waits on (shared with `CLIENT KILL`).
#[derive(Debug)]
pub struct Subscriber {
    id: u64,
    wake: Notify,
    /// Set when the queue went over the output buffer limit: the connection must close.
    closing: AtomicBool,
    queue: Mutex<Queue>,
    subs: Mutex<Subscriptions>,
}

impl Subscriber {
    /// The Pub/Sub side of client `id`, subscribed to nothing.
    pub fn new(id: u64) -> Subscriber {
        Subscriber {
            id,
            wake: Notify::new(),
            closing: AtomicBool::new(false),
            queue: Mutex::new(Queue::default()),
            subs: Mutex::new(Subscriptions::default()),
        }
    }

    /// The client id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Wakes the connection task (messages queued, killed, or over the buffer limit).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves after the next [`Subscriber::wake`] (or at once if one is pending).
    pub fn notified(&self) -> Notified<'_> {
        self.wake.notified()
    }

    /// True once the queue went over the output buffer limit: the connection must close
    /// without writing anything more.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Subscriptions: (channels, patterns, shard channels), for `CLIENT LIST`.
    pub fn counts(&self) -> (usize, usize, usize) {
        let s = self.subs.lock();
        (s.channels.len(), s.patterns.len(), s.shard_channels.len())
    }

    /// The count a confirmation of `kind` reports: channels plus patterns, or shard channels.
    pub fn count(&self, kind: ChannelKind) -> usize {
        self.subs.lock().count(kind)
    }

    /// Subscriptions of every kind together; nonzero puts a RESP2 connection in Redis's
    /// subscribed context.
    pub fn total(&self) -> usize {
        self.subs.lock().total()
    }

    /// The channels (or shard channels) subscribed to, in subscription order.
    pub fn channels(&self, kind: ChannelKind) -> Vec<Bytes> {
        self.subs.lock().set(kind).iter().cloned().collect()
    }

    /// The patterns subscribed to, in subscription order.
    pub fn patterns(&self) -> Vec<Bytes> {
        self.subs.lock().patterns.iter().cloned().collect()
    }

    /// (Messages queued, bytes charged: queued plus taken but not yet written), for
    /// `CLIENT LIST` (`oll`, `omem`).
    pub fn backlog(&self) -> (usize, usize) {
        let q = self.queue.lock();
        (q.items.len(), q.queued + q.taken)
    }

    /// True if messages wait in the queue.
    pub fn has_queued(&self) -> bool {
        !self.queue.lock().items.is_empty()
    }

    /// Moves every queued message into `out`, encoded for `resp`. Their bytes stay charged
    /// until [`Subscriber::written`].
    pub fn drain_into(&self, resp: RespVersion, out: &mut BytesMut) {
        for m in self.take() {
            encode(&m.frame(), resp, out);
        }
    }

    /// Takes every queued message as frames (to place them before a reply that must follow
    /// them). Their bytes stay charged until [`Subscriber::written`].
    pub fn take_frames(&self) -> Vec<Frame> {
        self.take().iter().map(Message::frame).collect()
    }

    /// Drops the queued messages (a `RESET` that raced with publishers: the connection
    /// already wrote what was queued before the command ran).
    pub fn discard(&self) {
        let mut q = self.queue.lock();
        q.items.clear();
        q.queued = 0;
    }

    /// The connection wrote everything it took: those bytes are no longer charged.
    pub fn written(&self) {
        self.queue.lock().taken = 0;
    }

    /// Queues a `MONITOR` line (`line` is written as `+line\r\n`; it must hold no CR or LF),
    /// charged against `limit` like a message. Returns true if it took the queue over the
    /// limit (the connection then closes).
    pub fn push_line(&self, line: Bytes, limit: &OutputBufferLimit, clock: &dyn Clock) -> bool {
        let msg = Message {
            kind: MONITOR_KIND,
            pattern: None,
            channel: Bytes::new(),
            payload: line,
        };
        self.push(msg, limit, clock)
    }

    fn take(&self) -> VecDeque<Message> {
        let mut q = self.queue.lock();
        if q.items.is_empty() {
            return VecDeque::new();
        }
        q.taken += q.queued;
        q.queued = 0;
        std::mem::take(&mut q.items)
    }

    /// Queues `msg` and wakes the connection if the queue was empty. Returns true if this
    /// message took the queue over `limit`: the queue is then dropped and the connection told
    /// to close, and nothing more is queued.
    fn push(&self, msg: Message, limit: &OutputBufferLimit, clock: &dyn Clock) -> bool {
        if self.closing.load(Ordering::Relaxed) {
            return false;
        }
        let mut q = self.queue.lock();
        let was_empty = q.items.is_empty();
        q.queued += msg.cost();
        q.items.push_back(msg);
        let used = (q.queued + q.taken) as u64;
        let hard = limit.hard > 0 && used >= limit.hard;
        // Redis's rule: the soft limit is reached once the buffer has stayed at or above it
        // for more than `soft_seconds` whole seconds, checked whenever output is added.
        let soft = if limit.soft > 0 && used >= limit.soft {
            let now = clock.now().as_secs();
            match q.soft_since {
                None => {
                    q.soft_since = Some(now);
                    false
                }
                Some(since) => now.saturating_sub(since) > limit.soft_seconds,
            }
        } else {
            q.soft_since = None;
            false
        };
        if hard || soft {
            q.items = VecDeque::new();
            q.queued = 0;
            drop(q);
            self.closing.store(true, Ordering::Release);
            self.wake.notify_one();
            return true;
        }
        drop(q);
        if was_empty {
            self.wake.notify_one();
        }
        false
    }
}

/// One channel namespace, spread over lock shards by channel name.
#[derive(Debug)]
struct Namespace {
    shards: Box<[RwLock<HashMap<Bytes, Listeners, Hasher>>]>,
    hasher: Hasher,
    /// Distinct channels with at least one listener.
    channels: AtomicUsize,
    /// (listener, channel) pairs; zero lets publishing skip the lock.
    subscriptions: AtomicUsize,
}

impl Namespace {
    fn new() -> Namespace {
        Namespace {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: Hasher::default(),
            channels: AtomicUsize::new(0),
            subscriptions: AtomicUsize::new(0),
        }
    }

    fn shard(&self, name: &[u8]) -> &RwLock<HashMap<Bytes, Listeners, Hasher>> {
        let h = self.hasher.hash_one(name);
        // SHARDS is a power of two; the high bits are the best mixed.
        &self.shards[(h >> 58) as usize & (SHARDS - 1)]
    }

    fn add(&self, name: Bytes, sub: &Arc<Subscriber>) {
        let mut shard = self.shard(&name).write();
        let listeners = shard.entry(name).or_insert_with(|| {
            self.channels.fetch_add(1, Ordering::Relaxed);
            Listeners::default()
        });
        if listeners.insert(sub.id, sub.clone()).is_none() {
            self.subscriptions.fetch_add(1, Ordering::Release);
        }
    }

    fn remove(&self, name: &[u8], id: u64) {
        let mut shard = self.shard(name).write();
        let Some(listeners) = shard.get_mut(name) else {
            return;
        };
        if listeners.swap_remove(&id).is_some() {
            self.subscriptions.fetch_sub(1, Ordering::Release);
        }
        if listeners.is_empty() {
            shard.remove(name);
            self.channels.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn numsub(&self, name: &[u8]) -> usize {
        if self.subscriptions.load(Ordering::Acquire) == 0 {
            return 0;
        }
        self.shard(name).read().get(name).map_or(0, IndexMap::len)
    }

    fn names(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            out.extend(
                shard
                    .read()
                    .keys()
                    .filter(|name| pattern.is_none_or(|p| glob_match(p, name)))
                    .cloned(),
            );
        }
        out
    }
}

/// The server's Pub/Sub registry.
///
/// The API other parts of the server use to emit events is [`PubSub::publish`] and, to skip
/// building a payload nobody listens to, [`PubSub::has_subscribers`].
pub struct PubSub {
    channels: Namespace,
    shard_channels: Namespace,
    patterns: RwLock<IndexMap<Bytes, Listeners, Hasher>>,
    /// Distinct patterns (`PUBSUB NUMPAT`); zero lets publishing skip the pattern lock.
    num_patterns: AtomicUsize,
    /// Clients subscribed to anything (`pubsub_clients` in `INFO`).
    clients: AtomicUsize,
    limit_hard: AtomicU64,
    limit_soft: AtomicU64,
    limit_soft_seconds: AtomicU64,
    /// Clients disconnected for going over the limit (`client_output_buffer_limit_disconnections`).
    limit_disconnections: AtomicU64,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSub")
            .field("channels", &self.num_channels(ChannelKind::Global))
            .field("shard_channels", &self.num_channels(ChannelKind::Shard))
            .field("patterns", &self.numpat())
            .field("clients", &self.num_clients())
            .finish_non_exhaustive()
    }
}

impl PubSub {
    /// An empty registry enforcing `limit` (the `pubsub` class of
    /// `client-output-buffer-limit`), reading time from `clock` for the soft limit.
    pub fn new(limit: OutputBufferLimit, clock: Arc<dyn Clock>) -> PubSub {
        let p = PubSub {
            channels: Namespace::new(),
            shard_channels: Namespace::new(),
            patterns: RwLock::default(),
            num_patterns: AtomicUsize::new(0),
            clients: AtomicUsize::new(0),
            limit_hard: AtomicU64::new(0),
            limit_soft: AtomicU64::new(0),
            limit_soft_seconds: AtomicU64::new(0),
            limit_disconnections: AtomicU64::new(0),
            clock,
        };
        p.set_limit(limit);
        p
    }

    /// Posts `message` on `channel`: queues it for every subscriber of the channel and every
    /// subscriber of a matching pattern, and returns how many deliveries were queued (what
    /// `PUBLISH` answers). Costs one relaxed load when nobody is subscribed to anything.
    ///
    /// Never blocks on a socket. `message` is shared by every delivery, so pass bytes that do
    /// not pin a larger buffer (copy a slice of a connection's read buffer first).
    pub fn publish(&self, channel: &[u8], message: Bytes) -> usize {
        if self.channels.subscriptions.load(Ordering::Acquire) == 0
            && self.num_patterns.load(Ordering::Acquire) == 0
        {
            return 0;
        }
        let limit = self.limit();
        let mut n = self.deliver(ChannelKind::Global, channel, &message, &limit);
        if self.num_patterns.load(Ordering::Acquire) > 0 {
            let patterns = self.patterns.read();
            let mut owned: Option<Bytes> = None;
            for (pattern, listeners) in patterns.iter() {
                if !glob_match(pattern, channel) {
                    continue;
                }
                let channel = owned
                    .get_or_insert_with(|| Bytes::copy_from_slice(channel))
                    .clone();
                for sub in listeners.values() {
                    let msg = Message {
                        kind: "pmessage",
                        pattern: Some(pattern.clone()),
                        channel: channel.clone(),
                        payload: message.clone(),
                    };
                    self.push(sub, msg, &limit);
                    n += 1;
                }
            }
        }
        n
    }

    /// `SPUBLISH`: posts `message` on shard channel `channel` (patterns do not apply).
    pub fn spublish(&self, channel: &[u8], message: Bytes) -> usize {
        if self.shard_channels.subscriptions.load(Ordering::Acquire) == 0 {
            return 0;
        }
        let limit = self.limit();
        self.deliver(ChannelKind::Shard, channel, &message, &limit)
    }

    /// True if [`PubSub::publish`] on `channel` would reach anyone (a channel subscriber or a
    /// matching pattern). One relaxed load when nobody is subscribed to anything.
    pub fn has_subscribers(&self, channel: &[u8]) -> bool {
        if self.channels.numsub(channel) > 0 {
            return true;
        }
        self.num_patterns.load(Ordering::Acquire) > 0
            && self.patterns.read().keys().any(|p| glob_match(p, channel))
    }

    fn deliver(
        &self,
        kind: ChannelKind,
        channel: &[u8],
        message: &Bytes,
        limit: &OutputBufferLimit,
    ) -> usize {
        let space = self.space(kind);
        // The read lock is held while queuing (appending to in-memory queues, never a socket
        // write): an UNSUBSCRIBE, which takes the write lock, then knows that every message
        // for the channel is already queued and can be placed before its confirmation.
        let shard = space.shard(channel).read();
        let Some((name, listeners)) = shard.get_key_value(channel) else {
            return 0;
        };
        let kind_name = match kind {
            ChannelKind::Global => "message",
            ChannelKind::Shard => "smessage",
        };
        for sub in listeners.values() {
            let msg = Message {
                kind: kind_name,
                pattern: None,
                channel: name.clone(),
                payload: message.clone(),
            };
            self.push(sub, msg, limit);
        }
        listeners.len()
    }

    fn push(&self, sub: &Subscriber, msg: Message, limit: &OutputBufferLimit) {
        if sub.push(msg, limit, &*self.clock) {
            self.limit_disconnections.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                client = sub.id,
                "Client scheduled to be closed ASAP for overcoming of output buffer limits."
            );
        }
    }

    fn space(&self, kind: ChannelKind) -> &Namespace {
        match kind {
            ChannelKind::Global => &self.channels,
            ChannelKind::Shard => &self.shard_channels,
        }
    }

    /// Subscribes `sub` to `channel` (idempotent); returns the count its confirmation reports.
    pub fn subscribe(&self, sub: &Arc<Subscriber>, kind: ChannelKind, channel: &[u8]) -> usize {
        let mut s = sub.subs.lock();
        let before = s.total();
        if !s.set(kind).contains(channel) {
            let name = Bytes::copy_from_slice(channel);
            s.set(kind).insert(name.clone());
            self.space(kind).add(name, sub);
        }
        self.count_client(before, s.total());
        s.count(kind)
    }

    /// Unsubscribes `sub` from `channel` (if subscribed); returns the count its confirmation
    /// reports.
    pub fn unsubscribe(&self, sub: &Arc<Subscriber>, kind: ChannelKind, channel: &[u8]) -> usize {
        let mut s = sub.subs.lock();
        let before = s.total();
        if s.set(kind).shift_remove(channel) {
            self.space(kind).remove(channel, sub.id);
        }
        self.count_client(before, s.total());
        s.count(kind)
    }

    /// Subscribes `sub` to `pattern` (idempotent); returns the count its confirmation reports.
    pub fn psubscribe(&self, sub: &Arc<Subscriber>, pattern: &[u8]) -> usize {
        let mut s = sub.subs.lock();
        let before = s.total();
        if !s.patterns.contains(pattern) {
            let name = Bytes::copy_from_slice(pattern);
            s.patterns.insert(name.clone());
            let mut patterns = self.patterns.write();
            let listeners = patterns.entry(name).or_insert_with(|| {
                self.num_patterns.fetch_add(1, Ordering::Release);
                Listeners::default()
            });
            listeners.insert(sub.id, sub.clone());
        }
        self.count_client(before, s.total());
        s.count(ChannelKind::Global)
    }

    /// Unsubscribes `sub` from `pattern` (if subscribed); returns the count its confirmation
    /// reports.
    pub fn punsubscribe(&self, sub: &Arc<Subscriber>, pattern: &[u8]) -> usize {
        let mut s = sub.subs.lock();
        let before = s.total();
        if s.patterns.shift_remove(pattern) {
            self.remove_pattern(pattern, sub.id);
        }
        self.count_client(before, s.total());
        s.count(ChannelKind::Global)
    }

    fn remove_pattern(&self, pattern: &[u8], id: u64) {
        let mut patterns = self.patterns.write();
        if let Some(listeners) = patterns.get_mut(pattern) {
            listeners.swap_remove(&id);
            if listeners.is_empty() {
                // Keeps the other patterns' order: deliveries follow subscription order.
                patterns.shift_remove(pattern);
                self.num_patterns.fetch_sub(1, Ordering::Release);
            }
        }
    }

    /// Removes every subscription of `sub` without confirmations (`RESET`, disconnect).
    pub fn remove(&self, sub: &Arc<Subscriber>) {
        let mut s = sub.subs.lock();
        let before = s.total();
        let taken = std::mem::take(&mut *s);
        for c in &taken.channels {
            self.channels.remove(c, sub.id);
        }
        for c in &taken.shard_channels {
            self.shard_channels.remove(c, sub.id);
        }
        for p in &taken.patterns {
            self.remove_pattern(p, sub.id);
        }
        self.count_client(before, 0);
    }

    fn count_client(&self, before: usize, after: usize) {
        if before == 0 && after > 0 {
            self.clients.fetch_add(1, Ordering::Relaxed);
        } else if before > 0 && after == 0 {
            self.clients.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Active channels (with at least one subscriber), optionally only those matching a glob;
    /// in no particular order (`PUBSUB CHANNELS`, `PUBSUB SHARDCHANNELS`).
    pub fn channel_names(&self, kind: ChannelKind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.space(kind).names(pattern)
    }

    /// Subscribers of `channel`, patterns not counted (`PUBSUB NUMSUB`, `PUBSUB SHARDNUMSUB`).
    pub fn numsub(&self, kind: ChannelKind, channel: &[u8]) -> usize {
        self.space(kind).numsub(channel)
    }

    /// Distinct patterns subscribed to (`PUBSUB NUMPAT`, `pubsub_patterns`).
    pub fn numpat(&self) -> usize {
        self.num_patterns.load(Ordering::Relaxed)
    }

    /// Distinct active channels (`pubsub_channels`, `pubsubshard_channels`).
    pub fn num_channels(&self, kind: ChannelKind) -> usize {
        self.space(kind).channels.load(Ordering::Relaxed)
    }

    /// Clients subscribed to anything (`pubsub_clients`).
    pub fn num_clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// Clients disconnected for going over the output buffer limit since start or the last
    /// `CONFIG RESETSTAT`.
    pub fn limit_disconnections(&self) -> u64 {
        self.limit_disconnections.load(Ordering::Relaxed)
    }

    /// Zeroes the statistics `CONFIG RESETSTAT` resets.
    pub fn reset_stats(&self) {
        self.limit_disconnections.store(0, Ordering::Relaxed);
    }

    /// Applies a new `client-output-buffer-limit pubsub` (from `CONFIG SET`).
    pub fn set_limit(&self, limit: OutputBufferLimit) {
        self.limit_hard.store(limit.hard, Ordering::Relaxed);
        self.limit_soft.store(limit.soft, Ordering::Relaxed);
        self.limit_soft_seconds
            .store(limit.soft_seconds, Ordering::Relaxed);
    }

    fn limit(&self) -> OutputBufferLimit {
        OutputBufferLimit {
            hard: self.limit_hard.load(Ordering::Relaxed),
            soft: self.limit_soft.load(Ordering::Relaxed),
            soft_seconds: self.limit_soft_seconds.load(Ordering::Relaxed),
        }
    }
}

//! Keyspace notifications (`notify-keyspace-events`): Redis's `__keyspace@<db>__:<key>` and
//! `__keyevent@<db>__:<event>` messages.
//!
//! The command layer describes what a write command's changes are called ([`EventSpec`]:
//! Redis 7.0's event names, by key) and hands it to the command's [`super::Call`]; the call
//! publishes an event for each key it journals, under the key's shard lock, in the order of the
//! changes (as Redis publishes from inside the command). Keys that expire (lazily on access,
//! or by the active sweep) are published as `expired` by the store's [`ExpiryListener`].
//!
//! Cost while notifications are off (the default): the dispatcher loads the flags once per
//! write command (one relaxed atomic load) and builds no spec; the calls then see `None` and
//! do nothing more. Expiry pays one relaxed load per expired key.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::config::NotifyFlags;
use crate::pubsub::PubSub;
use crate::store::ExpiryListener;

use super::Engine;

/// One event a changed key publishes: its class (a [`NotifyFlags`] bit) and Redis's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ev {
    /// The class bit (`NotifyFlags::GENERIC`, `::LIST`, ...).
    pub class: u32,
    /// The event name (`set`, `lpush`, `rename_from`, `cl.throttle`, ...).
    pub name: Cow<'static, str>,
}

impl Ev {
    /// An event with a fixed name.
    pub const fn of(class: u32, name: &'static str) -> Ev {
        Ev {
            class,
            name: Cow::Borrowed(name),
        }
    }
}

/// What a key the command left without a value publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenGone {
    /// The command's events as they are (`DEL`'s `del`, `RENAME`'s `rename_from`).
    Same,
    /// The events, then a generic `del` (a pop or removal that emptied the key).
    ThenDel,
    /// Only a generic `del` (an `EXPIRE` in the past, a `*STORE` of an empty result).
    Del,
}

/// The events of the keys one command changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEvents {
    /// Published, in order, for a changed key.
    pub events: Vec<Ev>,
    /// What a key the command emptied or removed publishes instead.
    pub when_gone: WhenGone,
}

impl KeyEvents {
    /// `events` for a key left with a value; `when_gone` otherwise.
    pub fn new(events: Vec<Ev>, when_gone: WhenGone) -> KeyEvents {
        KeyEvents { events, when_gone }
    }
}

/// A write command's events: for every changed key (`all`), except the keys named in
/// `by_key` (`RENAME`'s source and destination, `LMOVE`'s two ends), which publish theirs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventSpec {
    /// The events of a changed key not named in `by_key` (none when `None`).
    pub all: Option<KeyEvents>,
    /// Per-key events; a key named twice publishes both, in order.
    pub by_key: Vec<(Bytes, KeyEvents)>,
    /// The events of a key changed in another database than the command's (`MOVE`'s and
    /// `COPY ... DB`'s destination); none when `None`.
    pub other_db: Option<KeyEvents>,
}

impl EventSpec {
    /// Every changed key publishes `events`.
    pub fn all(events: KeyEvents) -> EventSpec {
        EventSpec {
            all: Some(events),
            ..EventSpec::default()
        }
    }

    /// Publishes the events of `key`, which the command changed; `live` tells whether it
    /// holds a value now, `created` whether it held none before (`new`, with class `n`),
    /// `foreign` whether `db` is another database than the command's.
    pub fn publish(&self, engine: &Engine, db: usize, key: &[u8], change: Change) {
        let flags = engine.notify_flags();
        let Change {
            live,
            created,
            foreign,
        } = change;
        if created && live {
            publish(&engine.pubsub, flags, db, NotifyFlags::NEW, "new", key);
        }
        if foreign {
            if let Some(ev) = &self.other_db {
                publish_one(engine, flags, db, ev, key, live);
            }
            return;
        }
        let mut named = self.by_key.iter().filter(|(k, _)| k == key).peekable();
        if named.peek().is_some() {
            for (_, ev) in named {
                publish_one(engine, flags, db, ev, key, live);
            }
        } else if let Some(ev) = &self.all {
            publish_one(engine, flags, db, ev, key, live);
        }
    }
}

/// What became of a changed key, for [`EventSpec::publish`].
#[derive(Debug, Clone, Copy)]
pub struct Change {
    /// The key holds a value now.
    pub live: bool,
    /// It held none before.
    pub created: bool,
    /// It is in another database than the command's.
    pub foreign: bool,
}

fn publish_one(engine: &Engine, flags: u32, db: usize, ev: &KeyEvents, key: &[u8], live: bool) {
    let del = || publish(&engine.pubsub, flags, db, NotifyFlags::GENERIC, "del", key);
    let own = || {
        for e in &ev.events {
            publish(&engine.pubsub, flags, db, e.class, &e.name, key);
        }
    };
    match (live, ev.when_gone) {
        (true, _) | (false, WhenGone::Same) => own(),
        (false, WhenGone::ThenDel) => {
            own();
            del();
        }
        (false, WhenGone::Del) => del(),
    }
}

/// Publishes one event of class `class` as Redis's `notifyKeyspaceEvent` does: nothing when
/// the class is off, else on the keyspace channel (`K`) and the keyevent channel (`E`).
pub fn publish(pubsub: &PubSub, flags: u32, db: usize, class: u32, event: &str, key: &[u8]) {
    if flags & class == 0 {
        return;
    }
    if flags & NotifyFlags::KEYSPACE != 0 {
        let mut chan = BytesMut::with_capacity(16 + key.len());
        chan.put_slice(b"__keyspace@");
        chan.put_slice(db.to_string().as_bytes());
        chan.put_slice(b"__:");
        chan.put_slice(key);
        pubsub.publish(&chan, Bytes::copy_from_slice(event.as_bytes()));
    }
    if flags & NotifyFlags::KEYEVENT != 0 {
        let mut chan = BytesMut::with_capacity(16 + event.len());
        chan.put_slice(b"__keyevent@");
        chan.put_slice(db.to_string().as_bytes());
        chan.put_slice(b"__:");
        chan.put_slice(event.as_bytes());
        pubsub.publish(&chan, Bytes::copy_from_slice(key));
    }
}

/// Publishes `expired` for the keys a database's shards expire.
#[derive(Debug)]
pub(super) struct ExpiredNotifier {
    pub(super) db: usize,
    pub(super) flags: Arc<AtomicU32>,
    pub(super) pubsub: Arc<PubSub>,
}

impl ExpiryListener for ExpiredNotifier {
    fn expired(&self, key: &[u8]) {
        let flags = self.flags.load(Ordering::Relaxed);
        publish(
            &self.pubsub,
            flags,
            self.db,
            NotifyFlags::EXPIRED,
            "expired",
            key,
        );
    }
}

impl Engine {
    /// The `notify-keyspace-events` bits in force (a relaxed load).
    #[inline]
    pub fn notify_flags(&self) -> u32 {
        self.notify.load(Ordering::Relaxed)
    }

    /// True when some keyspace event would be published: the dispatcher builds a write
    /// command's [`EventSpec`] only then.
    #[inline]
    pub fn notifies(&self) -> bool {
        self.notify_flags() != 0
    }

    /// Applies `notify-keyspace-events` (start-up and `CONFIG SET`).
    pub fn set_notify_flags(&self, flags: NotifyFlags) {
        let bits = if flags.publishes() { flags.0 } else { 0 };
        self.notify.store(bits, Ordering::Relaxed);
        let expired = bits & NotifyFlags::EXPIRED != 0;
        for db in self.dbs.iter() {
            db.set_log_expired(expired);
        }
    }

    /// Publishes one event of a key outside a command's spec (`expired` found by a caller).
    pub fn notify_key(&self, db: usize, class: u32, event: &str, key: &[u8]) {
        publish(&self.pubsub, self.notify_flags(), db, class, event, key);
    }
}

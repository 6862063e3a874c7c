//! A node's live routing state: which slots it serves, the map in force and the policy
//! version it has applied. Read on every keyed command in cluster mode, so the common answer
//! ("this slot is mine") is one relaxed atomic load per slot and one for the cluster state;
//! only a redirection takes the map's read lock.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use super::{Topology, TopologyError, SLOTS};

/// What this node does with a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SlotState {
    /// No master serves it (`-CLUSTERDOWN Hash slot not served`).
    Unassigned = 0,
    /// This node is its master.
    Mine = 1,
    /// Another master serves it (`-MOVED`).
    Other = 2,
    /// This node's master serves it: reads after `READONLY` run here, the rest move.
    Replica = 3,
}

impl SlotState {
    fn from_u8(v: u8) -> SlotState {
        match v {
            1 => SlotState::Mine,
            2 => SlotState::Other,
            3 => SlotState::Replica,
            _ => SlotState::Unassigned,
        }
    }
}

/// Where a keyed request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Run it here.
    Local,
    /// `-MOVED slot host:port`.
    Moved {
        /// The slot.
        slot: u16,
        /// The owner's host.
        host: String,
        /// The owner's port.
        port: u16,
    },
    /// `-CLUSTERDOWN <text>`.
    Down(&'static str),
}

/// Keeps an installed map across restarts (given this node's id and the map); installed by
/// the server, which owns the file. An error refuses the push.
pub type Saver = Box<dyn Fn(&str, &Topology) -> Result<(), String> + Send + Sync>;

/// The routing state of one node.
pub struct Cluster {
    enabled: bool,
    require_full_coverage: bool,
    myself: RwLock<String>,
    saver: RwLock<Option<Saver>>,
    slots: Box<[AtomicU8]>,
    /// Some slot is unassigned and full coverage is required: keyed commands are refused.
    down: AtomicBool,
    /// A map has been pushed (`map` is `Some`), readable without the lock.
    pushed: AtomicBool,
    /// `None` while emulating a one-node cluster (no map pushed yet).
    map: RwLock<Option<Arc<Topology>>>,
    policy_version: AtomicU64,
    required_policy_version: AtomicU64,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("enabled", &self.enabled)
            .field("myself", &*self.myself.read())
            .field("epoch", &self.epoch())
            .finish()
    }
}

impl Cluster {
    /// A node with id `myself` (40 hex digits). Enabled, it starts as a one-node cluster that
    /// serves every slot (the emulated mode, so cluster-aware clients work with no setup).
    pub fn new(enabled: bool, myself: String, require_full_coverage: bool) -> Cluster {
        Cluster {
            enabled,
            require_full_coverage,
            myself: RwLock::new(myself),
            saver: RwLock::new(None),
            slots: (0..SLOTS)
                .map(|_| AtomicU8::new(SlotState::Mine as u8))
                .collect(),
            down: AtomicBool::new(false),
            pushed: AtomicBool::new(false),
            map: RwLock::new(None),
            policy_version: AtomicU64::new(0),
            required_policy_version: AtomicU64::new(0),
        }
    }

    /// `cluster-enabled`.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// This node's id.
    pub fn myid(&self) -> String {
        self.myself.read().clone()
    }

    /// Installs the function that keeps each accepted map (the server's `cluster-config-file`).
    pub fn set_saver(&self, saver: Saver) {
        *self.saver.write() = Some(saver);
    }

    /// At start: takes the id and the map kept by the last run (the map is checked as a push
    /// is, but not saved again).
    pub fn restore(&self, myid: String, map: Option<Topology>) -> Result<(), TopologyError> {
        *self.myself.write() = myid;
        match map {
            Some(t) => self.apply(t, false),
            None => Ok(()),
        }
    }

    /// The pushed map, `None` in the emulated one-node mode.
    pub fn topology(&self) -> Option<Arc<Topology>> {
        self.map.read().clone()
    }

    /// True once a map has been pushed (no longer the emulated one-node cluster); one relaxed
    /// load, for the dispatcher's hot path.
    pub fn is_pushed(&self) -> bool {
        self.pushed.load(Ordering::Relaxed)
    }

    /// The epoch in force (0 before any push).
    pub fn epoch(&self) -> u64 {
        self.map.read().as_ref().map_or(0, |t| t.epoch)
    }

    /// What this node does with `slot`.
    pub fn slot_state(&self, slot: u16) -> SlotState {
        SlotState::from_u8(self.slots[usize::from(slot)].load(Ordering::Relaxed))
    }

    /// False when some slot is unassigned and full coverage is required (`cluster_state:fail`).
    pub fn is_ok(&self) -> bool {
        !self.down.load(Ordering::Relaxed)
    }

    /// Installs a pushed map after [`Topology::validate`]: refused when its epoch is older
    /// than the one in force (or equal with a different map: an epoch names one map), or when
    /// it does not name this node. On refusal nothing changes.
    pub fn install(&self, t: Topology) -> Result<(), TopologyError> {
        self.apply(t, true)
    }

    fn apply(&self, t: Topology, save: bool) -> Result<(), TopologyError> {
        t.validate()?;
        let myself = self.myself.read().clone();
        let mut map = self.map.write();
        let current = map.as_ref().map_or(0, |m| m.epoch);
        let same = map.as_deref() == Some(&t);
        if t.epoch < current || (t.epoch == current && !same) {
            return Err(TopologyError::StaleEpoch {
                pushed: t.epoch,
                current,
            });
        }
        let Some((master, replica)) = t.find(&myself) else {
            return Err(TopologyError::NotNamed(myself));
        };
        if save {
            if let Some(saver) = self.saver.read().as_ref() {
                saver(&myself, &t).map_err(TopologyError::Save)?;
            }
        }
        let owners = t.owners();
        let mut unassigned = false;
        for (slot, owner) in owners.iter().enumerate() {
            let state = match owner {
                None => {
                    unassigned = true;
                    SlotState::Unassigned
                }
                Some(o) if usize::from(*o) == master && replica.is_none() => SlotState::Mine,
                Some(o) if usize::from(*o) == master => SlotState::Replica,
                Some(_) => SlotState::Other,
            };
            self.slots[slot].store(state as u8, Ordering::Relaxed);
        }
        self.down
            .store(unassigned && self.require_full_coverage, Ordering::Relaxed);
        self.required_policy_version
            .store(t.policy_version, Ordering::Relaxed);
        *map = Some(Arc::new(t));
        self.pushed.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Where a request whose keys all hash to `slot` runs. `write`: the command may write;
    /// `readonly_session`: the client sent `READONLY`.
    pub fn route(&self, slot: u16, write: bool, readonly_session: bool) -> Route {
        if self.down.load(Ordering::Relaxed) {
            return Route::Down("The cluster is down");
        }
        match self.slot_state(slot) {
            SlotState::Mine => Route::Local,
            SlotState::Unassigned => Route::Down("Hash slot not served"),
            SlotState::Replica if readonly_session && !write => Route::Local,
            SlotState::Replica | SlotState::Other => self.owner_of(slot),
        }
    }

    fn owner_of(&self, slot: u16) -> Route {
        let map = self.map.read();
        let owner = map.as_ref().and_then(|t| {
            t.nodes
                .iter()
                .find(|n| n.slots.iter().any(|&[s, e]| (s..=e).contains(&slot)))
        });
        match owner {
            Some(n) if *n.id == *self.myself.read() => Route::Local,
            Some(n) => Route::Moved {
                slot,
                host: n.host.clone(),
                port: n.port,
            },
            None => Route::Down("Hash slot not served"),
        }
    }

    /// The policy version this node has applied.
    pub fn policy_version(&self) -> u64 {
        self.policy_version.load(Ordering::Relaxed)
    }

    /// The policy version the map in force requires.
    pub fn required_policy_version(&self) -> u64 {
        self.required_policy_version.load(Ordering::Relaxed)
    }

    /// Records that the policies of `version` are applied; refused (returning the current
    /// version) when `version` is older than the applied one.
    pub fn advance_policy_version(&self, version: u64) -> Result<(), u64> {
        self.policy_version
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                (version >= v).then_some(version)
            })
            .map(|_| ())
    }

    /// `Some((applied, required))` when this node must not decide: its applied policy
    /// version is older than the map's.
    pub fn stale_policy(&self) -> Option<(u64, u64)> {
        let (have, need) = (self.policy_version(), self.required_policy_version());
        (have < need).then_some((have, need))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Node, Replica};
    use super::*;

    fn id(c: char) -> String {
        std::iter::repeat_n(c, 40).collect()
    }

    fn map(epoch: u64) -> Topology {
        Topology {
            epoch,
            policy_version: 0,
            nodes: vec![
                Node {
                    id: id('a'),
                    host: "127.0.0.1".into(),
                    port: 7001,
                    slots: vec![[0, 8191]],
                    replicas: vec![Replica {
                        id: id('c'),
                        host: "127.0.0.1".into(),
                        port: 7003,
                    }],
                },
                Node {
                    id: id('b'),
                    host: "127.0.0.1".into(),
                    port: 7002,
                    slots: vec![[8192, 16383]],
                    replicas: vec![],
                },
            ],
        }
    }

    #[test]
    fn emulated_mode_serves_every_slot() {
        let c = Cluster::new(true, id('a'), true);
        assert_eq!(c.route(0, true, false), Route::Local);
        assert_eq!(c.route(16383, true, false), Route::Local);
        assert_eq!(c.epoch(), 0);
    }

    #[test]
    fn a_pushed_map_moves_other_slots() {
        let c = Cluster::new(true, id('a'), true);
        c.install(map(1)).expect("fresh map");
        assert_eq!(c.route(100, true, false), Route::Local);
        assert_eq!(
            c.route(9000, false, true),
            Route::Moved {
                slot: 9000,
                host: "127.0.0.1".into(),
                port: 7002
            }
        );
    }

    #[test]
    fn stale_unnamed_and_conflicting_pushes_leave_the_map_alone() {
        let c = Cluster::new(true, id('a'), true);
        c.install(map(5)).expect("fresh map");
        assert_eq!(
            c.install(map(4)),
            Err(TopologyError::StaleEpoch {
                pushed: 4,
                current: 5
            })
        );
        assert_eq!(
            c.install(map(5)),
            Ok(()),
            "the same map again is idempotent"
        );
        let mut other = map(5);
        other.nodes[1].port = 7010;
        assert!(c.install(other).is_err(), "one epoch names one map");
        let stranger = Cluster::new(true, id('e'), true);
        assert_eq!(
            stranger.install(map(6)),
            Err(TopologyError::NotNamed(id('e')))
        );
        assert_eq!(stranger.route(9000, true, false), Route::Local);
        assert_eq!(c.epoch(), 5);
    }

    #[test]
    fn replicas_serve_reads_after_readonly() {
        let c = Cluster::new(true, id('c'), true);
        c.install(map(1)).expect("fresh map");
        assert_eq!(c.route(1, false, true), Route::Local);
        assert!(matches!(
            c.route(1, true, true),
            Route::Moved { port: 7001, .. }
        ));
        assert!(matches!(
            c.route(1, false, false),
            Route::Moved { port: 7001, .. }
        ));
    }

    #[test]
    fn uncovered_slots_are_down() {
        let mut m = map(1);
        m.nodes[1].slots = vec![[8192, 16000]];
        let strict = Cluster::new(true, id('a'), true);
        strict.install(m.clone()).expect("accepted");
        assert_eq!(
            strict.route(1, true, false),
            Route::Down("The cluster is down")
        );
        let lenient = Cluster::new(true, id('a'), false);
        lenient.install(m).expect("accepted");
        assert_eq!(lenient.route(1, true, false), Route::Local);
        assert_eq!(
            lenient.route(16001, true, false),
            Route::Down("Hash slot not served")
        );
    }

    #[test]
    fn policy_versions_only_move_forward() {
        let c = Cluster::new(true, id('a'), true);
        let mut m = map(1);
        m.policy_version = 3;
        c.install(m).expect("accepted");
        assert_eq!(c.stale_policy(), Some((0, 3)));
        c.advance_policy_version(3).expect("newer");
        assert_eq!(c.stale_policy(), None);
        assert_eq!(c.advance_policy_version(2), Err(3));
    }
}

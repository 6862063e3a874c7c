//! `CLIENT PAUSE timeout [WRITE|ALL]`, `CLIENT UNPAUSE` and `CLIENT NO-EVICT`.
//!
//! Redis 6.2+ semantics: while a pause lasts, a client's next command that it applies to is
//! not refused but delayed — the connection stops (its replies so far written) and goes on
//! once the pause ends or is lifted. `ALL` delays every command, `WRITE` the commands that may
//! change data: those flagged `write` (for limitkv that includes every limiter decision, which
//! updates its key's state), the script runners that are not read-only (`EVAL`, `EVALSHA`,
//! `FCALL`), `PUBLISH`/`SPUBLISH`, and an `EXEC` whose queue holds a write; reads keep
//! answering. Replicas and monitors are never paused. A second pause keeps the later end and
//! the stricter mode (Redis's `pauseClients`).
//!
//! The end is an instant of the server clock, so a `ManualClock` drives it in tests. The
//! waiting itself (`server::connection`) re-reads [`Pause::blocks`] on every wake-up: when
//! `CLIENT UNPAUSE` or a new pause notifies, and on a short tick while paused.

use std::sync::atomic::{AtomicU8, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::args::{is, parse_i64};
use super::flags::{READONLY, SKIP_MONITOR, WRITE};
use super::{lookup, lookup_sub, Ctx, Session};
use crate::clock::Nanos;
use crate::error::CommandError;
use crate::protocol::Frame;

/// Longest a paused HTTP request sleeps before it reads the server clock again.
const PAUSE_TICK: std::time::Duration = std::time::Duration::from_millis(50);

/// What a pause delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum PauseMode {
    /// No pause.
    Off = 0,
    /// Commands that may change data.
    Write = 1,
    /// Every command.
    All = 2,
}

/// The server's pause (one per server, `Shared::pause`).
#[derive(Debug, Default)]
pub struct Pause {
    /// The mode as a `PauseMode` (0 = off): the only thing read per command when not paused.
    mode: AtomicU8,
    /// The end (server clock) of the current pause.
    end: Mutex<Nanos>,
    /// Notified when a pause is lifted (or set), so waiting connections re-check.
    changed: Notify,
}

impl Pause {
    /// True while a pause is set (it may have just expired: see [`Pause::mode_at`]).
    #[inline]
    pub fn is_set(&self) -> bool {
        self.mode.load(Ordering::Relaxed) != PauseMode::Off as u8
    }

    /// The mode in force at `now`; an expired pause is lifted (and waiters woken).
    pub fn mode_at(&self, now: Nanos) -> PauseMode {
        if !self.is_set() {
            return PauseMode::Off;
        }
        let end = self.end.lock();
        if now >= *end {
            self.mode.store(PauseMode::Off as u8, Ordering::Relaxed);
            drop(end);
            self.changed.notify_waiters();
            return PauseMode::Off;
        }
        match self.mode.load(Ordering::Relaxed) {
            1 => PauseMode::Write,
            2 => PauseMode::All,
            _ => PauseMode::Off,
        }
    }

    /// Pauses until `end` in `mode`, keeping a later end and a stricter mode already set.
    pub fn pause(&self, mode: PauseMode, end: Nanos, now: Nanos) {
        let current = self.mode_at(now);
        let mut e = self.end.lock();
        if current == PauseMode::Off || end > *e {
            *e = end;
        }
        self.mode.store(current.max(mode) as u8, Ordering::Relaxed);
        drop(e);
        self.changed.notify_waiters();
    }

    /// Lifts the pause and wakes every delayed client.
    pub fn unpause(&self) {
        let _end = self.end.lock();
        self.mode.store(PauseMode::Off as u8, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// The end of the pause in force at `now`, if any.
    pub fn end_at(&self, now: Nanos) -> Option<Nanos> {
        (self.mode_at(now) != PauseMode::Off).then(|| *self.end.lock())
    }

    /// Resolves when the pause changes (lifted, extended or set).
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// Waits while `blocked(now)` holds for the pause in force (re-checked when the pause
    /// changes, and every `PAUSE_TICK` since its end is an instant of `clock`, which tests
    /// move by hand). For the surfaces without a RESP connection (the HTTP routes), whose
    /// requests a pause delays as it delays a client's.
    pub async fn wait_while(
        &self,
        clock: &dyn crate::clock::Clock,
        blocked: impl Fn(&Pause, Nanos) -> bool,
    ) {
        loop {
            let changed = self.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = clock.now();
            if !self.is_set() || !blocked(self, now) {
                return;
            }
            let left = self.end_at(now).map_or(std::time::Duration::ZERO, |end| {
                std::time::Duration::from_nanos(end.saturating_sub(now).as_nanos())
            });
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(left.min(PAUSE_TICK)) => {}
            }
        }
    }

    /// Waits until the pause changes, or at most until its end or `PAUSE_TICK` (whichever
    /// comes first): one round of a caller's own "while blocked" loop.
    pub async fn tick(&self, clock: &dyn crate::clock::Clock) {
        let now = clock.now();
        let left = self.end_at(now).map_or(std::time::Duration::ZERO, |end| {
            std::time::Duration::from_nanos(end.saturating_sub(now).as_nanos())
        });
        tokio::select! {
            _ = self.changed() => {}
            _ = tokio::time::sleep(left.min(PAUSE_TICK)) => {}
        }
    }

    /// Waits while a pause delays a command of the HTTP check API: every one under `ALL`,
    /// one that may write (`write`: a decision, a reservation, a settle) under `WRITE`.
    pub async fn wait_for_http(&self, clock: &dyn crate::clock::Clock, write: bool) {
        self.wait_while(clock, |p, now| match p.mode_at(now) {
            PauseMode::Off => false,
            PauseMode::Write => write,
            PauseMode::All => true,
        })
        .await
    }

    /// Whether `session`'s request `req` must wait at `now`. Unknown commands, wrong arities
    /// and unauthenticated requests are answered at once (Redis refuses them before its pause
    /// check), as are replicas' and monitors' requests.
    pub fn blocks(&self, session: &Session, req: &[Bytes], now: Nanos) -> bool {
        let mode = self.mode_at(now);
        if mode == PauseMode::Off {
            return false;
        }
        let info = &session.info;
        if info.is_monitor() || info.is_replica.load(Ordering::Relaxed) {
            return false;
        }
        let Some(spec) = lookup(&req[0]) else {
            return false;
        };
        if !spec.arity_ok(req.len()) {
            return false;
        }
        let mut checked = spec;
        if !spec.subcommands.is_empty() && req.len() >= 2 {
            match lookup_sub(spec, &req[1]) {
                Some(sub) if sub.arity_ok(req.len()) => checked = sub,
                _ => return false,
            }
        }
        if !session.authenticated && !checked.has(super::flags::NO_AUTH) {
            return false;
        }
        if mode == PauseMode::All {
            return true;
        }
        if may_write(checked) {
            return true;
        }
        // An EXEC whose queue holds a write.
        spec.name == "EXEC"
            && session.multi.as_ref().is_some_and(|queue| {
                queue.iter().any(|q| {
                    lookup(&q[0]).is_some_and(|s| {
                        let sub = (!s.subcommands.is_empty())
                            .then(|| q.get(1).and_then(|n| lookup_sub(s, n)))
                            .flatten();
                        may_write(sub.unwrap_or(s))
                    })
                })
            })
    }
}

/// Redis's `is_may_replicate_command`: `write` or `may_replicate` (the script runners that
/// are not read-only, `PUBLISH`, `SPUBLISH`).
fn may_write(spec: &super::CommandSpec) -> bool {
    spec.has(WRITE)
        || (spec.has(SKIP_MONITOR) && !spec.has(READONLY))
        || matches!(spec.name, "PUBLISH" | "SPUBLISH")
}

/// ```text
/// CLIENT PAUSE timeout [WRITE|ALL]
/// ```
/// `OK`. `timeout` in milliseconds. Errors: `ERR CLIENT PAUSE mode must be WRITE or ALL`,
/// `ERR timeout is not an integer or out of range`, `ERR timeout is negative`.
pub fn client_pause(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let mode = match req.get(3) {
        None => PauseMode::All,
        Some(m) if is(m, "WRITE") => PauseMode::Write,
        Some(m) if is(m, "ALL") => PauseMode::All,
        Some(_) => {
            return Err(CommandError::other(
                "CLIENT PAUSE mode must be WRITE or ALL",
            ))
        }
    };
    let ms = parse_i64(&req[2])
        .ok_or_else(|| CommandError::other("timeout is not an integer or out of range"))?;
    let ms = u64::try_from(ms).map_err(|_| CommandError::other("timeout is negative"))?;
    let now = ctx.now;
    let end_ms = now
        .as_millis()
        .checked_add(ms)
        .filter(|&e| e <= i64::MAX as u64)
        .ok_or_else(|| CommandError::other("timeout is out of range"))?;
    let end = now.saturating_add(Nanos::from_millis(end_ms - now.as_millis()));
    ctx.shared.pause.pause(mode, end, now);
    Ok(Frame::OK)
}

/// ```text
/// CLIENT UNPAUSE
/// ```
/// `OK`; delayed clients go on at once.
pub fn client_unpause(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    ctx.shared.pause.unpause();
    Ok(Frame::OK)
}

/// ```text
/// CLIENT NO-EVICT ON|OFF
/// ```
/// `OK`; recorded and shown as flag `e` in `CLIENT LIST`/`INFO` (limitkv never evicts
/// clients). `ERR syntax error` for another word.
pub fn client_no_evict(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let on = if is(&req[2], "ON") {
        true
    } else if is(&req[2], "OFF") {
        false
    } else {
        return Err(CommandError::Syntax);
    };
    ctx.session.info.no_evict.store(on, Ordering::Relaxed);
    Ok(Frame::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testing::*;

    #[test]
    fn a_pause_ends_at_its_time_and_keeps_the_later_end_and_stricter_mode() {
        let p = Pause::default();
        let t = Nanos::from_secs(100);
        assert_eq!(p.mode_at(t), PauseMode::Off);
        p.pause(PauseMode::Write, Nanos::from_secs(110), t);
        assert_eq!(p.mode_at(t), PauseMode::Write);
        p.pause(PauseMode::All, Nanos::from_secs(105), t);
        assert_eq!(
            p.mode_at(Nanos::from_secs(107)),
            PauseMode::All,
            "stricter mode kept"
        );
        assert_eq!(p.end_at(t), Some(Nanos::from_secs(110)), "later end kept");
        assert_eq!(p.mode_at(Nanos::from_secs(110)), PauseMode::Off);
        assert!(!p.is_set());
        p.pause(PauseMode::Write, Nanos::from_secs(120), t);
        p.unpause();
        assert_eq!(p.mode_at(t), PauseMode::Off);
    }

    #[test]
    fn write_mode_delays_writes_and_decisions_but_not_reads() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["CLIENT", "PAUSE", "1000", "WRITE"]), Frame::OK);
        let blocks = |h: &Harness, words: &[&str]| {
            let req: Vec<Bytes> = words
                .iter()
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect();
            h.shared.pause.blocks(&h.session, &req, h.clock_now())
        };
        for w in [
            &["SET", "a", "1"][..],
            &["CL.THROTTLE", "k", "1", "1", "1"],
            &["EVAL", "return 1", "0"],
            &["PUBLISH", "c", "m"],
        ] {
            assert!(blocks(&h, w), "{w:?} waits");
        }
        for w in [
            &["GET", "a"][..],
            &["PING"],
            &["EVAL_RO", "return 1", "0"],
            &["CLIENT", "UNPAUSE"],
            &["NOPE"],
            &["SET", "a"],
        ] {
            assert!(!blocks(&h, w), "{w:?} answers");
        }
        h.clock.advance(std::time::Duration::from_millis(1000));
        assert!(!blocks(&h, &["SET", "a", "1"]), "the pause ended");
    }

    #[test]
    fn bad_arguments_get_redis_errors() {
        let mut h = Harness::new();
        for (args, e) in [
            (
                &["CLIENT", "PAUSE", "10", "READ"][..],
                "ERR CLIENT PAUSE mode must be WRITE or ALL",
            ),
            (
                &["CLIENT", "PAUSE", "x"],
                "ERR timeout is not an integer or out of range",
            ),
            (&["CLIENT", "PAUSE", "-1"], "ERR timeout is negative"),
            (
                &["CLIENT", "PAUSE", "9223372036854775807"],
                "ERR timeout is out of range",
            ),
            (
                &["CLIENT", "PAUSE"],
                "ERR wrong number of arguments for 'client|pause' command",
            ),
        ] {
            assert_eq!(h.run(args), err(e), "{args:?}");
        }
        assert!(!h.shared.pause.is_set());
    }
}

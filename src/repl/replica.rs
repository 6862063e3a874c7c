//! The replica's side: one task per server ([`supervise`]) that, while this server is a
//! replica, keeps a link to its master: connect, handshake (`PING`, `AUTH`, `REPLCONF`,
//! `PSYNC`), load the snapshot of a full sync, apply the stream, acknowledge every second and
//! at once on `GETACK`, and on any failure log why and retry with backoff (100 ms doubling to
//! 2 s), continuing from its offset when the master still has it.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::snapshot;
use super::stream::{self, Frame};
use super::{Host, LinkState, NO_REPLID};
use crate::persist;

/// Retries start this soon after a failure...
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// ... and double up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often the replica acknowledges its offset without being asked.
const ACK_EVERY: Duration = Duration::from_secs(1);

/// Runs until the server stops: follows role changes, and while this server is a replica keeps
/// its link up.
pub async fn supervise<H: Host>(host: Arc<H>) {
    let mut generation = host.repl().generation.subscribe();
    let mut stop = host.stopping();
    let mut was_replica = false;
    loop {
        generation.borrow_and_update();
        let master = host.repl().ids().master;
        if was_replica && master.is_none() {
            // Promoted: the reservations that came from the old master are tracked (their
            // expiry is reported), as at a start; off the runtime, it locks every shard.
            let h = host.clone();
            tokio::task::spawn_blocking(move || h.engine().track_keyspace_ids());
        }
        was_replica = master.is_some();
        let link = async {
            match master {
                Some((h, p)) => keep_linked(&*host, &h, p).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = link => {}
            r = generation.changed() => if r.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Connects, syncs and streams from `host:port`, retrying with backoff; never returns.
async fn keep_linked<H: Host>(h: &H, master_host: &str, master_port: u16) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let started = Instant::now();
        let err = match link_once(h, master_host, master_port).await {
            Ok(never) => match never {},
            Err(e) => e,
        };
        {
            let mut link = h.repl().link.lock();
            if link.state == LinkState::Connected {
                link.down_since = Instant::now();
            }
            link.state = LinkState::Connect;
            link.transfer = None;
            link.last_error = Some(err.clone());
        }
        tracing::warn!(master = %format!("{master_host}:{master_port}"), "replication: {err}; retrying in {backoff:?}");
        // A link that streamed for a while starts its retries over.
        if started.elapsed() > Duration::from_secs(10) {
            backoff = BACKOFF_MIN;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

enum Never {}

/// A connection to the master with a read buffer.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    timeout: Duration,
}

impl Conn {
    async fn send(&mut self, args: &[&str]) -> Result<(), String> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.stream
            .write_all(out.as_bytes())
            .await
            .map_err(|e| format!("error writing to the master: {e}"))
    }

    async fn fill(&mut self) -> Result<usize, String> {
        // Room for a large read: without it `read_buf` reads 64 bytes at a time once the
        // buffer is full (a 46 MB snapshot took 10 s). Doubling keeps a transfer's copies
        // linear, and never reserves what the master merely declared.
        if self.buf.capacity() - self.buf.len() < 32 * 1024 {
            self.buf.reserve((64 * 1024).max(self.buf.len()));
        }
        match tokio::time::timeout(self.timeout, self.stream.read_buf(&mut self.buf)).await {
            Err(_) => Err("timeout waiting for the master".into()),
            Ok(Err(e)) => Err(format!("error reading from the master: {e}")),
            Ok(Ok(0)) => Err("the master closed the connection".into()),
            Ok(Ok(n)) => Ok(n),
        }
    }

    /// One reply line (without CRLF); newlines sent as keep-alives are skipped.
    async fn line(&mut self) -> Result<String, String> {
        loop {
            while self.buf.first() == Some(&b'\n') {
                self.buf.advance(1);
            }
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(pos + 1);
                let text = String::from_utf8_lossy(&line[..pos]);
                return Ok(text.trim_end_matches('\r').to_owned());
            }
            if self.buf.len() > 64 * 1024 {
                return Err("the master sent a line longer than 64 KiB".into());
            }
            self.fill().await?;
        }
    }

    async fn command(&mut self, args: &[&str]) -> Result<String, String> {
        self.send(args).await?;
        self.line().await
    }
}

async fn link_once<H: Host>(h: &H, master_host: &str, master_port: u16) -> Result<Never, String> {
    let repl = h.repl();
    let engine = h.engine();
    let cfg = engine.config.read().repl.clone();
    let timeout = Duration::from_secs(u64::from(cfg.repl_timeout.max(1)));
    repl.link.lock().state = LinkState::Connecting;
    let stream = tokio::time::timeout(timeout, TcpStream::connect((master_host, master_port)))
        .await
        .map_err(|_| "timeout connecting to the master".to_owned())?
        .map_err(|e| format!("error condition on socket for SYNC: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut c = Conn {
        stream,
        buf: BytesMut::with_capacity(64 * 1024),
        timeout,
    };
    repl.link.lock().state = LinkState::Handshake;
    tracing::info!("MASTER <-> REPLICA sync started with {master_host}:{master_port}");
    let pong = c.command(&["PING"]).await?;
    // Like Redis: an authentication error here is fine, AUTH comes next.
    if pong.starts_with('-')
        && !pong.starts_with("-NOAUTH")
        && !pong.starts_with("-NOPERM")
        && !pong.starts_with("-ERR operation not permitted")
    {
        return Err(format!("error reply to PING from master: '{pong}'"));
    }
    if let Some(pass) = &cfg.masterauth {
        let reply = match &cfg.masteruser {
            Some(user) => c.command(&["AUTH", user, pass]).await?,
            None => c.command(&["AUTH", pass]).await?,
        };
        if reply.starts_with('-') {
            return Err(format!("unable to AUTH to MASTER: {reply}"));
        }
    }
    let port = match cfg.replica_announce_port {
        0 => h.listening_port(),
        p => p,
    }
    .to_string();
    let reply = c.command(&["REPLCONF", "listening-port", &port]).await?;
    if reply.starts_with('-') {
        tracing::info!(
            "(non critical) master does not understand REPLCONF listening-port: {reply}"
        );
    }
    if let Some(ip) = &cfg.replica_announce_ip {
        let reply = c.command(&["REPLCONF", "ip-address", ip]).await?;
        if reply.starts_with('-') {
            tracing::info!(
                "(non critical) master does not understand REPLCONF ip-address: {reply}"
            );
        }
    }
    let reply = c.command(&["REPLCONF", "runid", h.run_id()]).await?;
    if reply.starts_with("-ERR a server cannot replicate itself") {
        return Err(format!(
            "REPLICAOF {master_host}:{master_port} is this server itself: {reply}"
        ));
    }
    // Redis would reply `-ERR Unrecognized REPLCONF option: runid`: not critical.
    let _ = c.command(&["REPLCONF", "capa", "psync2"]).await?;

    let ids = repl.ids();
    let feed = engine.feed.info();
    let (ask_id, ask_offset) = if feed.active {
        (ids.replid.clone(), (feed.offset + 1).to_string())
    } else {
        ("?".to_owned(), "-1".to_owned())
    };
    let reply = c.command(&["PSYNC", &ask_id, &ask_offset]).await?;
    if let Some(rest) = reply.strip_prefix("+FULLRESYNC ") {
        let mut words = rest.split_whitespace();
        let (Some(replid), Some(offset)) = (words.next(), words.next()) else {
            return Err(format!("unexpected reply to PSYNC from master: '{reply}'"));
        };
        let offset: u64 = offset
            .parse()
            .map_err(|_| format!("bad offset in the master's reply: '{reply}'"))?;
        let replid = replid.to_owned();
        full_sync(h, &mut c, &replid, offset).await?;
    } else if let Some(rest) = reply.strip_prefix("+CONTINUE") {
        let new_id = rest.trim();
        let offset = engine.feed.offset();
        if !new_id.is_empty() && new_id != ids.replid {
            // The master changed history (a promotion): ours becomes the previous one.
            repl.set_ids(|ids| {
                ids.replid2 = std::mem::replace(&mut ids.replid, new_id.to_owned());
                ids.second_offset = i64::try_from(offset).unwrap_or(i64::MAX);
            });
        }
        repl.replica_offset.store(offset, Ordering::Release);
        tracing::info!(offset, "Successful partial resynchronization with master.");
    } else if reply.starts_with("-NOMASTERLINK") || reply.starts_with("-LOADING") {
        return Err(format!(
            "master is currently unable to PSYNC but should be in the future: {reply}"
        ));
    } else {
        return Err(format!("unexpected reply to PSYNC from master: '{reply}'"));
    }
    {
        let mut link = repl.link.lock();
        link.state = LinkState::Connected;
        link.last_io = Some(Instant::now());
        link.transfer = None;
        link.last_error = None;
    }
    tracing::info!("MASTER <-> REPLICA sync: streaming from {master_host}:{master_port}");
    stream_loop(h, &mut c).await
}

/// Receives the snapshot (`$len\r\n` + bytes), checks it whole, then swaps it in.
async fn full_sync<H: Host>(h: &H, c: &mut Conn, replid: &str, offset: u64) -> Result<(), String> {
    let repl = h.repl();
    let engine = h.engine();
    repl.link.lock().state = LinkState::Sync;
    let header = c.line().await?;
    let len: usize = header
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("bad snapshot header from the master: '{header}'"))?;
    tracing::info!(
        bytes = len,
        "MASTER <-> REPLICA sync: receiving the snapshot"
    );
    let total = len as u64;
    repl.link.lock().transfer = Some((0, total));
    while c.buf.len() < len {
        match c.fill().await {
            Ok(_) => {
                let mut link = repl.link.lock();
                link.transfer = Some((c.buf.len().min(len) as u64, total));
                link.last_io = Some(Instant::now());
            }
            Err(e) => {
                return Err(format!(
                    "the master went away during the snapshot transfer ({} of {len} bytes): {e}; \
                     nothing was loaded",
                    c.buf.len()
                ))
            }
        }
    }
    // Checked and decoded off the runtime's workers (a 1M-key snapshot is tens of MB): only
    // the swap below holds the shards.
    let bytes = c.buf.split_to(len).freeze();
    let dbs = engine.dbs.len();
    let records = tokio::task::spawn_blocking(move || {
        snapshot::parse(&bytes, dbs).map_err(|e| format!("{e}; nothing was loaded"))
    })
    .await
    .map_err(|e| format!("decoding the snapshot failed: {e}; nothing was loaded"))??;
    // The replica's own AOF restarts from the new contents: everything before is replaced.
    if let Some(w) = engine.aof.get() {
        w.append(&persist::Record::FlushAll);
        for r in &records {
            w.append(r);
        }
    }
    let now = engine.clock.now();
    let keys = snapshot::load(engine, records, now, &mut |r| h.restore_script(r));
    repl.set_ids(|ids| {
        ids.replid = replid.to_owned();
        ids.replid2 = NO_REPLID.to_owned();
        ids.second_offset = -1;
    });
    engine.feed.reset(offset);
    repl.replica_offset.store(offset, Ordering::Release);
    tracing::info!(keys, "MASTER <-> REPLICA sync: Finished with success");
    Ok(())
}

/// Most (record, offset) marks a replica keeps while waiting for its AOF's fsync.
const MAX_FSYNC_MARKS: usize = 4096;

/// What the replica reports as `FACK` (Redis 7.2): the stream offset its own AOF has fsynced.
/// Every applied record is appended to the AOF before the offset moves past it, so an offset
/// is fsynced once the AOF's last sequence number at that moment is.
struct Fsynced {
    /// (the AOF's last sequence number, the stream offset) after each applied batch.
    marks: VecDeque<(persist::Seq, u64)>,
    /// The highest offset known fsynced.
    offset: u64,
}

impl Fsynced {
    fn mark(&mut self, seq: persist::Seq, offset: u64) {
        match self.marks.back_mut() {
            Some(last) if last.0 == seq => last.1 = offset,
            _ => {
                if self.marks.len() >= MAX_FSYNC_MARKS {
                    // Bounded (`appendfsync no` never fsyncs): the oldest offset is then
                    // reported with the next one's fsync, later, never early.
                    self.marks.pop_front();
                }
                self.marks.push_back((seq, offset));
            }
        }
    }

    /// The offset fsynced once the AOF has fsynced up to `synced`.
    fn advance(&mut self, synced: persist::Seq) -> u64 {
        while let Some(&(seq, offset)) = self.marks.front() {
            if seq > synced {
                break;
            }
            self.offset = self.offset.max(offset);
            self.marks.pop_front();
        }
        self.offset
    }
}

/// Applies the stream until the link fails.
async fn stream_loop<H: Host>(h: &H, c: &mut Conn) -> Result<Never, String> {
    let repl = h.repl();
    let engine = h.engine();
    let mut ack = tokio::time::interval(ACK_EVERY);
    ack.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let writer = engine.aof.get();
    let mut waiter = writer.map(|w| w.waiter());
    let mut fsynced = Fsynced {
        marks: VecDeque::new(),
        offset: 0,
    };
    if let Some(w) = writer {
        // What came before the stream (a snapshot just loaded, or the history a partial
        // resync continues) is in the AOF already.
        fsynced.mark(w.last_seq(), engine.feed.offset());
    }
    // An acknowledgement asked for (GETACK) went out before the AOF fsynced everything: send
    // another as soon as it has, so a `WAITAOF` on the master need not wait for the next
    // second's acknowledgement.
    let mut follow_up = false;
    loop {
        // Whatever complete frames are buffered are applied first.
        let mut want_ack = false;
        let mut applied = 0usize;
        loop {
            let (frame, n) = match stream::next_frame(&c.buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(format!("the master's stream is damaged: {e}")),
            };
            let bytes = c.buf.split_to(n);
            match frame {
                Frame::Record(r) => {
                    if let Some(w) = engine.aof.get() {
                        w.append_encoded(&bytes);
                    }
                    super::note_ids(engine, &r);
                    if persist::is_script_record(&r) {
                        h.restore_script(r);
                    } else {
                        persist::apply_with(&engine.dbs, &engine.policies, r, engine.clock.now())
                            .map_err(|e| format!("cannot apply the master's stream: {e}"))?;
                    }
                }
                Frame::Ping => {}
                Frame::GetAck => want_ack = true,
            }
            engine.feed.push_upstream(&bytes);
            applied += n;
        }
        if applied > 0 {
            repl.replica_offset
                .store(engine.feed.offset(), Ordering::Release);
            if let Some(w) = writer {
                fsynced.mark(w.last_seq(), engine.feed.offset());
            }
        }
        if want_ack {
            let fack = writer.map(|w| fsynced.advance(w.synced()));
            send_ack(h, c, fack).await?;
            follow_up = fack.is_some_and(|f| f < engine.feed.offset());
        }
        if c.buf.capacity() - c.buf.len() < 32 * 1024 {
            c.buf.reserve(64 * 1024);
        }
        let last_mark = fsynced.marks.back().map(|m| m.0);
        tokio::select! {
            r = c.stream.read_buf(&mut c.buf) => match r {
                Ok(0) => return Err("connection with master lost".into()),
                Err(e) => return Err(format!("connection with master lost: {e}")),
                Ok(_) => repl.link.lock().last_io = Some(Instant::now()),
            },
            _ = ack.tick() => {
                let quiet = repl.link.lock().last_io.map_or(Duration::ZERO, |t| t.elapsed());
                if quiet > c.timeout {
                    return Err("MASTER timeout: no data nor PING received".into());
                }
                let fack = writer.map(|w| fsynced.advance(w.synced()));
                send_ack(h, c, fack).await?;
            }
            Some(synced) = async {
                match (waiter.as_mut(), last_mark) {
                    (Some(w), Some(seq)) if follow_up => {
                        w.wait_synced(seq).await.ok().map(|()| seq)
                    }
                    _ => std::future::pending().await,
                }
            } => {
                follow_up = false;
                let fack = fsynced.advance(synced);
                send_ack(h, c, Some(fack)).await?;
            }
        }
    }
}

/// `REPLCONF ACK <offset>`, with `FACK <offset fsynced to the AOF>` when this replica has an
/// AOF (as a Redis 7.2 replica sends it).
async fn send_ack<H: Host>(h: &H, c: &mut Conn, fack: Option<u64>) -> Result<(), String> {
    let offset = h.repl().replica_offset.load(Ordering::Acquire).to_string();
    match fack {
        Some(f) => {
            c.send(&["REPLCONF", "ACK", &offset, "FACK", &f.to_string()])
                .await
        }
        None => c.send(&["REPLCONF", "ACK", &offset]).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::Seq;

    #[test]
    fn fack_is_the_last_offset_whose_records_are_fsynced() {
        let mut f = Fsynced {
            marks: VecDeque::new(),
            offset: 0,
        };
        f.mark(Seq(3), 100);
        f.mark(Seq(3), 120); // control frames only: same records, later offset
        f.mark(Seq(5), 200);
        f.mark(Seq(9), 300);
        assert_eq!(f.marks.len(), 3);
        assert_eq!(f.advance(Seq(2)), 0, "nothing fsynced yet");
        assert_eq!(f.advance(Seq(4)), 120);
        assert_eq!(f.advance(Seq(8)), 200, "record 9 is not fsynced");
        assert_eq!(f.advance(Seq(9)), 300);
        assert!(f.marks.is_empty());
        assert_eq!(f.advance(Seq(1)), 300, "never goes back");
        // Bounded: the oldest marks go, and their offsets wait for a later fsync.
        for i in 0..(MAX_FSYNC_MARKS as u64 + 10) {
            f.mark(Seq(100 + i), 1000 + i);
        }
        assert_eq!(f.marks.len(), MAX_FSYNC_MARKS);
        assert_eq!(
            f.advance(Seq(105)),
            300,
            "dropped marks are not reported early"
        );
        assert_eq!(f.advance(Seq(110)), 1010);
    }
}

//! The replication stream's frames: the AOF's record frames (`len`, `crc`, payload; see
//! docs/aof-format.md) plus two control frames that never reach a file, with op bytes the
//! record format reserves for the stream:
//!
//! | op | frame | what the replica does |
//! |---|---|---|
//! | `0x40` | `Ping` | nothing (keeps the link alive; counts in the offset like Redis's PING) |
//! | `0x41` | `GetAck` | answers `REPLCONF ACK <offset>` at once (Redis's `REPLCONF GETACK *`) |
//!
//! Pure functions: no I/O.

use crate::persist::record::{self, CorruptReason, Record, FRAME_OVERHEAD, MAX_PAYLOAD};

/// Op byte of the stream's keep-alive frame.
pub const OP_PING: u8 = 0x40;
/// Op byte of the stream's acknowledgement request.
pub const OP_GETACK: u8 = 0x41;

/// One frame of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// An effect record, as the AOF holds it.
    Record(Record),
    /// Keep-alive.
    Ping,
    /// Acknowledge now.
    GetAck,
}

/// Appends a control frame (`op` is [`OP_PING`] or [`OP_GETACK`]).
pub fn encode_control(op: u8, out: &mut Vec<u8>) {
    let len: u32 = 1;
    let len_bytes = len.to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), &[op]);
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&crc.to_le_bytes());
    out.push(op);
}

/// The length of the first complete frame of `buf` and its decoding, or `None` if `buf` holds
/// no complete frame yet. A bad length, checksum or payload is an error: the stream is broken
/// and the link must be dropped (the replica then resyncs).
pub fn next_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, CorruptReason> {
    if buf.len() < FRAME_OVERHEAD {
        return Ok(None);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len == 0 || len > MAX_PAYLOAD {
        return record::decode_frame(buf).map(|r| r.map(|(r, n)| (Frame::Record(r), n)));
    }
    let total = FRAME_OVERHEAD + len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    let payload = &buf[FRAME_OVERHEAD..total];
    if len == 1 && (payload[0] == OP_PING || payload[0] == OP_GETACK) {
        let stored = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let computed = crc32c::crc32c_append(crc32c::crc32c(&buf[..4]), payload);
        if stored != computed {
            return Err(CorruptReason::ChecksumMismatch { stored, computed });
        }
        let f = if payload[0] == OP_PING {
            Frame::Ping
        } else {
            Frame::GetAck
        };
        return Ok(Some((f, total)));
    }
    match record::decode_frame(&buf[..total])? {
        Some((r, n)) => Ok(Some((Frame::Record(r), n))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_record_frames_split_at_any_boundary() {
        let mut bytes = Vec::new();
        encode_control(OP_PING, &mut bytes);
        record::encode(&Record::FlushAll, &mut bytes);
        encode_control(OP_GETACK, &mut bytes);
        // Every prefix either yields whole frames or asks for more; never an error.
        for cut in 0..bytes.len() {
            let mut at = 0;
            while let Some((_, n)) = next_frame(&bytes[at..cut]).expect("a prefix is not corrupt") {
                at += n;
            }
        }
        let mut got = Vec::new();
        let mut at = 0;
        while let Some((f, n)) = next_frame(&bytes[at..]).unwrap() {
            got.push(f);
            at += n;
        }
        assert_eq!(
            got,
            vec![Frame::Ping, Frame::Record(Record::FlushAll), Frame::GetAck]
        );
    }

    #[test]
    fn a_damaged_frame_is_an_error() {
        let mut bytes = Vec::new();
        encode_control(OP_PING, &mut bytes);
        bytes[8] = OP_GETACK;
        assert!(next_frame(&bytes).is_err());
        let mut bytes = Vec::new();
        record::encode(&Record::FlushDb { db: 3 }, &mut bytes);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        assert!(next_frame(&bytes).is_err());
    }
}

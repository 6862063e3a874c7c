//! Shared helpers of the fuzz targets: an allocator that remembers the largest single
//! allocation, so a target can assert that a hostile length never reserves its declared size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, recording the largest request since [`reset_peak`].
pub struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the only addition is a relaxed
// atomic max on the requested size.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Tracking = Tracking;

/// Forgets the largest allocation seen so far.
pub fn reset_peak() {
    LARGEST.store(0, Ordering::Relaxed);
}

/// The largest single allocation (bytes) since [`reset_peak`].
pub fn peak() -> usize {
    LARGEST.load(Ordering::Relaxed)
}

/// Panics if any single allocation since [`reset_peak`] exceeded `limit` bytes.
pub fn assert_peak_at_most(limit: usize, what: &str) {
    let p = peak();
    assert!(
        p <= limit,
        "{what}: allocated {p} bytes at once, more than the {limit} the input justifies"
    );
}

/// Parses one RESP2/RESP3 reply at the start of `buf`; returns its length, or `None` if the
/// bytes are not exactly one well-formed value (a line holding a stray CR or LF, a length
/// that disagrees with its payload, an unknown type byte).
pub fn reply_len(buf: &[u8]) -> Option<usize> {
    let line_end = |from: usize| -> Option<usize> {
        let nl = from + buf.get(from..)?.iter().position(|&c| c == b'\n')?;
        // A line is text then CRLF: no other CR before it.
        (nl > from && buf[nl - 1] == b'\r' && !buf[from..nl - 1].contains(&b'\r')).then_some(nl - 1)
    };
    let tag = *buf.first()?;
    let cr = line_end(1)?;
    let text = std::str::from_utf8(&buf[1..cr]).ok()?;
    let after = cr + 2;
    let count = || text.parse::<i64>().ok();
    match tag {
        b'+' | b'-' | b',' | b'(' => Some(after),
        b':' => count().map(|_| after),
        b'_' => text.is_empty().then_some(after),
        b'#' => matches!(text, "t" | "f").then_some(after),
        b'$' | b'=' => {
            let n = count()?;
            if n == -1 && tag == b'$' {
                return Some(after);
            }
            let n = usize::try_from(n).ok()?;
            let end = after.checked_add(n)?;
            (buf.get(end..end + 2)? == b"\r\n").then_some(end + 2)
        }
        b'*' | b'~' | b'>' | b'%' => {
            let n = count()?;
            if n == -1 && tag == b'*' {
                return Some(after);
            }
            let n = usize::try_from(n).ok()?;
            let items = if tag == b'%' { n.checked_mul(2)? } else { n };
            let mut at = after;
            for _ in 0..items {
                at += reply_len(&buf[at..])?;
            }
            Some(at)
        }
        _ => None,
    }
}

/// Asserts that `wire` is exactly `n` well-formed replies, one after the other.
pub fn assert_replies(wire: &[u8], n: usize, what: &dyn std::fmt::Debug) {
    let mut at = 0;
    for i in 0..n {
        match reply_len(&wire[at..]) {
            Some(len) => at += len,
            None => panic!(
                "{what:?}: reply {i} of {n} is not well-formed RESP: {:?}",
                String::from_utf8_lossy(&wire[at..])
            ),
        }
    }
    assert_eq!(
        at,
        wire.len(),
        "{what:?}: bytes after {n} replies: {:?}",
        String::from_utf8_lossy(&wire[at..])
    );
}

/// How many top-level RESP values `frame` writes. A [`Frame::Seq`] writes each of its frames
/// (`SUBSCRIBE a b` answers twice), and inside an aggregate (an `EXEC` reply) they are spliced
/// in as Redis writes them, so the aggregate's header counts one element where several follow:
/// the extra values spill out after it.
pub fn wire_values(frame: &limitkv::protocol::Frame) -> usize {
    use limitkv::protocol::Frame;
    let spilled = |items: &mut dyn Iterator<Item = &Frame>| -> usize {
        1 + items
            .map(|f| wire_values(f).saturating_sub(1))
            .sum::<usize>()
    };
    match frame {
        Frame::Seq(v) => v.iter().map(wire_values).sum(),
        Frame::Array(v) | Frame::Set(v) | Frame::Push(v) => spilled(&mut v.iter()),
        Frame::Map(m) => spilled(&mut m.iter().flat_map(|(k, v)| [k, v])),
        _ => 1,
    }
}

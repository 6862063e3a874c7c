//! Inline command splitting (`split_args`, Redis's `sdssplitargs` rules) on arbitrary lines.
//!
//! Invariants: it never panics; a NUL byte ends the line; an argument is never longer than the
//! line; quoting round-trips (each argument written back as a double-quoted string with
//! `\xHH` escapes, or single-quoted when it can be, splits back to the same arguments); a line
//! without quotes or backslashes splits exactly on blanks; and the decoder's inline path gives
//! the same arguments as `split_args` on the line.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use limitkv::protocol::decode::split_args;
use limitkv::protocol::{decode_request, DecodeLimits};

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Writes `arg` as `sdssplitargs` reads it back: double quotes, with every byte that is not a
/// printable ASCII character (and `"`, `\`) escaped.
fn double_quoted(arg: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in arg {
        match c {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', c]),
            0x20..=0x7e => out.push(c),
            _ => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

/// Writes `arg` single-quoted, when it can be: no NUL byte (it would end the line), and no
/// backslash before a quote or at the end (single quotes only understand `\'`).
fn single_quoted(arg: &[u8], out: &mut Vec<u8>) -> bool {
    if arg.contains(&0) || arg.ends_with(b"\\") || arg.windows(2).any(|w| w == b"\\'") {
        return false;
    }
    out.push(b'\'');
    for &c in arg {
        if c == b'\'' {
            out.extend_from_slice(b"\\'");
        } else {
            out.push(c);
        }
    }
    out.push(b'\'');
    true
}

fn check_round_trip(args: &[Bytes], single: bool) {
    let mut line = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            line.push(b' ');
        }
        if !(single && single_quoted(a, &mut line)) {
            double_quoted(a, &mut line);
        }
    }
    let back = split_args(&line).unwrap_or_else(|| {
        panic!(
            "quoted line {:?} does not split",
            String::from_utf8_lossy(&line)
        )
    });
    assert_eq!(back, args, "quoting does not round-trip (single: {single})");
}

fuzz_target!(|data: &[u8]| {
    let Some(args) = split_args(data) else {
        // Unbalanced quotes: the line must hold a quote after its first NUL was cut off.
        let line = data.split(|&c| c == 0).next().unwrap_or(&[]);
        assert!(
            line.contains(&b'"') || line.contains(&b'\''),
            "unbalanced quotes without a quote"
        );
        return;
    };
    let line = data.split(|&c| c == 0).next().unwrap_or(&[]);
    for a in &args {
        assert!(a.len() <= line.len(), "an argument longer than its line");
    }
    if !line.iter().any(|&c| matches!(c, b'"' | b'\'' | b'\\')) {
        let plain: Vec<&[u8]> = line
            .split(|&c| is_space(c))
            .filter(|w| !w.is_empty())
            .collect();
        assert_eq!(args, plain, "a line without quotes splits on blanks");
    }
    check_round_trip(&args, false);
    check_round_trip(&args, true);

    // The decoder's inline path: the same line, ended by CRLF, gives the same arguments (when
    // it is not a multibulk header, holds no newline of its own, and does not start like a TLS
    // ClientHello, `16 03`, which the decoder refuses as a TLS handshake on a plain port).
    if !data.is_empty()
        && data[0] != b'*'
        && !data.starts_with(&[0x16, 0x03])
        && !data.contains(&b'\n')
        && data.len() < 60_000
    {
        let mut wire = BytesMut::from(data);
        wire.extend_from_slice(b"\r\n");
        let got = decode_request(&mut wire, &DecodeLimits::DEFAULT).expect("a balanced line");
        let want = split_args(data.strip_suffix(b"\r").unwrap_or(data)).expect("balanced");
        match got {
            Some(req) => assert_eq!(req, want, "decoder and split_args disagree"),
            None => assert!(want.is_empty(), "a non-empty line was skipped"),
        }
        assert!(wire.is_empty(), "the line was not consumed");
    }
});

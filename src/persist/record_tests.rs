//! Tests of `record.rs`.

use super::*;
use proptest::prelude::*;

fn nanos() -> impl Strategy<Value = Nanos> {
    any::<u64>().prop_map(Nanos)
}

fn period() -> impl Strategy<Value = Period> {
    (nanos(), nanos()).prop_map(|(start, end)| Period { start, end })
}

fn cost() -> impl Strategy<Value = CostState> {
    prop_oneof![
        (period(), any::<u64>()).prop_map(|(period, spent)| CostState::Calendar { period, spent }),
        (nanos(), any::<u64>(), any::<u64>()).prop_map(|(start, prev, curr)| CostState::Rolling {
            start,
            prev,
            curr
        }),
    ]
}

fn lease() -> impl Strategy<Value = LeaseState> {
    proptest::collection::vec((any::<u64>(), nanos()), 0..8).prop_map(|v| LeaseState {
        leases: v
            .into_iter()
            .map(|(id, expires_at)| Lease {
                id: LeaseId(id),
                expires_at,
            })
            .collect(),
    })
}

fn breaker() -> impl Strategy<Value = BreakerState> {
    let pair = || (any::<u64>(), any::<u64>());
    prop_oneof![
        (nanos(), pair(), pair()).prop_map(|(start, failures, calls)| {
            BreakerState::Closed {
                start,
                failures,
                calls,
            }
        }),
        nanos().prop_map(|until| BreakerState::Open { until }),
        (nanos(), any::<u64>(), any::<u64>()).prop_map(|(since, issued, successes)| {
            BreakerState::HalfOpen {
                since,
                issued,
                successes,
            }
        }),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|v| Value::str(v.into())),
        any::<i64>().prop_map(Value::Int),
        nanos().prop_map(Value::Gcra),
        (nanos(), 1u64..u64::MAX).prop_map(|(tat, e)| Value::gcra(GcraState {
            tat,
            emission: Nanos(e)
        })),
        (nanos(), any::<u64>(), any::<u64>()).prop_map(|(start, prev, curr)| Value::Window(
            Box::new(WindowState { start, prev, curr })
        )),
        (period(), any::<u64>(), any::<u64>()).prop_map(|(period, used, carry)| {
            Value::Quota(Box::new(QuotaState {
                period,
                used,
                carry,
            }))
        }),
        cost().prop_map(|s| Value::Cost(Box::new(s))),
        lease().prop_map(|s| Value::Lease(Box::new(s))),
        breaker().prop_map(|s| Value::Breaker(Box::new(s))),
        collection_value(),
        reservation(),
    ]
}

fn reservation() -> impl Strategy<Value = Value> {
    (
        any::<u64>(),
        "[a-z]{1,8}",
        element(),
        proptest::option::of("[ -~]{1,12}"),
        (
            any::<u64>(),
            any::<i64>(),
            proptest::option::of(any::<u64>()),
            nanos(),
        ),
        proptest::collection::vec((element(), any::<i64>()), 0..5),
    )
        .prop_map(
            |(id, policy, identity, scope, (tokens, cost, lease, expires_at), charges)| {
                Value::Reservation(Box::new(Reservation {
                    id,
                    policy,
                    identity,
                    scope,
                    tokens,
                    cost: Amount(cost),
                    lease: lease.map(LeaseId),
                    expires_at,
                    charges: charges
                        .into_iter()
                        .map(|(key, units)| Charge { key, units })
                        .collect(),
                }))
            },
        )
}

fn element() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..6).prop_map(Bytes::from)
}

fn collection_value() -> impl Strategy<Value = Value> {
    let score = any::<f64>().prop_filter("scores are never NaN", |s| !s.is_nan());
    prop_oneof![
        proptest::collection::vec_deque(element(), 1..6).prop_map(|l| Value::List(Box::new(l))),
        proptest::collection::vec((element(), element()), 1..6)
            .prop_map(|v| Value::Hash(Box::new(v.into_iter().collect()))),
        proptest::collection::vec(element(), 1..6)
            .prop_map(|v| Value::Set(Box::new(v.into_iter().collect()))),
        proptest::collection::vec((element(), score), 1..6).prop_map(|v| {
            let mut z = ZSet::new();
            for (m, s) in v {
                z.insert(m, s);
            }
            Value::ZSet(Box::new(z))
        }),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    let key = proptest::collection::vec(any::<u8>(), 0..32).prop_map(Bytes::from);
    prop_oneof![
        (
            0u32..16,
            key.clone(),
            value(),
            proptest::option::of(any::<u64>())
        )
            .prop_map(|(db, key, value, exp)| Record::Put {
                db,
                key,
                value,
                expires_at: exp.map(Nanos),
            }),
        (0u32..16, key).prop_map(|(db, key)| Record::Del { db, key }),
        (0u32..16).prop_map(|db| Record::FlushDb { db }),
        Just(Record::FlushAll),
        (element(), proptest::collection::vec(element(), 0..6))
            .prop_map(|(name, words)| Record::PolicySet { name, words }),
        element().prop_map(|name| Record::PolicyDel { name }),
        (element(), proptest::collection::vec(element(), 0..6))
            .prop_map(|(identity, words)| Record::OverrideSet { identity, words }),
        element().prop_map(|identity| Record::OverrideDel { identity }),
        (element(), proptest::collection::vec(element(), 0..4))
            .prop_map(|(identity, words)| Record::Suspend { identity, words }),
        (element(), element())
            .prop_map(|(identity, policy)| Record::Unsuspend { identity, policy }),
        (any::<bool>(), any::<bool>(), element()).prop_map(|(deny, add, entry)| Record::Access {
            deny,
            add,
            entry
        }),
        element().prop_map(|body| Record::Script { body }),
        element().prop_map(|code| Record::FunctionLibrary { code }),
        element().prop_map(|name| Record::FunctionDelete { name }),
        Just(Record::ScriptsFlush {
            target: ScriptsFlushTarget::Scripts
        }),
        Just(Record::ScriptsFlush {
            target: ScriptsFlushTarget::Functions
        }),
    ]
}

proptest! {
    #[test]
    fn borrowed_put_and_del_encode_the_same_bytes(r in record()) {
        let mut borrowed = Vec::new();
        match &r {
            Record::Put { db, key, value, expires_at } => {
                encode_put(*db, key, value, *expires_at, &mut borrowed);
            }
            Record::Del { db, key } => encode_del(*db, key, &mut borrowed),
            _ => return Ok(()),
        }
        prop_assert_eq!(borrowed, encode_to_vec(&r));
    }

    #[test]
    fn every_record_roundtrips(recs in proptest::collection::vec(record(), 0..16)) {
        let mut buf = Vec::new();
        for r in &recs {
            encode(r, &mut buf);
        }
        let mut rest = &buf[..];
        let mut got = Vec::new();
        while let Some((r, n)) = decode_frame(rest).unwrap() {
            got.push(r);
            rest = &rest[n..];
        }
        prop_assert_eq!(got, recs);
    }

    #[test]
    fn every_prefix_of_a_frame_is_incomplete(r in record()) {
        let buf = encode_to_vec(&r);
        for cut in 1..buf.len() {
            let is_incomplete = matches!(
                decode_frame(&buf[..cut]),
                Err(CorruptReason::Incomplete { .. })
            );
            prop_assert!(is_incomplete, "cut {}", cut);
        }
    }

    #[test]
    fn every_flipped_bit_is_caught(r in record(), seed in any::<usize>()) {
        let buf = encode_to_vec(&r);
        let i = seed % buf.len();
        for bit in 0..8 {
            let mut b = buf.clone();
            b[i] ^= 1 << bit;
            prop_assert!(decode_frame(&b).is_err(), "byte {} bit {}", i, bit);
        }
    }
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut v = len.to_le_bytes().to_vec();
    v.extend_from_slice(&frame_crc(&len.to_le_bytes(), payload).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

#[test]
fn gcra_put_layout_is_byte_exact() {
    let r = Record::Put {
        db: 0,
        key: Bytes::from_static(b"k"),
        value: Value::Gcra(Nanos(0x0102)),
        expires_at: Some(Nanos(7)),
    };
    let mut p = Vec::new();
    encode_payload(&r, &mut p);
    assert_eq!(
        p,
        [
            &[1u8, 0, 0, 0, 0, 1, 0, 0, 0, b'k', 3, 1][..],
            &[2, 1, 0, 0, 0, 0, 0, 0],
            &[1, 7, 0, 0, 0, 0, 0, 0, 0]
        ]
        .concat()
    );
    assert_eq!(header(), *b"LKVAOF\x01\x00");
}

/// The payload bytes of the value alone (`Put` of key "" without expiry, op/key/expiry
/// stripped), and a check that they decode back to `v`.
fn value_bytes(v: Value) -> Vec<u8> {
    let r = Record::Put {
        db: 0,
        key: Bytes::new(),
        value: v,
        expires_at: None,
    };
    let mut p = Vec::new();
    encode_payload(&r, &mut p);
    assert_eq!(decode_payload(&p), Ok(r));
    // op, database (u32), key length (u32 = 0) ... expiry flag 0.
    assert_eq!(
        (&p[..9], p[p.len() - 1]),
        (&[1u8, 0, 0, 0, 0, 0, 0, 0, 0][..], 0)
    );
    p[9..p.len() - 1].to_vec()
}

/// `n` as 8 little-endian bytes, for the expected layouts.
fn le(n: u64) -> [u8; 8] {
    n.to_le_bytes()
}

const A: u64 = 0x0807_0605_0403_0201;
const B: u64 = 0x1817_1615_1413_1211;
const C: u64 = 0x2827_2625_2423_2221;
const D: u64 = 0x3837_3635_3433_3231;
const E: u64 = 0x4847_4645_4443_4241;

#[test]
fn window_layout_is_byte_exact() {
    let v = Value::Window(Box::new(WindowState {
        start: Nanos(A),
        prev: B,
        curr: C,
    }));
    assert_eq!(
        value_bytes(v),
        [&[4u8, 1][..], &le(A), &le(B), &le(C)].concat()
    );
}

#[test]
fn quota_layout_is_byte_exact() {
    let v = Value::Quota(Box::new(QuotaState {
        period: Period {
            start: Nanos(A),
            end: Nanos(B),
        },
        used: C,
        carry: D,
    }));
    assert_eq!(
        value_bytes(v),
        [&[5u8, 1][..], &le(A), &le(B), &le(C), &le(D)].concat()
    );
}

#[test]
fn cost_layout_is_byte_exact() {
    let calendar = Value::Cost(Box::new(CostState::Calendar {
        period: Period {
            start: Nanos(A),
            end: Nanos(B),
        },
        spent: C,
    }));
    assert_eq!(
        value_bytes(calendar),
        [&[6u8, 1, 0][..], &le(A), &le(B), &le(C)].concat()
    );
    let rolling = Value::Cost(Box::new(CostState::Rolling {
        start: Nanos(A),
        prev: B,
        curr: C,
    }));
    assert_eq!(
        value_bytes(rolling),
        [&[6u8, 1, 1][..], &le(A), &le(B), &le(C)].concat()
    );
}

#[test]
fn lease_layout_is_byte_exact() {
    let two = Value::Lease(Box::new(LeaseState {
        leases: vec![
            Lease {
                id: LeaseId(A),
                expires_at: Nanos(B),
            },
            Lease {
                id: LeaseId(C),
                expires_at: Nanos(D),
            },
        ],
    }));
    assert_eq!(
        value_bytes(two),
        [&[7u8, 1, 2, 0, 0, 0][..], &le(A), &le(B), &le(C), &le(D)].concat()
    );
    assert_eq!(
        value_bytes(Value::Lease(Box::default())),
        [7u8, 1, 0, 0, 0, 0]
    );
}

#[test]
fn breaker_layout_is_byte_exact() {
    let closed = Value::Breaker(Box::new(BreakerState::Closed {
        start: Nanos(A),
        failures: (B, C),
        calls: (D, E),
    }));
    assert_eq!(
        value_bytes(closed),
        [&[8u8, 1, 0][..], &le(A), &le(B), &le(C), &le(D), &le(E)].concat()
    );
    let open = Value::Breaker(Box::new(BreakerState::Open { until: Nanos(A) }));
    assert_eq!(value_bytes(open), [&[8u8, 1, 1][..], &le(A)].concat());
    // The example in docs/aof-format.md.
    assert_eq!(
        value_bytes(Value::Breaker(Box::new(BreakerState::Open {
            until: Nanos(0x0102)
        }))),
        [8, 1, 1, 2, 1, 0, 0, 0, 0, 0, 0]
    );
    let half_open = Value::Breaker(Box::new(BreakerState::HalfOpen {
        since: Nanos(A),
        issued: B,
        successes: C,
    }));
    assert_eq!(
        value_bytes(half_open),
        [&[8u8, 1, 2][..], &le(A), &le(B), &le(C)].concat()
    );
}

#[test]
fn collection_layouts_are_byte_exact() {
    let list = Value::List(Box::new(
        [&b"ab"[..], b""].map(Bytes::copy_from_slice).into(),
    ));
    assert_eq!(
        value_bytes(list),
        [9u8, 1, 2, 0, 0, 0, 2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0]
    );
    let mut h = HashValue::default();
    h.insert(Bytes::from_static(b"f"), Bytes::from_static(b"v"));
    assert_eq!(
        value_bytes(Value::Hash(Box::new(h))),
        [10u8, 1, 1, 0, 0, 0, 1, 0, 0, 0, b'f', 1, 0, 0, 0, b'v']
    );
    let mut s = SetValue::default();
    s.insert(Bytes::from_static(b"m"));
    assert_eq!(
        value_bytes(Value::Set(Box::new(s))),
        [11u8, 1, 1, 0, 0, 0, 1, 0, 0, 0, b'm']
    );
    // The example in docs/aof-format.md: members in ascending score order.
    let mut z = ZSet::new();
    z.insert(Bytes::from_static(b"b"), 2.0);
    z.insert(Bytes::from_static(b"a"), 1.5);
    assert_eq!(
        value_bytes(Value::ZSet(Box::new(z))),
        [
            &[12u8, 1, 2, 0, 0, 0][..],
            &1.5f64.to_bits().to_le_bytes(),
            &[1, 0, 0, 0, b'a'],
            &2.0f64.to_bits().to_le_bytes(),
            &[1, 0, 0, 0, b'b'],
        ]
        .concat()
    );
}

#[test]
fn corrupt_collections_are_refused_before_allocating() {
    let cases: [(&[u8], &str); 11] = [
        (&[9, 1, 0xff, 0xff, 0xff, 0xff], "list length"),
        (&[9, 1, 0, 0, 0, 0], "list length"),
        (&[9, 1, 2, 0, 0, 0, 0, 0, 0, 0], "list length"),
        (&[10, 1, 1, 0, 0, 0, 0, 0, 0, 0], "hash length"),
        (
            &[
                10, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
            "duplicate hash field",
        ),
        (&[11, 1, 0x00, 0x00, 0x01, 0x00], "set size"),
        (
            &[11, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            "duplicate set member",
        ),
        (&[12, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "zset size"),
        (
            &[12, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f, 0, 0, 0, 0],
            "zset score",
        ),
        (
            &[
                12, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 0,
            ],
            "duplicate zset member",
        ),
        (&[9, 1, 1, 0, 0, 0, 5, 0, 0, 0, b'x'], "list element"),
    ];
    for (value, why) in cases {
        assert_eq!(
            decode_payload(&put_with_value(value)),
            Err(CorruptReason::Malformed(why)),
            "{why}"
        );
    }
    for t in 9u8..=12 {
        assert_eq!(
            decode_payload(&put_with_value(&[t, 2, 1, 0, 0, 0, 0, 0, 0, 0])),
            Err(CorruptReason::UnknownStateVersion { tag: t, version: 2 })
        );
    }
}

/// A `Put` payload of key "" with `value` bytes and no expiry.
/// A `Put` payload in database 0 with the empty key, `value`'s bytes and no expiry.
fn put_with_value(value: &[u8]) -> Vec<u8> {
    [&[1u8, 0, 0, 0, 0, 0, 0, 0, 0][..], value, &[0]].concat()
}

#[test]
fn unknown_state_versions_and_kinds_are_named() {
    for t in [3u8, 4, 5, 6, 7, 8] {
        for version in [0u8, 3, 0xff] {
            let p = put_with_value(&[t, version, 0, 0, 0, 0, 0, 0, 0, 0]);
            assert_eq!(
                decode_payload(&p),
                Err(CorruptReason::UnknownStateVersion { tag: t, version })
            );
        }
    }
    let cost = put_with_value(&[&[6u8, 1, 2][..], &[0; 24]].concat());
    assert_eq!(
        decode_payload(&cost),
        Err(CorruptReason::Malformed("cost state kind"))
    );
    let breaker = put_with_value(&[&[8u8, 1, 3][..], &[0; 40]].concat());
    assert_eq!(
        decode_payload(&breaker),
        Err(CorruptReason::Malformed("breaker state kind"))
    );
    assert_eq!(
        decode_payload(&put_with_value(&[0x7f])),
        Err(CorruptReason::UnknownValueTag(0x7f))
    );
}

#[test]
fn a_corrupt_lease_count_is_refused_before_allocating() {
    // Huge counts (including u32::MAX) and counts just past the bytes present.
    for count in [u32::MAX, MAX_DECODED_LEASES + 1, 2, 3] {
        let mut v = vec![7u8, 1];
        v.extend_from_slice(&count.to_le_bytes());
        v.extend_from_slice(&[0; 16]);
        assert_eq!(
            decode_payload(&put_with_value(&v)),
            Err(CorruptReason::Malformed("lease count")),
            "count {count}"
        );
    }
    // One lease present, one declared: decodes (the expiry flag is the last byte).
    let mut v = vec![7u8, 1, 1, 0, 0, 0];
    v.extend_from_slice(&[0; 16]);
    assert!(decode_payload(&put_with_value(&v)).is_ok());
}

#[test]
fn a_lease_count_at_the_cap_decodes() {
    let leases = (0..MAX_DECODED_LEASES as u64)
        .map(|i| Lease {
            id: LeaseId(i),
            expires_at: Nanos(i),
        })
        .collect();
    let bytes = value_bytes(Value::Lease(Box::new(LeaseState { leases })));
    assert_eq!(bytes.len(), 6 + 16 * MAX_DECODED_LEASES as usize);
}

proptest! {
    /// Arbitrary bytes after a value tag never panic the decoder: they decode or are
    /// refused (the checksum is bypassed by calling `decode_payload` directly).
    #[test]
    fn arbitrary_value_bytes_never_panic(
        t in 1u8..=13,
        version in prop_oneof![Just(1u8), any::<u8>()],
        kind in 0u8..4,
        rest in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        let _ = decode_payload(&put_with_value(&[&[t, version, kind][..], &rest].concat()));
    }
}

#[test]
fn unknown_op_tag_and_state_version_are_named() {
    let cases: [(&[u8], CorruptReason); 5] = [
        (&[0x42], CorruptReason::UnknownOp(0x42)),
        (
            &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f],
            CorruptReason::UnknownValueTag(0x7f),
        ),
        (
            &[1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3],
            CorruptReason::UnknownStateVersion { tag: 3, version: 3 },
        ),
        (&[3, 0], CorruptReason::Malformed("trailing bytes")),
        (&[], CorruptReason::Malformed("op")),
    ];
    for (payload, want) in cases {
        assert_eq!(decode_frame(&framed(payload)), Err(want.clone()), "{want}");
    }
}

#[test]
fn script_record_layouts_are_byte_exact() {
    let payload = |r: &Record| {
        let mut v = Vec::new();
        encode_payload(r, &mut v);
        v
    };
    assert_eq!(
        payload(&Record::Script {
            body: Bytes::from_static(b"return 1")
        }),
        b"\x05\x08\x00\x00\x00return 1".to_vec()
    );
    assert_eq!(
        payload(&Record::FunctionLibrary {
            code: Bytes::from_static(b"x")
        }),
        vec![6, 1, 0, 0, 0, b'x']
    );
    assert_eq!(
        payload(&Record::FunctionDelete {
            name: Bytes::from_static(b"lib")
        }),
        vec![7, 3, 0, 0, 0, b'l', b'i', b'b']
    );
    assert_eq!(
        payload(&Record::ScriptsFlush {
            target: ScriptsFlushTarget::Scripts
        }),
        vec![8, 0]
    );
    assert_eq!(
        payload(&Record::ScriptsFlush {
            target: ScriptsFlushTarget::Functions
        }),
        vec![8, 1]
    );
}

#[test]
fn zero_length_frame_of_zeros_fails_the_checksum() {
    assert!(matches!(
        decode_frame(&[0; 8]),
        Err(CorruptReason::ChecksumMismatch { .. })
    ));
}

#[test]
fn header_checks() {
    assert_eq!(check_header(&header()), Ok(1));
    assert_eq!(
        check_header(b"LKV"),
        Err(CorruptReason::Incomplete {
            needed: 8,
            available: 3
        })
    );
    assert_eq!(check_header(b"LKX"), Err(CorruptReason::BadMagic));
    assert_eq!(
        check_header(b"LKVAOF\x00\x00"),
        Err(CorruptReason::UnsupportedVersion(0))
    );
}

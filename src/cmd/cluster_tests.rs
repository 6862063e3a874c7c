//! In-process tests of cluster mode: replies in Redis 7.0's formats, redirections, the pushed
//! topology and cluster-wide policy versions.

use crate::cmd::testing::*;
use crate::config::Config;
use crate::protocol::Frame;

fn node() -> Harness {
    Harness::with_config(Config {
        cluster_enabled: true,
        ..Config::default()
    })
}

fn myid(h: &mut Harness) -> String {
    match h.run(&["CLUSTER", "MYID"]) {
        Frame::Bulk(b) => String::from_utf8(b.to_vec()).expect("hex"),
        other => panic!("MYID: {other:?}"),
    }
}

const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "cccccccccccccccccccccccccccccccccccccccc";

/// A three-master map: this node 0-5460, B 5461-10922, C 10923-16383.
fn three(me: &str, epoch: u64, policy_version: u64) -> String {
    format!(
        r#"{{"epoch":{epoch},"policy_version":{policy_version},"nodes":[
            {{"id":"{me}","host":"127.0.0.1","port":7001,"slots":[[0,5460]]}},
            {{"id":"{B}","host":"127.0.0.1","port":7002,"slots":[[5461,10922]]}},
            {{"id":"{C}","host":"127.0.0.1","port":7003,"slots":[[10923,16383]]}}]}}"#
    )
}

#[test]
fn cluster_commands_are_refused_when_cluster_mode_is_off() {
    let mut h = Harness::new();
    for cmd in [
        &["CLUSTER", "INFO"][..],
        &["READONLY"],
        &["ASKING"],
        &["READWRITE"],
    ] {
        assert_eq!(
            h.run(cmd),
            err("ERR This instance has cluster support disabled"),
            "{cmd:?}"
        );
    }
    assert_eq!(h.run(&["SELECT", "1"]), simple("OK"));
}

#[test]
fn emulated_mode_owns_every_slot_at_the_connected_address() {
    let mut h = node();
    let id = myid(&mut h);
    assert_eq!(id.len(), 40);
    assert_eq!(
        h.run(&["CLUSTER", "SLOTS"]),
        Frame::Array(vec![Frame::Array(vec![
            int(0),
            int(16383),
            Frame::Array(vec![
                bulk("127.0.0.1"),
                int(6379),
                bulk(&id),
                Frame::Map(vec![])
            ]),
        ])])
    );
    assert_eq!(
        h.run(&["CLUSTER", "NODES"]),
        Frame::Verbatim(
            "txt",
            format!("{id} 127.0.0.1:6379@0 myself,master - 0 0 0 connected 0-16383\n").into()
        )
    );
    let Frame::Verbatim(_, info) = h.run(&["CLUSTER", "INFO"]) else {
        panic!("verbatim")
    };
    let info = String::from_utf8(info.to_vec()).expect("text");
    assert!(
        info.starts_with(
            "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n\
             cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:1\r\n\
             cluster_size:1\r\ncluster_current_epoch:0\r\ncluster_my_epoch:0\r\n"
        ),
        "{info}"
    );
    let shards = h.run(&["CLUSTER", "SHARDS"]);
    assert_eq!(
        shards,
        Frame::Array(vec![Frame::Map(vec![
            (bulk("slots"), Frame::Array(vec![int(0), int(16383)])),
            (
                bulk("nodes"),
                Frame::Array(vec![Frame::Map(vec![
                    (bulk("id"), bulk(&id)),
                    (bulk("port"), int(6379)),
                    (bulk("ip"), bulk("127.0.0.1")),
                    (bulk("endpoint"), bulk("127.0.0.1")),
                    (bulk("role"), bulk("master")),
                    (bulk("replication-offset"), int(0)),
                    (bulk("health"), bulk("online")),
                ])])
            ),
        ])])
    );
    assert_eq!(h.run(&["CLUSTER", "LINKS"]), Frame::Array(vec![]));
    assert_eq!(
        h.run(&["CONFIG", "GET", "cluster-enabled"]),
        Frame::Map(vec![(bulk("cluster-enabled"), bulk("yes"))])
    );
    assert_eq!(h.run(&["SET", "a", "1"]), simple("OK"));
    assert_eq!(
        h.run(&["MSET", "x", "1", "y", "2"]),
        err("CROSSSLOT Keys in request don't hash to the same slot")
    );
}

#[test]
fn keyslot_and_keys_in_slot() {
    let mut h = node();
    assert_eq!(h.run(&["CLUSTER", "KEYSLOT", "foo"]), int(12182));
    assert_eq!(
        h.run(&["CLUSTER", "KEYSLOT", "{user1000}.following"]),
        int(3443)
    );
    h.run(&["SET", "{u}a", "1"]);
    h.run(&["SET", "{u}b", "1"]);
    h.run(&["SET", "foo", "1"]);
    let slot = crate::cluster::key_slot(b"u").to_string();
    assert_eq!(h.run(&["CLUSTER", "COUNTKEYSINSLOT", &slot]), int(2));
    let Frame::Array(keys) = h.run(&["CLUSTER", "GETKEYSINSLOT", &slot, "1"]) else {
        panic!("array")
    };
    assert_eq!(keys.len(), 1);
    assert_eq!(
        h.run(&["CLUSTER", "COUNTKEYSINSLOT", "16384"]),
        err("ERR Invalid slot")
    );
    assert_eq!(
        h.run(&["CLUSTER", "GETKEYSINSLOT", "1", "-1"]),
        err("ERR Invalid slot or number of keys")
    );
    assert_eq!(
        h.run(&["CLUSTER", "COUNTKEYSINSLOT", "x"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        h.run(&["CLUSTER", "KEYSLOT"]),
        err("ERR wrong number of arguments for 'cluster|keyslot' command")
    );
}

#[test]
fn select_other_than_zero_is_refused_in_cluster_mode() {
    let mut h = node();
    assert_eq!(h.run(&["SELECT", "0"]), simple("OK"));
    assert_eq!(
        h.run(&["SELECT", "1"]),
        err("ERR SELECT is not allowed in cluster mode")
    );
}

#[test]
fn a_pushed_map_redirects_and_refuses_cross_slot_requests() {
    let mut h = node();
    let me = myid(&mut h);
    assert_eq!(
        h.run(&["CLUSTER", "SETCONFIG", &three(&me, 1, 0)]),
        simple("OK")
    );
    // foo is slot 12182 (C), bar 5061 (here), hello 866 (here).
    assert_eq!(
        h.run(&["SET", "foo", "1"]),
        err("MOVED 12182 127.0.0.1:7003")
    );
    assert_eq!(h.run(&["GET", "foo"]), err("MOVED 12182 127.0.0.1:7003"));
    assert_eq!(h.run(&["SET", "bar", "1"]), simple("OK"));
    assert_eq!(
        h.run(&["EVAL", "return 1", "1", "foo"]),
        err("MOVED 12182 127.0.0.1:7003")
    );
    assert_eq!(h.run(&["EVAL", "return 1", "1", "bar"]), int(1));
    assert_eq!(h.run(&["MSET", "{bar}1", "a", "{bar}2", "b"]), simple("OK"));
    assert_eq!(
        h.run(&["DEL", "bar", "hello"]),
        err("CROSSSLOT Keys in request don't hash to the same slot")
    );
    assert_eq!(
        h.run(&["CL.THROTTLE", "foo", "1", "1", "1"]),
        err("MOVED 12182 127.0.0.1:7003")
    );
    // The identity is LIMIT.CHECK's key.
    assert_eq!(
        h.run(&["LIMIT.CHECK", "free", "foo"]),
        err("MOVED 12182 127.0.0.1:7003")
    );
    // A container's subcommand is routed by its own key positions.
    assert_eq!(
        h.run(&["OBJECT", "ENCODING", "foo"]),
        err("MOVED 12182 127.0.0.1:7003")
    );
    // Keyless commands run anywhere.
    assert_eq!(h.run(&["PING"]), simple("PONG"));
    let Frame::Verbatim(_, nodes) = h.run(&["CLUSTER", "NODES"]) else {
        panic!("verbatim")
    };
    assert_eq!(
        String::from_utf8(nodes.to_vec()).expect("text"),
        format!(
            "{me} 127.0.0.1:7001@0 myself,master - 0 0 1 connected 0-5460\n\
             {B} 127.0.0.1:7002@0 master - 0 0 1 connected 5461-10922\n\
             {C} 127.0.0.1:7003@0 master - 0 0 1 connected 10923-16383\n"
        )
    );
}

#[test]
fn transactions_check_every_queued_key_at_exec() {
    let mut h = node();
    let me = myid(&mut h);
    h.run(&["CLUSTER", "SETCONFIG", &three(&me, 1, 0)]);
    h.run(&["MULTI"]);
    assert_eq!(h.run(&["SET", "{bar}1", "1"]), simple("QUEUED"));
    assert_eq!(h.run(&["INCR", "{bar}2"]), simple("QUEUED"));
    assert_eq!(h.run(&["EXEC"]), Frame::Array(vec![simple("OK"), int(1)]));
    h.run(&["MULTI"]);
    h.run(&["SET", "bar", "1"]);
    h.run(&["SET", "hello", "1"]);
    assert_eq!(
        h.run(&["EXEC"]),
        err("CROSSSLOT Keys in request don't hash to the same slot")
    );
    assert_eq!(h.run(&["EXEC"]), err("ERR EXEC without MULTI"), "discarded");
    h.run(&["MULTI"]);
    assert_eq!(
        h.run(&["SET", "foo", "1"]),
        err("MOVED 12182 127.0.0.1:7003")
    );
    assert_eq!(
        h.run(&["EXEC"]),
        err("EXECABORT Transaction discarded because of previous errors.")
    );
}

#[test]
fn bad_stale_and_foreign_maps_are_refused_and_the_map_stays() {
    let mut h = node();
    let me = myid(&mut h);
    assert_eq!(
        h.run(&["CLUSTER", "SETCONFIG", &three(&me, 5, 0)]),
        simple("OK")
    );
    let before = h.run(&["CLUSTER", "SLOTS"]);
    let cases = [
        (
            three(&me, 4, 0),
            "ERR cluster topology epoch 4 is not newer than the current epoch 5",
        ),
        (
            three(&me, 5, 0).replace("7002", "7009"),
            "ERR cluster topology epoch 5 is not newer than the current epoch 5",
        ),
        (
            three("dddddddddddddddddddddddddddddddddddddddd", 6, 0),
            &format!("ERR cluster topology does not name this node ({me}) as a master or replica"),
        ),
        (
            three(&me, 6, 0).replace("[[5461,10922]]", "[[5000,10922]]"),
            &format!("ERR invalid cluster topology: slot 5000 is assigned to both {me} and {B}"),
        ),
        (
            "{\"epoch\":7,".to_owned(),
            "ERR invalid cluster topology: EOF while parsing a value at line 1 column 11",
        ),
    ];
    for (map, want) in cases {
        assert_eq!(h.run(&["CLUSTER", "SETCONFIG", &map]), err(want), "{map}");
        assert_eq!(
            h.run(&["CLUSTER", "SLOTS"]),
            before,
            "{map}: the map in force changed"
        );
    }
    assert_eq!(
        h.run(&["CLUSTER", "SETCONFIG", &three(&me, 5, 0)]),
        simple("OK"),
        "the same map again"
    );
}

#[test]
fn uncovered_slots_take_the_cluster_down_as_redis() {
    let mut h = node();
    let me = myid(&mut h);
    let partial = three(&me, 1, 0).replace("[[10923,16383]]", "[[10923,16000]]");
    h.run(&["CLUSTER", "SETCONFIG", &partial]);
    assert_eq!(
        h.run(&["GET", "bar"]),
        err("CLUSTERDOWN The cluster is down")
    );
    let Frame::Verbatim(_, info) = h.run(&["CLUSTER", "INFO"]) else {
        panic!("verbatim")
    };
    assert!(info.starts_with(b"cluster_state:fail\r\ncluster_slots_assigned:16001\r\n"));
    let mut lenient = Harness::with_config(Config {
        cluster_enabled: true,
        cluster_require_full_coverage: false,
        ..Config::default()
    });
    let me = myid(&mut lenient);
    let partial = three(&me, 1, 0).replace("[[10923,16383]]", "[[10923,16000]]");
    lenient.run(&["CLUSTER", "SETCONFIG", &partial]);
    assert_eq!(lenient.run(&["GET", "bar"]), Frame::Null);
    // "{a}16141": a key of slot 16141, unassigned.
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| crate::cluster::key_slot(k.as_bytes()) > 16000)
        .expect("some key");
    assert_eq!(
        lenient.run(&["GET", &key]),
        err("CLUSTERDOWN Hash slot not served")
    );
}

#[test]
fn limit_commands_declare_the_identity_and_tag_their_rule_keys() {
    let mut h = node();
    assert_eq!(
        h.run(&[
            "COMMAND",
            "GETKEYS",
            "LIMIT.CHECK",
            "free",
            "customer-42",
            "TOKENS",
            "3"
        ]),
        Frame::Array(vec![bulk("customer-42")])
    );
    assert_eq!(
        h.run(&["COMMAND", "GETKEYS", "LIMIT.RESET", "customer-42"]),
        Frame::Array(vec![bulk("customer-42")])
    );
    h.run(&["POLICY.SET", "free", "RATE", "2/1m", "QUOTA", "1000/day"]);
    let a = h.run(&["LIMIT.CHECK", "free", "customer-42"]);
    assert_eq!(get(&a, "allowed"), Frame::Boolean(true), "{a:?}");
    let Frame::Array(mut keys) = h.run(&["KEYS", "*"]) else {
        panic!("array")
    };
    keys.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(
        keys,
        vec![
            bulk("limitkv:{customer-42}:free::quota-day:customer-42"),
            bulk("limitkv:{customer-42}:free::rate-1m:customer-42"),
        ]
    );
    assert_eq!(
        h.run(&["LIMIT.CHECK", "free", "a}b"]),
        err("ERR identity 'a}b' cannot be used in cluster mode: no hash tag can place its rule keys in its slot (it is empty, or has '}' outside a hash tag)")
    );
}

#[test]
fn a_node_behind_the_cluster_policy_version_refuses_decisions() {
    let mut h = node();
    let me = myid(&mut h);
    h.run(&["POLICY.SET", "free", "RATE", "2/1m"]);
    assert_eq!(
        h.run(&["CLUSTER", "SETCONFIG", &three(&me, 1, 2)]),
        simple("OK")
    );
    let stale = "STALEPOLICY this node has applied policy version 0 but the cluster map requires 2; push the policies again (limitkv cluster apply)";
    assert_eq!(h.run(&["LIMIT.CHECK", "free", "bar"]), err(stale));
    assert_eq!(
        h.run(&["POLICY.SET", "free", "RATE", "3/1m"]),
        err("ERR in cluster mode catalog changes reach every node through CLUSTER POLICY <version> POLICY.SET ... (limitkv cluster apply)")
    );
    assert_eq!(
        h.run(&[
            "CLUSTER",
            "POLICY",
            "2",
            "POLICY.SET",
            "free",
            "RATE",
            "3/1m"
        ]),
        simple("OK")
    );
    let a = h.run(&["LIMIT.CHECK", "free", "bar"]);
    assert_eq!(get(&a, "allowed"), Frame::Boolean(true), "{a:?}");
    assert_eq!(
        h.run(&[
            "CLUSTER",
            "POLICY",
            "1",
            "POLICY.SET",
            "free",
            "RATE",
            "9/1m"
        ]),
        err("ERR policy version 1 is older than the applied version 2")
    );
    assert_eq!(
        h.run(&["CLUSTER", "POLICY", "3", "SET", "k", "v"]),
        err("ERR CLUSTER POLICY runs policy catalog writes (POLICY.SET, OVERRIDE.SET, ...), not 'SET'")
    );
    let Frame::Verbatim(_, info) = h.run(&["CLUSTER", "INFO"]) else {
        panic!("verbatim")
    };
    assert!(String::from_utf8_lossy(&info).contains("cluster_policy_version:2\r\n"));
}

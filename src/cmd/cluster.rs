//! Cluster mode (`cluster-enabled yes`; docs/cluster.md): the `CLUSTER` container command in
//! Redis 7.0's formats, `READONLY` / `READWRITE` / `ASKING`, the pushed topology
//! (`CLUSTER SETCONFIG`) and cluster-wide policy versions (`CLUSTER POLICY`), and `check`,
//! which the dispatcher calls before a command runs or is queued: redirect (`-MOVED`), refuse
//! keys of several slots (`-CROSSSLOT`), unserved slots (`-CLUSTERDOWN`) and decisions under
//! a stale policy version (`-STALEPOLICY`). The routing state itself is [`crate::cluster`].

use bytes::Bytes;

use super::args;
use super::flags::*;
use super::{dispatch_sub, help_reply, CommandSpec, Ctx, BASE, HELP_SUBCOMMAND};
use crate::cluster::{key_slot, Route, Topology};
use crate::error::CommandError;
use crate::protocol::Frame;

/// `CLUSTER`, `READONLY`, `READWRITE`, `ASKING`.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "CLUSTER",
        arity: -2,
        group: "cluster",
        summary: "A container for Redis Cluster commands.",
        since: "3.0.0",
        complexity: "Depends on subcommand.",
        subcommands: SUBCOMMANDS,
        handler: cluster,
        ..BASE
    },
    CommandSpec {
        name: "READONLY",
        arity: 1,
        flags: FAST | LOADING | STALE,
        group: "cluster",
        summary: "Enables read-only queries for a connection to a Redis Cluster replica node.",
        since: "3.0.0",
        handler: |ctx, _| {
            enabled(ctx)?;
            ctx.session.cluster_readonly = true;
            Ok(Frame::OK)
        },
        ..BASE
    },
    CommandSpec {
        name: "READWRITE",
        arity: 1,
        flags: FAST | LOADING | STALE,
        group: "cluster",
        summary: "Enables read-write queries for a connection to a Reids Cluster replica node.",
        since: "3.0.0",
        handler: |ctx, _| {
            enabled(ctx)?;
            ctx.session.cluster_readonly = false;
            Ok(Frame::OK)
        },
        ..BASE
    },
    CommandSpec {
        name: "ASKING",
        arity: 1,
        flags: FAST,
        group: "cluster",
        summary: "Signals that a cluster client is following an -ASK redirect.",
        since: "3.0.0",
        handler: |ctx, _| {
            enabled(ctx)?;
            ctx.session.cluster_asking = true;
            Ok(Frame::OK)
        },
        ..BASE
    },
];

const SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "SLOTS",
        arity: 2,
        flags: LOADING | STALE,
        summary: "Returns the mapping of cluster slots to nodes.",
        since: "3.0.0",
        complexity: "O(N) where N is the total number of Cluster nodes",
        handler: slots,
        ..BASE
    },
    CommandSpec {
        name: "SHARDS",
        arity: 2,
        flags: LOADING | STALE,
        summary: "Returns the mapping of cluster slots to shards.",
        since: "7.0.0",
        complexity: "O(N) where N is the total number of cluster nodes",
        handler: shards,
        ..BASE
    },
    CommandSpec {
        name: "NODES",
        arity: 2,
        flags: LOADING | STALE,
        summary: "Returns the cluster configuration for a node.",
        since: "3.0.0",
        complexity: "O(N) where N is the total number of Cluster nodes",
        handler: nodes,
        ..BASE
    },
    CommandSpec {
        name: "INFO",
        arity: 2,
        flags: LOADING | STALE,
        summary: "Returns information about the state of a node.",
        since: "3.0.0",
        handler: info,
        ..BASE
    },
    CommandSpec {
        name: "MYID",
        arity: 2,
        flags: LOADING | STALE,
        summary: "Returns the ID of a node.",
        since: "3.0.0",
        handler: |ctx, _| Ok(Frame::bulk(ctx.shared.cluster.myid())),
        ..BASE
    },
    CommandSpec {
        name: "KEYSLOT",
        arity: 3,
        flags: LOADING | STALE,
        summary: "Returns the hash slot for a key.",
        since: "3.0.0",
        complexity: "O(N) where N is the number of bytes in the key",
        args: "key:string",
        handler: |_, req| Ok(Frame::Integer(i64::from(key_slot(&req[2])))),
        ..BASE
    },
    CommandSpec {
        name: "COUNTKEYSINSLOT",
        arity: 3,
        flags: LOADING | STALE,
        summary: "Returns the number of keys in a hash slot.",
        since: "3.0.0",
        complexity: "O(N) where N is the number of keys of the node (no per-slot index)",
        args: "slot:integer",
        handler: countkeysinslot,
        ..BASE
    },
    CommandSpec {
        name: "GETKEYSINSLOT",
        arity: 4,
        flags: LOADING | STALE,
        summary: "Returns the key names in a hash slot.",
        since: "3.0.0",
        complexity: "O(N) where N is the number of keys of the node (no per-slot index)",
        args: "slot:integer count:integer",
        handler: getkeysinslot,
        ..BASE
    },
    CommandSpec {
        name: "LINKS",
        arity: 2,
        flags: LOADING | STALE,
        summary: "Returns a list of all TCP links to and from peer nodes.",
        since: "7.0.0",
        complexity: "O(N) where N is the total number of Cluster nodes",
        // No cluster bus: nodes never connect to each other, so there are no links.
        handler: |_, _| Ok(Frame::Array(Vec::new())),
        ..BASE
    },
    CommandSpec {
        name: "SETCONFIG",
        arity: 3,
        flags: ADMIN | NOSCRIPT | STALE,
        summary: "Installs a pushed cluster topology (JSON: epoch, policy version, nodes with slot ranges and replicas) if its epoch is newer.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of slots",
        args: "topology:string",
        handler: setconfig,
        ..BASE
    },
    CommandSpec {
        name: "POLICY",
        arity: -4,
        flags: ADMIN | NOSCRIPT | WRITE,
        summary: "Runs a policy catalog command (POLICY.SET, OVERRIDE.SET, ...) as cluster policy version N; refused if N is older than the applied version.",
        since: "0.1.0",
        complexity: "Depends on the command.",
        args: "version:integer command:string arg:string...",
        handler: policy,
        ..BASE
    },
    CommandSpec {
        handler: |_, _| {
            Ok(help_reply(
                "CLUSTER",
                &[
                    "COUNTKEYSINSLOT <slot>",
                    "    Return the number of keys in <slot>.",
                    "GETKEYSINSLOT <slot> <count>",
                    "    Return key names stored by current node in a slot.",
                    "INFO",
                    "    Return information about the cluster.",
                    "KEYSLOT <key>",
                    "    Return the hash slot for <key>.",
                    "MYID",
                    "    Return the node id.",
                    "NODES",
                    "    Return cluster configuration seen by node. Output format:",
                    "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
                    "SLOTS",
                    "    Return information about slots range mappings. Each range is made of:",
                    "    start, end, master and replicas IP addresses, ports and ids",
                    "SHARDS",
                    "    Return information about slot range mappings and the nodes associated with them.",
                    "LINKS",
                    "    Return information about all network links between this node and its peers.",
                    "    Output format is an array where each array element is a map containing attributes of a link",
                    "SETCONFIG <json>",
                    "    Install a pushed topology (limitkv; see docs/cluster.md).",
                    "POLICY <version> <command> [<arg> ...]",
                    "    Run a policy catalog command as cluster policy <version> (limitkv).",
                ],
            ))
        },
        ..HELP_SUBCOMMAND
    },
];

fn enabled(ctx: &Ctx<'_>) -> Result<(), CommandError> {
    if ctx.shared.cluster.is_enabled() {
        Ok(())
    } else {
        Err(CommandError::other(
            "This instance has cluster support disabled",
        ))
    }
}

fn cluster(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    enabled(ctx)?;
    dispatch_sub(ctx, req)
}

/// The map in force, or the emulated one-node map: this node serving every slot at the
/// address the client connected to.
fn view(ctx: &Ctx<'_>) -> std::sync::Arc<Topology> {
    if let Some(t) = ctx.shared.cluster.topology() {
        return t;
    }
    let laddr = &ctx.session.info.laddr;
    let host = laddr
        .rsplit_once(':')
        .map_or(laddr.as_str(), |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = ctx
        .shared
        .tcp_port
        .load(std::sync::atomic::Ordering::Relaxed);
    std::sync::Arc::new(Topology {
        epoch: 0,
        policy_version: 0,
        nodes: vec![crate::cluster::Node {
            id: ctx.shared.cluster.myid(),
            host,
            port: u16::try_from(port).unwrap_or(0),
            slots: vec![[0, crate::cluster::SLOTS as u16 - 1]],
            replicas: Vec::new(),
        }],
    })
}

fn node_frame(host: &str, port: u16, id: &str) -> Frame {
    Frame::Array(vec![
        Frame::bulk(host),
        Frame::Integer(i64::from(port)),
        Frame::bulk(id),
        Frame::Map(Vec::new()),
    ])
}

/// `CLUSTER SLOTS`: one entry per contiguous range of one master, in slot order.
fn slots(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    let t = view(ctx);
    let mut ranges: Vec<(u16, u16, usize)> = (0..t.nodes.len())
        .flat_map(|i| t.ranges_of(i).into_iter().map(move |(s, e)| (s, e, i)))
        .collect();
    ranges.sort_unstable();
    Ok(Frame::Array(
        ranges
            .into_iter()
            .map(|(s, e, i)| {
                let n = &t.nodes[i];
                let mut entry = vec![
                    Frame::Integer(i64::from(s)),
                    Frame::Integer(i64::from(e)),
                    node_frame(&n.host, n.port, &n.id),
                ];
                entry.extend(
                    n.replicas
                        .iter()
                        .map(|r| node_frame(&r.host, r.port, &r.id)),
                );
                Frame::Array(entry)
            })
            .collect(),
    ))
}

fn shard_node(id: &str, host: &str, port: u16, replica: bool) -> Frame {
    Frame::Map(vec![
        (Frame::bulk("id"), Frame::bulk(id)),
        (Frame::bulk("port"), Frame::Integer(i64::from(port))),
        (Frame::bulk("ip"), Frame::bulk(host)),
        (Frame::bulk("endpoint"), Frame::bulk(host)),
        (
            Frame::bulk("role"),
            Frame::bulk(if replica { "replica" } else { "master" }),
        ),
        (Frame::bulk("replication-offset"), Frame::Integer(0)),
        (Frame::bulk("health"), Frame::bulk("online")),
    ])
}

/// `CLUSTER SHARDS`: per master, its slot ranges as a flat list and its nodes.
fn shards(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    let t = view(ctx);
    Ok(Frame::Array(
        t.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let slots = t
                    .ranges_of(i)
                    .into_iter()
                    .flat_map(|(s, e)| [Frame::Integer(i64::from(s)), Frame::Integer(i64::from(e))])
                    .collect();
                let mut nodes = vec![shard_node(&n.id, &n.host, n.port, false)];
                nodes.extend(
                    n.replicas
                        .iter()
                        .map(|r| shard_node(&r.id, &r.host, r.port, true)),
                );
                Frame::Map(vec![
                    (Frame::bulk("slots"), Frame::Array(slots)),
                    (Frame::bulk("nodes"), Frame::Array(nodes)),
                ])
            })
            .collect(),
    ))
}

/// `CLUSTER NODES`: one line per node, `<id> <ip:port@cport> <flags> <master> <ping-sent>
/// <pong-recv> <config-epoch> <link-state> <slot> ...`. There is no cluster bus, so the bus
/// port is 0 and every link is reported `connected`.
fn nodes(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    let t = view(ctx);
    let me = ctx.shared.cluster.myid();
    let flags = |id: &str, role: &str| {
        if id == me {
            format!("myself,{role}")
        } else {
            role.to_owned()
        }
    };
    let mut out = String::new();
    for (i, n) in t.nodes.iter().enumerate() {
        out.push_str(&format!(
            "{} {}:{}@0 {} - 0 0 {} connected",
            n.id,
            n.host,
            n.port,
            flags(&n.id, "master"),
            t.epoch
        ));
        for (s, e) in t.ranges_of(i) {
            if s == e {
                out.push_str(&format!(" {s}"));
            } else {
                out.push_str(&format!(" {s}-{e}"));
            }
        }
        out.push('\n');
        for r in &n.replicas {
            out.push_str(&format!(
                "{} {}:{}@0 {} {} 0 0 {} connected\n",
                r.id,
                r.host,
                r.port,
                flags(&r.id, "slave"),
                n.id,
                t.epoch
            ));
        }
    }
    Ok(Frame::Verbatim("txt", Bytes::from(out)))
}

/// `CLUSTER INFO`, in Redis 7.0's fields (no bus: no messages are counted).
fn info(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    let t = view(ctx);
    let assigned = t.assigned();
    let known: usize = t.nodes.iter().map(|n| 1 + n.replicas.len()).sum();
    let size = t.nodes.iter().filter(|n| !n.slots.is_empty()).count();
    let state = if ctx.shared.cluster.is_ok() {
        "ok"
    } else {
        "fail"
    };
    let text = format!(
        "cluster_state:{state}\r\ncluster_slots_assigned:{assigned}\r\n\
         cluster_slots_ok:{assigned}\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\n\
         cluster_known_nodes:{known}\r\ncluster_size:{size}\r\ncluster_current_epoch:{e}\r\n\
         cluster_my_epoch:{e}\r\ncluster_stats_messages_sent:0\r\n\
         cluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n\
         cluster_policy_version:{pv}\r\ncluster_required_policy_version:{rpv}\r\n",
        e = t.epoch,
        pv = ctx.shared.cluster.policy_version(),
        rpv = ctx.shared.cluster.required_policy_version(),
    );
    Ok(Frame::Verbatim("txt", Bytes::from(text)))
}

fn slot_arg(arg: &[u8]) -> Result<i64, CommandError> {
    args::parse_i64(arg).ok_or(CommandError::NotAnInteger)
}

/// Keys of database 0 in `slot`, at most `limit` (counted by scanning every shard: the store
/// keeps no per-slot index).
fn keys_in_slot(ctx: &mut Ctx<'_>, slot: u16, limit: usize) -> Vec<Bytes> {
    let now = ctx.now;
    let mut out = Vec::new();
    for i in 0..ctx.shard_count() {
        if out.len() >= limit {
            break;
        }
        ctx.with_shard_at(i, |shard| {
            for (k, _) in shard.iter_live(now) {
                if out.len() >= limit {
                    break;
                }
                if key_slot(k) == slot {
                    out.push(Bytes::copy_from_slice(k));
                }
            }
        });
    }
    out
}

fn countkeysinslot(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let slot = slot_arg(&req[2])?;
    let slot = u16::try_from(slot)
        .ok()
        .filter(|&s| usize::from(s) < crate::cluster::SLOTS)
        .ok_or_else(|| CommandError::other("Invalid slot"))?;
    let n = keys_in_slot(ctx, slot, usize::MAX).len();
    Ok(Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX)))
}

fn getkeysinslot(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let slot = slot_arg(&req[2])?;
    let count = slot_arg(&req[3])?;
    let bad = || CommandError::other("Invalid slot or number of keys");
    let slot = u16::try_from(slot)
        .ok()
        .filter(|&s| usize::from(s) < crate::cluster::SLOTS)
        .ok_or_else(bad)?;
    let count = usize::try_from(count).map_err(|_| bad())?;
    Ok(Frame::Array(
        keys_in_slot(ctx, slot, count)
            .into_iter()
            .map(Frame::Bulk)
            .collect(),
    ))
}

fn setconfig(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let t = Topology::parse(&req[2]).map_err(|e| CommandError::other(e.to_string()))?;
    ctx.shared
        .cluster
        .install(t)
        .map_err(|e| CommandError::other(e.to_string()))?;
    Ok(Frame::OK)
}

/// `CLUSTER POLICY version command args...`: runs a catalog command of
/// [`super::policy_admin`] and, if it succeeds, records `version` as applied.
fn policy(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let version = args::parse_i64(&req[2])
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| CommandError::other("policy version must be a whole number >= 0"))?;
    let cmd = &req[3..];
    let spec = super::policy_admin::COMMANDS
        .iter()
        .find(|s| s.has(WRITE) && s.name.as_bytes().eq_ignore_ascii_case(&cmd[0]))
        .ok_or_else(|| {
            CommandError::other(format!(
                "CLUSTER POLICY runs policy catalog writes (POLICY.SET, OVERRIDE.SET, ...), not '{}'",
                args::text(&cmd[0])
            ))
        })?;
    if !spec.arity_ok(cmd.len()) {
        return Err(CommandError::WrongArity(super::full_name(None, spec)));
    }
    let applied = ctx.shared.cluster.policy_version();
    if version < applied {
        return Err(CommandError::other(format!(
            "policy version {version} is older than the applied version {applied}"
        )));
    }
    let reply = (spec.handler)(ctx, cmd)?;
    if !reply.is_error() {
        ctx.shared
            .cluster
            .advance_policy_version(version)
            .map_err(|v| {
                CommandError::other(format!(
                    "policy version {version} is older than the applied version {v}"
                ))
            })?;
    }
    Ok(reply)
}

/// The arguments a cluster client hashes to route `req`: a count's keys (`EVAL`), else the
/// spec's key positions, including `LIMIT.*`'s identity and shard channels (both declared in
/// key positions for routing).
fn routing_keys<'r>(spec: &CommandSpec, req: &'r [Bytes]) -> &'r [Bytes] {
    if let Some(at) = super::numkeys_index(spec) {
        return super::counted_keys(req, at);
    }
    if spec.first_key <= 0 {
        return &[];
    }
    let first = spec.first_key as usize;
    if first >= req.len() {
        return &[];
    }
    let last = if spec.last_key < 0 {
        req.len()
            .saturating_sub(spec.last_key.unsigned_abs() as usize)
    } else {
        (spec.last_key as usize).min(req.len() - 1)
    };
    if last < first {
        return &[];
    }
    &req[first..=last]
}

/// The slot all keys of `req` hash to; `Ok(None)` without keys.
fn slot_of(spec: &CommandSpec, req: &[Bytes], slot: &mut Option<u16>) -> Result<(), CommandError> {
    let keys = routing_keys(spec, req);
    let step = usize::try_from(spec.key_step.max(1)).unwrap_or(1);
    let step = if super::numkeys_index(spec).is_some() {
        1
    } else {
        step
    };
    // ZUNIONSTORE's destination, before its counted keys.
    let leading = super::leading_keys(spec, req);
    let extra = super::extra_keys(spec, req);
    for key in leading.iter().chain(keys.iter().step_by(step)).chain(extra) {
        let s = key_slot(key);
        match *slot {
            None => *slot = Some(s),
            Some(first) if first != s => return Err(CommandError::CrossSlot),
            Some(_) => {}
        }
    }
    Ok(())
}

/// Checks a request in cluster mode before it runs or is queued, as Redis's `getNodeByQuery`
/// (`spec`: the subcommand's spec for a container command such as `OBJECT ENCODING key`):
/// every key in one slot (for `EXEC`, every key of the transaction), that slot served here,
/// the cluster up; `LIMIT.*` decisions also need the policy version the map requires, and
/// catalog writes go through `CLUSTER POLICY` once a map is pushed. A refused `EXEC` discards
/// the transaction; another refused command inside `MULTI` marks it failed.
pub(crate) fn check(
    ctx: &mut Ctx<'_>,
    spec: &'static CommandSpec,
    req: &[Bytes],
) -> Result<(), CommandError> {
    // `ASKING` lasts one command (its own handler sets it again). No slot is ever importing
    // yet (no migration), so it changes no routing decision.
    ctx.session.cluster_asking = false;
    let result = route(ctx, spec, req);
    if let Err(e) = result {
        if spec.name == "EXEC" {
            ctx.session.multi = None;
            ctx.session.multi_error = false;
            super::multi::unwatch_all(ctx.shared, ctx.session);
        } else if ctx.session.multi.is_some() {
            ctx.session.multi_error = true;
        }
        return Err(e);
    }
    Ok(())
}

/// The checks of a `LIMIT.*` decision in cluster mode: the policy version the map requires,
/// and an identity (or reservation id) whose slot a hash tag can express.
fn limit_checks(
    cluster: &crate::cluster::Cluster,
    spec: &CommandSpec,
    req: &[Bytes],
) -> Result<(), CommandError> {
    if spec.group == "rate_limit" && spec.name.starts_with("LIMIT.") && spec.name != "LIMIT.EVENTS"
    {
        if let Some((have, need)) = cluster.stale_policy() {
            return Err(CommandError::StalePolicy(have, need));
        }
        let identity = usize::try_from(spec.first_key)
            .ok()
            .filter(|&i| i > 0)
            .and_then(|i| req.get(i));
        if let Some(id) = identity {
            if crate::cluster::identity_tag(id).is_none() {
                return Err(CommandError::other(format!(
                    "identity '{}' cannot be used in cluster mode: no hash tag can place its rule keys in its slot (it is empty, or has '}}' outside a hash tag)",
                    args::text(id)
                )));
            }
        }
    }
    Ok(())
}

/// Routes one request that arrived outside a RESP session (the HTTP check API, whose
/// `/v1/check`, `/v1/reserve`, `/v1/settle` ... run `spec` with `req` as the RESP command
/// would): the same checks and slot decision as [`check`], for a request that is neither in
/// `MULTI` nor `READONLY`. Nothing to check without cluster mode.
pub(crate) fn route_request(
    shared: &super::Shared,
    spec: &'static CommandSpec,
    req: &[Bytes],
) -> Result<(), CommandError> {
    let cluster = &shared.cluster;
    if !cluster.is_enabled() {
        return Ok(());
    }
    limit_checks(cluster, spec, req)?;
    let mut slot = None;
    slot_of(spec, req, &mut slot)?;
    slot.map_or(Ok(()), |slot| decide(cluster, slot, spec.has(WRITE), false))
}

fn route(ctx: &mut Ctx<'_>, spec: &'static CommandSpec, req: &[Bytes]) -> Result<(), CommandError> {
    let cluster = &ctx.shared.cluster;
    limit_checks(cluster, spec, req)?;
    if spec.has(WRITE)
        && matches!(
            spec.name.as_bytes().first(),
            Some(b'P' | b'O' | b'A' | b'D')
        )
        && cluster.is_pushed()
        && super::policy_admin::COMMANDS
            .iter()
            .any(|s| s.name == spec.name)
    {
        return Err(CommandError::other(format!(
            "in cluster mode catalog changes reach every node through CLUSTER POLICY <version> {} ... (limitkv cluster apply)",
            spec.name
        )));
    }
    let mut slot = None;
    let mut write = spec.has(WRITE);
    if spec.name == "EXEC" {
        let Some(queue) = ctx.session.multi.as_ref() else {
            return Ok(());
        };
        for q in queue {
            if let Some(mut s) = super::lookup(&q[0]) {
                if let Some(sub) = q.get(1).and_then(|n| super::lookup_sub(s, n)) {
                    s = sub;
                }
                write |= s.has(WRITE);
                slot_of(s, q, &mut slot)?;
            }
        }
    } else {
        slot_of(spec, req, &mut slot)?;
    }
    let Some(slot) = slot else {
        return Ok(());
    };
    decide(cluster, slot, write, ctx.session.cluster_readonly)
}

/// Served here, `MOVED` to the slot's owner, or `CLUSTERDOWN`.
fn decide(
    cluster: &crate::cluster::Cluster,
    slot: u16,
    write: bool,
    readonly: bool,
) -> Result<(), CommandError> {
    match cluster.route(slot, write, readonly) {
        Route::Local => Ok(()),
        Route::Moved { slot, host, port } => {
            Err(CommandError::Moved(slot, format!("{host}:{port}")))
        }
        Route::Down(text) => Err(CommandError::ClusterDown(text)),
    }
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;

//! The topology an operator pushes (`CLUSTER SETCONFIG <json>`): nodes with their addresses,
//! slot ranges and replicas, a config epoch, and the policy version every node must have
//! applied before it decides. Parsing checks everything a node needs to trust the map; the
//! node-specific checks (epoch not older, the node named) are in [`super::Cluster::install`].

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::SLOTS;

/// Why a pushed topology is refused (the previous one stays in force).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TopologyError {
    /// Not JSON of the expected shape.
    #[error("invalid cluster topology: {0}")]
    Malformed(String),
    /// Two nodes (or one node twice) claim a slot.
    #[error("invalid cluster topology: slot {slot} is assigned to both {first} and {second}")]
    Overlap {
        /// The slot.
        slot: u16,
        /// The node named first.
        first: String,
        /// The other node.
        second: String,
    },
    /// An epoch not newer than the one in force.
    #[error("cluster topology epoch {pushed} is not newer than the current epoch {current}")]
    StaleEpoch {
        /// The pushed epoch.
        pushed: u64,
        /// The epoch in force.
        current: u64,
    },
    /// The map does not name this node.
    #[error("cluster topology does not name this node ({0}) as a master or replica")]
    NotNamed(String),
    /// The map could not be kept in the cluster config file.
    #[error("cannot save the cluster config: {0}")]
    Save(String),
}

/// A replica of a master, as the map names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replica {
    /// 40-character node id (the node's `CLUSTER MYID`).
    pub id: String,
    /// Address clients connect to.
    pub host: String,
    /// Client port.
    pub port: u16,
}

/// A master and the slot ranges it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// 40-character node id (the node's `CLUSTER MYID`).
    pub id: String,
    /// Address clients connect to.
    pub host: String,
    /// Client port.
    pub port: u16,
    /// Inclusive `[start, end]` slot ranges.
    #[serde(default)]
    pub slots: Vec<[u16; 2]>,
    /// Its replicas.
    #[serde(default)]
    pub replicas: Vec<Replica>,
}

/// The whole map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Config epoch: a node accepts only a map with a higher epoch than its current one.
    pub epoch: u64,
    /// The policy version every node must have applied (`CLUSTER POLICY <version> ...`)
    /// before it decides `LIMIT.*`; 0 = no requirement.
    #[serde(default)]
    pub policy_version: u64,
    /// The masters.
    pub nodes: Vec<Node>,
}

impl Topology {
    /// Parses and checks a pushed map: JSON shape, node ids (40 hex digits, unique), ports
    /// (not 0), slot ranges (`start <= end < 16384`, no slot claimed twice). Slots no master
    /// claims are allowed: they answer `-CLUSTERDOWN`, as in Redis.
    pub fn parse(json: &[u8]) -> Result<Topology, TopologyError> {
        let t: Topology =
            serde_json::from_slice(json).map_err(|e| TopologyError::Malformed(e.to_string()))?;
        t.validate()?;
        Ok(t)
    }

    /// The checks of [`Topology::parse`] on a map built in code.
    pub fn validate(&self) -> Result<(), TopologyError> {
        let bad = |m: String| Err(TopologyError::Malformed(m));
        if self.nodes.is_empty() {
            return bad("no nodes".into());
        }
        let mut ids: Vec<&str> = Vec::new();
        let all = self.nodes.iter().flat_map(|n| {
            std::iter::once((n.id.as_str(), n.host.as_str(), n.port)).chain(
                n.replicas
                    .iter()
                    .map(|r| (r.id.as_str(), r.host.as_str(), r.port)),
            )
        });
        for (id, host, port) in all {
            if id.len() != 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return bad(format!("node id '{id}' is not 40 hexadecimal characters"));
            }
            if ids.contains(&id) {
                return bad(format!("node id {id} appears twice"));
            }
            ids.push(id);
            if host.is_empty() || host.bytes().any(|b| b.is_ascii_whitespace()) {
                return bad(format!("node {id} has an invalid host '{host}'"));
            }
            if port == 0 {
                return bad(format!("node {id} has port 0"));
            }
        }
        let mut owner: Vec<Option<usize>> = vec![None; SLOTS];
        for (i, n) in self.nodes.iter().enumerate() {
            for &[start, end] in &n.slots {
                if start > end || usize::from(end) >= SLOTS {
                    return bad(format!(
                        "node {} has an invalid slot range {start}-{end} (slots are 0-16383)",
                        n.id
                    ));
                }
                for slot in start..=end {
                    if let Some(first) = owner[usize::from(slot)] {
                        return Err(TopologyError::Overlap {
                            slot,
                            first: self.nodes[first].id.clone(),
                            second: n.id.clone(),
                        });
                    }
                    owner[usize::from(slot)] = Some(i);
                }
            }
        }
        Ok(())
    }

    /// The JSON text of the map (what `limitkv cluster apply` pushes).
    pub fn to_json(&self) -> String {
        // A struct of strings, integers and vectors always serializes.
        serde_json::to_string(self).expect("invariant: a topology serializes")
    }

    /// The master serving each slot (index into `nodes`), `None` for unassigned slots.
    pub fn owners(&self) -> Vec<Option<u16>> {
        let mut owner = vec![None; SLOTS];
        for (i, n) in self.nodes.iter().enumerate() {
            for &[start, end] in &n.slots {
                for slot in start..=end.min(SLOTS as u16 - 1) {
                    owner[usize::from(slot)] = u16::try_from(i).ok();
                }
            }
        }
        owner
    }

    /// Where `id` sits: `Some((master index, None))` for a master, `Some((master index,
    /// Some(replica index)))` for a replica.
    pub fn find(&self, id: &str) -> Option<(usize, Option<usize>)> {
        self.nodes.iter().enumerate().find_map(|(i, n)| {
            if n.id == id {
                Some((i, None))
            } else {
                n.replicas
                    .iter()
                    .position(|r| r.id == id)
                    .map(|j| (i, Some(j)))
            }
        })
    }

    /// A master's slots as sorted, merged inclusive ranges.
    pub fn ranges_of(&self, master: usize) -> Vec<(u16, u16)> {
        let mut r: Vec<(u16, u16)> = self.nodes[master]
            .slots
            .iter()
            .map(|&[s, e]| (s, e))
            .collect();
        r.sort_unstable();
        let mut out: Vec<(u16, u16)> = Vec::with_capacity(r.len());
        for (s, e) in r {
            match out.last_mut() {
                Some(last) if u32::from(last.1) + 1 >= u32::from(s) => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        out
    }

    /// Number of slots some master serves.
    pub fn assigned(&self) -> usize {
        (0..self.nodes.len())
            .flat_map(|i| self.ranges_of(i))
            .map(|(s, e)| usize::from(e - s) + 1)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: char) -> String {
        std::iter::repeat_n(c, 40).collect()
    }

    fn json(nodes: &str) -> String {
        format!(r#"{{"epoch": 2, "nodes": [{nodes}]}}"#)
    }

    #[test]
    fn parses_a_three_node_map() {
        let text = json(&format!(
            r#"{{"id":"{}","host":"127.0.0.1","port":7001,"slots":[[0,5460]]}},
               {{"id":"{}","host":"127.0.0.1","port":7002,"slots":[[5461,10922]],
                 "replicas":[{{"id":"{}","host":"127.0.0.1","port":7004}}]}},
               {{"id":"{}","host":"127.0.0.1","port":7003,"slots":[[10923,16383]]}}"#,
            id('a'),
            id('b'),
            id('d'),
            id('c')
        ));
        let t = Topology::parse(text.as_bytes()).expect("valid");
        assert_eq!(t.assigned(), SLOTS);
        assert_eq!(t.find(&id('d')), Some((1, Some(0))));
        assert_eq!(t.owners()[5461], Some(1));
        assert_eq!(Topology::parse(t.to_json().as_bytes()), Ok(t));
    }

    #[test]
    fn refuses_bad_maps_with_a_reason() {
        let a = id('a');
        let b = id('b');
        for (text, want) in [
            ("{".to_owned(), "invalid cluster topology: EOF"),
            (json(""), "invalid cluster topology: no nodes"),
            (
                json(&format!(
                    r#"{{"id":"{a}","host":"h","port":1,"slots":[[0,10]]}},
                       {{"id":"{b}","host":"h","port":2,"slots":[[10,20]]}}"#
                )),
                "invalid cluster topology: slot 10 is assigned to both",
            ),
            (
                json(r#"{"id":"x","host":"h","port":1}"#),
                "invalid cluster topology: node id 'x' is not 40 hexadecimal characters",
            ),
            (
                json(&format!(r#"{{"id":"{a}","host":"h","port":1,"slots":[[5,16384]]}}"#)),
                "invalid cluster topology: node aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa has an invalid slot range 5-16384",
            ),
            (
                json(&format!(r#"{{"id":"{a}","host":"h","port":0}}"#)),
                "has port 0",
            ),
            (
                json(&format!(r#"{{"id":"{a}","host":"h","port":1,"shards":1}}"#)),
                "unknown field `shards`",
            ),
        ] {
            let e = Topology::parse(text.as_bytes()).expect_err(&text).to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn ranges_merge_and_sort() {
        let t = Topology {
            epoch: 1,
            policy_version: 0,
            nodes: vec![Node {
                id: id('a'),
                host: "h".into(),
                port: 1,
                slots: vec![[10, 20], [0, 5], [6, 9], [30, 30]],
                replicas: vec![],
            }],
        };
        assert_eq!(t.ranges_of(0), vec![(0, 20), (30, 30)]);
        assert_eq!(t.assigned(), 22);
    }
}

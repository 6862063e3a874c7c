//! `limitkv cluster apply topology.toml`: pushes a cluster topology (and, optionally, the
//! cluster's policies) to every node it names. See docs/cluster.md for the file's format.
//!
//! Steps: read and check the TOML; ask every node its id (`CLUSTER MYID`); build the JSON
//! [`Topology`] and check it (overlaps, ranges) before anything is pushed; with policies, run
//! `CLUSTER POLICY <version> POLICY.SET ...` on every node; then `CLUSTER SETCONFIG <json>` on
//! every node. Every node is tried; the exit status is non-zero if any step failed anywhere.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde::Deserialize;

use crate::cluster::{Node, Replica, Topology};

/// The operator's file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyFile {
    /// Config epoch; must grow with every change.
    pub epoch: u64,
    /// Version of `policies` (required with policies; nodes that missed it refuse decisions).
    #[serde(default)]
    pub policy_version: u64,
    /// `AUTH` password of the nodes' default user, if they need one.
    #[serde(default)]
    pub password: Option<String>,
    /// `POLICY.SET` arguments, one policy per entry (`"free RATE 100/1m QUOTA 1000/day"`).
    #[serde(default)]
    pub policies: Vec<String>,
    /// The masters.
    #[serde(rename = "node")]
    pub nodes: Vec<NodeEntry>,
}

/// One master in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    /// `host:port` clients reach it at.
    pub address: String,
    /// Slot ranges: `"0-5460"`, `"7000"`.
    #[serde(default)]
    pub slots: Vec<String>,
    /// `host:port` of its replicas.
    #[serde(default)]
    pub replicas: Vec<String>,
}

fn split_address(a: &str) -> Result<(String, u16), String> {
    let (host, port) = a
        .rsplit_once(':')
        .ok_or_else(|| format!("address '{a}' is not host:port"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("address '{a}' has an invalid port"))?;
    Ok((host.trim_matches(['[', ']']).to_owned(), port))
}

fn parse_range(r: &str) -> Result<[u16; 2], String> {
    let bad = || format!("slot range '{r}' is not N or N-M with 0 <= N <= M <= 16383");
    let (a, b) = r.split_once('-').unwrap_or((r, r));
    let a: u16 = a.trim().parse().map_err(|_| bad())?;
    let b: u16 = b.trim().parse().map_err(|_| bad())?;
    if a > b || usize::from(b) >= crate::cluster::SLOTS {
        return Err(bad());
    }
    Ok([a, b])
}

/// Parses the file's text (without contacting any node).
pub fn parse_file(text: &str) -> Result<TopologyFile, String> {
    let f: TopologyFile = toml::from_str(text).map_err(|e| e.to_string())?;
    if f.nodes.is_empty() {
        return Err("the file names no [[node]]".into());
    }
    if !f.policies.is_empty() && f.policy_version == 0 {
        return Err("policies need a policy_version > 0 (raise it with every change)".into());
    }
    for n in &f.nodes {
        split_address(&n.address)?;
        for r in &n.slots {
            parse_range(r)?;
        }
        for r in &n.replicas {
            split_address(r)?;
        }
    }
    Ok(f)
}

/// A blocking RESP connection, enough for the admin commands this tool sends.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(address: &str, password: Option<&str>) -> Result<Conn, String> {
        let stream = TcpStream::connect(address).map_err(|e| format!("{address}: {e}"))?;
        let timeout = Some(Duration::from_secs(10));
        let _ = stream.set_read_timeout(timeout);
        let _ = stream.set_write_timeout(timeout);
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut c = Conn {
            reader: BufReader::new(stream),
            writer,
        };
        if let Some(p) = password {
            c.call(&["AUTH", p])?;
        }
        Ok(c)
    }

    /// Sends one command; returns a bulk or status reply's text, or the error line.
    fn call(&mut self, args: &[&str]) -> Result<String, String> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let line = line.trim_end_matches(['\r', '\n']);
        match line.as_bytes().first() {
            Some(b'+' | b':') => Ok(line[1..].to_owned()),
            Some(b'-') => Err(line[1..].to_owned()),
            Some(b'$') => {
                let n: usize = line[1..]
                    .parse()
                    .map_err(|_| format!("bad reply '{line}'"))?;
                let mut buf = vec![0u8; n + 2];
                self.reader
                    .read_exact(&mut buf)
                    .map_err(|e| e.to_string())?;
                buf.truncate(n);
                String::from_utf8(buf).map_err(|e| e.to_string())
            }
            _ => Err(format!("unexpected reply '{line}'")),
        }
    }
}

/// Reads `path`, then pushes the policies and the topology to every node; prints one line per
/// node and step. Returns whether every step succeeded.
pub fn apply(path: &std::path::Path) -> Result<bool, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = parse_file(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let password = file.password.as_deref();
    let mut addresses: Vec<&str> = Vec::new();
    for n in &file.nodes {
        addresses.push(&n.address);
        addresses.extend(n.replicas.iter().map(String::as_str));
    }
    // Every node's id first: nothing is pushed unless all nodes answer.
    let mut ids = Vec::new();
    for a in &addresses {
        let id = Conn::open(a, password)
            .and_then(|mut c| c.call(&["CLUSTER", "MYID"]))
            .map_err(|e| format!("{a}: CLUSTER MYID failed: {e}"))?;
        ids.push(id);
    }
    let mut next = ids.iter();
    let mut id = || next.next().cloned().unwrap_or_default();
    let mut nodes = Vec::new();
    for n in &file.nodes {
        let (host, port) = split_address(&n.address)?;
        let master_id = id();
        let mut replicas = Vec::new();
        for r in &n.replicas {
            let (host, port) = split_address(r)?;
            replicas.push(Replica {
                id: id(),
                host,
                port,
            });
        }
        nodes.push(Node {
            id: master_id,
            host,
            port,
            slots: n
                .slots
                .iter()
                .map(|r| parse_range(r))
                .collect::<Result<_, _>>()?,
            replicas,
        });
    }
    let topology = Topology {
        epoch: file.epoch,
        policy_version: file.policy_version,
        nodes,
    };
    topology.validate().map_err(|e| e.to_string())?;
    let json = topology.to_json();
    let mut ok = true;
    let version = file.policy_version.to_string();
    for a in &addresses {
        let result = Conn::open(a, password).and_then(|mut c| {
            for p in &file.policies {
                let words = crate::policy::model::split_words(p).map_err(|e| e.0)?;
                let mut args = vec!["CLUSTER", "POLICY", version.as_str(), "POLICY.SET"];
                args.extend(words.iter().map(String::as_str));
                c.call(&args).map_err(|e| format!("policy '{p}': {e}"))?;
            }
            c.call(&["CLUSTER", "SETCONFIG", &json])
        });
        match result {
            Ok(_) => println!("{a}: OK (epoch {})", file.epoch),
            Err(e) => {
                ok = false;
                eprintln!("{a}: {e}");
            }
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_file() {
        let f = parse_file(
            r#"
epoch = 3
policy_version = 1
policies = ['free RATE 100/1m QUOTA 1000/day']

[[node]]
address = "127.0.0.1:7001"
slots = ["0-5460"]
replicas = ["127.0.0.1:7004"]

[[node]]
address = "127.0.0.1:7002"
slots = ["5461-10922", "16383"]
"#,
        )
        .expect("valid");
        assert_eq!(f.nodes.len(), 2);
        assert_eq!(parse_range(&f.nodes[1].slots[1]), Ok([16383, 16383]));
    }

    #[test]
    fn refuses_bad_files_with_a_reason() {
        for (text, want) in [
            ("epoch = ", "TOML parse error"),
            ("epoch = 1\n", "missing field `node`"),
            (
                "epoch = 1\n[[node]]\naddress = \"h\"\n",
                "address 'h' is not host:port",
            ),
            (
                "epoch = 1\n[[node]]\naddress = \"h:1\"\nslots = [\"5-3\"]\n",
                "slot range '5-3' is not N or N-M",
            ),
            (
                "epoch = 1\npolicies = ['free RATE 1/1s']\n[[node]]\naddress = \"h:1\"\n",
                "policies need a policy_version",
            ),
            (
                "epoch = 1\n[[node]]\naddress = \"h:1\"\nshard = 2\n",
                "unknown field `shard`",
            ),
        ] {
            let e = parse_file(text).expect_err(text);
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}

//! The layering rules of docs/architecture.md, checked on the source: which top-level modules
//! of `src/` each module's code names (`crate::x` paths outside comments), that nothing below
//! the surfaces (`cmd`, `server`, `http`) names one of them, and that the module graph has no
//! cycle. A new import that breaks a rule fails here, naming the file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The surfaces: they call the engine; nothing else may name them (but `main.rs`/`lib.rs`).
const SURFACES: &[&str] = &["cmd", "server", "http", "cli"];

/// The library layers named in issue 16's "no import cycle" rule, bottom first, with the
/// modules each may name besides itself and the leaves (`clock`, `error`, `glob`, `protocol`,
/// `metrics`, `version`, `cluster`, `latency`).
const ALLOWED: &[(&str, &[&str])] = &[
    ("limiter", &[]),
    ("policy", &["limiter"]),
    ("store", &["limiter", "policy"]),
    ("persist", &["limiter", "policy", "store"]),
    ("acl", &[]),
    ("usage", &[]),
    ("cli", &["policy"]),
    ("script", &[]),
    // Webhook delivery: the queue the engine pushes to and the task the server runs.
    ("webhook", &["policy", "config"]),
    (
        "engine",
        &[
            "limiter", "policy", "store", "persist", "pubsub", "config", "script", "usage",
            "webhook",
        ],
    ),
    // Replication: the engine's feed, snapshots and the link to a master; reaches the server
    // only through its `Host` trait.
    ("repl", &["engine", "persist", "store", "config"]),
];

const LEAVES: &[&str] = &[
    "clock", "error", "glob", "protocol", "metrics", "version", "cluster", "latency",
];

/// Every `.rs` file under `dir`.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`src/cmd/x.rs` → `cmd`, `src/tls.rs` →
/// `tls`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The top-level modules a line of code names: `crate::x` and every name of a
/// `crate::{x, y::z}` group.
fn named(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => items.push(std::mem::take(&mut item)),
                    _ => item.push(c),
                }
            }
            items.push(item);
            for i in items {
                let name: String = i
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
        }
    }
    out
}

/// (module → (named module → first place it is named)) over `src/`, ignoring comments and
/// `#[cfg(test)]` modules at the end of a file (tests may use anything).
fn graph() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut g: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for f in all {
        let from = module_of(&src, &f);
        let text = fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let t = line.trim_start();
            if t.starts_with("#[cfg(test)]") {
                break;
            }
            if t.starts_with("//") {
                continue;
            }
            let code = t.split("//").next().unwrap_or("");
            for to in named(code) {
                if to != from {
                    let at = format!("{}:{}", f.display(), i + 1);
                    g.entry(from.clone()).or_default().entry(to).or_insert(at);
                }
            }
        }
    }
    g
}

#[test]
fn nothing_below_the_surfaces_names_them() {
    let g = graph();
    let mut bad = Vec::new();
    for (from, tos) in &g {
        if SURFACES.contains(&from.as_str()) || from == "main" || from == "lib" {
            continue;
        }
        for (to, at) in tos {
            if SURFACES.contains(&to.as_str()) {
                bad.push(format!("{from} names {to} at {at}"));
            }
        }
    }
    assert!(bad.is_empty(), "layer violations:\n{}", bad.join("\n"));
}

#[test]
fn library_layers_name_only_the_layers_below_them() {
    let g = graph();
    let mut bad = Vec::new();
    for (layer, may) in ALLOWED {
        for (to, at) in g.get(*layer).into_iter().flatten() {
            if !may.contains(&to.as_str()) && !LEAVES.contains(&to.as_str()) {
                bad.push(format!("{layer} names {to} at {at}"));
            }
        }
    }
    assert!(bad.is_empty(), "layer violations:\n{}", bad.join("\n"));
}

#[test]
fn the_module_graph_has_no_cycle() {
    let g = graph();
    // Depth-first search for a back edge; reports the cycle's modules.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            return Some(path[i..].to_vec());
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_owned());
        for to in g.get(n).into_iter().flat_map(|m| m.keys()) {
            if let Some(c) = visit(to, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for n in g.keys() {
        if n == "main" || n == "lib" {
            continue;
        }
        if let Some(cycle) = visit(n, &g, &mut Vec::new(), &mut done) {
            let edges: Vec<String> = cycle
                .iter()
                .zip(cycle.iter().cycle().skip(1))
                .map(|(a, b)| format!("{a} -> {b} ({})", g[a][b]))
                .collect();
            panic!("import cycle:\n{}", edges.join("\n"));
        }
    }
}

#[test]
fn the_parser_sees_groups_and_paths() {
    assert_eq!(
        named("use crate::{clock::Nanos, store::{Entry, Value}};"),
        ["clock", "store"]
    );
    assert_eq!(named("let x = crate::cmd::Shared::new();"), ["cmd"]);
}

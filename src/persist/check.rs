//! `limitkv aof check|repair FILE`: report on an AOF and cut it back to its last good record.
//!
//! Offline tools: run them while no server has the file open. `repair` cuts any problem,
//! including damage with valid-looking data after it (which startup refuses even with
//! `--aof-load-truncated yes`), because the operator asked for it; it keeps a byte-for-byte
//! backup at `FILE.bak` first.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::persist::record::CorruptReason;
use crate::persist::replay::{scan, Problem};
use crate::persist::PersistError;

/// What `check` found (and, after `repair`, what was done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Good records before the first problem.
    pub records: u64,
    /// Length of the valid prefix: where `repair` cuts.
    pub good_bytes: u64,
    /// File length as found.
    pub file_bytes: u64,
    /// Zeros after the valid prefix that a running (or crashed) server preallocated; not a
    /// problem, and `repair` leaves them.
    pub padding: u64,
    /// The first problem, if any.
    pub problem: Option<Problem>,
    /// Set by `repair` when it cut the file: the backup it wrote first.
    pub backup: Option<PathBuf>,
}

impl Report {
    /// True when the file has no problem.
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }

    /// Bytes `repair` drops (or dropped).
    pub fn dropped_bytes(&self) -> u64 {
        self.file_bytes - self.good_bytes
    }
}

impl fmt::Display for Report {
    /// The text the `aof check` subcommand prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "records: {}, valid bytes: {} of {}",
            self.records, self.good_bytes, self.file_bytes
        )?;
        match &self.problem {
            None if self.padding > 0 => write!(
                f,
                "AOF is valid ({} bytes of preallocated zeros after the last record)",
                self.padding
            ),
            None => write!(f, "AOF is valid"),
            Some(p) => {
                let kind = if p.tail { "torn tail" } else { "corruption" };
                write!(
                    f,
                    "{kind} at offset {}: {}; {} bytes after the last good record",
                    p.offset,
                    p.reason,
                    self.dropped_bytes()
                )?;
                if let Some(b) = &self.backup {
                    write!(
                        f,
                        "\ntruncated to {} bytes; backup at {}",
                        self.good_bytes,
                        b.display()
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// Scans `path` and reports; changes nothing.
pub fn check(path: &Path) -> Result<Report, PersistError> {
    let file = File::open(path).map_err(|e| ctx("opening", path, e))?;
    let s = scan(BufReader::new(file), |_| {}).map_err(|e| ctx("reading", path, e))?;
    Ok(Report {
        records: s.records,
        good_bytes: s.good_bytes,
        file_bytes: s.total_bytes,
        padding: s.padding,
        problem: s.problem,
        backup: None,
    })
}

/// Cuts `path` back to its last good record, after copying it to `FILE.bak`, and fsyncs.
/// A valid file is left untouched. A file that is not an AOF (bad magic, newer version) is
/// refused rather than emptied.
pub fn repair(path: &Path) -> Result<Report, PersistError> {
    let mut report = check(path)?;
    let Some(p) = &report.problem else {
        return Ok(report);
    };
    if matches!(
        p.reason,
        CorruptReason::BadMagic | CorruptReason::UnsupportedVersion(_)
    ) {
        return Err(PersistError::Corrupt {
            offset: p.offset,
            reason: p.reason.clone(),
            tail: false,
        });
    }
    let mut backup = path.as_os_str().to_owned();
    backup.push(".bak");
    let backup = PathBuf::from(backup);
    fs::copy(path, &backup).map_err(|e| ctx("backing up", path, e))?;
    File::open(&backup)
        .and_then(|f| f.sync_all())
        .map_err(|e| ctx("syncing", &backup, e))?;
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(report.good_bytes).and_then(|()| f.sync_all()))
        .map_err(|e| ctx("truncating", path, e))?;
    report.backup = Some(backup);
    Ok(report)
}

fn ctx(what: &str, path: &Path, e: std::io::Error) -> PersistError {
    PersistError::io(format!("{what} {}", path.display()), e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Nanos;
    use crate::persist::record::{encode, header};
    use crate::persist::{load_file, OnCorruptTail, Record};
    use crate::store::{Store, Value};
    use bytes::Bytes;

    fn aof(n: i64) -> (Vec<u8>, Vec<u64>) {
        let mut v = header().to_vec();
        let mut ends = Vec::new();
        for i in 0..n {
            encode(
                &Record::Put {
                    db: 0,
                    key: Bytes::from(format!("k{i}")),
                    value: Value::Int(i),
                    expires_at: None,
                },
                &mut v,
            );
            ends.push(v.len() as u64);
        }
        (v, ends)
    }

    #[test]
    fn check_reports_a_valid_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appendonly.aof");
        let (b, _) = aof(3);
        fs::write(&path, &b).unwrap();
        let r = check(&path).unwrap();
        assert!(r.is_ok());
        assert_eq!(
            (r.records, r.good_bytes, r.file_bytes),
            (3, b.len() as u64, b.len() as u64)
        );
        assert_eq!(
            r.to_string(),
            format!("records: 3, valid bytes: {0} of {0}\nAOF is valid", b.len())
        );
    }

    #[test]
    fn check_and_repair_accept_preallocated_zeros_after_the_last_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appendonly.aof");
        let (mut b, _) = aof(3);
        let good = b.len() as u64;
        b.resize(b.len() + 4096, 0);
        fs::write(&path, &b).unwrap();
        let r = check(&path).unwrap();
        assert!(r.is_ok());
        assert_eq!(
            (r.records, r.good_bytes, r.file_bytes, r.padding),
            (3, good, b.len() as u64, 4096)
        );
        assert!(r
            .to_string()
            .ends_with("AOF is valid (4096 bytes of preallocated zeros after the last record)"));
        let r = repair(&path).unwrap();
        assert!(r.backup.is_none());
        assert_eq!(fs::read(&path).unwrap(), b);
    }

    #[test]
    fn check_understands_script_and_function_records() {
        use crate::persist::ScriptsFlushTarget;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appendonly.aof");
        let (mut b, _) = aof(1);
        for r in [
            Record::Script {
                body: Bytes::from_static(b"return 1"),
            },
            Record::FunctionLibrary {
                code: Bytes::from_static(b"#!lua name=l\n"),
            },
            Record::FunctionDelete {
                name: Bytes::from_static(b"l"),
            },
            Record::ScriptsFlush {
                target: ScriptsFlushTarget::Functions,
            },
        ] {
            encode(&r, &mut b);
        }
        fs::write(&path, &b).unwrap();
        let r = check(&path).unwrap();
        assert!(r.is_ok(), "{r}");
        assert_eq!(r.records, 5);
        // An unknown flush target is corruption, named as such.
        let mut bad = header().to_vec();
        let payload = [8u8, 7];
        let len = payload.len() as u32;
        bad.extend_from_slice(&len.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), &payload);
        bad.extend_from_slice(&crc.to_le_bytes());
        bad.extend_from_slice(&payload);
        fs::write(&path, &bad).unwrap();
        let r = check(&path).unwrap();
        assert_eq!(
            r.problem.map(|p| p.reason),
            Some(CorruptReason::Malformed("scripts flush target"))
        );
    }

    #[test]
    fn repair_cuts_a_torn_tail_keeps_a_backup_and_then_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appendonly.aof");
        let (b, ends) = aof(3);
        let torn = &b[..b.len() - 2];
        fs::write(&path, torn).unwrap();
        let r = check(&path).unwrap();
        let p = r.problem.clone().unwrap();
        assert_eq!(
            (r.records, r.good_bytes, p.offset, p.tail),
            (2, ends[1], ends[1], true)
        );
        assert!(
            r.to_string()
                .contains(&format!("torn tail at offset {}", ends[1])),
            "{r}"
        );
        let r = repair(&path).unwrap();
        assert_eq!(r.dropped_bytes(), torn.len() as u64 - ends[1]);
        assert_eq!(fs::read(r.backup.as_ref().unwrap()).unwrap(), torn);
        assert_eq!(fs::metadata(&path).unwrap().len(), ends[1]);
        assert!(check(&path).unwrap().is_ok());
        let store = Store::new(2);
        let rep = load_file(
            &path,
            OnCorruptTail::Refuse,
            std::slice::from_ref(&store),
            &(),
            Nanos(0),
        )
        .unwrap();
        assert_eq!((rep.records, store.len()), (2, 2));
    }

    #[test]
    fn repair_cuts_mid_file_corruption_that_startup_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appendonly.aof");
        let (mut b, ends) = aof(3);
        b[ends[0] as usize + 10] ^= 1;
        fs::write(&path, &b).unwrap();
        let r = check(&path).unwrap();
        assert!(!r.problem.as_ref().unwrap().tail);
        assert!(r.to_string().contains("corruption at offset"), "{r}");
        let r = repair(&path).unwrap();
        assert_eq!(
            (r.records, fs::metadata(&path).unwrap().len()),
            (1, ends[0])
        );
    }

    #[test]
    fn repair_refuses_a_file_that_is_not_an_aof() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump.rdb");
        fs::write(&path, b"REDIS0011 something").unwrap();
        assert!(repair(&path).is_err());
        assert_eq!(fs::read(&path).unwrap(), b"REDIS0011 something");
    }

    #[test]
    fn repair_leaves_a_valid_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appendonly.aof");
        fs::write(&path, aof(2).0).unwrap();
        let r = repair(&path).unwrap();
        assert_eq!(r.backup, None);
        assert!(!dir.path().join("appendonly.aof.bak").exists());
    }
}

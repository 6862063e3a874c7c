//! The config file reader (`Config::load_str`) and `validate()` on arbitrary text.
//!
//! Invariants: no panic; a configuration that validates has decoder limits the decoder can
//! use, an output-buffer setting that renders and reads back the same, and its `policy` lines
//! load at start (`Engine::start`) without panicking (errors are fine: they refuse to
//! start). The server is built with one database and one shard whatever the text asks for, and
//! `policy-file` paths are not opened.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use limitkv::clock::{Clock, ManualClock, Nanos};
use limitkv::cmd::Shared;
use limitkv::config::{Config, OutputBufferLimits};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut cfg = Config::default();
    if let Err(e) = cfg.load_str(text, "fuzz.conf") {
        let _ = e.to_string();
        return;
    }
    if let Err(e) = cfg.validate() {
        let _ = e.to_string();
        return;
    }
    let limits = cfg.decode_limits();
    assert!(limits.max_bulk_len >= 1024 && limits.max_multibulk_len >= 1);

    let rendered = cfg.client_output_buffer_limit.render();
    let mut back = OutputBufferLimits::default();
    back.apply(&rendered)
        .unwrap_or_else(|e| panic!("rendered limits {rendered:?} refused: {e}"));
    assert_eq!(
        back, cfg.client_output_buffer_limit,
        "{rendered:?} reads back differently"
    );

    // Loading is deterministic: a restart reads the same file into the same settings.
    let mut again = Config::default();
    again
        .load_str(text, "fuzz.conf")
        .expect("the same text loads twice");
    assert_eq!(again, cfg, "loading is not deterministic");

    let small = Config {
        databases: 1,
        shards: 1,
        policy_files: Vec::new(),
        ..cfg
    };
    let clock = Arc::new(ManualClock::new(Nanos::from_secs(1_767_225_600)));
    let shared = Shared::new(small, clock as Arc<dyn Clock>);
    let _ = shared.engine.start();
});

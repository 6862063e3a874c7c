//! The `limitkv` binary: parse the configuration, set up logging, bind, and serve until
//! SIGINT/SIGTERM or `SHUTDOWN`. `limitkv aof check|repair FILE` inspects or repairs an
//! append-only file instead.

use std::sync::Arc;

use anyhow::Context;
use tracing_subscriber::{reload, EnvFilter};

use limitkv::clock::SystemClock;
use limitkv::config::Config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `limitkv aof check FILE` / `limitkv aof repair FILE`.
fn aof_tool(args: &[std::ffi::OsString]) -> anyhow::Result<std::process::ExitCode> {
    let usage = "usage: limitkv aof check|repair FILE";
    let (Some(action), Some(file), None) = (args.first(), args.get(1), args.get(2)) else {
        anyhow::bail!(usage);
    };
    let path = std::path::Path::new(file);
    let report = match action.to_str() {
        Some("check") => limitkv::persist::check::check(path),
        Some("repair") => limitkv::persist::check::repair(path),
        _ => anyhow::bail!(usage),
    }
    .with_context(|| format!("cannot read {}", path.display()))?;
    println!("{report}");
    let fixed = report.backup.is_some();
    Ok(if report.is_ok() || fixed {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// `threads 0` means one worker per core but one: the remaining core serves the kernel's
/// network stack and the AOF writer thread, which on larger machines measurably beats running a
/// worker on every core. Never fewer than two by default, though: a second worker keeps serving
/// while one waits on an AOF fsync under `appendfsync always`. (`--threads 1` is allowed: Lua
/// scripts run on blocking-pool threads, never on a worker, so `BUSY` and `SCRIPT KILL` work
/// with any number of workers. On two cores one worker brought `always` INCR level with
/// redis-server but cost pipelined throughput: run U in docs/benchmarks.md.)
fn worker_threads(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_sub(1).max(2)
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "aof") {
        return aof_tool(&args[2..]);
    }
    let config = Config::from_args(args).context("invalid configuration")?;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(config.loglevel.tracing_filter()));
    let (filter, reload_handle) = reload::Layer::new(filter);
    use tracing_subscriber::prelude::*;
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())),
        )
        .init();

    let (runtime, idle_commit) = limitkv::server::runtime(worker_threads(config.threads))
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = limitkv::server::bind(config.clone(), Arc::new(SystemClock))
            .await
            .with_context(|| {
                format!(
                    "cannot start the server (listening on {:?} port {}{}{})",
                    config.bind,
                    config.port,
                    if config.tls_port != 0 {
                        format!(", TLS port {}", config.tls_port)
                    } else {
                        String::new()
                    },
                    if config.appendonly {
                        format!(
                            ", loading {}",
                            config.dir.join(limitkv::persist::AOF_FILE).display()
                        )
                    } else {
                        String::new()
                    }
                )
            })?;
        server.attach_idle_commit(&idle_commit);
        *server.shared().on_loglevel.lock() = Some(Box::new(move |level| {
            let _ = reload_handle.modify(|f| *f = EnvFilter::new(level.tracing_filter()));
        }));
        match server.tls_addr() {
            Some(tls) => tracing::info!(
                version = env!("CARGO_PKG_VERSION"),
                addr = %server.local_addr(),
                tls = %tls,
                "limitkv ready to accept connections"
            ),
            None => tracing::info!(
                version = env!("CARGO_PKG_VERSION"),
                addr = %server.local_addr(),
                "limitkv ready to accept connections"
            ),
        }
        server
            .run(limitkv::server::shutdown::signal())
            .await
            .context("server failed")
    })?;
    Ok(std::process::ExitCode::SUCCESS)
}

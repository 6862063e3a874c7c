//! The `limitkv` binary: parse the configuration, set up logging, bind, and serve until
//! SIGINT/SIGTERM or `SHUTDOWN`; or run one of the subcommands ([`Tool`]: `limitkv aof
//! check|repair FILE` inspects or repairs an append-only file; `limitkv top` shows the top
//! denied identities of a running server, `limitkv::cli::top`).

use std::sync::Arc;

use anyhow::Context;
use tracing_subscriber::{reload, EnvFilter};

use limitkv::clock::SystemClock;
use limitkv::config::Config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's process figures (`mi_process_info`), in its order: elapsed, user and system
/// milliseconds, current and peak RSS, current and peak commit, page faults.
struct ProcessInfo {
    elapsed: usize,
    user: usize,
    system: usize,
    rss: usize,
    peak_rss: usize,
    commit: usize,
    peak_commit: usize,
    faults: usize,
}

/// Reads [`ProcessInfo`]. This FFI call is the reason main.rs (not the library, which forbids
/// unsafe code) reads the allocator's statistics.
fn process_info() -> ProcessInfo {
    let mut i = ProcessInfo {
        elapsed: 0,
        user: 0,
        system: 0,
        rss: 0,
        peak_rss: 0,
        commit: 0,
        peak_commit: 0,
        faults: 0,
    };
    // SAFETY: mi_process_info only writes through the eight pointers, each to a live field of
    // the local `i`; it has no other preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_process_info(
            &mut i.elapsed,
            &mut i.user,
            &mut i.system,
            &mut i.rss,
            &mut i.peak_rss,
            &mut i.commit,
            &mut i.peak_commit,
            &mut i.faults,
        );
    }
    i
}

/// mimalloc's own figures for `INFO memory` and `maxmemory`: the bytes it has committed for
/// the program (`used_memory`, what it holds from the OS for live and reusable blocks) and
/// their peak; the resident set size comes from /proc (`metrics::memory`).
fn mimalloc_memory() -> limitkv::metrics::MemoryStats {
    let i = process_info();
    limitkv::metrics::MemoryStats {
        used: i.commit as u64,
        peak: i.peak_commit as u64,
        rss: 0,
    }
}

/// `MEMORY MALLOC-STATS`: mimalloc's process figures.
fn mimalloc_report() -> String {
    let i = process_info();
    format!(
        "mimalloc process info\nelapsed_ms: {}\nuser_ms: {}\nsystem_ms: {}\n\
         current_rss: {}\npeak_rss: {}\ncurrent_commit: {}\n\
         peak_commit: {}\npage_faults: {}\n",
        i.elapsed, i.user, i.system, i.rss, i.peak_rss, i.commit, i.peak_commit, i.faults
    )
}

/// `MEMORY PURGE`: mimalloc returns the unused pages it holds.
fn mimalloc_purge() {
    // SAFETY: mi_collect has no preconditions; it may be called from any thread.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}

/// The binary's subcommands. `limitkv WORD ...` where WORD is neither an option, an existing
/// file nor a name ending in `.conf` is parsed as one of these, so an unknown word gets clap's
/// "unrecognized subcommand" error instead of being read as a config file path. Add a tool as
/// one more variant here and one more arm in [`run_tool`].
#[derive(Debug, clap::Parser)]
#[command(
    name = "limitkv",
    version,
    about = "Rate-limiter server speaking the Redis protocol",
    after_help = "Without a subcommand limitkv runs the server: `limitkv [CONFIG_FILE] [--key value ...]` \
                  as redis-server takes it (see `limitkv --help` with a config option)."
)]
struct ToolCli {
    #[command(subcommand)]
    tool: Tool,
}

#[derive(Debug, clap::Subcommand)]
enum Tool {
    /// Inspect or repair an append-only file.
    Aof {
        #[command(subcommand)]
        action: AofAction,
    },
    /// Live view of a running server's top denied identities and per-policy rates
    /// (`limitkv top --help` for its options).
    #[command(disable_help_flag = true)]
    Top {
        /// `limitkv top`'s own options, parsed by `limitkv::cli::top` (`-h` is the host there,
        /// as in redis-cli).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<std::ffi::OsString>,
    },
    /// Act on a cluster of limitkv nodes (docs/cluster.md).
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
}

#[derive(Debug, clap::Subcommand)]
enum ClusterAction {
    /// Push a topology (nodes, slot ranges, epoch, policies) to every node it names.
    Apply {
        /// The topology file (TOML).
        topology: std::path::PathBuf,
    },
}

#[derive(Debug, clap::Subcommand)]
enum AofAction {
    /// Report the file's records and whether its tail is torn or corrupt.
    Check {
        /// The append-only file.
        file: std::path::PathBuf,
    },
    /// Cut a torn or corrupt tail off the file, keeping a backup of the original.
    Repair {
        /// The append-only file.
        file: std::path::PathBuf,
    },
}

/// Whether `limitkv ARGS` names a subcommand rather than starting the server: the first
/// argument is a word that is not an option and not a config file (an existing file, or a
/// name ending in `.conf`, is one, as redis-server reads `redis-server /path/redis.conf`).
fn names_a_tool(args: &[std::ffi::OsString]) -> bool {
    let Some(first) = args.get(1) else {
        return false;
    };
    let text = first.to_string_lossy();
    !(text.starts_with('-') || text.ends_with(".conf") || std::path::Path::new(first).is_file())
}

fn run_tool(tool: Tool) -> anyhow::Result<std::process::ExitCode> {
    match tool {
        Tool::Aof { action } => aof_tool(action),
        Tool::Top { args } => Ok(limitkv::cli::top::run(&args)),
        Tool::Cluster {
            action: ClusterAction::Apply { topology },
        } => {
            let ok = limitkv::cli::cluster::apply(&topology).map_err(anyhow::Error::msg)?;
            Ok(if ok {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            })
        }
    }
}

/// `limitkv aof check FILE` / `limitkv aof repair FILE`.
fn aof_tool(action: AofAction) -> anyhow::Result<std::process::ExitCode> {
    let (path, report) = match &action {
        AofAction::Check { file } => (file, limitkv::persist::check::check(file)),
        AofAction::Repair { file } => (file, limitkv::persist::check::repair(file)),
    };
    let report = report.with_context(|| format!("cannot read {}", path.display()))?;
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
    if names_a_tool(&args) {
        use clap::Parser;
        return run_tool(ToolCli::parse_from(args).tool);
    }
    limitkv::metrics::install_memory_probe(mimalloc_memory, "mimalloc");
    limitkv::metrics::install_allocator_tools(limitkv::metrics::AllocatorTools {
        report: mimalloc_report,
        purge: mimalloc_purge,
    });
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

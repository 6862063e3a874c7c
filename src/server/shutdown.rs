//! Process signals that ask the server to stop: SIGINT and SIGTERM.

/// Resolves when the process receives SIGINT or SIGTERM.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => tracing::warn!("received SIGINT"),
                    _ = term.recv() => tracing::warn!("received SIGTERM"),
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot install SIGTERM handler; SIGINT only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::warn!("received Ctrl-C");
    }
}

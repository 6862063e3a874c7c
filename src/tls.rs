//! TLS for the client port (`tls-port`): builds a rustls server configuration from the
//! `tls-*` settings (certificates, key and CAs read from PEM files) and holds the one in force,
//! so `CONFIG SET tls-cert-file ...` can swap it for new connections while established ones
//! keep theirs.
//!
//! Depends on [`crate::config`] only; no sockets (the server does the handshakes). The crypto
//! provider is rustls's `ring` one, named explicitly, so no process-wide default is needed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, TlsAuthClients};

/// Why a TLS configuration could not be built. The texts follow Redis's log lines, with the
/// file named.
#[derive(Debug, Error)]
pub enum TlsError {
    /// `tls-port` is set but `tls-cert-file` is not.
    #[error("No tls-cert-file configured!")]
    NoCertFile,
    /// `tls-port` is set but `tls-key-file` is not.
    #[error("No tls-key-file configured!")]
    NoKeyFile,
    /// Client certificates are verified but there is nothing to verify them against.
    #[error(
        "Either tls-ca-cert-file or tls-ca-cert-dir must be specified when tls-auth-clients is enabled!"
    )]
    NoCa,
    /// The certificate file could not be read or holds no certificate.
    #[error("Failed to load certificate: {0}: {1}")]
    Certificate(PathBuf, String),
    /// The key file could not be read, holds no key, or the key does not match the certificate.
    #[error("Failed to load private key: {0}: {1}")]
    PrivateKey(PathBuf, String),
    /// The CA file or directory could not be read or holds no usable certificate.
    #[error("Failed to configure CA certificate(s) file/directory: {0}: {1}")]
    Ca(PathBuf, String),
    /// rustls refused the combination (protocol versions, verifier).
    #[error("Failed to configure TLS: {0}")]
    Rustls(String),
}

/// The TLS configuration new connections on the TLS port get, replaced as a whole by
/// [`Tls::configure`]. Empty until TLS is configured.
#[derive(Default)]
pub struct Tls {
    current: RwLock<Option<TlsAcceptor>>,
}

impl Tls {
    /// The acceptor for a new connection (`None` if TLS was never configured). Cloning it is
    /// a reference count: a connection keeps the configuration it started with.
    pub fn acceptor(&self) -> Option<TlsAcceptor> {
        self.current.read().clone()
    }

    /// Builds a configuration from `cfg`'s `tls-*` settings and puts it in force. On error
    /// the previous configuration stays in force.
    pub fn configure(&self, cfg: &Config) -> Result<(), TlsError> {
        let server = server_config(cfg)?;
        *self.current.write() = Some(TlsAcceptor::from(server));
        Ok(())
    }
}

/// The rustls server configuration for `cfg`'s `tls-*` settings.
pub fn server_config(cfg: &Config) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_file = cfg.tls_cert_file.as_deref().ok_or(TlsError::NoCertFile)?;
    let key_file = cfg.tls_key_file.as_deref().ok_or(TlsError::NoKeyFile)?;
    let chain =
        load_certs(cert_file).map_err(|e| TlsError::Certificate(cert_file.to_owned(), e))?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| TlsError::PrivateKey(key_file.to_owned(), pem_error(e)))?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&protocol_versions(cfg))
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match cfg.tls_auth_clients {
        TlsAuthClients::No => builder.with_no_client_auth(),
        auth => {
            let roots = Arc::new(roots(cfg)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if auth == TlsAuthClients::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| TlsError::Rustls(e.to_string()))?,
            )
        }
    };
    // rustls checks that the key matches the certificate's public key.
    let server = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::PrivateKey(key_file.to_owned(), e.to_string()))?;
    Ok(Arc::new(server))
}

/// `tls-protocols` as rustls versions (the config setter accepted only TLSv1.2 and TLSv1.3).
fn protocol_versions(cfg: &Config) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let (v12, v13) = cfg.tls_protocol_versions();
    let mut out = Vec::with_capacity(2);
    if v12 {
        out.push(&rustls::version::TLS12);
    }
    if v13 {
        out.push(&rustls::version::TLS13);
    }
    out
}

/// Every certificate in `path`, in order (the server's own first, then its chain).
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err("no certificate found".into());
    }
    Ok(certs)
}

/// The CAs client certificates are verified against: `tls-ca-cert-file`, then every file of
/// `tls-ca-cert-dir` that holds PEM certificates (OpenSSL's hashed names are not required).
fn roots(cfg: &Config) -> Result<RootCertStore, TlsError> {
    if cfg.tls_ca_cert_file.is_none() && cfg.tls_ca_cert_dir.is_none() {
        return Err(TlsError::NoCa);
    }
    let mut store = RootCertStore::empty();
    if let Some(file) = cfg.tls_ca_cert_file.as_deref() {
        let fail = |e: String| TlsError::Ca(file.to_owned(), e);
        for cert in load_certs(file).map_err(fail)? {
            store.add(cert).map_err(|e| fail(e.to_string()))?;
        }
    }
    if let Some(dir) = cfg.tls_ca_cert_dir.as_deref() {
        let fail = |e: String| TlsError::Ca(dir.to_owned(), e);
        let mut entries = std::fs::read_dir(dir)
            .map_err(|e| fail(e.to_string()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect::<Vec<_>>();
        entries.sort();
        for path in entries {
            // Files that are not PEM certificates (keys, CRLs, notes) are skipped, as
            // OpenSSL's directory lookup ignores what it cannot use.
            if let Ok(certs) = load_certs(&path) {
                let (_, _) = store.add_parsable_certificates(certs);
            }
        }
    }
    if store.is_empty() {
        let path = cfg
            .tls_ca_cert_file
            .clone()
            .or_else(|| cfg.tls_ca_cert_dir.clone())
            .unwrap_or_default();
        return Err(TlsError::Ca(path, "no usable CA certificate found".into()));
    }
    Ok(store)
}

/// rustls's *ring* provider with its default suites and key exchange groups. rustls 0.23.48
/// deprecated it for lacking post-quantum key exchange (aws-lc-rs has it); *ring* is kept
/// because it builds without cmake/nasm.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_error(e: rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(e) => e.to_string(),
        rustls_pki_types::pem::Error::NoItemsFound => "no PEM item of the expected kind".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let mut cfg = Config {
            tls_port: 6380,
            ..Config::default()
        };
        assert!(matches!(server_config(&cfg), Err(TlsError::NoCertFile)));
        cfg.tls_cert_file = Some(PathBuf::from("/nonexistent/server.crt"));
        assert!(matches!(server_config(&cfg), Err(TlsError::NoKeyFile)));
        cfg.tls_key_file = Some(PathBuf::from("/nonexistent/server.key"));
        let err = server_config(&cfg).unwrap_err().to_string();
        assert!(
            err.starts_with("Failed to load certificate: /nonexistent/server.crt: "),
            "{err}"
        );
    }
}

//! A throwaway PKI for TLS tests, made with the openssl CLI: a CA, and server and client
//! certificates signed by it.

use std::path::PathBuf;
use std::process::Command;

/// A throwaway PKI made with the openssl CLI: CAs, and certificates signed by them.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// `None` (with the reason printed) when the openssl CLI is missing.
    pub fn new() -> Option<Pki> {
        let found = Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            eprintln!("note: the openssl CLI is not on PATH; skipping this TLS test");
            return None;
        }
        let pki = Pki {
            dir: super::temp_dir(),
        };
        pki.ca("ca");
        pki.cert("server", "ca", SERVER_EXT);
        pki.cert("client", "ca", CLIENT_EXT);
        Some(pki)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// `path(file)` as a string, for command lines.
    pub fn p(&self, file: &str) -> String {
        self.path(file).display().to_string()
    }

    pub fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    }

    /// `name.crt` / `name.key`: a self-signed CA.
    pub fn ca(&self, name: &str) {
        let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "2",
            "-subj",
            &format!("/CN=limitkv test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }

    /// `name.crt` / `name.key`: a certificate signed by the CA `ca`, with extensions `ext`.
    pub fn cert(&self, name: &str, ca: &str, ext: &str) {
        let (crt, key, csr, extfile) = (
            format!("{name}.crt"),
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.ext"),
        );
        std::fs::write(self.path(&extfile), ext).expect("write the extensions file");
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &extfile,
        ]);
    }

    /// The TLS flags for a server using `server.crt` and verifying clients against `ca.crt`.
    pub fn server_args(&self, tls_port: u16, auth: &str) -> Vec<String> {
        vec![
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            self.p("server.crt"),
            "--tls-key-file".into(),
            self.p("server.key"),
            "--tls-ca-cert-file".into(),
            self.p("ca.crt"),
            "--tls-auth-clients".into(),
            auth.into(),
        ]
    }
}

pub const SERVER_EXT: &str =
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
pub const CLIENT_EXT: &str = "extendedKeyUsage=clientAuth\n";

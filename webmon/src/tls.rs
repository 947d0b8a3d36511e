//! The TLS side: the certificate and key from the config (PEM), a self-signed pair made with
//! the `openssl` command on first start, and the rustls server configuration (ring, TLS 1.3
//! and 1.2 only).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Making the self-signed pair failed.
    #[error("cannot make a self-signed certificate at {}: {reason}", path.display())]
    Generate {
        /// The certificate's path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the pair.
    #[error("the certificate {} and key {} do not work together: {reason}", cert.display(), key.display())]
    Config {
        /// The certificate.
        cert: PathBuf,
        /// The key.
        key: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The loaded server side.
#[derive(Debug, Clone)]
pub struct Tls {
    /// For every new connection.
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate, `AB:CD:...`.
    pub fingerprint: String,
}

/// SHA-256 of DER bytes as colon-separated upper-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Makes a self-signed P-256 pair at `cert`/`key` (key mode 0600) with the `openssl` command.
/// The names: `localhost`, 127.0.0.1, ::1 and the host's name.
pub fn generate(cert: &Path, key: &Path) -> Result<(), TlsError> {
    let gen_err = |reason: String| TlsError::Generate {
        path: cert.to_path_buf(),
        reason,
    };
    for p in [cert, key] {
        if let Some(dir) = p.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| gen_err(format!("cannot create {}: {e}", dir.display())))?;
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "825",
            "-subj",
        ])
        .arg(format!("/CN={host}"))
        .arg("-addext")
        .arg(format!(
            "subjectAltName=DNS:{host},DNS:localhost,IP:127.0.0.1,IP:::1"
        ))
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            gen_err(format!(
                "cannot run openssl (install the openssl package): {e}"
            ))
        })?;
    if !out.status.success() {
        return Err(gen_err(format!(
            "openssl failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| gen_err(format!("cannot restrict {}: {e}", key.display())))?;
    Ok(())
}

/// Loads the pair and builds the server configuration.
pub fn load(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::File {
            path: cert.to_path_buf(),
            reason: format!("cannot read a PEM certificate: {e}"),
        })?;
    let Some(leaf) = certs.first() else {
        return Err(TlsError::File {
            path: cert.to_path_buf(),
            reason: "holds no certificate".into(),
        });
    };
    let fingerprint = fingerprint(leaf);
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File {
        path: key.to_path_buf(),
        reason: format!("cannot read a PEM private key: {e}"),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config_err = |reason: String| TlsError::Config {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        reason,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| config_err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| config_err(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(config),
        fingerprint,
    })
}

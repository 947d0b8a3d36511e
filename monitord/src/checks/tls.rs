//! rustls client configurations for HTTPS checks (ring provider only), built once and shared.
//!
//! - `verify = true` (default): the chain is verified against Mozilla's roots (`webpki-roots`,
//!   compiled in: no dependence on the host's CA bundle), or against the PEM certificates of
//!   `ca_file` when given, and the name against `host` (or the server's IP address).
//! - The server name (SNI) is sent only for a host name: for an address, IPv4 or IPv6 (no
//!   `host`, or `host = "[2001:db8::11]:8443"`), none is sent, as RFC 6066 says (literal
//!   addresses are not allowed in SNI); the certificate must then name that address.
//! - `verify = false`: **any certificate is accepted**, whoever issued it and whatever name it
//!   carries ([`AcceptAnyCert`]). The handshake signature is still checked against the key in
//!   the presented certificate, so the peer must hold that key; this is for health checks of
//!   servers with self-signed certificates, never for carrying secrets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::HttpCheck;

/// Accepts every server certificate (see the module docs: `verify = false`).
#[derive(Debug)]
pub struct AcceptAnyCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The configurations in use, by kind of verification.
#[derive(Debug, Default)]
pub(crate) struct TlsConfigs {
    mozilla: Option<Arc<ClientConfig>>,
    any: Option<Arc<ClientConfig>>,
    by_ca: HashMap<PathBuf, Arc<ClientConfig>>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn with_roots(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    let c = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(c))
}

fn load_ca(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
    for c in certs {
        let c = c.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("ca_file {}: no certificate in it", path.display()));
    }
    Ok(roots)
}

impl TlsConfigs {
    /// The configuration for `check`, built on first use.
    pub(crate) fn get(&mut self, check: &HttpCheck) -> Result<Arc<ClientConfig>, String> {
        if !check.verify {
            if let Some(c) = &self.any {
                return Ok(c.clone());
            }
            let p = provider();
            let verifier = AcceptAnyCert {
                algorithms: p.signature_verification_algorithms,
            };
            let c = ClientConfig::builder_with_provider(p)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS set-up: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth();
            let c = Arc::new(c);
            self.any = Some(c.clone());
            return Ok(c);
        }
        match &check.ca_file {
            Some(path) => {
                if let Some(c) = self.by_ca.get(path) {
                    return Ok(c.clone());
                }
                let c = with_roots(load_ca(path)?)?;
                self.by_ca.insert(path.clone(), c.clone());
                Ok(c)
            }
            None => {
                if let Some(c) = &self.mozilla {
                    return Ok(c.clone());
                }
                let roots = RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                let c = with_roots(roots)?;
                self.mozilla = Some(c.clone());
                Ok(c)
            }
        }
    }

    /// Forgets every cached configuration (a changed `ca_file` is read again).
    pub(crate) fn clear(&mut self) {
        *self = TlsConfigs::default();
    }
}

/// The name to send (SNI) and verify: `host` without its port, or the server's address.
pub(crate) fn server_name(check: &HttpCheck, addr: IpAddr) -> Result<ServerName<'static>, String> {
    let Some(host) = &check.host else {
        return Ok(ServerName::IpAddress(addr.into()));
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or(host)
    } else {
        host.as_str()
    };
    ServerName::try_from(name.to_owned()).map_err(|e| format!("host {host}: {e}"))
}

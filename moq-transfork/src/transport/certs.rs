//! The server's certificates, replaceable while listeners serve them (certificate reload).

use std::sync::{Arc, PoisonError, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::tls::{ServerTls, TlsError};
use super::verify::choose;

/// The certificates a server shows, shared by the listeners that use them and replaceable
/// while they run.
///
/// Each TLS handshake reads the current set once and picks a chain by SNI (spec §10.1), so a
/// [`replace`](Self::replace) applies to the handshakes that follow while established
/// connections keep what they negotiated. Nothing reads it per packet.
///
/// An [`Endpoint`](super::Endpoint) with a server side holds one
/// ([`Endpoint::certificates`](super::Endpoint::certificates)); another TLS listener, such as
/// HTTPS on TCP, shares it through `rustls::ServerConfig::with_cert_resolver`, since it
/// implements [`ResolvesServerCert`].
///
/// # Examples
///
/// ```
/// use moq_transfork::transport::{CertResolver, ServerTls};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let localhost = ["localhost".to_string()];
/// let certs = CertResolver::new(ServerTls::self_signed(&localhost)?);
/// let before = certs.current().fingerprints();
/// let old = certs.replace(ServerTls::self_signed(&localhost)?);
/// assert_eq!(old.fingerprints(), before);
/// assert_ne!(certs.current().fingerprints(), before);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<ServerTls>>,
}

impl CertResolver {
    /// Shows `tls` until it is replaced.
    pub fn new(tls: ServerTls) -> Self {
        Self {
            current: RwLock::new(Arc::new(tls)),
        }
    }

    /// The certificates new handshakes use.
    pub fn current(&self) -> Arc<ServerTls> {
        // The lock only guards an `Arc` swap, which cannot leave it half-written.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A rustls server config (TLS 1.3, the endpoint's ALPNs) whose handshakes show what
    /// `certs` holds at the time, so it follows [`replace`](Self::replace). A server on
    /// another protocol (HTTPS over TCP) sets its own ALPNs on it.
    ///
    /// # Errors
    /// [`TlsError::Rustls`] when rustls refuses the protocol versions.
    pub fn server_config(certs: &Arc<Self>) -> Result<rustls::ServerConfig, TlsError> {
        super::tls::server_config(certs.clone())
    }

    /// Makes new handshakes use `tls`; returns the certificates used until now.
    pub fn replace(&self, tls: ServerTls) -> Arc<ServerTls> {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *current, Arc::new(tls))
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        choose(&self.current().keys, hello.server_name())
    }
}

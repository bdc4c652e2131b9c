//! Certificate choice by SNI on the server and the non-default certificate checks of the client.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// The certificate for a handshake asking for SNI `name`: the first of `keys` whose leaf is
/// valid for `name`, or the last one when none is, as moq-relay does (spec §10.1).
pub(crate) fn choose(keys: &[Arc<CertifiedKey>], name: Option<&str>) -> Option<Arc<CertifiedKey>> {
    let name = name.and_then(|name| ServerName::try_from(name).ok());
    let matching = name.and_then(|name| keys.iter().find(|key| valid_for(key, &name)).cloned());
    matching.or_else(|| keys.last().cloned())
}

/// Whether the leaf of `key` names `name` in its subject alternative names.
fn valid_for(key: &CertifiedKey, name: &ServerName<'_>) -> bool {
    // Parsing per handshake is cheap next to the handshake itself, and borrowing keeps the
    // resolver free of self-referential parsed state.
    let Ok(leaf) = key.end_entity_cert() else {
        return false;
    };
    let Ok(parsed) = ParsedCertificate::try_from(leaf) else {
        return false;
    };
    rustls::client::verify_server_name(&parsed, name).is_ok()
}

/// What a [`LooseVerifier`] requires of the server's leaf certificate.
#[derive(Debug, Clone)]
pub(crate) enum Pin {
    /// Anything (development only, spec §11 `--tls-disable-verify`).
    Any,
    /// A leaf whose SHA-256 is one of these, like the browser's `serverCertificateHashes`.
    Sha256(Vec<Vec<u8>>),
}

/// A verifier that skips the chain of trust but still checks the handshake signatures, so the
/// peer must hold the key of the certificate it presented.
#[derive(Debug)]
pub(crate) struct LooseVerifier {
    pub(crate) pin: Pin,
    pub(crate) algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for LooseVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.pin {
            Pin::Any => Ok(ServerCertVerified::assertion()),
            Pin::Sha256(hashes) => {
                let hash = Sha256::digest(end_entity.as_ref());
                if hashes
                    .iter()
                    .any(|pinned| pinned.as_slice() == hash.as_slice())
                {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::InvalidCertificate(
                        CertificateError::ApplicationVerificationFailure,
                    ))
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

//! TLS 1.3 configuration for both sides of an endpoint (spec §2.3, §10.1, §11).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
#[cfg(feature = "dev-cert")]
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
#[cfg(feature = "dev-cert")]
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, KeyLogFile, RootCertStore};
use sha2::{Digest, Sha256};

use super::certs::CertResolver;
use super::endpoint::{ALPN_QUIC, ALPN_WEBTRANSPORT};
use super::verify::{LooseVerifier, Pin};

/// How long a generated certificate stays valid. Browsers accept a certificate pinned with
/// `serverCertificateHashes` only if its validity is shorter than 14 days.
#[cfg(feature = "dev-cert")]
const SELF_SIGNED_VALIDITY: Duration = Duration::from_secs(10 * 24 * 60 * 60);

/// How far back a generated certificate's validity starts, to absorb clock skew.
#[cfg(feature = "dev-cert")]
const SELF_SIGNED_BACKDATE: Duration = Duration::from_secs(60);

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A certificate file holds no PEM certificate.
    #[error("{}: no certificate in PEM file", .0.display())]
    NoCertificate(PathBuf),
    /// A key file holds no PEM private key.
    #[error("{}: no private key in PEM file", .0.display())]
    NoPrivateKey(PathBuf),
    /// A certificate or key was found but rustls refused it.
    #[error("{}: {source}", path.display())]
    Invalid {
        /// The file it came from.
        path: PathBuf,
        /// Why rustls refused it.
        source: rustls::Error,
    },
    /// The private key is not the one the certificate was issued for.
    #[error("key {} does not match certificate {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// Certificates and keys are given in pairs, so their counts must be equal (spec §10.1).
    #[error("{certs} certificate files but {keys} key files")]
    CountMismatch {
        /// How many certificate files were given.
        certs: usize,
        /// How many key files were given.
        keys: usize,
    },
    /// A server needs at least one certificate.
    #[error("missing TLS certificates")]
    MissingCertificates,
    /// The platform's root store yielded no usable certificate.
    #[error("no usable system root certificates: {0}")]
    NoSystemRoots(String),
    /// Generating a self-signed certificate failed.
    #[cfg(feature = "dev-cert")]
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider used everywhere: ring (spec §2.3).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Opens `path` for buffered reading, with the path in the error.
fn open(path: &Path) -> Result<BufReader<File>, TlsError> {
    let file = File::open(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(BufReader::new(file))
}

/// Every PEM certificate in `path`, failing when there is none.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut open(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Io {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// The first PEM private key in `path`.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut open(path)?)
        .map_err(|source| TlsError::Io {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::NoPrivateKey(path.to_owned()))
}

/// The SHA-256 of a certificate's DER, as lowercase hex.
fn fingerprint(cert: &CertificateDer<'_>) -> String {
    hex::encode(Sha256::digest(cert.as_ref()))
}

/// The server side: one or more certificate chains with their keys.
///
/// The chain for a handshake is picked by SNI: the first chain whose leaf is valid for the
/// requested name, else the last chain (spec §10.1).
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// Never empty: every constructor makes or loads at least one.
    pub(super) keys: Vec<Arc<CertifiedKey>>,
    generated: bool,
}

impl ServerTls {
    /// Loads PEM certificate chains and their private keys, `certs[i]` paired with `keys[i]`.
    ///
    /// # Errors
    /// Fails when the counts differ or are zero, a file cannot be read (the error names the
    /// path), a file holds no certificate or key, or a key does not belong to its certificate.
    pub fn load(certs: &[PathBuf], keys: &[PathBuf]) -> Result<Self, TlsError> {
        if certs.len() != keys.len() {
            return Err(TlsError::CountMismatch {
                certs: certs.len(),
                keys: keys.len(),
            });
        }
        if certs.is_empty() {
            return Err(TlsError::MissingCertificates);
        }

        let provider = provider();
        let keys = certs
            .iter()
            .zip(keys)
            .map(|(cert, key)| Self::load_pair(&provider, cert, key))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            keys,
            generated: false,
        })
    }

    fn load_pair(
        provider: &CryptoProvider,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<Arc<CertifiedKey>, TlsError> {
        let chain = read_certs(cert_path)?;
        let key = read_key(key_path)?;
        let key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|source| TlsError::Invalid {
                path: key_path.to_owned(),
                source,
            })?;

        let certified = CertifiedKey::new(chain, key);
        match certified.keys_match() {
            // Some key types cannot report their public key; trust those as rustls does.
            Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {
                Ok(Arc::new(certified))
            }
            Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
                Err(TlsError::KeyMismatch {
                    cert: cert_path.to_owned(),
                    key: key_path.to_owned(),
                })
            }
            Err(source) => Err(TlsError::Invalid {
                path: cert_path.to_owned(),
                source,
            }),
        }
    }

    /// Generates a self-signed ECDSA P-256 certificate for `hostnames` (DNS names or IP
    /// addresses), valid from one minute ago for 10 days.
    ///
    /// Those are the rules browsers set for certificates pinned with `serverCertificateHashes`,
    /// so a browser can connect after fetching [`ServerTls::fingerprints`] (spec §10.2).
    /// For development: needs the cargo feature `dev-cert`.
    ///
    /// # Errors
    /// Fails when a hostname is not a valid DNS name or IP address.
    #[cfg(feature = "dev-cert")]
    pub fn self_signed(hostnames: &[String]) -> Result<Self, TlsError> {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        // `CertificateParams::new` turns names that parse as IP addresses into IP SANs.
        let mut params = rcgen::CertificateParams::new(hostnames.to_vec())?;
        let now = SystemTime::now();
        params.not_before = (now - SELF_SIGNED_BACKDATE).into();
        params.not_after = (now + SELF_SIGNED_VALIDITY).into();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "moq-transfork self-signed");
        let cert = params.self_signed(&key_pair)?;

        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
        let key = provider().key_provider.load_private_key(key)?;
        let certified = CertifiedKey::new(vec![cert.der().clone()], key);
        Ok(Self {
            keys: vec![Arc::new(certified)],
            generated: true,
        })
    }

    /// The lowercase hex SHA-256 of each chain's leaf DER, in load order (spec §10.2, §11).
    pub fn fingerprints(&self) -> Vec<String> {
        self.leaves().map(fingerprint).collect()
    }

    /// The leaf certificate of each chain, in load order.
    pub fn leaves(&self) -> impl Iterator<Item = &CertificateDer<'static>> {
        self.keys.iter().filter_map(|key| key.cert.first())
    }

    /// Whether the certificate was generated (`ServerTls::self_signed`, feature `dev-cert`).
    pub fn is_generated(&self) -> bool {
        self.generated
    }

    /// A rustls server config: TLS 1.3 only, ALPN `[h3, moqf-02]`, SNI-based certificate choice,
    /// key log written to `$SSLKEYLOGFILE` if set (spec §2.3). Its certificates are fixed; an
    /// [`Endpoint`](super::Endpoint) serves them through a replaceable [`CertResolver`].
    ///
    /// # Errors
    /// Fails when rustls rejects the protocol versions.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        server_config(Arc::new(CertResolver::new(self.clone())))
    }
}

/// The server config of [`ServerTls::server_config`], showing what `certs` currently holds.
pub(super) fn server_config(certs: Arc<CertResolver>) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![ALPN_WEBTRANSPORT.to_vec(), ALPN_QUIC.to_vec()];
    config.key_log = Arc::new(KeyLogFile::new());
    // No session resumption (nothing here uses 0-RTT): each ticket would be a cache entry
    // outliving its connection, a relay-wide cache that churn keeps rewriting.
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(config)
}

/// How the client checks a server's certificate.
#[derive(Clone, Debug)]
enum Verify {
    /// Standard WebPKI verification against these roots.
    Roots(Arc<RootCertStore>),
    /// No chain check, only the handshake signature (and an optional hash pin).
    Loose(Pin),
}

/// The client side: how to verify servers.
#[derive(Clone, Debug)]
pub struct ClientTls {
    verify: Verify,
}

impl ClientTls {
    /// Trusts the platform's root certificates.
    ///
    /// # Errors
    /// Fails when the platform store yields no usable certificate.
    pub fn system_roots() -> Result<Self, TlsError> {
        let native = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            let errors: Vec<String> = native.errors.iter().map(ToString::to_string).collect();
            return Err(TlsError::NoSystemRoots(errors.join("; ")));
        }
        Ok(Self::with_store(roots))
    }

    /// Trusts every PEM certificate in each of `paths`, and nothing else.
    ///
    /// # Errors
    /// Fails when a file cannot be read, holds no certificate, or holds an unusable one.
    pub fn with_roots(paths: &[PathBuf]) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        for path in paths {
            for cert in read_certs(path)? {
                roots.add(cert).map_err(|source| TlsError::Invalid {
                    path: path.clone(),
                    source,
                })?;
            }
        }
        Ok(Self::with_store(roots))
    }

    fn with_store(roots: RootCertStore) -> Self {
        Self {
            verify: Verify::Roots(Arc::new(roots)),
        }
    }

    /// Accepts any certificate, for development only. The handshake signature is still
    /// checked, so the server must hold the key of the certificate it shows (spec §11).
    pub fn disable_verify() -> Self {
        Self {
            verify: Verify::Loose(Pin::Any),
        }
    }

    /// Accepts only a leaf certificate whose SHA-256 is one of `hashes`, with no chain check,
    /// like the browser's `serverCertificateHashes` (spec §10.2).
    pub fn with_fingerprints(hashes: Vec<Vec<u8>>) -> Self {
        Self {
            verify: Verify::Loose(Pin::Sha256(hashes)),
        }
    }

    /// A rustls client config offering exactly one ALPN, TLS 1.3 only, key log written to
    /// `$SSLKEYLOGFILE` if set (spec §2.3).
    ///
    /// # Errors
    /// Fails when rustls rejects the protocol versions.
    pub fn client_config(&self, alpn: &[u8]) -> Result<rustls::ClientConfig, TlsError> {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        let mut config = match &self.verify {
            Verify::Roots(roots) => builder
                .with_root_certificates(roots.clone())
                .with_no_client_auth(),
            Verify::Loose(pin) => {
                let verifier = LooseVerifier {
                    pin: pin.clone(),
                    algorithms: provider.signature_verification_algorithms,
                };
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier))
                    .with_no_client_auth()
            }
        };
        config.alpn_protocols = vec![alpn.to_vec()];
        config.key_log = Arc::new(KeyLogFile::new());
        Ok(config)
    }
}

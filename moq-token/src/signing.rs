//! Signing keys: generated, written and read as private JWKs, and used to sign tokens.

use std::path::Path;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use serde::{Deserialize, Serialize};

use crate::{Claims, KeyError};

/// The PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410 §7): the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A key that signs tokens: HS256 (a shared secret), ES256 (P-256) or EdDSA (Ed25519).
///
/// Stored as a private JWK (RFC 7517/7518/8037) with a `kid`; [`SigningKey::public_jwk`] is
/// what a relay is given to verify with (for HS256, the secret itself).
///
/// ```
/// use jsonwebtoken::Algorithm;
/// use moq_token::SigningKey;
///
/// let key = SigningKey::generate(Algorithm::EdDSA, "main").unwrap();
/// let again = SigningKey::from_json(&key.to_json()).unwrap();
/// assert_eq!(again.kid(), "main");
/// ```
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    /// The HMAC secret, the Ed25519 seed or the P-256 scalar.
    secret: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A private JWK as written to disk.
#[derive(Serialize, Deserialize)]
struct PrivateJwk {
    kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crv: Option<String>,
    alg: String,
    kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    d: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<String>,
}

impl SigningKey {
    /// A new random key for `alg` (HS256, ES256 or EdDSA), named `kid`.
    ///
    /// # Errors
    /// [`KeyError::Unsupported`] for another algorithm, [`KeyError::Random`] when the system
    /// has no randomness to give.
    pub fn generate(alg: Algorithm, kid: impl Into<String>) -> Result<Self, KeyError> {
        let secret = match alg {
            Algorithm::HS256 | Algorithm::EdDSA => random::<32>()?.to_vec(),
            Algorithm::ES256 => loop {
                // Almost every 32-byte string is a valid scalar; retry the rare others.
                let bytes = random::<32>()?;
                if p256::SecretKey::from_slice(&bytes).is_ok() {
                    break bytes.to_vec();
                }
            },
            other => return Err(KeyError::Unsupported(format!("{other:?}"))),
        };
        Ok(Self {
            kid: kid.into(),
            alg,
            secret,
        })
    }

    /// Reads a private JWK file written by [`SigningKey::to_json`] (or any private JWK of a
    /// supported type with a `kid`).
    ///
    /// # Errors
    /// [`KeyError`] when the file cannot be read or is not such a key.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let json = std::fs::read_to_string(path).map_err(|err| KeyError::Io(err.to_string()))?;
        Self::from_json(&json)
    }

    /// Parses a private JWK.
    ///
    /// # Errors
    /// [`KeyError::Invalid`] when it is not a private key of a supported type with a `kid`.
    pub fn from_json(json: &str) -> Result<Self, KeyError> {
        let jwk: PrivateJwk =
            serde_json::from_str(json).map_err(|err| KeyError::Invalid(err.to_string()))?;
        let alg =
            Algorithm::from_str(&jwk.alg).map_err(|_| KeyError::Unsupported(jwk.alg.clone()))?;
        let field = |value: Option<String>, name: &str| {
            let value = value
                .ok_or_else(|| KeyError::Invalid(format!("no `{name}`: not a private key")))?;
            URL_SAFE_NO_PAD
                .decode(value)
                .map_err(|_| KeyError::Invalid(format!("`{name}` is not base64url")))
        };
        let secret = match (alg, jwk.kty.as_str(), jwk.crv.as_deref()) {
            (Algorithm::HS256, "oct", _) => field(jwk.k, "k")?,
            (Algorithm::ES256, "EC", Some("P-256")) => field(jwk.d, "d")?,
            (Algorithm::EdDSA, "OKP", Some("Ed25519")) => field(jwk.d, "d")?,
            _ => return Err(KeyError::Unsupported(jwk.alg)),
        };
        let key = Self {
            kid: jwk.kid,
            alg,
            secret,
        };
        // Fails now, not at the first signature, on a key of the wrong size.
        key.encoding_key()?;
        Ok(key)
    }

    /// The private JWK, to write to a file only its owner can read.
    pub fn to_json(&self) -> String {
        let public = self.public_jwk().ok();
        let (kty, crv, x, y, d, k) = match self.alg {
            Algorithm::HS256 => ("oct", None, None, None, None, Some(self.secret.as_slice())),
            Algorithm::ES256 => (
                "EC",
                Some("P-256"),
                None,
                None,
                Some(self.secret.as_slice()),
                None,
            ),
            _ => (
                "OKP",
                Some("Ed25519"),
                None,
                None,
                Some(self.secret.as_slice()),
                None,
            ),
        };
        let mut jwk = PrivateJwk {
            kty: kty.into(),
            crv: crv.map(Into::into),
            alg: format!("{:?}", self.alg),
            kid: self.kid.clone(),
            x,
            y,
            d: d.map(|d| URL_SAFE_NO_PAD.encode(d)),
            k: k.map(|k| URL_SAFE_NO_PAD.encode(k)),
        };
        // The public coordinates, so the private file is also a complete public key.
        if let Some(public) = public.and_then(|jwk| serde_json::to_value(jwk).ok()) {
            let coordinate = |name: &str| public.get(name).and_then(|v| v.as_str()).map(Into::into);
            jwk.x = coordinate("x");
            jwk.y = coordinate("y");
        }
        serde_json::to_string_pretty(&jwk).expect("a JWK serializes")
    }

    /// The key a relay verifies with, as a JWK with the same `kid`. For HS256 it is the secret
    /// itself: keep that file as private as the signing key.
    ///
    /// # Errors
    /// [`KeyError::Invalid`] when the key material is unusable.
    pub fn public_jwk(&self) -> Result<Jwk, KeyError> {
        let mut jwk = Jwk::from_encoding_key(&self.encoding_key()?, self.alg)
            .map_err(|err| KeyError::Invalid(err.to_string()))?;
        jwk.common.key_id = Some(self.kid.clone());
        Ok(jwk)
    }

    /// The key id, written into every token's header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signature algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Signs `claims` into a compact JWT whose header names this key's `kid`.
    ///
    /// # Errors
    /// [`KeyError::Invalid`] when the key material is unusable.
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding_key()?)
            .map_err(|err| KeyError::Invalid(err.to_string()))
    }

    fn encoding_key(&self) -> Result<EncodingKey, KeyError> {
        match self.alg {
            Algorithm::HS256 => EncodingKey::from_secret(&self.secret)
                .map_err(|err| KeyError::Invalid(err.to_string())),
            Algorithm::ES256 => {
                let der = p256::SecretKey::from_slice(&self.secret)
                    .and_then(|key| key.to_pkcs8_der().map_err(|_| p256::elliptic_curve::Error))
                    .map_err(|_| KeyError::Invalid("not a P-256 private key".into()))?;
                Ok(EncodingKey::from_ec_der(der.as_bytes()))
            }
            Algorithm::EdDSA => {
                if self.secret.len() != 32 {
                    return Err(KeyError::Invalid("not an Ed25519 private key".into()));
                }
                let mut der = ED25519_PKCS8_PREFIX.to_vec();
                der.extend_from_slice(&self.secret);
                Ok(EncodingKey::from_ed_der(&der))
            }
            other => Err(KeyError::Unsupported(format!("{other:?}"))),
        }
    }
}

fn random<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).map_err(|err| KeyError::Random(err.to_string()))?;
    Ok(bytes)
}

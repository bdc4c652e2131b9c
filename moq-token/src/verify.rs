//! Verifying tokens against a set of keys read from JWK files.

use std::path::Path;
use std::str::FromStr;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::{Claims, KeyError};

/// Why a token was refused. Every variant ends a session the same way (Unauthorized); the
/// variants exist for logs and for the `moq-token verify` tool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a JWT, or a JWT whose header or claims do not parse (`alg: none` included).
    #[error("malformed token")]
    Malformed,
    /// The token names a `kid` that no configured key has.
    #[error("unknown key id")]
    UnknownKey,
    /// The token has no `kid` and more than one key is configured.
    #[error("token has no key id and several keys are configured")]
    NoKeyId,
    /// The token's `alg` is not the algorithm of the key it names.
    #[error("algorithm does not match the key")]
    AlgorithmMismatch,
    /// The signature does not verify with the key.
    #[error("bad signature")]
    BadSignature,
    /// The token is past its `exp`.
    #[error("token expired")]
    Expired,
    /// The token is before its `nbf`.
    #[error("token not yet valid")]
    NotYetValid,
}

/// A verified token: its claims, and the id of the key that signed it (for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// What the token grants.
    pub claims: Claims,
    /// The `kid` of the key that verified it, when the key has one.
    pub kid: Option<String>,
}

/// One verification key.
#[derive(Clone)]
struct VerificationKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// The keys a relay accepts tokens from, read from JWK files (one key, or a JWK set).
///
/// A token's `kid` header picks the key; a token without `kid` is tried against the only key
/// when exactly one is configured. The token's `alg` must be the key's. `alg: none` is never
/// accepted.
///
/// ```
/// use moq_token::{Claims, KeySet, SigningKey};
/// use jsonwebtoken::Algorithm;
///
/// let signing = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
/// let mut keys = KeySet::default();
/// keys.add_json(&serde_json::to_string(&signing.public_jwk().unwrap()).unwrap()).unwrap();
///
/// let claims = Claims { root: "live".into(), get: vec!["".into()], ..Default::default() };
/// let token = signing.sign(&claims).unwrap();
/// let verified = keys.verify(&token).unwrap();
/// assert_eq!(verified.claims, claims);
/// assert_eq!(verified.kid.as_deref(), Some("k1"));
/// ```
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key material stays out of logs; ids and algorithms are enough.
        f.debug_list()
            .entries(self.keys.iter().map(|key| (&key.kid, key.alg)))
            .finish()
    }
}

impl KeySet {
    /// Reads the key or key set in the JWK file at `path` and adds its keys.
    ///
    /// # Errors
    /// [`KeyError`] when the file cannot be read or holds no usable key.
    pub fn add_file(&mut self, path: &Path) -> Result<(), KeyError> {
        let json = std::fs::read_to_string(path).map_err(|err| KeyError::Io(err.to_string()))?;
        self.add_json(&json)
    }

    /// Adds the key, or every key of the set, in `json` (RFC 7517). Private parameters (`d`)
    /// are ignored, so a signing key's file also works here.
    ///
    /// # Errors
    /// [`KeyError::Invalid`] when the JSON is not a JWK or JWK set, or a key is unsupported.
    pub fn add_json(&mut self, json: &str) -> Result<(), KeyError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|err| KeyError::Invalid(err.to_string()))?;
        let jwks = if value.get("keys").is_some() {
            serde_json::from_value::<JwkSet>(value)
                .map_err(|err| KeyError::Invalid(err.to_string()))?
                .keys
        } else {
            vec![serde_json::from_value::<Jwk>(value)
                .map_err(|err| KeyError::Invalid(err.to_string()))?]
        };
        if jwks.is_empty() {
            return Err(KeyError::Invalid("the key set is empty".into()));
        }
        for jwk in &jwks {
            let alg = algorithm_of(jwk)?;
            let key =
                DecodingKey::from_jwk(jwk).map_err(|err| KeyError::Invalid(err.to_string()))?;
            self.keys.push(VerificationKey {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
            });
        }
        Ok(())
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies `token`'s signature, `exp` and `nbf` (no leeway), and returns its claims.
    ///
    /// # Errors
    /// The [`TokenError`] that says why the token is refused.
    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let key = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|key| key.kid.as_deref() == Some(kid))
                .ok_or(TokenError::UnknownKey)?,
            None => match self.keys.as_slice() {
                [only] => only,
                [] => return Err(TokenError::UnknownKey),
                _ => return Err(TokenError::NoKeyId),
            },
        };
        if header.alg != key.alg {
            return Err(TokenError::AlgorithmMismatch);
        }
        let mut validation = Validation::new(key.alg);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        // Tokens without `exp` are the issuer's choice, as in moq-dev.
        validation.required_spec_claims.clear();
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(
                |err| match err.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                    ErrorKind::InvalidSignature => TokenError::BadSignature,
                    ErrorKind::InvalidAlgorithm => TokenError::AlgorithmMismatch,
                    _ => TokenError::Malformed,
                },
            )?;
        Ok(Verified {
            claims: data.claims,
            kid: key.kid.clone(),
        })
    }
}

/// The algorithm a JWK is for: its `alg`, or the usual one for its key type.
fn algorithm_of(jwk: &Jwk) -> Result<Algorithm, KeyError> {
    if let Some(alg) = jwk.common.key_algorithm {
        return Algorithm::from_str(&alg.to_string())
            .map_err(|_| KeyError::Invalid(format!("unsupported algorithm {alg}")));
    }
    match &jwk.algorithm {
        AlgorithmParameters::OctetKey(_) => Ok(Algorithm::HS256),
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => Ok(Algorithm::ES256),
            EllipticCurve::P384 => Ok(Algorithm::ES384),
            _ => Err(KeyError::Invalid("unsupported curve".into())),
        },
        AlgorithmParameters::OctetKeyPair(_) => Ok(Algorithm::EdDSA),
        AlgorithmParameters::RSA(_) => Ok(Algorithm::RS256),
        _ => Err(KeyError::Invalid("unsupported key type".into())),
    }
}

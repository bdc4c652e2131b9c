//! Path-scoped tokens for MoqTransfork relays, in the shape of moq-dev's `moq-token`.
//!
//! A token is a JWT signed with HS256, ES256 or EdDSA (RS256 keys verify too). Its [`Claims`]
//! name a `root` path and, under it, what the holder may publish (`put`) and subscribe to
//! (`get`), plus an optional cluster role and the usual `exp`, `nbf` and `iat`. A relay loads
//! its verification keys from JWK files into a [`KeySet`] and verifies each client's token;
//! [`SigningKey`] generates keys and signs tokens, as the `moq-token` tool does.
//!
//! ```
//! use jsonwebtoken::Algorithm;
//! use moq_token::{Claims, KeySet, SigningKey, TokenError};
//!
//! let signing = SigningKey::generate(Algorithm::HS256, "k1").unwrap();
//! let mut keys = KeySet::default();
//! keys.add_json(&serde_json::to_string(&signing.public_jwk().unwrap()).unwrap()).unwrap();
//!
//! let token = signing
//!     .sign(&Claims { root: "live".into(), put: vec!["".into()], ..Default::default() })
//!     .unwrap();
//! assert!(keys.verify(&token).unwrap().claims.may_publish(&["live", "cam"]));
//! assert_eq!(keys.verify("not.a.token"), Err(TokenError::Malformed));
//! ```

mod claims;
mod signing;
mod verify;

pub use claims::Claims;
pub use signing::SigningKey;
pub use verify::{KeySet, TokenError, Verified};

/// Why a key could not be loaded, generated or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be read.
    #[error("reading the key: {0}")]
    Io(String),
    /// The file is not a JWK (or JWK set) of a usable key.
    #[error("invalid key: {0}")]
    Invalid(String),
    /// The algorithm is not one this crate signs or verifies with.
    #[error("unsupported algorithm {0}")]
    Unsupported(String),
    /// The system gave no randomness for a new key.
    #[error("no randomness: {0}")]
    Random(String),
}

#[cfg(test)]
mod tests;

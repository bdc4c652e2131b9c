use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;

use crate::{Claims, KeySet, SigningKey, TokenError};

const ALGORITHMS: [Algorithm; 3] = [Algorithm::HS256, Algorithm::ES256, Algorithm::EdDSA];

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn keys_of(signing: &[&SigningKey]) -> KeySet {
    let mut keys = KeySet::default();
    for key in signing {
        let public = serde_json::to_string(&key.public_jwk().unwrap()).unwrap();
        keys.add_json(&public).unwrap();
    }
    keys
}

fn claims() -> Claims {
    Claims {
        root: "live".into(),
        put: vec!["a".into()],
        get: vec!["".into()],
        exp: Some(now() + 3600),
        ..Default::default()
    }
}

#[test]
fn every_algorithm_signs_and_verifies() {
    for alg in ALGORITHMS {
        let key = SigningKey::generate(alg, "k").unwrap();
        let verified = keys_of(&[&key])
            .verify(&key.sign(&claims()).unwrap())
            .unwrap();
        assert_eq!(verified.claims, claims(), "{alg:?}");
        assert_eq!(verified.kid.as_deref(), Some("k"));
    }
}

#[test]
fn private_jwk_round_trips_and_verifies_as_a_public_key() {
    for alg in ALGORITHMS {
        let key = SigningKey::generate(alg, "k").unwrap();
        let again = SigningKey::from_json(&key.to_json()).unwrap();
        let token = again.sign(&claims()).unwrap();
        // The private file also serves as a verification key (private fields are ignored).
        let mut keys = KeySet::default();
        keys.add_json(&key.to_json()).unwrap();
        assert!(keys.verify(&token).is_ok(), "{alg:?}");
    }
}

#[test]
fn a_key_set_file_picks_the_key_by_kid() {
    let one = SigningKey::generate(Algorithm::ES256, "one").unwrap();
    let two = SigningKey::generate(Algorithm::EdDSA, "two").unwrap();
    let set = serde_json::json!({"keys": [one.public_jwk().unwrap(), two.public_jwk().unwrap()]});
    let mut keys = KeySet::default();
    keys.add_json(&set.to_string()).unwrap();
    assert_eq!(keys.len(), 2);
    for key in [&one, &two] {
        let verified = keys.verify(&key.sign(&claims()).unwrap()).unwrap();
        assert_eq!(verified.kid.as_deref(), Some(key.kid()));
    }
}

#[test]
fn refuses_a_bad_signature() {
    let good = SigningKey::generate(Algorithm::ES256, "k").unwrap();
    let forger = SigningKey::generate(Algorithm::ES256, "k").unwrap();
    let token = forger.sign(&claims()).unwrap();
    assert_eq!(
        keys_of(&[&good]).verify(&token),
        Err(TokenError::BadSignature)
    );

    // A signed token whose claims were widened afterwards.
    let honest = good.sign(&claims()).unwrap();
    let wider = Claims {
        root: "".into(),
        ..claims()
    };
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_string(&wider).unwrap());
    let mut tampered: Vec<&str> = honest.split('.').collect();
    tampered[1] = &payload;
    assert_eq!(
        keys_of(&[&good]).verify(&tampered.join(".")),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn refuses_an_unknown_kid() {
    let known = SigningKey::generate(Algorithm::HS256, "known").unwrap();
    let other = SigningKey::generate(Algorithm::HS256, "other").unwrap();
    let token = other.sign(&claims()).unwrap();
    assert_eq!(
        keys_of(&[&known]).verify(&token),
        Err(TokenError::UnknownKey)
    );
}

#[test]
fn refuses_alg_none() {
    let key = SigningKey::generate(Algorithm::HS256, "k").unwrap();
    let encode = |json: &str| URL_SAFE_NO_PAD.encode(json);
    let payload = encode(&serde_json::to_string(&claims()).unwrap());
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"none","typ":"JWT","kid":"k"}"#,
    ] {
        let token = format!("{}.{payload}.", encode(header));
        assert_eq!(keys_of(&[&key]).verify(&token), Err(TokenError::Malformed));
    }
}

#[test]
fn refuses_an_algorithm_other_than_the_keys() {
    // An HS256 token made with an EdDSA key's public bytes as the secret (the classic
    // confusion) names the EdDSA key's kid.
    let key = SigningKey::generate(Algorithm::EdDSA, "k").unwrap();
    let public = serde_json::to_value(key.public_jwk().unwrap()).unwrap();
    let x = public["x"].as_str().unwrap();
    let confused = SigningKey::from_json(
        &serde_json::json!({"kty": "oct", "alg": "HS256", "kid": "k", "k": x}).to_string(),
    )
    .unwrap();
    let token = confused.sign(&claims()).unwrap();
    assert_eq!(
        keys_of(&[&key]).verify(&token),
        Err(TokenError::AlgorithmMismatch)
    );
}

#[test]
fn refuses_expired_and_not_yet_valid_tokens() {
    let key = SigningKey::generate(Algorithm::ES256, "k").unwrap();
    let keys = keys_of(&[&key]);
    let expired = Claims {
        exp: Some(now() - 1),
        ..claims()
    };
    assert_eq!(
        keys.verify(&key.sign(&expired).unwrap()),
        Err(TokenError::Expired)
    );
    let early = Claims {
        nbf: Some(now() + 60),
        ..claims()
    };
    assert_eq!(
        keys.verify(&key.sign(&early).unwrap()),
        Err(TokenError::NotYetValid)
    );
    let forever = Claims {
        exp: None,
        ..claims()
    };
    assert!(keys.verify(&key.sign(&forever).unwrap()).is_ok());
}

#[test]
fn a_token_without_kid_needs_a_single_key() {
    let key = SigningKey::generate(Algorithm::HS256, "k").unwrap();
    let secret = serde_json::to_value(key.public_jwk().unwrap()).unwrap();
    let header = jsonwebtoken::Header::new(Algorithm::HS256);
    let raw = URL_SAFE_NO_PAD
        .decode(secret["k"].as_str().unwrap())
        .unwrap();
    let token = jsonwebtoken::encode(
        &header,
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(&raw).unwrap(),
    )
    .unwrap();
    assert!(keys_of(&[&key]).verify(&token).is_ok());
    let other = SigningKey::generate(Algorithm::HS256, "other").unwrap();
    assert_eq!(
        keys_of(&[&key, &other]).verify(&token),
        Err(TokenError::NoKeyId)
    );
}

#[test]
fn refuses_malformed_tokens() {
    let key = SigningKey::generate(Algorithm::HS256, "k").unwrap();
    let keys = keys_of(&[&key]);
    for token in ["", "abc", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9.e30"] {
        assert_eq!(keys.verify(token), Err(TokenError::Malformed), "{token:?}");
    }
}

#[test]
fn rejects_unusable_key_files() {
    let mut keys = KeySet::default();
    assert!(keys.add_json("not json").is_err());
    assert!(keys.add_json(r#"{"keys": []}"#).is_err());
    assert!(
        SigningKey::from_json(r#"{"kty":"EC","crv":"P-256","alg":"ES256","kid":"k"}"#).is_err()
    );
    assert!(SigningKey::from_json(
        r#"{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"k","d":"AAAA"}"#
    )
    .is_err());
    assert!(SigningKey::generate(Algorithm::PS256, "k").is_err());
}

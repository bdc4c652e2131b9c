//! The `moq-token` tool end to end: generate, sign, verify, as an operator runs it.

use std::path::Path;
use std::process::{Command, Output};

fn moq_token(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moq-token"))
        .args(args)
        .output()
        .expect("run moq-token")
}

fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("moq-token-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_owned()
}

#[test]
fn generate_sign_verify_for_every_algorithm() {
    for alg in ["HS256", "ES256", "EdDSA"] {
        let dir = scratch(alg);
        let (key, public) = (path(&dir, "key.jwk"), path(&dir, "key.pub.jwk"));
        let out = moq_token(&[
            "generate",
            "--algorithm",
            alg,
            "--kid",
            "k1",
            "--out",
            &key,
            "--public",
            &public,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let out = moq_token(&[
            "sign",
            "--key",
            &key,
            "--root",
            "live",
            "--put",
            "alice",
            "--get",
            "",
            "--expires",
            "1h",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert_eq!(token.split('.').count(), 3);

        let out = moq_token(&["verify", "--key", &public, &token]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(claims["root"], "live");
        assert_eq!(claims["put"], serde_json::json!(["alice"]));
        assert_eq!(claims["get"], serde_json::json!([""]));
        assert!(claims["exp"].as_u64().unwrap() > claims["iat"].as_u64().unwrap());

        // Another key with the same kid refuses it.
        let (other, other_public) = (path(&dir, "other.jwk"), path(&dir, "other.pub.jwk"));
        let out = moq_token(&[
            "generate",
            "--algorithm",
            alg,
            "--kid",
            "k1",
            "--out",
            &other,
            "--public",
            &other_public,
        ]);
        assert!(out.status.success());
        let out = moq_token(&["verify", "--key", &other_public, &token]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("bad signature"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn generate_never_overwrites_a_key() {
    let dir = scratch("overwrite");
    let key = path(&dir, "key.jwk");
    assert!(moq_token(&["generate", "--out", &key]).status.success());
    let before = std::fs::read(&key).unwrap();
    assert!(!moq_token(&["generate", "--out", &key]).status.success());
    assert_eq!(std::fs::read(&key).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

//! `moq-token`: generate keys, sign tokens and verify them for a MoqTransfork relay.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use jsonwebtoken::Algorithm;
use moq_token::{Claims, KeySet, SigningKey};

/// Keys and path-scoped tokens for a MoqTransfork relay (moq-dev's claims: root, put, get).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a signing key (a private JWK) and the key a relay verifies with.
    Generate {
        /// The signature algorithm.
        #[arg(long, value_enum, default_value_t = Alg::Es256)]
        algorithm: Alg,
        /// The key id written into the key and into every token it signs.
        #[arg(long)]
        kid: Option<String>,
        /// Where to write the private key (created with mode 0600).
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// Where to write the verification key for the relay's --auth-key. For HS256 it is
        /// the secret itself.
        #[arg(long, value_name = "PATH")]
        public: Option<PathBuf>,
    },
    /// Sign a token with a private key and print it.
    Sign {
        /// The private key written by `generate`.
        #[arg(long, value_name = "PATH")]
        key: PathBuf,
        /// The path prefix the token covers, parts separated by `/` ("" is everything).
        #[arg(long, default_value = "")]
        root: String,
        /// A suffix under --root the holder may publish ("" is all of it); repeatable.
        #[arg(long)]
        put: Vec<String>,
        /// A suffix under --root the holder may subscribe to ("" is all of it); repeatable.
        #[arg(long)]
        get: Vec<String>,
        /// Grant the cluster role (relay-to-relay links).
        #[arg(long)]
        cluster: bool,
        /// How long the token is valid: a number with s, m, h or d (e.g. 90s, 1h, 30d).
        #[arg(long, value_parser = parse_duration)]
        expires: Option<Duration>,
    },
    /// Verify a token (argument or stdin) and print its claims as JSON.
    Verify {
        /// A verification key or key set (JWK); repeatable.
        #[arg(long, value_name = "PATH", required = true)]
        key: Vec<PathBuf>,
        /// The token; read from stdin when absent.
        token: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Alg {
    #[value(name = "HS256")]
    Hs256,
    #[value(name = "ES256")]
    Es256,
    #[value(name = "EdDSA")]
    EdDsa,
}

impl From<Alg> for Algorithm {
    fn from(alg: Alg) -> Self {
        match alg {
            Alg::Hs256 => Self::HS256,
            Alg::Es256 => Self::ES256,
            Alg::EdDsa => Self::EdDSA,
        }
    }
}

/// `90s`, `15m`, `1h`, `30d`, or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 15m, 1h or 30d"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit {unit:?}: use s, m, h or d")),
    };
    number
        .checked_mul(unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

fn write_private(path: &PathBuf, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command {
        Command::Generate {
            algorithm,
            kid,
            out,
            public,
        } => {
            let kid = match kid {
                Some(kid) => kid,
                None => {
                    let mut bytes = [0u8; 4];
                    getrandom::fill(&mut bytes).context("no randomness for a key id")?;
                    bytes.iter().map(|b| format!("{b:02x}")).collect()
                }
            };
            let key = SigningKey::generate(algorithm.into(), kid)?;
            write_private(&out, &key.to_json())?;
            if let Some(public) = public {
                let jwk = serde_json::to_string_pretty(&key.public_jwk()?)?;
                if matches!(algorithm, Alg::Hs256) {
                    write_private(&public, &jwk)?;
                } else {
                    std::fs::write(&public, jwk)
                        .with_context(|| format!("writing {}", public.display()))?;
                }
            }
            eprintln!(
                "key {} ({:?}) written to {}",
                key.kid(),
                key.algorithm(),
                out.display()
            );
        }
        Command::Sign {
            key,
            root,
            put,
            get,
            cluster,
            expires,
        } => {
            let key =
                SigningKey::load(&key).with_context(|| format!("loading {}", key.display()))?;
            let now = jsonwebtoken::get_current_timestamp();
            let claims = Claims {
                root,
                put,
                get,
                cluster,
                exp: expires.map(|expires| now.saturating_add(expires.as_secs())),
                nbf: None,
                iat: Some(now),
            };
            println!("{}", key.sign(&claims)?);
        }
        Command::Verify { key, token } => {
            let mut keys = KeySet::default();
            for path in &key {
                keys.add_file(path)
                    .with_context(|| format!("loading {}", path.display()))?;
            }
            let token = match token {
                Some(token) => token,
                None => {
                    let mut token = String::new();
                    std::io::stdin().read_to_string(&mut token)?;
                    token.trim().to_owned()
                }
            };
            let verified = keys.verify(&token).context("token refused")?;
            println!("{}", serde_json::to_string_pretty(&verified.claims)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}

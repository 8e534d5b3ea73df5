//! NATS decentralised authentication for the tests, made by hand: an operator, a system
//! account, an account with JetStream and a user of it, as the JWTs `nsc` would issue, a
//! server configuration that trusts the operator and preloads both accounts, and the user's
//! credentials file (`--store-creds`).
//!
//! A NATS JWT is `base64url(header).base64url(claims).base64url(signature)`, the signature an
//! Ed25519 one by the issuer's NKey over the first two parts.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use nkeys::KeyPair;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;

/// The files of one operator's world, written into a directory.
pub struct OperatorFiles {
    /// The nats-server configuration (`-c`): the trusted operator and the preloaded accounts.
    pub config: PathBuf,
    /// The credentials file (JWT and NKey seed) of a user of the JetStream account.
    pub creds: PathBuf,
}

/// Writes an operator's configuration and a user's credentials file into `dir`.
pub fn write_operator(dir: &Path) -> OperatorFiles {
    let operator = KeyPair::new_operator();
    let system = KeyPair::new_account();
    let account = KeyPair::new_account();
    let user = KeyPair::new_user();
    let operator_jwt = issue(
        &operator,
        &operator.public_key(),
        "avp-operator",
        json!({"type": "operator", "version": 2}),
    );
    let system_jwt = issue(
        &operator,
        &system.public_key(),
        "SYS",
        json!({"type": "account", "version": 2, "limits": unlimited(false)}),
    );
    let account_jwt = issue(
        &operator,
        &account.public_key(),
        "avp",
        json!({"type": "account", "version": 2, "limits": unlimited(true)}),
    );
    let user_jwt = issue(
        &account,
        &user.public_key(),
        "avpd",
        json!({"type": "user", "version": 2, "pub": {}, "sub": {},
               "subs": -1, "data": -1, "payload": -1}),
    );
    let config = dir.join("operator.conf");
    let text = format!(
        "operator: \"{operator_jwt}\"\nsystem_account: \"{sys}\"\nresolver: MEMORY\n\
         resolver_preload: {{\n  {sys}: \"{system_jwt}\"\n  {acc}: \"{account_jwt}\"\n}}\n",
        sys = system.public_key(),
        acc = account.public_key(),
    );
    std::fs::write(&config, text).expect("write the nats-server configuration");
    let creds = dir.join("avpd.creds");
    let seed = user.seed().expect("a user's seed");
    let text = format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    );
    std::fs::write(&creds, text).expect("write the credentials file");
    OperatorFiles { config, creds }
}

/// An account's limits, none of them binding; `jetstream` also lets it store.
fn unlimited(jetstream: bool) -> Value {
    let mut limits = json!({"subs": -1, "data": -1, "payload": -1, "imports": -1,
                            "exports": -1, "wildcards": true, "conn": -1, "leaf": -1});
    if jetstream {
        for key in ["mem_storage", "disk_storage", "streams", "consumer"] {
            limits[key] = json!(-1);
        }
    }
    limits
}

/// The JWT `issuer` signs for `subject`, named `name`, with the NATS claims `nats`.
fn issue(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> String {
    let issued_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = json!({
        "jti": format!("{subject}-{issued_at}"),
        "iat": issued_at,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = issuer.sign(signed.as_bytes()).expect("sign a JWT");
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

//! API keys: `dip_<key id>_<secret>`. The key id is public and indexes the stored record;
//! only the SHA-256 of the secret is stored.

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

use crate::store::ApiKeyRecord;

/// Splits a presented key into id and secret; `None` when it is not of the key format.
pub fn parse_api_key(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("dip_")?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = (4..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let secret_ok = (16..=128).contains(&secret.len()) && secret.bytes().all(|b| b.is_ascii_alphanumeric());
    (id_ok && secret_ok).then_some((id, secret))
}

/// The stored record of a key (the secret hashed) for `dip_id`, or an operator key.
pub fn record_for(token: &str, dip_id: Option<&str>, name: &str) -> Option<ApiKeyRecord> {
    let (key_id, secret) = parse_api_key(token)?;
    Some(ApiKeyRecord {
        key_id: key_id.to_owned(),
        secret_hash: hex::encode(Sha256::digest(secret.as_bytes())),
        dip_id: dip_id.map(str::to_owned),
        name: name.to_owned(),
        created_at: crate::clock::now_micros(),
        revoked_at: None,
    })
}

/// A new random key: 12 characters of id, 32 of secret (about 190 bits).
pub fn generate_api_key() -> String {
    let mut rng = rand::rng();
    let id = Alphanumeric.sample_string(&mut rng, 12).to_ascii_lowercase();
    let secret = Alphanumeric.sample_string(&mut rng, 32);
    format!("dip_{id}_{secret}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let key = generate_api_key();
        let (id, secret) = parse_api_key(&key).unwrap();
        assert_eq!(id.len(), 12);
        assert_eq!(secret.len(), 32);
        let rec = record_for(&key, Some("1000000001"), "k").unwrap();
        assert_eq!(rec.key_id, id);
        assert_ne!(rec.secret_hash, secret);
        assert!(parse_api_key("Bearer x").is_none());
        assert!(parse_api_key("dip_AB_cdefghijklmnopqrstu").is_none());
        assert!(parse_api_key("dip_abcd_short").is_none());
    }
}

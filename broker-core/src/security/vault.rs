//! Encryption at rest (spec 5.2.2): archived messages of security categories 2–4 are
//! stored sealed with AES-256-GCM under the platform's data key, bound to their
//! transaction id. Keys rotate: the newest key seals, every key kept in the key file
//! opens, so rows sealed before a rotation stay readable.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// Prefix of a sealed value; anything else is stored in the clear (category 1).
const SEALED: &str = "dipenc:v1:";

/// Why a value cannot be sealed or opened, or a key file not read.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The key file is malformed.
    #[error("data keys: {0}")]
    Keys(String),
    /// The value was sealed with a key this vault does not hold.
    #[error("sealed with data key {0}, which this platform does not hold")]
    UnknownKey(String),
    /// The value is corrupt or was tampered with.
    #[error("a sealed value does not open (corrupt, or bound to another transaction)")]
    Corrupt,
}

/// The platform's data keys; the last one seals.
pub struct Vault {
    keys: Vec<(String, LessSafeKey)>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Vault").field("keys", &ids).finish()
    }
}

/// A new key line for a key file: `<id> <base64 of 32 random bytes>`.
pub fn new_key_line() -> String {
    let key: [u8; 32] = rand::random();
    let id = format!("k{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
    format!("{id} {}\n", STANDARD.encode(key))
}

impl Vault {
    /// Reads a key file: one `<id> <base64 key>` per line, oldest first; `#` comments.
    pub fn from_text(text: &str) -> Result<Self, VaultError> {
        let mut keys = Vec::new();
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (id, b64) = line
                .split_once(' ')
                .ok_or_else(|| VaultError::Keys("each line is `<id> <base64 key>`".into()))?;
            let bytes = STANDARD
                .decode(b64.trim())
                .map_err(|_| VaultError::Keys(format!("key {id} is not base64")))?;
            let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| VaultError::Keys(format!("key {id} is not 32 bytes")))?;
            if id.contains(':') || keys.iter().any(|(k, _)| k == id) {
                return Err(VaultError::Keys(format!("key id {id} repeated or contains ':'")));
            }
            keys.push((id.to_owned(), LessSafeKey::new(unbound)));
        }
        if keys.is_empty() {
            return Err(VaultError::Keys("no key".into()));
        }
        Ok(Self { keys })
    }

    /// The id of the key that seals.
    pub fn current(&self) -> &str {
        self.keys.last().map_or("", |(id, _)| id.as_str())
    }

    /// Seals `plain`, bound to `context` (the transaction id).
    pub fn seal(&self, plain: &str, context: &str) -> String {
        let Some((id, key)) = self.keys.last() else {
            return plain.to_owned();
        };
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut data = plain.as_bytes().to_vec();
        // Sealing with a valid key and a fresh nonce cannot fail.
        if key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .is_err()
        {
            return plain.to_owned();
        }
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&data);
        format!("{SEALED}{id}:{}", STANDARD.encode(out))
    }

    /// Opens a value stored by [`seal`](Self::seal) (values stored in the clear pass
    /// through).
    pub fn open(&self, stored: &str, context: &str) -> Result<String, VaultError> {
        let Some(rest) = stored.strip_prefix(SEALED) else {
            return Ok(stored.to_owned());
        };
        let (id, b64) = rest.split_once(':').ok_or(VaultError::Corrupt)?;
        let (_, key) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or_else(|| VaultError::UnknownKey(id.to_owned()))?;
        let raw = STANDARD.decode(b64).map_err(|_| VaultError::Corrupt)?;
        if raw.len() < NONCE_LEN {
            return Err(VaultError::Corrupt);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::Corrupt)?;
        let mut data = sealed.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut data)
            .map_err(|_| VaultError::Corrupt)?;
        String::from_utf8(plain.to_vec()).map_err(|_| VaultError::Corrupt)
    }
}

/// Whether a stored value is sealed.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key line with a chosen id (generated ids are per second, so two in one test
    /// could collide).
    fn line(id: &str) -> String {
        let key = new_key_line();
        let (_, b64) = key.split_once(' ').expect("id and key");
        format!("{id} {b64}")
    }

    #[test]
    fn seals_opens_rotates_and_refuses_tampering() {
        let first = line("a1");
        let old = Vault::from_text(&first).unwrap();
        let sealed = old.seal("{\"secret\": 1}", "tx-1");
        assert!(is_sealed(&sealed) && !sealed.contains("secret"));
        assert_eq!(old.open(&sealed, "tx-1").unwrap(), "{\"secret\": 1}");
        assert!(
            matches!(old.open(&sealed, "tx-2"), Err(VaultError::Corrupt)),
            "bound to its transaction"
        );
        assert_eq!(old.open("plain", "tx-1").unwrap(), "plain");

        let rotated = Vault::from_text(&format!("{first}{}", line("b1"))).unwrap();
        assert_ne!(rotated.current(), old.current());
        assert_eq!(
            rotated.open(&sealed, "tx-1").unwrap(),
            "{\"secret\": 1}",
            "old rows stay readable"
        );
        let newer = rotated.seal("x", "tx-3");
        assert!(newer.contains(rotated.current()));
        assert!(matches!(old.open(&newer, "tx-3"), Err(VaultError::UnknownKey(_))));

        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert!(old.open(std::str::from_utf8(&flipped).unwrap(), "tx-1").is_err());
        assert!(Vault::from_text("").is_err());
        assert!(Vault::from_text("k1 notbase64!").is_err());
    }
}

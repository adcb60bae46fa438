//! JWE in compact form (RFC 7516) with direct ECDH-ES key agreement on P-256 and A256GCM
//! content encryption (RFC 7518 §4.6, §5.3): how a sender encrypts a CustomBlock to the
//! platform, and the platform to each recipient, under security pattern 2 (spec 5.2.2).
//! Built from maintained primitives: ring (ephemeral ECDH, AES-GCM, SHA-256) and the
//! RustCrypto `p256` crate for agreement with the platform's static key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::agreement;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::certs;

/// Why a JWE cannot be made or read.
#[derive(Debug, thiserror::Error)]
pub enum JweError {
    /// Not a compact JWE of the supported kind.
    #[error("not a supported JWE: {0}")]
    Format(String),
    /// The key or certificate cannot be used (not P-256).
    #[error("key: {0}")]
    Key(String),
    /// Authentication failed: wrong key, or tampered.
    #[error("the JWE does not decrypt with this key (wrong recipient, or tampered)")]
    Decrypt,
}

/// RFC 7518 §4.6.2 Concat KDF for a 256-bit key of algorithm `enc`, without party info.
fn concat_kdf(z: &[u8], enc: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(1u32.to_be_bytes());
    h.update(z);
    h.update(u32::try_from(enc.len()).unwrap_or(0).to_be_bytes());
    h.update(enc.as_bytes());
    h.update(0u32.to_be_bytes()); // PartyUInfo
    h.update(0u32.to_be_bytes()); // PartyVInfo
    h.update(256u32.to_be_bytes()); // key length in bits
    h.finalize().into()
}

/// The uncompressed P-256 point of a certificate's subject key.
fn p256_point_of(cert_pem: &str) -> Result<Vec<u8>, JweError> {
    let der = certs::parse_pem(cert_pem)
        .map_err(|e| JweError::Key(e.to_string()))?
        .remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| JweError::Key(e.to_string()))?;
    let spki = &cert.tbs_certificate.subject_pki;
    let point = spki.subject_public_key.data.to_vec();
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
        || point.len() != 65
        || point[0] != 4
    {
        return Err(JweError::Key(
            "the certificate's key is not an uncompressed P-256 point".into(),
        ));
    }
    Ok(point)
}

/// Encrypts `plaintext` to the holder of `recipient_cert_pem` (a P-256 key).
pub fn encrypt(plaintext: &[u8], recipient_cert_pem: &str) -> Result<String, JweError> {
    let peer_point = p256_point_of(recipient_cert_pem)?;
    let rng = ring::rand::SystemRandom::new();
    let ephemeral = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng)
        .map_err(|_| JweError::Key("cannot generate an ephemeral key".into()))?;
    let epk = ephemeral
        .compute_public_key()
        .map_err(|_| JweError::Key("ephemeral public key".into()))?;
    let epk = epk.as_ref();
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, &peer_point);
    let cek = agreement::agree_ephemeral(ephemeral, &peer, |z| concat_kdf(z, "A256GCM"))
        .map_err(|_| JweError::Key("key agreement failed".into()))?;
    let header = json!({
        "alg": "ECDH-ES", "enc": "A256GCM",
        "epk": { "kty": "EC", "crv": "P-256", "x": B64.encode(&epk[1..33]), "y": B64.encode(&epk[33..65]) },
    });
    let protected = B64.encode(header.to_string());
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).map_err(|_| JweError::Key("CEK".into()))?);
    let iv: [u8; NONCE_LEN] = rand::random();
    let mut data = plaintext.to_vec();
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(protected.as_bytes()),
            &mut data,
        )
        .map_err(|_| JweError::Key("encryption failed".into()))?;
    Ok(format!(
        "{protected}..{}.{}.{}",
        B64.encode(iv),
        B64.encode(&data),
        B64.encode(tag.as_ref())
    ))
}

/// Decrypts JWEs addressed to one P-256 key.
pub struct Decrypter {
    secret: p256::SecretKey,
}

impl std::fmt::Debug for Decrypter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decrypter")
    }
}

impl Decrypter {
    /// From a PKCS#8 PEM P-256 private key.
    pub fn from_pem(key_pem: &str) -> Result<Self, JweError> {
        use p256::pkcs8::DecodePrivateKey;
        let secret = p256::SecretKey::from_pkcs8_pem(key_pem).map_err(|e| JweError::Key(e.to_string()))?;
        Ok(Self { secret })
    }

    /// The plaintext of a compact JWE made for this key.
    pub fn decrypt(&self, compact: &str) -> Result<Vec<u8>, JweError> {
        let parts: Vec<&str> = compact.split('.').collect();
        let [protected, encrypted_key, iv, ciphertext, tag] = parts[..] else {
            return Err(JweError::Format("five parts expected".into()));
        };
        let decode = |p: &str, what: &str| {
            B64.decode(p)
                .map_err(|_| JweError::Format(format!("{what} is not base64url")))
        };
        let header: Value = serde_json::from_slice(&decode(protected, "header")?)
            .map_err(|_| JweError::Format("the header is not JSON".into()))?;
        if header["alg"] != "ECDH-ES" || header["enc"] != "A256GCM" || !encrypted_key.is_empty() {
            return Err(JweError::Format("only alg ECDH-ES with enc A256GCM".into()));
        }
        let epk = &header["epk"];
        if epk["kty"] != "EC" || epk["crv"] != "P-256" {
            return Err(JweError::Format("epk must be an EC P-256 key".into()));
        }
        let coord = |k: &str| -> Result<Vec<u8>, JweError> {
            let v = decode(epk[k].as_str().unwrap_or_default(), "epk")?;
            if v.len() == 32 {
                Ok(v)
            } else {
                Err(JweError::Format("epk coordinates are 32 bytes".into()))
            }
        };
        let mut point = vec![4u8];
        point.extend(coord("x")?);
        point.extend(coord("y")?);
        let epk =
            p256::PublicKey::from_sec1_bytes(&point).map_err(|_| JweError::Format("epk is not on P-256".into()))?;
        let shared = p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), epk.as_affine());
        let cek = concat_kdf(shared.raw_secret_bytes(), "A256GCM");
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).map_err(|_| JweError::Decrypt)?);
        let nonce = Nonce::try_assume_unique_for_key(&decode(iv, "iv")?).map_err(|_| JweError::Format("iv".into()))?;
        let mut data = decode(ciphertext, "ciphertext")?;
        data.extend(decode(tag, "tag")?);
        let plain = key
            .open_in_place(nonce, Aad::from(protected.as_bytes()), &mut data)
            .map_err(|_| JweError::Decrypt)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::authority::Authority;

    #[test]
    fn round_trip_only_for_its_recipient() {
        let ca = Authority::generate("DEV").unwrap();
        let alice = ca.issue_client("1000000011", 30, None).unwrap();
        let bob = ca.issue_client("1000000012", 30, None).unwrap();
        let jwe = encrypt(br#"{"mpanCore":"1600001000020"}"#, &alice.cert_pem).unwrap();
        assert!(crate::envelope::is_jwe_compact(&jwe), "{jwe}");
        let to_alice = Decrypter::from_pem(alice.key_pem.as_deref().unwrap()).unwrap();
        assert_eq!(to_alice.decrypt(&jwe).unwrap(), br#"{"mpanCore":"1600001000020"}"#);
        let to_bob = Decrypter::from_pem(bob.key_pem.as_deref().unwrap()).unwrap();
        assert!(matches!(to_bob.decrypt(&jwe), Err(JweError::Decrypt)));
        // Any change to header, iv, ciphertext or tag breaks it.
        let parts: Vec<&str> = jwe.split('.').collect();
        for i in [0usize, 2, 3, 4] {
            let mut p: Vec<String> = parts.iter().map(|s| (*s).to_owned()).collect();
            let mut bytes = B64.decode(&p[i]).unwrap();
            bytes[0] ^= 1;
            p[i] = B64.encode(bytes);
            assert!(to_alice.decrypt(&p.join(".")).is_err(), "part {i}");
        }
        assert!(to_alice.decrypt("a.b.c").is_err());
    }
}

//! The platform's own certificate authority for non-production environments (spec 8.4):
//! issues participant certificates from a CSR or with a generated key pair, and server
//! certificates for the platform's listeners. Production uses externally issued
//! certificates, registered to participants; a production platform does not trust a
//! test authority.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::OffsetDateTime;

/// A failure of the authority.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// Key or certificate generation or parsing failed.
    #[error("{0}")]
    Crypto(#[from] rcgen::Error),
    /// A bad request (CSR, names, validity).
    #[error("{0}")]
    Invalid(String),
}

/// A certificate with its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8); `None` when issued from a CSR.
    pub key_pem: Option<String>,
}

/// A certificate authority: its certificate and key.
pub struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
    environment: String,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("environment", &self.environment)
            .finish()
    }
}

fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    SerialNumber::from_slice(&bytes)
}

fn name(common: &str, environment: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "DIP");
    dn.push(DnType::OrganizationalUnitName, environment);
    dn.push(DnType::CommonName, common);
    dn
}

impl Authority {
    /// A new authority for `environment`, valid ten years.
    pub fn generate(environment: &str) -> Result<Self, AuthorityError> {
        if environment.eq_ignore_ascii_case("PROD") {
            return Err(AuthorityError::Invalid(
                "the built-in authority is for non-production environments".into(),
            ));
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&format!("DIP {environment} Test CA"), environment);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(serial());
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert,
            key,
            environment: environment.to_owned(),
        })
    }

    /// An authority from its certificate and key (PEM).
    pub fn load(cert_pem: &str, key_pem: &str, environment: &str) -> Result<Self, AuthorityError> {
        let key = KeyPair::from_pem(key_pem)?;
        let params = CertificateParams::from_ca_cert_pem(cert_pem)?;
        // Re-signing yields a certificate object with the same name and key to issue with.
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert,
            key,
            environment: environment.to_owned(),
        })
    }

    /// The authority's certificate (PEM): what relying parties trust.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The authority's private key (PEM), to keep where only the platform can read it.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The environment the authority issues for.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    fn leaf(&self, common: &str, days: i64, not_before: Option<OffsetDateTime>) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common, &self.environment);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.serial_number = Some(serial());
        let start = not_before.unwrap_or_else(|| OffsetDateTime::now_utc() - time::Duration::minutes(5));
        params.not_before = start;
        params.not_after = start + time::Duration::days(days);
        params
    }

    /// A client certificate for participant `dip_id` with a new key pair, valid `days`
    /// from `not_before` (now by default).
    pub fn issue_client(
        &self,
        dip_id: &str,
        days: i64,
        not_before: Option<OffsetDateTime>,
    ) -> Result<Issued, AuthorityError> {
        let key = KeyPair::generate()?;
        let mut params = self.leaf(dip_id, days, not_before);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: Some(key.serialize_pem()),
        })
    }

    /// A client certificate for participant `dip_id` for the key of a CSR (PEM). The
    /// subject is set by the authority, whatever the CSR asked for.
    pub fn issue_from_csr(&self, csr_pem: &str, dip_id: &str, days: i64) -> Result<Issued, AuthorityError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| AuthorityError::Invalid(format!("not a readable CSR: {e}")))?;
        let mut params = self.leaf(dip_id, days, None);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        csr.params = params;
        let cert = csr.signed_by(&self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: None,
        })
    }

    /// A server certificate for the platform's listener under the given names and
    /// addresses.
    pub fn issue_server(&self, names: &[String], days: i64) -> Result<Issued, AuthorityError> {
        let key = KeyPair::generate()?;
        let mut params = self.leaf(names.first().map_or("dip", String::as_str), days, None);
        params.subject_alt_names = CertificateParams::new(names.to_vec())?.subject_alt_names;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: Some(key.serialize_pem()),
        })
    }
}

/// A self-signed RSA-2048 signing identity (certificate and PKCS#8 key, PEM) named
/// `common`, valid `days`: what a non-production platform signs webhooks and evidence
/// bundles with when it is given no key. X-DIP signatures are RSA, which ring cannot
/// generate; the `rsa` crate only makes the key here, ring signs with it.
pub fn signing_identity(common: &str, environment: &str, days: i64) -> Result<Issued, AuthorityError> {
    use rsa::pkcs8::EncodePrivateKey;
    if environment.eq_ignore_ascii_case("PROD") {
        return Err(AuthorityError::Invalid(
            "a production platform signs with an externally issued certificate".into(),
        ));
    }
    let rsa = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
        .map_err(|e| AuthorityError::Invalid(format!("cannot generate an RSA key: {e}")))?;
    let key_pem = rsa
        .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
        .map_err(|e| AuthorityError::Invalid(format!("cannot encode the RSA key: {e}")))?
        .to_string();
    let key = KeyPair::from_pkcs8_pem_and_sign_algo(&key_pem, &rcgen::PKCS_RSA_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common, environment);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.serial_number = Some(serial());
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(days);
    let cert = params.self_signed(&key)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: Some(key_pem),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::signature::{self, Signer};

    #[test]
    fn a_test_platform_signing_identity_signs_what_its_certificate_verifies() {
        let issued = signing_identity("DIP DEV platform", "DEV", 30).expect("identity");
        let signer = Signer::new(&issued.cert_pem, issued.key_pem.as_deref().unwrap()).expect("an RSA signer");
        let now = chrono::Utc::now();
        let body = b"[]";
        let headers = signer.headers("POST", "https://r.example/hook", body, now);
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let verified = signature::verify(
            "POST",
            "https://r.example/hook",
            body,
            get,
            &[signer.fingerprint().to_owned()],
            now,
            signature::DEFAULT_WINDOW,
        )
        .expect("verifies");
        assert_eq!(verified.fingerprint, signer.fingerprint());
        assert!(issued.cert_pem.contains("BEGIN CERTIFICATE"));
        assert!(matches!(
            signing_identity("DIP PROD platform", "PROD", 30),
            Err(AuthorityError::Invalid(_))
        ));
    }
}

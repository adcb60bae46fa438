//! Security (spec 8.1–8.4): certificates that identify participants, the platform's own
//! certificate authority for non-production environments, and the TLS listener of the
//! participant API with client certificates (mTLS).

pub mod authority;
pub mod certs;
pub mod jwe;
pub mod signature;
pub mod tls;
pub mod vault;

//! The participant API over TLS. The client certificate, when presented, must chain to a
//! trusted authority and be within its validity (checked in the handshake); which
//! participant it identifies, and whether it is still registered and unrevoked, is
//! decided per request from the registry (so a revocation takes effect at once, even on
//! open connections).

use std::sync::Arc;

use axum::Router;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use super::certs;

/// The fingerprint of the client certificate of the connection a request came on
/// (`None` without one). Set by [`serve`] as a request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate(pub Option<String>);

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key does not parse.
    #[error("{0}")]
    Pem(String),
    /// rustls refused the configuration.
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
    /// The client verifier cannot be built (e.g. no trusted authority).
    #[error("client verification: {0}")]
    Verifier(String),
}

/// What the listener presents and whom it trusts.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The server's certificate chain (PEM).
    pub cert_pem: String,
    /// The server's private key (PEM, PKCS#8).
    pub key_pem: String,
    /// Authorities whose client certificates are accepted (PEM, one or more).
    pub client_ca_pem: String,
    /// Refuse connections without a client certificate (production).
    pub require_client_cert: bool,
}

/// A verifier of certificates against the authorities in `ca_pem`: chain, validity and
/// client-authentication usage, as in the handshake.
pub fn trust(ca_pem: &str) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in certs::parse_pem(ca_pem).map_err(|e| TlsError::Pem(format!("client CA: {e}")))? {
        roots.add(ca)?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))
}

/// The rustls configuration for `settings`.
pub fn server_config(settings: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs::parse_pem(&settings.cert_pem).map_err(|e| TlsError::Pem(format!("server certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(settings.key_pem.as_bytes())
        .map_err(|e| TlsError::Pem(format!("server key: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in certs::parse_pem(&settings.client_ca_pem).map_err(|e| TlsError::Pem(format!("client CA: {e}")))? {
        roots.add(ca)?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = if settings.require_client_cert {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    let verifier = builder.build().map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` over TLS on `listener` until `shutdown` completes. Each request carries
/// the [`ClientCertificate`] of its connection and the peer's address
/// (`ConnectInfo<SocketAddr>`, as `axum::serve` gives with connect info).
pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "TLS handshake refused");
                    return;
                }
            };
            let fingerprint = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c: &CertificateDer<'_>| certs::fingerprint(c));
            let app = app
                .layer(axum::Extension(ClientCertificate(fingerprint)))
                .layer(axum::Extension(axum::extract::ConnectInfo(peer)));
            let service = hyper_util::service::TowerToHyperService::new(app);
            let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

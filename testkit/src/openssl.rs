//! Keys and certificate requests made by the `openssl` command line, an implementation
//! independent of ours.

use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `openssl` in `dir`; panics on failure.
pub fn openssl(dir: &Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::null())
        .status()
        .expect("openssl")
        .success();
    assert!(ok, "openssl {args:?}");
}

/// An RSA key and a CSR for it made by openssl: (key, CSR) PEM.
pub fn openssl_csr(subject: &str) -> (String, String) {
    let dir = tempfile::tempdir().expect("dir");
    openssl(
        dir.path(),
        &[
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "k.pem", "-out", "r.csr", "-subj", subject,
        ],
    );
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).expect("read");
    (read("k.pem"), read("r.csr"))
}

/// An RSA key and a self-signed end-entity certificate made by openssl: (certificate,
/// key) PEM.
pub fn openssl_identity(cn: &str) -> (String, String) {
    let dir = tempfile::tempdir().expect("dir");
    let (key, csr) = openssl_csr(&format!("/CN={cn}"));
    std::fs::write(dir.path().join("k.pem"), &key).expect("write");
    std::fs::write(dir.path().join("r.csr"), csr).expect("write");
    // Signed with its own key and without the CA extensions `req -x509` would add.
    openssl(
        dir.path(),
        &[
            "x509", "-req", "-in", "r.csr", "-signkey", "k.pem", "-days", "2", "-out", "c.pem",
        ],
    );
    (std::fs::read_to_string(dir.path().join("c.pem")).expect("read"), key)
}

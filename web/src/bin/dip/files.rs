//! Files the `dip` binary reads and writes: settings, keys, the test authority.

use std::path::Path;

use anyhow::Context;
use broker_core::security::authority::Authority;

/// The text of a file, with its path in the error.
pub fn read_file(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Writes a new file readable by its owner only (keys).
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// The test authority kept in `dir` (`ca.pem`, `ca-key.pem`; `dip certs ca-init`).
pub fn load_authority(dir: &Path, environment: &str) -> anyhow::Result<Authority> {
    let cert = read_file(&dir.join("ca.pem"))?;
    let key = read_file(&dir.join("ca-key.pem"))?;
    Ok(Authority::load(&cert, &key, environment)?)
}

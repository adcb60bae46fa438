//! The certificate lifecycle from the command line against a running TLS server (embedded
//! store): `dip certs ca-init`, `server`, `issue`, `list`, `revoke`, and `dip serve` with
//! `--tls-cert/--tls-key/--client-ca` and API keys off, as a production-style setup would
//! run it (the test authority standing in for a real one).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const SUP1: &str = "1000000001";

fn dip(data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dip"))
        .args(args)
        .env("DIP_DATA_DIR", data)
        .env_remove("DIP_DATABASE_URL")
        .env_remove("DIP_CONFIG")
        .env_remove("DIP_ENVIRONMENT")
        .output()
        .expect("run dip");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dip {args:?} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client(dir: &Path, identity: Option<&str>) -> reqwest::Client {
    let ca = std::fs::read(dir.join("ca/ca.pem")).expect("ca");
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca"));
    if let Some(stem) = identity {
        let mut pem = std::fs::read(dir.join(format!("out/{stem}.pem"))).expect("cert");
        pem.extend(std::fs::read(dir.join(format!("out/{stem}-key.pem"))).expect("key"));
        b = b.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
    }
    b.build().expect("client")
}

async fn send(client: &reqwest::Client, base: &str, reference: &str) -> Result<(u16, Value), reqwest::Error> {
    let item = json!({ "payload": {
        "CommonBlock": {
            "S0": { "interfaceID": "IF-031", "schemaVersion": "001", "eventCode": "SupplierServiceAppointmentRequest" },
            "S1": { "environmentTag": "DEV", "senderUniqueReference": reference, "senderTimestamp": "2026-11-27T09:00:00Z",
                    "senderDIPID": SUP1, "senderRoleID": "SUP", "senderCorrelationID": null, "DIPConnectionProviderID": null },
            "M0": { "MPANCore": "1600001000020" },
            "A0": { "primaryRecipients": ["1000000011"] }
        },
        "CustomBlock": { "mpanCore": "1600001000020", "supplierId": "AURA", "serviceRole": "MSS", "serviceProviderId": "KYST",
                         "serviceProviderDIPID": "1000000031", "effectiveFromDate": "2025-02-01", "contractReference": "C-1" }
    }});
    let r = client
        .post(format!("{base}/api/v1/messages"))
        .json(&json!([item]))
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_lifecycle_from_the_command_line() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path();
    let data = dir.join("data");
    // The demo directory, without serving it.
    let store = broker_core::store::connect(&format!("sqlite://{}", data.join("dip.db").display()))
        .await
        .expect("store");
    store.migrate().await.expect("migrate");
    broker_core::seed::seed_directory(store.as_ref(), &broker_core::seed::DirectoryData::demo().expect("demo"))
        .await
        .expect("seed");

    let (ca, out) = (dir.join("ca"), dir.join("out"));
    let (ca, out) = (ca.to_str().unwrap(), out.to_str().unwrap());
    dip(&data, &["certs", "ca-init", "--dir", ca]);
    let mode = std::fs::metadata(dir.join("ca/ca-key.pem")).expect("key").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600,
        "the CA key is private"
    );
    dip(
        &data,
        &[
            "certs",
            "server",
            "--ca-dir",
            ca,
            "--name",
            "127.0.0.1",
            "--name",
            "localhost",
            "--out",
            out,
        ],
    );
    let issued = dip(
        &data,
        &[
            "certs", "issue", "--ca-dir", ca, "--dip-id", SUP1, "--days", "10", "--out", out,
        ],
    );
    let fingerprint = issued
        .lines()
        .find_map(|l| l.strip_prefix(&format!("registered to {SUP1}: ")))
        .expect("fingerprint")
        .to_owned();
    let stem = format!("{SUP1}-{}", &fingerprint[..12]);
    let listed = dip(&data, &["certs", "list"]);
    let row = listed.lines().find(|l| l.contains(&fingerprint)).expect("listed");
    assert!(
        row.ends_with("expiring"),
        "10 days left is within the 30-day warning: {row}"
    );

    let port = dip_testkit::free_port();
    let base = format!("https://127.0.0.1:{port}");
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_dip"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--api-keys", "false"])
            .arg("--tls-cert")
            .arg(dir.join("out/server.pem"))
            .arg("--tls-key")
            .arg(dir.join("out/server-key.pem"))
            .arg("--client-ca")
            .arg(dir.join("ca/ca.pem"))
            .env("DIP_DATA_DIR", &data)
            .env_remove("DIP_DATABASE_URL")
            .env_remove("DIP_ENVIRONMENT")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve"),
    );
    let with_cert = client(dir, Some(&stem));
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, body) = loop {
        match send(&with_cert, &base, "cli-1").await {
            Ok(r) => break r,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("server never answered: {e}"),
        }
    };
    assert_eq!(status, 202, "{body}");
    // Without a certificate the handshake fails: API keys are off, so one is required.
    assert!(send(&client(dir, None), &base, "cli-2").await.is_err());

    // Revoked from another process: the server notices within its directory poll.
    dip(&data, &["certs", "revoke", &fingerprint]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = send(&with_cert, &base, "cli-3").await.expect("answered");
        if status == 401 {
            assert!(
                body["errors"][0]["message"].as_str().unwrap().contains("revoked"),
                "{body}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "revocation not applied: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        dip(&data, &["certs", "list"])
            .lines()
            .any(|l| l.contains(&fingerprint) && l.ends_with("revoked"))
    );
}

//! A throwaway ClickHouse server for tests: its own folder and loopback ports, stopped
//! (and its folder removed) when dropped. The binary comes from Debian's
//! `clickhouse-server` package (`.ci/test` installs it) or `DIP_CLICKHOUSE_SERVER`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// A `clickhouse-server` process of its own; killed when dropped.
pub struct ClickHouseServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub http_port: u16,
    tcp_port: u16,
    interserver_port: u16,
}

fn binary() -> PathBuf {
    let path = std::env::var_os("DIP_CLICKHOUSE_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/clickhouse-server"));
    assert!(
        path.exists(),
        "ClickHouse server not found at {} (apt-get install clickhouse-server, or set DIP_CLICKHOUSE_SERVER)",
        path.display()
    );
    path
}

impl ClickHouseServer {
    /// Starts a server and waits until it answers. Free ports are picked before the
    /// server binds them, so another process may take one in between: then new ones.
    pub async fn start() -> Self {
        let mut s = Self {
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
            http_port: 0,
            tcp_port: 0,
            interserver_port: 0,
        };
        for _ in 0..3 {
            (s.http_port, s.tcp_port, s.interserver_port) = (free_port(), free_port(), free_port());
            // A failed try's errors must not be read as this one's.
            let _ = std::fs::remove_file(s.dir.path().join("err"));
            match s.launch().await {
                Ok(()) => return s,
                Err(e) if e.contains("Address already in use") => {}
                Err(e) => panic!("{e}"),
            }
        }
        panic!("clickhouse-server found no free ports in three tries");
    }

    /// The URL of a database of its own for one test.
    pub fn url(&self, database: &str) -> String {
        format!("http://127.0.0.1:{}/?database={database}", self.http_port)
    }

    /// Kills the server (an outage); its data stays for `resume`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same ports and data, and waits until it answers.
    pub async fn resume(&mut self) {
        if let Err(e) = self.launch().await {
            panic!("{e}");
        }
    }

    /// Starts the server on its ports and data and waits until it answers; why not.
    async fn launch(&mut self) -> Result<(), String> {
        let d = self.dir.path();
        for sub in ["data", "tmp", "uf"] {
            std::fs::create_dir_all(d.join(sub)).expect("folder");
        }
        let arg = |k: &str, v: String| format!("--{k}={v}");
        let child = Command::new(binary())
            .arg("--config-file=/etc/clickhouse-server/config.xml")
            .arg("--")
            .arg(arg("path", format!("{}/", d.join("data").display())))
            .arg(arg("tmp_path", format!("{}/", d.join("tmp").display())))
            .arg(arg("user_files_path", format!("{}/", d.join("uf").display())))
            .arg(arg("format_schema_path", format!("{}/", d.join("fs").display())))
            .arg("--listen_host=127.0.0.1")
            .arg(arg("http_port", self.http_port.to_string()))
            .arg(arg("tcp_port", self.tcp_port.to_string()))
            .arg(arg("interserver_http_port", self.interserver_port.to_string()))
            .arg(arg("logger.log", d.join("log").display().to_string()))
            .arg(arg("logger.errorlog", d.join("err").display().to_string()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start clickhouse-server");
        self.child = Some(child);
        let ping = format!("http://127.0.0.1:{}/ping", self.http_port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(&ping).await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                let err = std::fs::read_to_string(d.join("err")).unwrap_or_default();
                return Err(format!(
                    "clickhouse-server exited ({status}): {}",
                    &err[err.len().saturating_sub(2000)..]
                ));
            }
            assert!(
                Instant::now() < deadline,
                "clickhouse-server did not answer within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ClickHouseServer {
    fn drop(&mut self) {
        self.kill();
    }
}

//! `dip serve` processes for tests: a node whose log is kept, and the nodes of one test
//! (a cluster) whose logs are shown when the test fails.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

/// How a node is started.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub database_url: String,
    pub port: u16,
    pub node_id: String,
    pub lease_ttl_ms: u64,
    pub request_timeout_ms: u64,
}

/// One `dip serve` process; killed when dropped.
pub struct Node {
    pub spec: NodeSpec,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.spec.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// `kill -9`, and reaps the process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits up to `timeout` for a graceful exit; returns whether it exited
    /// by itself (it is killed otherwise) and its exit status.
    pub async fn terminate(&mut self, timeout: Duration) -> (bool, Option<std::process::ExitStatus>) {
        let Some(mut c) = self.child.take() else {
            return (true, None);
        };
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return (true, Some(status));
            }
            if Instant::now() >= deadline {
                let _ = c.kill();
                return (false, c.wait().ok());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The node processes of a test, their logs (every incarnation) in a temporary folder,
/// shown when the test panics.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Node>,
    pub http: reqwest::Client,
    started: usize,
}

impl Cluster {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            nodes: Vec::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client"),
            started: 0,
        }
    }

    /// Starts a node and waits until it answers its health check; returns its index.
    pub async fn start(&mut self, spec: NodeSpec) -> usize {
        let node = self.spawn(spec).await;
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Replaces node `i` (which must have stopped) with a new process of `spec`.
    pub async fn restart(&mut self, i: usize, spec: NodeSpec) {
        self.nodes[i].kill9();
        let node = self.spawn(spec).await;
        self.nodes[i] = node;
    }

    /// Starts a node that must refuse to start; returns its exit status and whole log once
    /// it has exited (with `RUST_BACKTRACE` set, the error's backtrace follows its message).
    pub async fn refused(&mut self, spec: NodeSpec) -> (Option<std::process::ExitStatus>, String) {
        let mut node = self.launch(spec);
        let health = format!("{}/api/v1/health", node.base());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(Ok(Some(status))) = node.child.as_mut().map(Child::try_wait) {
                return (Some(status), std::fs::read_to_string(&node.log).unwrap_or_default());
            }
            if node.exited() {
                return (None, std::fs::read_to_string(&node.log).unwrap_or_default());
            }
            if let Ok(r) = self.http.get(&health).send().await
                && r.status().is_success()
            {
                panic!("{} started, but should have refused", node.spec.node_id);
            }
            assert!(
                Instant::now() < deadline,
                "{} neither started nor exited",
                node.spec.node_id
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn spawn(&mut self, spec: NodeSpec) -> Node {
        let mut node = self.launch(spec);
        let health = format!("{}/api/v1/health", node.base());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if node.exited() {
                panic!("{} exited while starting:\n{}", node.spec.node_id, tail(&node.log, 40));
            }
            if let Ok(r) = self.http.get(&health).send().await
                && r.status().is_success()
            {
                return node;
            }
            if Instant::now() >= deadline {
                panic!("{} did not become healthy:\n{}", node.spec.node_id, tail(&node.log, 40));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the process of a node, its output going to a log of its own.
    fn launch(&mut self, spec: NodeSpec) -> Node {
        self.started += 1;
        let log = self
            .dir
            .path()
            .join(format!("{:02}-{}.log", self.started, spec.node_id));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_dip"))
            .arg("serve")
            .arg("--database-url")
            .arg(&spec.database_url)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", spec.port))
            .arg("--node-id")
            .arg(&spec.node_id)
            .arg("--lease-ttl-ms")
            .arg(spec.lease_ttl_ms.to_string())
            .arg("--request-timeout-ms")
            .arg(spec.request_timeout_ms.to_string())
            // The sinks listen on loopback, which webhooks may reach only when allow-listed.
            .arg("--webhook-allow")
            .arg("127.0.0.0/8")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("DIP_CONFIG")
            .env_remove("DIP_DATA_DIR")
            .env_remove("DIP_ENVIRONMENT")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start dip serve");
        Node {
            spec,
            log,
            child: Some(child),
        }
    }

    /// The last lines of every log of this cluster, oldest incarnation first.
    pub fn logs(&self, lines: usize) -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|f| f.extension().is_some_and(|x| x == "log"));
        files.sort();
        files
            .iter()
            .map(|f| format!("==== {} ====\n{}", f.display(), tail(f, lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The WARN and ERROR lines of every incarnation's log.
    pub fn warnings(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
                    .map(|l| format!("{name}: {l}"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill9();
        }
        if std::thread::panicking() {
            eprintln!("---- node logs (tails) ----\n{}", self.logs(30));
        }
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

//! The real service binaries as child processes (the gateway among them), and what a test
//! reads from them: `/metrics`, and when they own partitions or answer.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::logs::{log_tail, service_log};
use crate::stack::{free_port, Stack};

/// The PII key every test service uses; tests recompute fan ids with it independently.
pub const TEST_PII_KEY: &str = "e2e-test-key-0123456789";

/// The group session timeout every test service runs with (short, so failover is quick).
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// A running service binary.
pub struct Service {
    /// Binary name.
    pub name: String,
    /// `/metrics` address.
    pub metrics: String,
    child: Child,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// When a SIGKILL ended the process: its group member lives until the session expires.
    killed_at: Option<Instant>,
}

/// Path of a workspace binary built by `cargo build`.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/e2e-<hash> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).context("target dir")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not built: run `cargo build --workspace --bins` first (make test does)",
            path.display()
        );
    }
    Ok(path)
}

/// `wxpulse --database <database>` against `stack`, as an operator runs it: the brokers
/// and ClickHouse on its command line, [`Stack::env`] for the rest.
pub fn cli(stack: &Stack, database: &str) -> anyhow::Result<std::process::Command> {
    let mut cli = std::process::Command::new(binary("wxpulse")?);
    cli.args([
        "--brokers",
        &stack.brokers,
        "--clickhouse",
        &stack.clickhouse,
    ])
    .args(["--database", database])
    .envs(stack.env());
    Ok(cli)
}

impl Service {
    /// Starts `name` (e.g. `wxpulse-menu-clicks`) against `stack`, writing to `database`.
    pub fn start(
        name: &str,
        stack: &Stack,
        database: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Service> {
        Self::start_command(name, &[], stack, database, extra)
    }

    /// Starts the binary `name` with `args` (e.g. `wxpulse dims mirror`) the way
    /// [`Service::start`] starts a consumer service.
    pub fn start_command(
        name: &str,
        args: &[&str],
        stack: &Stack,
        database: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Service> {
        let metrics = format!("127.0.0.1:{}", free_port());
        let mut env: Vec<(String, String)> = stack.env();
        env.extend([
            ("WXPULSE__CLICKHOUSE__DATABASE".into(), database.into()),
            ("WXPULSE__METRICS__LISTEN".into(), metrics.clone()),
            ("WXPULSE__PII__KEY".into(), TEST_PII_KEY.into()),
            // Fast, stable group behaviour on Tansu (2 s session timeouts loop).
            (
                "WXPULSE__KAFKA__SESSION_TIMEOUT".into(),
                format!("{}s", SESSION_TIMEOUT.as_secs()),
            ),
            ("WXPULSE__KAFKA__HEARTBEAT_INTERVAL".into(), "500ms".into()),
            ("WXPULSE__KAFKA__MAX_POLL_INTERVAL".into(), "20s".into()),
            ("WXPULSE__KAFKA__DRAIN_TIMEOUT".into(), "8s".into()),
            ("WXPULSE__CLICKHOUSE__INSERT_TIMEOUT".into(), "5s".into()),
            ("WXPULSE__RETRY__MAX_BACKOFF".into(), "1s".into()),
            ("WXPULSE__BATCH__MAX_AGE".into(), "300ms".into()),
            ("WXPULSE__LOG__LEVEL".into(), "info".into()),
        ]);
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push(((*k).into(), (*v).into()));
        }
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let child = spawn(name, &args, &env)?;
        Ok(Service {
            name: name.into(),
            metrics,
            child,
            args,
            env,
            killed_at: None,
        })
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            self.killed_at = Some(Instant::now());
        }
        let _ = self.child.wait();
    }

    /// Starts the same binary with the same settings again.
    ///
    /// After a SIGKILL it first waits until the dead process's group session has expired.
    /// Tansu 0.6 has a coordinator race a real Kafka does not: when a dead leader's session
    /// ends between a new member's JoinGroup and its SyncGroup, the follower's empty
    /// assignment is taken as the group's, and the group sits formed with no partition
    /// owned until membership changes again (measured: a whole stream stalled for
    /// minutes). Rejoining after the expiry is what Tansu handles.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        if let Some(killed) = self.killed_at.take() {
            let expired = killed + SESSION_TIMEOUT + Duration::from_secs(1);
            std::thread::sleep(expired.saturating_duration_since(Instant::now()));
        }
        self.child = spawn(&self.name, &self.args, &self.env)?;
        Ok(())
    }

    /// SIGTERM and the exit code (None if it had to be killed after `patience`).
    pub fn terminate(&mut self, patience: Duration) -> Option<i32> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        None
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The Prometheus text of `/metrics`.
    pub fn scrape(&self) -> anyhow::Result<String> {
        http_get(&self.metrics, "/metrics")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(name: &str, args: &[String], env: &[(String, String)]) -> anyhow::Result<Child> {
    let path = service_log(name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    Command::new(binary(name)?)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {name}"))
}

/// A bare HTTP/1.0 GET on loopback (no client crate needed for two endpoints).
pub fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default())
}

/// The value of a metric line `name{...labels containing all of `labels`...} value`.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(|a, b| a + b)
}

/// The four services: (binary, table, rollup stream name, generator stream name).
pub const SERVICES: [(&str, &str, &str); 4] = [
    ("wxpulse-menu-clicks", "menu_clicks", "menu_click"),
    ("wxpulse-qr-scans", "qr_scans", "qr_scan"),
    ("wxpulse-chat-messages", "chat_messages", "chat_message"),
    ("wxpulse-article-reads", "article_reads", "article_read"),
];

/// Waits until `service` owns at least one partition (panics after `patience`).
pub async fn owns_partitions(service: &Service, patience: Duration) {
    wait_for(service, patience, "owns no partition", || {
        service
            .scrape()
            .ok()
            .and_then(|t| metric(&t, "wxpulse_source_assigned_partitions", &[]))
            .is_some_and(|owned| owned > 0.0)
    })
    .await
}

/// Waits until `service`'s `/readyz` answers `ready` (every assigned partition's state
/// restored from ClickHouse); panics with its log's tail after `patience`.
pub async fn ready(service: &Service, patience: Duration) {
    wait_for(service, patience, "is not ready", || {
        http_get(&service.metrics, "/readyz").is_ok_and(|body| body == "ready\n")
    })
    .await
}

/// Polls `done` until it holds; after `patience`, panics saying `service` `what`, with
/// the end of its log.
async fn wait_for(service: &Service, patience: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "{} {what} after {patience:?}; the end of its log:\n{}",
        service.name,
        log_tail(&service_log(&service.name), 40)
    );
}

/// `wxpulse-gateway` on a free port for `stack`, serving the accounts of `accounts_toml`
/// (a file the caller may rewrite to test re-reads); the file goes with the value.
pub struct Gateway {
    /// The process.
    pub service: Service,
    /// `host:port` of the callback endpoint.
    pub listen: String,
    /// The accounts file.
    pub accounts: PathBuf,
}

impl Gateway {
    /// Writes the accounts file and starts the gateway with `extra` settings on top.
    pub fn start(
        stack: &Stack,
        database: &str,
        accounts_toml: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Gateway> {
        let accounts = std::env::temp_dir().join(format!(
            "wxpulse-gateway-accounts-{}-{}.toml",
            std::process::id(),
            free_port()
        ));
        std::fs::write(&accounts, accounts_toml)?;
        let listen = format!("127.0.0.1:{}", free_port());
        let path = accounts.to_string_lossy().into_owned();
        let mut env = vec![
            ("WXPULSE__GATEWAY__LISTEN", listen.as_str()),
            ("WXPULSE__GATEWAY__ACCOUNTS_FILE", path.as_str()),
        ];
        env.extend_from_slice(extra);
        let service = Service::start("wxpulse-gateway", stack, database, &env)?;
        Ok(Gateway {
            service,
            listen,
            accounts,
        })
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.accounts);
    }
}

/// Retries `attempt` every 200 ms until it returns `Ok` (a process coming up), for at most
/// `patience`; the last error past it.
pub async fn until_ok<T>(
    patience: Duration,
    mut attempt: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let started = Instant::now();
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(_) if started.elapsed() < patience => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => return Err(e),
        }
    }
}

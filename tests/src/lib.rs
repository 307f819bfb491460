//! Harness of the end-to-end tests: a private local stack (Tansu + chdb-http, started by
//! `deploy/local/stack.sh` on free ports in a temp dir), the real service binaries as child
//! processes, and helpers to produce, wait and query.
//!
//! Service binaries are taken from the cargo target dir; `make test` builds them first.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral port")
}

/// A private Kafka + ClickHouse, torn down on drop.
pub struct Stack {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// ClickHouse HTTP URL.
    pub clickhouse: String,
    dir: PathBuf,
    kafka_port: u16,
    ch_port: u16,
    secure: bool,
}

impl Stack {
    /// Starts a stack (storage: sqlite, which survives kill -9 like a real broker).
    pub fn start(name: &str) -> anyhow::Result<Stack> {
        Self::start_with(name, false)
    }

    /// Starts a secure stack (`stack.sh up --secure`): Kafka requires a SASL/SCRAM login,
    /// ClickHouse serves HTTPS with a CA made for the stack. [`Stack::env`] has what a
    /// client needs to reach it.
    pub fn start_secure(name: &str) -> anyhow::Result<Stack> {
        Self::start_with(name, true)
    }

    fn start_with(name: &str, secure: bool) -> anyhow::Result<Stack> {
        let dir = std::env::temp_dir().join(format!("wxpulse-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (kafka_port, ch_port) = (free_port(), free_port());
        let scheme = if secure { "https" } else { "http" };
        let stack = Stack {
            brokers: format!("127.0.0.1:{kafka_port}"),
            clickhouse: format!("{scheme}://127.0.0.1:{ch_port}"),
            kafka_port,
            ch_port,
            dir,
            secure,
        };
        if secure {
            stack.script(&["up", "--secure"])?;
        } else {
            stack.script(&["up"])?;
        }
        Ok(stack)
    }

    /// A file of a secure stack (`ca.pem`, `kafka-password`, `wxpulse.toml`).
    pub fn secure_file(&self, name: &str) -> PathBuf {
        self.dir.join("secure").join(name)
    }

    /// What `stack.sh env` prints: the environment a service or `wxpulse` needs to
    /// reach this stack (for a secure one: the config with SASL and the CA, and the SCRAM
    /// login).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("WXPULSE__KAFKA__BROKERS".to_string(), self.brokers.clone()),
            (
                "WXPULSE__CLICKHOUSE__URL".to_string(),
                self.clickhouse.clone(),
            ),
        ];
        if self.secure {
            let path = |n: &str| self.secure_file(n).to_string_lossy().into_owned();
            env.extend([
                ("WXPULSE_CONFIG".to_string(), path("wxpulse.toml")),
                (
                    "WXPULSE_KAFKA_SASL_USERNAME".to_string(),
                    "wxpulse".to_string(),
                ),
                (
                    "WXPULSE_KAFKA_SASL_PASSWORD_FILE".to_string(),
                    path("kafka-password"),
                ),
            ]);
        }
        env
    }

    /// The configuration the CLI and the services get from [`Stack::env`].
    pub fn config(&self) -> anyhow::Result<wxpulse_runtime::config::Config> {
        let env = self.env();
        let file = env
            .iter()
            .find(|(k, _)| k == "WXPULSE_CONFIG")
            .map(|(_, v)| PathBuf::from(v));
        Ok(wxpulse_runtime::config::Config::load(file.as_deref(), env)?)
    }

    fn script(&self, args: &[&str]) -> anyhow::Result<()> {
        let status = Command::new(repo_root().join("deploy/local/stack.sh"))
            .args(args)
            .env("WXPULSE_KAFKA_PORT", self.kafka_port.to_string())
            .env("WXPULSE_CH_PORT", self.ch_port.to_string())
            .env("WXPULSE_STACK_DIR", &self.dir)
            .status()
            .context("cannot run deploy/local/stack.sh")?;
        if !status.success() {
            bail!("stack.sh {args:?} failed: {status}");
        }
        Ok(())
    }

    /// Stops ClickHouse (the adapter); data stays.
    pub fn stop_clickhouse(&self) -> anyhow::Result<()> {
        self.script(&["stop", "clickhouse"])
    }

    /// Starts ClickHouse again on the same data.
    pub fn start_clickhouse(&self) -> anyhow::Result<()> {
        self.script(&["start", "clickhouse"])
    }

    /// Stops the broker (SIGTERM); its log stays.
    pub fn stop_kafka(&self) -> anyhow::Result<()> {
        self.script(&["stop", "kafka"])
    }

    /// Starts the broker again on the same log and port.
    pub fn start_kafka(&self) -> anyhow::Result<()> {
        self.script(&["start", "kafka"])
    }

    /// SIGKILLs a component (`kafka` or `clickhouse`) and its process group, as a crash;
    /// `start_*` brings it back on the same data.
    pub fn kill_component(&self, component: &str) -> anyhow::Result<()> {
        let pidfile = self.dir.join("pids").join(format!("{component}.pid"));
        let pid = std::fs::read_to_string(&pidfile)
            .with_context(|| format!("{component} is not running ({})", pidfile.display()))?;
        let pid = pid.trim();
        Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status()?;
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while proc.exists() && Instant::now() < deadline {
            // A zombie until its parent (stack.sh's subshell) reaps it; the port is free.
            let stat = std::fs::read_to_string(proc.join("stat")).unwrap_or_default();
            if stat
                .split_whitespace()
                .nth(2)
                .is_some_and(|s| s == "Z" || s == "X")
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The Kafka settings of this stack's clients (these brokers; SASL on a secure stack).
    pub fn kafka(&self) -> wxpulse_runtime::config::KafkaConfig {
        if self.secure {
            return self.config().expect("the stack's config loads").kafka;
        }
        kafka(&self.brokers)
    }

    /// A client for `database` (HTTPS with the stack's CA on a secure stack).
    pub fn client(&self, database: &str) -> clickhouse::Client {
        if self.secure {
            let ch = self.config().expect("the stack's config loads").clickhouse;
            return wxpulse_runtime::sink::server(&ch)
                .expect("the stack's CA loads")
                .with_database(database);
        }
        clickhouse::Client::default()
            .with_url(&self.clickhouse)
            .with_database(database)
    }

    /// Migrates `database` and creates every topic with `partitions`.
    pub async fn prepare(&self, database: &str, partitions: i32) -> anyhow::Result<()> {
        let mut ch = self.config()?.clickhouse;
        ch.database = database.to_string();
        wxpulse_cli::migrate::migrate(&ch, None).await?;
        wxpulse_cli::topics::create(&self.kafka(), &wxpulse_cli::topics::all(partitions), 1)
            .await?;
        Ok(())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // A failed test keeps the broker's and the adapter's logs (its data goes), and shows
        // their ends: CI prints only the test's output.
        if std::thread::panicking() {
            let keep = logs_dir().join(self.dir.file_name().unwrap_or("stack".as_ref()));
            for component in ["kafka", "clickhouse"] {
                let log = self.dir.join("logs").join(format!("{component}.log"));
                eprintln!(
                    "--- the end of {component}'s log ({}):\n{}",
                    keep.display(),
                    log_tail(&log, 30)
                );
                if std::fs::create_dir_all(&keep).is_ok() {
                    let _ = std::fs::copy(&log, keep.join(format!("{component}.log")));
                }
            }
        }
        let _ = self.script(&["down", "--purge"]);
    }
}

/// The default Kafka settings with `brokers`: what the CLI's clients get on a plain stack.
pub fn kafka(brokers: &str) -> wxpulse_runtime::config::KafkaConfig {
    let mut kafka = wxpulse_runtime::config::Config::load(None, Vec::new())
        .expect("the defaults load")
        .kafka;
    kafka.brokers = brokers.to_string();
    kafka
}

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

/// The log every instance of the binary `name` appends its stderr to.
pub fn service_log(name: &str) -> PathBuf {
    logs_dir().join(format!("{name}.log"))
}

/// Where the e2e logs go (`make e2e` clears it): the services' and failed stacks'.
fn logs_dir() -> PathBuf {
    std::env::temp_dir().join("wxpulse-e2e-logs")
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

/// Polls `count` until it returns `want` or `timeout` passes; returns the last value.
pub async fn wait_for<F, Fut>(timeout: Duration, want: u64, mut count: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = 0;
    while Instant::now() < deadline {
        if let Ok(n) = count().await {
            last = n;
            if n == want {
                // Stay a moment to catch any overshoot (a double count).
                tokio::time::sleep(Duration::from_millis(1500)).await;
                return count().await.unwrap_or(n);
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    last
}

/// `SELECT count() FROM table`.
pub async fn count(client: &clickhouse::Client, table: &str) -> anyhow::Result<u64> {
    Ok(client
        .query(&format!("SELECT count() FROM {table}"))
        .fetch_one::<u64>()
        .await?)
}

/// `SELECT sum(events) FROM interactions_hourly WHERE stream = ?`.
pub async fn rollup(client: &clickhouse::Client, stream: &str) -> anyhow::Result<u64> {
    Ok(client
        .query("SELECT toUInt64(sum(events)) FROM interactions_hourly WHERE stream = ?")
        .bind(stream)
        .fetch_one::<u64>()
        .await?)
}

/// The fan id wxpulse must store for a raw id, computed here without wxpulse's code.
pub fn expected_fan_id(raw: &str) -> u64 {
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(TEST_PII_KEY.as_bytes()).expect("any key length");
    mac.update(raw.as_bytes());
    let d = mac.finalize().into_bytes();
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// The four services: (binary, table, rollup stream name, generator stream name).
pub const SERVICES: [(&str, &str, &str); 4] = [
    ("wxpulse-menu-clicks", "menu_clicks", "menu_click"),
    ("wxpulse-qr-scans", "qr_scans", "qr_scan"),
    ("wxpulse-chat-messages", "chat_messages", "chat_message"),
    ("wxpulse-article-reads", "article_reads", "article_read"),
];

/// An event for `topic` in the Confluent wire format, written with the embedded schema
/// `version` of the topic (`None`: the newest), as an upstream producer would.
pub fn encode_event<T: serde::Serialize>(topic: &str, version: Option<u32>, value: &T) -> Vec<u8> {
    use wxpulse_runtime::codec;
    let subject = format!("{topic}-value");
    let schema = match version {
        Some(v) => codec::EMBEDDED
            .iter()
            .find(|s| s.subject == subject && s.version == v),
        None => codec::latest(&subject),
    }
    .expect("schema embedded");
    let mut out = Vec::new();
    codec::encode_into(
        value,
        schema.id,
        &codec::parse(schema.json).expect("parses"),
        &mut out,
    )
    .expect("encodes");
    out
}

/// Start of last month and of this month in Asia/Shanghai, ms, as ClickHouse computes
/// them: a span whose events are never in the future, whatever today's date.
pub async fn last_month(stack: &Stack) -> anyhow::Result<(i64, i64)> {
    Ok(stack
        .client("default")
        .query(
            "SELECT toInt64(toUnixTimestamp(toStartOfMonth(now('Asia/Shanghai')) - INTERVAL 1 MONTH, 'Asia/Shanghai')) * 1000, \
                    toInt64(toUnixTimestamp(toStartOfMonth(now('Asia/Shanghai')), 'Asia/Shanghai')) * 1000",
        )
        .fetch_one::<(i64, i64)>()
        .await?)
}

/// Copies the fan-profile and fan-follow topics into `database`'s `fan_profiles` and
/// `fan_follow_events` with `wxpulse dims mirror --once`, as compose's mirror does
/// continuously: the views that need profiles and follows read them.
pub fn mirror_profiles(stack: &Stack, database: &str) -> anyhow::Result<()> {
    let status = Command::new(binary("wxpulse")?)
        .args([
            "--brokers",
            &stack.brokers,
            "--clickhouse",
            &stack.clickhouse,
        ])
        .args(["--database", database, "dims", "mirror", "--once"])
        .envs(stack.env())
        .env("WXPULSE__PII__KEY", TEST_PII_KEY)
        .status()?;
    anyhow::ensure!(status.success(), "dims mirror: {status}");
    Ok(())
}

/// Waits until `service` owns at least one partition (panics after `patience`).
pub async fn owns_partitions(service: &Service, patience: Duration) {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        let owned = service
            .scrape()
            .ok()
            .and_then(|t| metric(&t, "wxpulse_source_assigned_partitions", &[]))
            .unwrap_or(0.0);
        if owned > 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "{} owns no partition after {patience:?}; the end of its log:\n{}",
        service.name,
        log_tail(&service_log(&service.name), 40)
    );
}

/// The last `lines` lines of a log, so a failure in CI shows what the service was doing.
pub fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The `CREATE MATERIALIZED VIEW` statement of `name` as the migrations define it, to
/// put a view back after a test broke it.
pub fn view_statement(name: &str) -> String {
    wxpulse_cli::migrate::MIGRATIONS
        .iter()
        .flat_map(|m| wxpulse_cli::migrate::statements(m.sql))
        .find(|s| s.contains(&format!("VIEW IF NOT EXISTS {name} ")))
        .map(|s| wxpulse_cli::migrate::render(&s, None))
        .expect("the view is in the migrations")
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

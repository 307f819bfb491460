//! The private local stack (Tansu + chdb-http, started by `deploy/local/stack.sh` on free
//! ports in a temp dir) and the settings its clients need.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::logs::{log_tail, logs_dir};

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
        let pid = self.pid(component)?;
        let pid = pid.as_str();
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

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) a component's process group: a broker or
    /// server that stops answering without closing its connections, as an overloaded one does.
    pub fn freeze_component(&self, component: &str, frozen: bool) -> anyhow::Result<()> {
        let pid = self.pid(component)?;
        let signal = if frozen { "-STOP" } else { "-CONT" };
        Command::new("kill")
            .args([signal, "--", &format!("-{pid}")])
            .status()?;
        Ok(())
    }

    /// The pid stack.sh recorded for a running component (its process group's leader).
    fn pid(&self, component: &str) -> anyhow::Result<String> {
        let pidfile = self.dir.join("pids").join(format!("{component}.pid"));
        let pid = std::fs::read_to_string(&pidfile)
            .with_context(|| format!("{component} is not running ({})", pidfile.display()))?;
        Ok(pid.trim().to_string())
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

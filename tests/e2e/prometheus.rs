//! The monitoring contract against a real Prometheus server (Debian's `prometheus` package,
//! see deploy/ops/install-prometheus.sh) scraping the services, the fan-profile mirror,
//! the gateway and the notifier, and evaluating the repository's rule files: every metric
//! the dashboards and rules name must have series,
//! every rule must evaluate, and the service-down and insert-error alerts must go pending
//! when their fault happens.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde_json::Value;
use wxpulse_cli::produce;
use wxpulse_e2e::*;
use wxpulse_generator::generate;

/// A Prometheus server on a free port; killed, and its TSDB removed, on drop.
struct Prometheus {
    addr: String,
    dir: PathBuf,
    child: Child,
}

impl Prometheus {
    fn start(targets: &[&str]) -> anyhow::Result<Prometheus> {
        let root = repo_root().canonicalize()?;
        let out = Command::new(root.join("deploy/ops/install-prometheus.sh")).output()?;
        if !out.status.success() {
            bail!(
                "install-prometheus.sh: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let bin = String::from_utf8(out.stdout)?.trim().to_string();
        let mut rules: Vec<PathBuf> = std::fs::read_dir(root.join("deploy/prometheus/rules"))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        rules.retain(|p| p.extension().is_some_and(|e| e == "yml"));
        let dir = std::env::temp_dir().join(format!("wxpulse-e2e-prom-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        // Debug formatting quotes strings the way YAML flow sequences accept.
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: {rules:?}\n\
             scrape_configs:\n  - job_name: wxpulse\n    static_configs: [{{targets: {targets:?}}}]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config)?;
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::env::temp_dir().join("wxpulse-e2e-logs/prometheus.log");
        std::fs::create_dir_all(log.parent().context("log dir")?)?;
        let child = Command::new(&bin)
            .arg(format!("--config.file={}/prometheus.yml", dir.display()))
            .arg(format!("--storage.tsdb.path={}/data", dir.display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .with_context(|| format!("cannot start {bin}"))?;
        Ok(Prometheus { addr, dir, child })
    }

    /// `data` of a successful API answer.
    fn api(&self, path: &str) -> anyhow::Result<Value> {
        let body = http_get(&self.addr, path)?;
        let v: Value = serde_json::from_str(&body).with_context(|| format!("{path}: {body}"))?;
        if v["status"] != "success" {
            bail!("{path}: {body}");
        }
        Ok(v["data"].clone())
    }

    /// The value of an instant query that returns one sample (0 when it returns none).
    fn value(&self, promql: &str) -> anyhow::Result<f64> {
        let data = self.api(&format!("/api/v1/query?query={}", url_encode(promql)))?;
        match data["result"][0]["value"][1].as_str() {
            Some(v) => Ok(v.parse()?),
            None => Ok(0.0),
        }
    }

    /// Names among `names` without any series.
    fn absent(&self, names: &[String]) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for name in names {
            if self.value(&format!("count({name})"))? == 0.0 {
                out.push(name.clone());
            }
        }
        Ok(out)
    }

    /// Fails unless an alert `name` whose labels include `label` is pending or firing.
    fn alert_active(&self, name: &str, (key, value): (&str, &str)) -> anyhow::Result<()> {
        let data = self.api("/api/v1/alerts")?;
        let active = data["alerts"].as_array().into_iter().flatten().any(|a| {
            a["labels"]["alertname"] == name
                && a["labels"][key] == value
                && (a["state"] == "pending" || a["state"] == "firing")
        });
        ensure!(active, "{name}{{{key}={value}}} neither pending nor firing");
        Ok(())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls `check` every 500 ms until it succeeds; fails with its last error after `secs`.
async fn until(secs: u64, mut check: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match check() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e.context(format!("after {secs} s"))),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Names printed by deploy/ops/dashboard_metrics.py with `flag` (--raw, --recorded).
fn dashboard_names(flag: &str) -> anyhow::Result<Vec<String>> {
    let out = Command::new("python3")
        .arg(repo_root().join("deploy/ops/dashboard_metrics.py"))
        .arg(flag)
        .output()?;
    ensure!(
        out.status.success(),
        "dashboard_metrics.py {flag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(str::to_string)
        .collect())
}

async fn produce_generated(
    brokers: &str,
    seed: u64,
    events: u64,
    malformed: f64,
) -> anyhow::Result<generate::GroundTruth> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let spec = generate::Spec {
        seed,
        brands: 2,
        accounts_per_brand: 2,
        fans_per_account: 1_000,
        events,
        // Dense in event time: the generator releases upstream-retry copies some records
        // after the original, and they must stay inside the 10-minute dedup window.
        start_ms: now - 3_600_000,
        end_ms: now - 600_000,
        duplicate_share: 0.02,
        resend_share: 0.0,
        late_share: 0.0,
        malformed_share: malformed,
        unknown_dimension_share: 0.01,
        unknown_account_share: 0.0,
    };
    let (records, truth) = generate::generate(&spec);
    produce::send_all(
        &produce::producer(&wxpulse_e2e::kafka(brokers))?,
        records,
        |_| {},
    )
    .await?;
    Ok(truth)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_dashboard_metric_and_fires_alerts() -> anyhow::Result<()> {
    let db = "wx_prometheus";
    let stack = Stack::start("prometheus")?;
    stack.prepare(db, 2).await?;
    let mut services = Vec::new();
    for (bin, _, _) in SERVICES {
        services.push(Service::start(bin, &stack, db, &[])?);
    }
    // The fan-profile mirror too: the rules watch its lag and last write.
    let mirror = Service::start_command(
        "wxpulse",
        &["--database", db, "dims", "mirror"],
        &stack,
        db,
        &[],
    )?;
    // And the gateway: its alert's counter must have series (every outcome is exported).
    let gateway = Gateway::start(
        &stack,
        db,
        "[[account]]\napp_id = \"wxprom\"\ntoken = \"t\"\n",
        &[],
    )?;
    // And the notifier: the pipeline dashboard's Notifier row and WxpulseNotifierAbsent
    // read its own series (it has no wxpulse_source_*/wxpulse_pipeline_* ones).
    let notifier = Service::start("wxpulse-notifier", &stack, db, &[])?;
    let mut targets: Vec<&str> = services.iter().map(|s| s.metrics.as_str()).collect();
    targets.push(&mirror.metrics);
    targets.push(&gateway.service.metrics);
    targets.push(&notifier.metrics);
    let prom = Prometheus::start(&targets)?;
    until(30, || {
        ensure!(
            http_get(&prom.addr, "/-/ready")?.contains("is Ready"),
            "Prometheus not ready"
        );
        Ok(())
    })
    .await?;

    // Traffic with 5% malformed records, so the dead-letter counters move too.
    let truth = produce_generated(&stack.brokers, 21, 4_000, 0.05).await?;
    let ch = stack.client(db);
    for (_, table, stream) in SERVICES {
        let want = truth.events[stream];
        let got = wait_for(Duration::from_secs(60), want, || count(&ch, table)).await;
        assert_eq!(got, want, "{table}");
    }
    let dead = truth.dead_letters.values().sum::<u64>() as f64;
    until(30, || {
        let got = prom.value("sum(wxpulse_dlq_events_total)")?;
        ensure!(got == dead, "Prometheus has {got} of {dead} dead letters");
        Ok(())
    })
    .await?;

    // Every raw metric has series (histograms are printed as their _bucket/_sum/_count
    // series, which is what Prometheus stores), every recording rule has results, and
    // every rule evaluates.
    let recorded = dashboard_names("--recorded")?;
    let raw = dashboard_names("--raw")?;
    assert!(raw.len() > 10 && recorded.len() > 5, "{raw:?} {recorded:?}");
    until(30, || {
        let absent = prom.absent(&raw)?;
        ensure!(absent.is_empty(), "no series: {absent:?}");
        Ok(())
    })
    .await?;
    until(30, || {
        let absent = prom.absent(&recorded)?;
        ensure!(
            absent.is_empty(),
            "recording rules without results: {absent:?}"
        );
        let groups = prom.api("/api/v1/rules")?;
        let unhealthy: Vec<String> = groups["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .filter(|r| r["health"] != "ok")
            .map(|r| format!("{}: {} {}", r["name"], r["health"], r["lastError"]))
            .collect();
        ensure!(unhealthy.is_empty(), "rules not evaluating: {unhealthy:?}");
        Ok(())
    })
    .await?;

    // A crash: `up == 0` makes WxpulseServiceDown pending at once (`for: 2m` before firing).
    services[0].kill();
    let instance = services[0].metrics.clone();
    until(30, || {
        prom.alert_active("WxpulseServiceDown", ("instance", &instance))
    })
    .await?;

    // ClickHouse down while events arrive: every service retries its inserts about once a
    // second, above the transient alert's 0.05/s over 5m, so it goes pending (firing needs
    // `for: 10m`). The counter behind it is checked too.
    stack.stop_clickhouse()?;
    produce_generated(&stack.brokers, 22, 2_000, 0.0).await?;
    until(120, || {
        prom.alert_active("WxpulseInsertErrors", ("class", "transient"))
    })
    .await?;
    let errors = prom.value(r#"sum(wxpulse_sink_insert_errors_total{class="transient"})"#)?;
    assert!(errors > 0.0, "no transient insert errors in Prometheus");
    stack.start_clickhouse()
}

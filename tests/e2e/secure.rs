//! A secured deployment (issue 13): Kafka that requires a SASL/SCRAM login, ClickHouse over
//! HTTPS with a CA made for the stack, and a schema registry over HTTPS that requires
//! credentials. Every `wxpulse` command and a service work with the credentials, and fail
//! fast with an error naming the setting without them; no configured secret appears in
//! `--print-config` or in any log line.
//!
//! Tansu 0.6 does SASL but not TLS (its listener never uses the certificate it is given),
//! so Kafka is SASL_PLAINTEXT here; SASL_SSL differs only in librdkafka's own TLS settings.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use wxpulse_e2e::*;
use wxpulse_runtime::codec;

const DB: &str = "wx_secure";
/// Secrets the test configures; none may be printed anywhere.
const CH_PASSWORD: &str = "0123"; // numeric-looking on purpose
const REGISTRY_KEY: &str = "REGKEY4711";
const REGISTRY_SECRET: &str = "reg-Secret-9f8e7d";
const REGISTRY_TOKEN: &str = "reg-Token-1a2b3c";

/// A schema registry over HTTPS that answers only requests carrying `Basic` credentials
/// `REGISTRY_KEY:REGISTRY_SECRET` or the bearer token, and counts what it served.
struct SecureRegistry {
    url: String,
    served: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
}

impl SecureRegistry {
    fn start(cert: &Path, key: &Path) -> anyhow::Result<SecureRegistry> {
        let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(key)?;
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?,
        );
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("https://{}", listener.local_addr()?);
        let (served, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let counters = (served.clone(), refused.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (config, counters) = (config.clone(), counters.clone());
                std::thread::spawn(move || {
                    let Ok(conn) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    answer(rustls::StreamOwned::new(conn, stream), &counters);
                });
            }
        });
        Ok(SecureRegistry {
            url,
            served,
            refused,
        })
    }
}

fn answer(
    stream: rustls::StreamOwned<rustls::ServerConnection, std::net::TcpStream>,
    (served, refused): &(Arc<AtomicU64>, Arc<AtomicU64>),
) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return; // e.g. a client that refused our certificate
    }
    let mut authorization = String::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).map_or(true, |n| n == 0) || header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = value.trim().to_string();
            }
        }
    }
    let basic = format!(
        "Basic {}",
        base64(format!("{REGISTRY_KEY}:{REGISTRY_SECRET}").as_bytes())
    );
    let bearer = format!("Bearer {REGISTRY_TOKEN}");
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let (status, body) = if authorization != basic && authorization != bearer {
        refused.fetch_add(1, Ordering::SeqCst);
        ("401 Unauthorized", r#"{"error_code":401}"#.to_string())
    } else if path == "/schemas/types" {
        ("200 OK", r#"["AVRO"]"#.to_string())
    } else if let Some(s) = path
        .strip_prefix("/schemas/ids/")
        .and_then(|id| id.parse::<u32>().ok())
        .and_then(|id| codec::EMBEDDED.iter().find(|s| s.id == id))
    {
        served.fetch_add(1, Ordering::SeqCst);
        (
            "200 OK",
            serde_json::json!({ "schema": s.json }).to_string(),
        )
    } else {
        ("404 Not Found", r#"{"error_code":40403}"#.to_string())
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
    stream.conn.send_close_notify();
    let _ = stream.flush();
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(A[(n >> (18 - 6 * i) & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
}

/// Runs `wxpulse args` against `stack` with `env` on top of the stack's (`""` removes a
/// variable); returns its output and how long it took.
fn wxpulse(
    stack: &Stack,
    env: &[(&str, &str)],
    args: &[&str],
) -> anyhow::Result<(Output, Duration)> {
    // `generate` is its own binary (not in the production image), with the same settings.
    let (bin, args) = match args {
        ["generate", rest @ ..] => ("wxpulse-generate", rest),
        _ => ("wxpulse", args),
    };
    let mut command = Command::new(binary(bin)?);
    command
        .args(args)
        .env_remove("WXPULSE_CONFIG")
        .envs(stack.env())
        .env("WXPULSE__CLICKHOUSE__DATABASE", DB)
        .env("WXPULSE__CLICKHOUSE__PASSWORD", CH_PASSWORD)
        .env("WXPULSE__PII__KEY", TEST_PII_KEY)
        .env("WXPULSE__KAFKA__CONNECT_TIMEOUT", "5s");
    for (k, v) in env {
        if v.is_empty() {
            command.env_remove(k);
        } else {
            command.env(k, v);
        }
    }
    let started = Instant::now();
    let output = command.output()?;
    Ok((output, started.elapsed()))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
fn ok(run: anyhow::Result<(Output, Duration)>, what: &str) -> anyhow::Result<String> {
    let (o, _) = run?;
    anyhow::ensure!(o.status.success(), "{what} failed: {}", stderr(&o));
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Asserts failure within `within`, with every one of `says` in stderr.
fn fails(
    run: anyhow::Result<(Output, Duration)>,
    what: &str,
    within: Duration,
    says: &[&str],
) -> anyhow::Result<()> {
    let (o, took) = run?;
    let err = stderr(&o);
    anyhow::ensure!(!o.status.success(), "{what} succeeded without credentials");
    anyhow::ensure!(took < within, "{what} took {took:?} to fail: {err}");
    for s in says {
        anyhow::ensure!(err.contains(s), "{what}: {s:?} not in: {err}");
    }
    Ok(())
}

/// Every `wxpulse` command that talks to Kafka (and `wxpulse-generate`), with arguments
/// that work on the stack.
fn kafka_commands(account_csv: &str) -> Vec<Vec<String>> {
    let to_strings = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        to_strings(&["topics", "create", "--partitions", "2"]),
        to_strings(&[
            "dims",
            "load",
            "--dimension",
            "account",
            "--file",
            account_csv,
        ]),
        to_strings(&[
            "generate",
            "--events",
            "1500",
            "--fans-per-account",
            "150",
            "--days",
            "10",
            "--truth",
        ]),
        to_strings(&["dims", "mirror", "--once"]),
        to_strings(&[
            "dims",
            "delete",
            "--dimension",
            "account",
            "--key",
            "wx_nonexistent",
        ]),
        to_strings(&["dlq", "list", "--show", "3"]),
        to_strings(&["dlq", "replay", "--reason", "undecodable"]),
    ]
}

fn openssl_ca(dir: &Path) -> anyhow::Result<PathBuf> {
    let (cert, key) = (dir.join("other-ca.pem"), dir.join("other-ca.key"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=another CA", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "openssl: {status}");
    Ok(cert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secured_stack_serves_every_command_and_a_service_and_refuses_without_credentials(
) -> anyhow::Result<()> {
    let stack = Stack::start_secure("secure")?;
    let work = std::env::temp_dir().join(format!("wxpulse-e2e-secure-work-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let truth_path = work.join("truth.json");
    let account_csv = repo_root().join("deploy/local/dims/account.csv");
    let account_csv = account_csv.to_string_lossy().into_owned();
    let mut commands = kafka_commands(&account_csv);
    commands[2].push(truth_path.to_string_lossy().into_owned());
    let wrong_password = work.join("wrong-password");
    std::fs::write(&wrong_password, "0999\n")?;
    let wrong_password = wrong_password.to_string_lossy().into_owned();
    let sasl_password = std::fs::read_to_string(stack.secure_file("kafka-password"))?;
    let plain_config = work.join("plain.toml");
    std::fs::write(
        &plain_config,
        format!(
            "[clickhouse.tls]\nca_file = {:?}\n",
            stack.secure_file("ca.pem").to_string_lossy()
        ),
    )?;
    let typo_config = work.join("typo.toml");
    std::fs::write(
        &typo_config,
        std::fs::read_to_string(stack.secure_file("wxpulse.toml"))?
            .replace("SASL_PLAINTEXT", "SASL_PLAIN"),
    )?;

    // Without credentials every Kafka command stops at once, naming the setting.
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let none = [
            ("WXPULSE_KAFKA_SASL_USERNAME", ""),
            ("WXPULSE_KAFKA_SASL_PASSWORD_FILE", ""),
        ];
        fails(
            wxpulse(&stack, &none, &args),
            &format!("{args:?} without credentials"),
            Duration::from_secs(5),
            &["kafka.sasl_username", "WXPULSE_KAFKA_SASL_PASSWORD"],
        )?;
        // A wrong password: the broker's refusal, in bounded time, with what to check.
        let wrong = [("WXPULSE_KAFKA_SASL_PASSWORD_FILE", wrong_password.as_str())];
        fails(
            wxpulse(&stack, &wrong, &args),
            &format!("{args:?} with a wrong password"),
            Duration::from_secs(8),
            &["SASL authentication", "kafka.sasl_username"],
        )?;
    }
    // No SASL settings at all (the old CLI's behaviour): the broker drops the connection;
    // the command says so within kafka.connect_timeout instead of hanging.
    let plain_config = plain_config.to_string_lossy().into_owned();
    let typo_config = typo_config.to_string_lossy().into_owned();
    fails(
        wxpulse(
            &stack,
            &[
                ("WXPULSE_CONFIG", plain_config.as_str()),
                ("WXPULSE_KAFKA_SASL_USERNAME", ""),
                ("WXPULSE_KAFKA_SASL_PASSWORD_FILE", ""),
            ],
            &["topics", "create"],
        ),
        "topics create without SASL",
        Duration::from_secs(12),
        &["within 5s", "security.protocol"],
    )?;
    // A misspelt protocol is refused before any connection, by name.
    fails(
        wxpulse(
            &stack,
            &[("WXPULSE_CONFIG", typo_config.as_str())],
            &["topics", "create"],
        ),
        "topics create with a misspelt protocol",
        Duration::from_secs(5),
        &["kafka.client.\"security.protocol\" = \"SASL_PLAIN\""],
    )?;
    // ClickHouse with a CA that did not sign its certificate.
    let other_ca = openssl_ca(&work)?.to_string_lossy().into_owned();
    fails(
        wxpulse(
            &stack,
            &[("WXPULSE__CLICKHOUSE__TLS__CA_FILE", other_ca.as_str())],
            &["migrate"],
        ),
        "migrate with the wrong CA",
        Duration::from_secs(10),
        &["invalid peer certificate", "clickhouse.tls.ca_file"],
    )?;

    // With them: the whole CLI, in the order an operator runs it.
    ok(wxpulse(&stack, &[], &["migrate"]), "migrate")?;
    for args in &commands[..3] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(wxpulse(&stack, &[], &args), &format!("{args:?}"))?;
    }
    let truth: serde_json::Value = serde_json::from_slice(&std::fs::read(&truth_path)?)?;
    let clicks = truth["events"]["menu_click"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no menu_click count in the truth"))?;

    // A service through all three: SASL Kafka, HTTPS ClickHouse, HTTPS registry with Basic
    // auth (password from a file), every secret set.
    let registry = SecureRegistry::start(
        &stack.secure_file("server.pem"),
        &stack.secure_file("server.key"),
    )?;
    let registry_password = work.join("registry-password");
    std::fs::write(&registry_password, format!("{REGISTRY_SECRET}\n"))?;
    let registry_password = registry_password.to_string_lossy().into_owned();
    let ca = stack.secure_file("ca.pem").to_string_lossy().into_owned();
    let registry_env = [
        ("WXPULSE__SCHEMA_REGISTRY__URL", registry.url.as_str()),
        ("WXPULSE__SCHEMA_REGISTRY__TLS__CA_FILE", ca.as_str()),
        ("WXPULSE__SCHEMA_REGISTRY__USERNAME", REGISTRY_KEY),
        (
            "WXPULSE__SCHEMA_REGISTRY__PASSWORD_FILE",
            registry_password.as_str(),
        ),
        ("WXPULSE__CLICKHOUSE__PASSWORD", CH_PASSWORD),
    ];
    // Wrong registry credentials stop the service at startup with the reason.
    let log_path = std::env::temp_dir().join("wxpulse-e2e-logs/wxpulse-menu-clicks.log");
    let log_start = std::fs::metadata(&log_path).map_or(0, |m| m.len());
    let mut refused = Service::start(
        "wxpulse-menu-clicks",
        &stack,
        DB,
        &[
            ("WXPULSE__SCHEMA_REGISTRY__URL", registry.url.as_str()),
            ("WXPULSE__SCHEMA_REGISTRY__TLS__CA_FILE", ca.as_str()),
            ("WXPULSE__SCHEMA_REGISTRY__USERNAME", REGISTRY_KEY),
            ("WXPULSE__SCHEMA_REGISTRY__PASSWORD", "not-it"),
        ],
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while refused.is_running() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::ensure!(
        !refused.is_running(),
        "a service with wrong registry credentials kept running"
    );
    drop(refused);
    let log = std::fs::read_to_string(&log_path)?;
    anyhow::ensure!(
        log.contains("refused the credentials (HTTP 401)"),
        "no 401 reason in the log"
    );
    assert!(registry.refused.load(Ordering::SeqCst) > 0);

    let service = Service::start("wxpulse-menu-clicks", &stack, DB, &registry_env)?;
    let ch = stack.client(DB);
    let got = wait_for(Duration::from_secs(90), clicks, || {
        count(&ch, "menu_clicks")
    })
    .await;
    assert_eq!(
        got, clicks,
        "menu clicks through SASL, HTTPS and the registry"
    );
    assert!(
        registry.served.load(Ordering::SeqCst) > 0,
        "schemas came from the registry"
    );
    drop(service);

    // The rest of the CLI, now that there are dead letters and profiles; the mirror's
    // registry lookups go with a bearer token.
    let bearer = [
        ("WXPULSE__SCHEMA_REGISTRY__URL", registry.url.as_str()),
        ("WXPULSE__SCHEMA_REGISTRY__TLS__CA_FILE", ca.as_str()),
        ("WXPULSE__SCHEMA_REGISTRY__BEARER_TOKEN", REGISTRY_TOKEN),
    ];
    let served_before = registry.served.load(Ordering::SeqCst);
    ok(
        wxpulse(&stack, &bearer, &["dims", "mirror", "--once"]),
        "dims mirror",
    )?;
    assert!(registry.served.load(Ordering::SeqCst) > served_before);
    assert!(count(&ch, "fan_profiles").await? > 0, "profiles mirrored");
    for args in &commands[4..] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (o, took) = wxpulse(&stack, &[], &args)?;
        let (out, err) = (String::from_utf8_lossy(&o.stdout), stderr(&o));
        anyhow::ensure!(o.status.success(), "{args:?} failed: {err}");
        if args[..2] == ["dlq", "list"] {
            assert!(
                out.contains("menu-clicks"),
                "dead letters listed ({took:?}): {out}\nstderr: {err}"
            );
        }
    }
    ok(
        wxpulse(&stack, &[], &["ingest", "reset", "--table", "menu_clicks"]),
        "ingest reset",
    )?;

    // No secret in --print-config, nor in any log line of the runs above.
    let mut print = Command::new(binary("wxpulse-menu-clicks")?);
    let printed = print
        .arg("--print-config")
        .envs(stack.env())
        .envs(registry_env)
        .env("WXPULSE__PII__KEY", TEST_PII_KEY)
        .env("WXPULSE__SCHEMA_REGISTRY__USERNAME", "")
        .env("WXPULSE__SCHEMA_REGISTRY__PASSWORD_FILE", "")
        .env("WXPULSE__SCHEMA_REGISTRY__BEARER_TOKEN", REGISTRY_TOKEN)
        .output()?;
    let printed_text = String::from_utf8_lossy(&printed.stdout).into_owned();
    anyhow::ensure!(
        printed.status.success(),
        "--print-config: {}",
        stderr(&printed)
    );
    let mut log = String::new();
    std::fs::File::open(&log_path)?.read_to_string(&mut log)?;
    let this_run = log.get(log_start as usize..).unwrap_or_default();
    for secret in [
        sasl_password.as_str(),
        REGISTRY_SECRET,
        REGISTRY_TOKEN,
        TEST_PII_KEY,
    ] {
        assert!(
            !printed_text.contains(secret),
            "--print-config shows {secret}"
        );
        assert!(
            !this_run.contains(secret),
            "the services' log shows {secret}"
        );
    }
    assert!(
        printed_text.contains("password: <redacted>") && printed_text.contains("<redacted>"),
        "{printed_text}"
    );
    assert!(
        !printed_text.contains(&format!("\"{CH_PASSWORD}\"")),
        "{printed_text}"
    );
    let _ = std::fs::remove_dir_all(&work);
    drop(stack);
    Ok(())
}

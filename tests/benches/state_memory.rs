//! Memory of a service's in-memory state per million entries: fan state in each of its
//! three forms, event ids of the dedup window, chat reply waits, and the fan-profile
//! dimension every service loads. Prints figures; asserts nothing.
//!
//! Each case runs in a fresh child process (this binary again, with `--case NAME`), so no
//! case inherits another's freed memory. It reports resident memory (`VmRSS` of
//! /proc/self/status) after filling minus before, and the peak (`VmHWM`) minus before: a
//! hash table that grows holds its old and new buckets at once. Allocation sizes do not
//! depend on optimisation, so the dev profile gives the same figures as a release build.
//!
//! Run: `make bench-memory` (`cargo bench --profile dev -p wxpulse-e2e --bench state_memory`).

use std::process::Command;

use wxpulse_chat_messages::{WaitLimits, Waiting};
use wxpulse_runtime::config::Config;
use wxpulse_runtime::dedup::EventIdWindow;
use wxpulse_runtime::enrich::{
    CustomerStatus, Dimension, DimensionRecord, Dimensions, FanProfileRecord,
};
use wxpulse_runtime::metrics::Metrics;
use wxpulse_runtime::pii::Pseudonymizer;
use wxpulse_runtime::segment::{month_of, FanBudget, FanLimits, FanStates};

const ENTRIES: u64 = 1_000_000;
const DAY: i64 = 86_400_000;
/// 2025-03-15T00:00:00Z.
const T: i64 = 1_741_996_800_000;

/// (name, what one entry is).
const CASES: [(&str, &str); 6] = [
    (
        "fans-open",
        "fan with a month that can still receive events (FanStates, open)",
    ),
    (
        "fans-quiet",
        "fan with only its last interaction left (FanStates, quiet)",
    ),
    ("fans-dormant", "dormant marker (FanStates)"),
    (
        "event-ids",
        "event id in the dedup window (EventIdWindow, per partition)",
    ),
    (
        "reply-waits",
        "chat reply wait, (fan, associate) (Waiting, per partition)",
    ),
    (
        "fan-profiles",
        "fan profile (Dimensions, every service, not partitioned)",
    ),
];

/// Spreads `i` over 64 bits like the HMAC-derived fan ids.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// (VmRSS, VmHWM) in KiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn fan_states(cfg: &Config, metrics: &Metrics) -> FanStates {
    let limits = FanLimits {
        max_fans: usize::MAX / 2,
        max_dormant_fans: usize::MAX / 2,
        ..FanLimits::from_config(cfg)
    };
    FanStates::bounded(&FanBudget::new(limits, &metrics.fans_evicted))
}

/// Fills the case's state and reports; the state stays alive until measured.
fn run(case: &str) -> Result<(), String> {
    let cfg = Config::load(None, Vec::new()).map_err(|e| e.to_string())?;
    let metrics = Metrics::new("bench");
    let (before, _) = memory();
    let held: Box<dyn std::any::Any> = match case {
        "fans-open" => {
            let mut fans = fan_states(&cfg, &metrics);
            for i in 0..ENTRIES {
                fans.observe(mix(i), T + i as i64);
            }
            Box::new(fans)
        }
        "fans-quiet" | "fans-dormant" => {
            // What a restore does with history: once the newest event is 40 (100) days
            // later, a fan last seen at T keeps only that time (a marker).
            let later = if case == "fans-quiet" { 40 } else { 100 };
            let mut fans = fan_states(&cfg, &metrics);
            let newest = T + later * DAY;
            fans.restore(0, month_of(newest), 1, newest);
            for i in 1..=ENTRIES {
                fans.restore(mix(i), month_of(T), 3, T);
            }
            Box::new(fans)
        }
        "event-ids" => {
            let window = cfg.dedup.window.as_millis() as i64;
            let mut ids =
                EventIdWindow::new(window).capped(ENTRIES as usize, metrics.ids_evicted.clone());
            for i in 0..ENTRIES {
                let id = (u128::from(mix(i)) << 64) | u128::from(mix(i + ENTRIES));
                ids.insert(id, T + (i as i64 * window) / ENTRIES as i64);
            }
            Box::new(ids)
        }
        "reply-waits" => {
            let mut waiting = Waiting::new(WaitLimits::from_config(&cfg));
            let associates: Vec<String> = (0..5_000).map(|a| format!("wo{a:08}")).collect();
            for i in 0..ENTRIES {
                let userid = &associates[(i % 5_000) as usize];
                let t = T + i as i64;
                waiting.fan_wrote(mix(i), userid, t, t);
            }
            Box::new(waiting)
        }
        "fan-profiles" => {
            let mut dims =
                Dimensions::detached(Pseudonymizer::new(cfg.pii.key.expose().as_bytes()));
            for i in 0..ENTRIES {
                let openid = format!("o6_bmjrPTlm6_2sgVt7hMZ{i:07}");
                let record = FanProfileRecord {
                    app_id: "wxb00a00".into(),
                    openid: openid.clone(),
                    status: CustomerStatus::Prospect,
                    member_tier: None,
                    associate_userid: (i % 3 == 0).then(|| format!("wo{:08}", i % 5_000)),
                    followed_at: Some(T - (i as i64 % 700) * DAY),
                    unfollowed_at: None,
                    follow_source: Some("qr".into()),
                    updated_at: T,
                    birthday: None,
                };
                dims.apply(
                    Dimension::FanProfile,
                    &format!("wxb00a00|{openid}"),
                    Some(DimensionRecord::FanProfile(record)),
                );
            }
            Box::new(dims)
        }
        other => return Err(format!("unknown case {other}")),
    };
    let (after, peak) = memory();
    println!(
        "{case} {} {}",
        after.saturating_sub(before),
        peak.saturating_sub(before)
    );
    drop(held);
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--case") {
        let case = args.get(i + 1).map_or("", String::as_str);
        if let Err(e) = run(case) {
            eprintln!("{e}");
            std::process::exit(2);
        }
        return;
    }
    let Ok(me) = std::env::current_exe() else {
        eprintln!("cannot find this binary to run the cases");
        std::process::exit(2);
    };
    println!("\nstate memory, {ENTRIES} entries, each case in a fresh process (KiB = 1024 B)\n");
    println!(
        "| {:<13} | {:>10} | {:>9} | {:>15} | what one entry is",
        "case", "resident", "per entry", "peak while fill"
    );
    println!("|---|---|---|---|---|");
    for (case, what) in CASES {
        let out = Command::new(&me).args(["--case", case]).output();
        let line = match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).to_string(),
            Ok(o) => {
                println!(
                    "| {case} | failed: {} |",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                continue;
            }
            Err(e) => {
                println!("| {case} | failed: {e} |");
                continue;
            }
        };
        let nums: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|n| n.parse().ok())
            .collect();
        let [rss, peak] = nums[..] else {
            println!("| {case} | unreadable: {line:?} |");
            continue;
        };
        println!(
            "| {:<13} | {:>7.1} MiB | {:>7.1} B | {:>11.1} MiB | {what}",
            case,
            rss as f64 / 1024.0,
            rss as f64 * 1024.0 / ENTRIES as f64,
            peak as f64 / 1024.0,
        );
    }
}

//! `wxpulse conversions`: the settled part of the conversion views.

use wxpulse_cli::conversions;

use super::prelude::*;

/// The subcommands.
#[derive(Subcommand)]
pub enum Action {
    /// Store the credits of the purchases that can no longer change — those before now
    /// minus `validation.max_lateness` minus `--margin-hours` — so the conversion views
    /// join only the open days. Idempotent: months are replaced whole; run it daily, one
    /// at a time (README, "Conversions").
    Settle {
        /// Cutoff instead of the default (`2026-11-28`, `2026-11-28 06:00:00`; Asia/Shanghai).
        #[arg(long)]
        until: Option<String>,
        /// Hours of consumer lag allowed on top of validation.max_lateness.
        #[arg(long, default_value_t = 24)]
        margin_hours: u64,
        /// Settle again from this month (`2026-10`): after a dead-letter replay or a
        /// quarantine release brought in events older than the last cutoff.
        #[arg(long)]
        from: Option<String>,
    },
    /// The last cutoff and the settled and open purchases.
    Status,
}

/// Runs one subcommand.
pub async fn run(action: Action, cx: &Ctx) -> anyhow::Result<()> {
    let ch = &cx.clickhouse;
    match action {
        Action::Settle {
            until,
            margin_hours,
            from,
        } => {
            let cutoff_ms = match until {
                Some(text) => conversions::parse_time(ch, &text).await?,
                None => {
                    let lag = cx.config.validation.max_lateness
                        + Duration::from_secs(margin_hours * 3_600);
                    now_ms()? - lag.as_millis() as i64
                }
            };
            // `2026-10` names a month: its first day.
            let from = from.map(|m| if m.len() == 7 { format!("{m}-01") } else { m });
            let settled = conversions::settle(ch, cutoff_ms, from.as_deref()).await?;
            for (partition, purchases) in &settled.months {
                println!("month {partition}: {purchases} purchases settled");
            }
            println!(
                "settled until {} ms (previous cutoff {} ms)",
                settled.cutoff_ms, settled.previous_ms
            );
        }
        Action::Status => {
            let s = conversions::status(ch).await?;
            println!(
                "settled until {} ms: {} purchases settled, {} open",
                s.settled_until_ms, s.settled, s.open
            );
        }
    }
    Ok(())
}

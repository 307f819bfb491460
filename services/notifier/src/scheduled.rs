//! The rules no single event triggers: a relationship changed in the CRM's profile, a
//! birthday `birthday_days_ahead` days away, a fan whose usual time between purchases has
//! passed. The two scheduled ones read ClickHouse views that list the fans to act on
//! (`v_birthdays_upcoming`, `v_replenishment_due`, migration 0019) — the same lists a BI
//! analyst or a CRM export reads — and tell of the rows dated today, so a poll every hour
//! finds a fan again only within the ledger's lookback and never tells twice. One
//! instance tells of all of them: the owner of partition 0 of `wxpulse.orders`. The same
//! poll reads the relationship changes of the last `max_age` from `fan_relationship_changes`
//! (migrations 0021 and 0022, every shard), for those made while no notifier ran; a change found both live and
//! there has one trigger key, so it is told once.

use std::sync::Arc;

use serde::Deserialize;
use uuid::Uuid;
use wxpulse_runtime::config::NotifierConfig;
use wxpulse_runtime::enrich::{CustomerStatus, Dimensions, FanProfileRecord};
use wxpulse_runtime::pii::FanId;
use wxpulse_runtime::reexports::clickhouse;

use crate::rules::{base, fires_for, Candidate, Rule, Skip};

/// Namespace of the trigger keys of rules without an event id.
const KEYS: Uuid = Uuid::from_u128(0x3c9e_51a7_0f42_4b8d_a6e3_9d1b_c2f0_7e55);

/// A scheduled or profile-triggered notification to consider.
#[derive(Debug, Clone)]
pub struct Due {
    /// What to tell.
    pub candidate: Candidate,
    /// Trigger key: the notification id derives from it.
    pub key: Uuid,
    /// The fan's account.
    pub app_id: String,
    /// Where it came from (the `trigger_topic` of the record).
    pub source: &'static str,
}

fn status(relationship: &str) -> CustomerStatus {
    match relationship {
        "prospect" => CustomerStatus::Prospect,
        "customer" => CustomerStatus::Customer,
        "vip" => CustomerStatus::Vip,
        _ => CustomerStatus::Other,
    }
}

/// The associate if they are known not to have left.
fn active(dims: &Dimensions, userid: &str) -> Option<Arc<str>> {
    if userid.is_empty() || dims.associate(userid).is_some_and(|a| !a.active) {
        return None;
    }
    Some(Arc::from(userid))
}

/// A profile record changing the relationship of a fan already known: tells the new
/// associate (or the one held). `None`: not a change (a new fan, the same relationship).
pub fn tier_change(
    cfg: &NotifierConfig,
    fan_id: FanId,
    record: &FanProfileRecord,
    dims: &Dimensions,
    now_ms: i64,
) -> Option<Result<Due, Skip>> {
    let old = dims.fan(fan_id).filter(|f| f.is_profiled())?;
    if old.status == record.status {
        return None;
    }
    let at = if record.updated_at > 0 {
        record.updated_at
    } else {
        now_ms
    };
    let change = Change {
        app_id: &record.app_id,
        fan_id,
        from: old.status,
        to: record.status,
        associate: record.associate_userid.as_deref(),
        previous_associate: old.associate.as_deref(),
        at,
    };
    Some(change.due(cfg, dims))
}

/// One relationship change, from the live profile record or from `fan_profile_versions`:
/// both give the same trigger key, so the ledger tells it once whichever finds it first.
struct Change<'a> {
    app_id: &'a str,
    fan_id: FanId,
    from: CustomerStatus,
    to: CustomerStatus,
    associate: Option<&'a str>,
    previous_associate: Option<&'a str>,
    at: i64,
}

impl Change<'_> {
    fn due(&self, cfg: &NotifierConfig, dims: &Dimensions) -> Result<Due, Skip> {
        if !fires_for(&cfg.rules.tier_change, self.to) {
            return Err(Skip::Relationship);
        }
        let associate = self
            .associate
            .filter(|a| !a.is_empty())
            .or(self.previous_associate)
            .and_then(|a| active(dims, a))
            .ok_or(Skip::NoAssociate)?;
        let mut c = base(
            Rule::TierChange,
            associate,
            self.fan_id,
            self.to,
            self.at,
            self.at,
        );
        c.detail = self.from.as_str().to_string();
        let key = Uuid::new_v5(
            &KEYS,
            format!(
                "tier|{}|{}|{}|{}",
                self.app_id,
                self.fan_id,
                self.to.as_str(),
                self.at
            )
            .as_bytes(),
        );
        Ok(Due {
            candidate: c,
            key,
            app_id: self.app_id.to_string(),
            source: "wxpulse.dim.fan_profile",
        })
    }
}

#[derive(Debug, clickhouse::Row, Deserialize)]
#[clickhouse(crate = "wxpulse_runtime::reexports::clickhouse")]
struct ChangeRow {
    app_id: String,
    fan_id: u64,
    from_status: String,
    to_status: String,
    associate_userid: String,
    previous_associate_userid: String,
    changed_at: i64,
}

/// The relationship changes of profile versions since `since_ms` (the view
/// `fan_relationship_changes` over every shard's `fan_profile_versions`, migrations 0021 and
/// 0022). A running notifier tells of them from the profile topic as they come;
/// this finds the ones made while none ran, which the profiles it loads at start no longer
/// show as changes. The ledger drops those already told.
pub async fn changes_since(
    cfg: &NotifierConfig,
    client: &clickhouse::Client,
    dims: &Dimensions,
    since_ms: i64,
) -> Result<Vec<Result<Due, Skip>>, clickhouse::error::Error> {
    if !cfg.rules.tier_change.enabled {
        return Ok(Vec::new());
    }
    let rows: Vec<ChangeRow> = client
        .query(
            "SELECT app_id, fan_id, from_status, to_status, associate_userid, \
                    previous_associate_userid, changed_at \
             FROM fan_relationship_changes(since_ms = ?)",
        )
        .bind(since_ms)
        .fetch_all()
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            Change {
                app_id: &r.app_id,
                fan_id: r.fan_id,
                from: status(&r.from_status),
                to: status(&r.to_status),
                associate: Some(&r.associate_userid),
                previous_associate: Some(&r.previous_associate_userid),
                at: r.changed_at,
            }
            .due(cfg, dims)
        })
        .collect())
}

#[derive(Debug, clickhouse::Row, Deserialize)]
#[clickhouse(crate = "wxpulse_runtime::reexports::clickhouse")]
struct BirthdayRow {
    app_id: String,
    fan_id: u64,
    associate_userid: String,
    relationship: String,
    birthday: String,
    next_birthday_day: String,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
#[clickhouse(crate = "wxpulse_runtime::reexports::clickhouse")]
struct ReplenishmentRow {
    app_id: String,
    fan_id: u64,
    associate_userid: String,
    relationship: String,
    typical_interval_days: f64,
    days_since: i32,
    due_day: String,
}

/// Fans whose birthday is `birthday_days_ahead` days away (Asia/Shanghai), and fans whose
/// replenishment is due today; rules that are off or fans whose relationship they are
/// not for are left out here.
pub async fn due_today(
    cfg: &NotifierConfig,
    client: &clickhouse::Client,
    dims: &Dimensions,
    now_ms: i64,
) -> Result<Vec<Result<Due, Skip>>, clickhouse::error::Error> {
    let mut out = Vec::new();
    if cfg.rules.birthday.enabled {
        let rows: Vec<BirthdayRow> = client
            .query(
                "SELECT app_id, fan_id, associate_userid, relationship, birthday, toString(next_birthday) AS next_birthday_day \
                 FROM v_birthdays_upcoming WHERE days_until = ?",
            )
            .bind(cfg.birthday_days_ahead)
            .fetch_all()
            .await?;
        for r in rows {
            let s = status(&r.relationship);
            if !fires_for(&cfg.rules.birthday, s) {
                continue;
            }
            let Some(associate) = active(dims, &r.associate_userid) else {
                out.push(Err(Skip::NoAssociate));
                continue;
            };
            let mut c = base(Rule::Birthday, associate, r.fan_id, s, now_ms, now_ms);
            c.detail = r.birthday;
            let key = Uuid::new_v5(
                &KEYS,
                format!("birthday|{}|{}|{}", r.app_id, r.fan_id, r.next_birthday_day).as_bytes(),
            );
            out.push(Ok(Due {
                candidate: c,
                key,
                app_id: r.app_id,
                source: "v_birthdays_upcoming",
            }));
        }
    }
    if cfg.rules.replenishment.enabled {
        let rows: Vec<ReplenishmentRow> = client
            .query(
                "SELECT app_id, fan_id, associate_userid, relationship, typical_interval_days, \
                 toInt32(dateDiff('day', toDate(last_purchase, 'Asia/Shanghai'), toDate(now(), 'Asia/Shanghai'))) AS days_since, \
                 toString(due_date) AS due_day FROM v_replenishment_due WHERE due_date = toDate(now(), 'Asia/Shanghai')",
            )
            .fetch_all()
            .await?;
        for r in rows {
            let s = status(&r.relationship);
            if !fires_for(&cfg.rules.replenishment, s) {
                continue;
            }
            let Some(associate) = active(dims, &r.associate_userid) else {
                out.push(Err(Skip::NoAssociate));
                continue;
            };
            let mut c = base(Rule::Replenishment, associate, r.fan_id, s, now_ms, now_ms);
            c.detail = format!("{:.0}|{}", r.typical_interval_days, r.days_since);
            let key = Uuid::new_v5(
                &KEYS,
                format!("replenishment|{}|{}|{}", r.app_id, r.fan_id, r.due_day).as_bytes(),
            );
            out.push(Ok(Due {
                candidate: c,
                key,
                app_id: r.app_id,
                source: "v_replenishment_due",
            }));
        }
    }
    Ok(out)
}

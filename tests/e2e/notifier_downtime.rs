//! A relationship change made while no notifier runs is still told, once (issue 17).
//!
//! A notifier tells of a tier change by comparing a profile record with the profile it
//! holds. One that starts after the change loads the new profile and sees no change, so
//! before migration 0021 such changes were never told. Now `fan_profile_versions` keeps
//! every version the mirror wrote, and the notifier's scheduled poll tells the changes of
//! the last `max_age` from there; the ledger drops those the live path already told.

use std::time::Duration;

use wxpulse_e2e::*;
use wxpulse_runtime::enrich::CustomerStatus;

use crate::golden::{account, associate, publish, store};
use crate::notifications::{now_ms, outcome, profile_at, summary, topic_notifications, MIN};

const DB: &str = "wx_notify_downtime";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tier_change_made_while_no_notifier_ran_is_told_once() -> anyhow::Result<()> {
    let stack = Stack::start("notifier-downtime")?;
    stack.prepare(DB, 2).await?;
    let now = now_ms();
    let v = CustomerStatus::Vip;
    let c = CustomerStatus::Customer;
    publish(
        &stack,
        vec![
            account("wxa", "Maison"),
            store("sh01", "East"),
            associate("wang", "sh01"),
            associate("li", "sh01"),
            profile_at("oCUS1", c, Some("wang"), now - 60 * MIN),
            profile_at("oCUS2", c, Some("li"), now - 60 * MIN),
            profile_at("oOLD", c, Some("li"), now - 10 * 60 * MIN),
        ],
    )
    .await?;
    mirror_profiles(&stack, DB)?;
    // With no notifier running: oCUS1 becomes a VIP (told on start), and oOLD did so
    // longer ago than max_age (2 h; told by nobody: stale).
    publish(
        &stack,
        vec![
            profile_at("oOLD", v, Some("li"), now - 9 * 60 * MIN),
            profile_at("oCUS1", v, Some("wang"), now - 30 * MIN),
        ],
    )
    .await?;
    mirror_profiles(&stack, DB)?;

    let env = [
        ("WXPULSE__NOTIFIER__QUIET_START", "00:00"),
        ("WXPULSE__NOTIFIER__QUIET_END", "00:00"),
        ("WXPULSE__NOTIFIER__SCHEDULED_EVERY", "2s"),
    ];
    let notifier = Service::start("wxpulse-notifier", &stack, DB, &env)?;
    let ch = stack.client(DB);
    let fan = |o: &str| expected_fan_id(o).to_string();
    let mut expected = vec![format!("tier_change wang {}", fan("oCUS1"))];
    let got = wait_for(Duration::from_secs(60), 1, || count(&ch, "notifications")).await;
    assert_eq!(got, 1, "the change made while no notifier ran is told");

    // With the notifier running: oCUS2 becomes a VIP. The live path tells it; the poll
    // finds it in the versions too, and the ledger knows it as told.
    publish(&stack, vec![profile_at("oCUS2", v, Some("li"), now_ms())]).await?;
    mirror_profiles(&stack, DB)?;
    expected.push(format!("tier_change li {}", fan("oCUS2")));
    expected.sort();
    let got = wait_for(Duration::from_secs(60), 2, || count(&ch, "notifications")).await;
    assert_eq!(got, 2, "the live change is told");
    let replayed = wait_for(Duration::from_secs(30), 2, || async {
        Ok(outcome(&notifier, "tier_change", "replayed").await.min(2))
    })
    .await;
    assert_eq!(replayed, 2, "later polls find both changes already told");
    let notes = topic_notifications(&stack)?;
    assert_eq!(summary(&notes), expected, "each change told once");
    let mut stored: Vec<String> = ch
        .query("SELECT concat(rule, ' ', associate_userid, ' ', toString(fan_id)) FROM notifications FINAL")
        .fetch_all()
        .await?;
    stored.sort();
    assert_eq!(stored, expected, "one row per notification");
    let from = notes
        .iter()
        .map(|n| n.reason_en.as_str())
        .collect::<Vec<_>>();
    assert_eq!(
        from,
        [
            "Your fan moved from customer to vip",
            "Your fan moved from customer to vip"
        ]
    );
    Ok(())
}

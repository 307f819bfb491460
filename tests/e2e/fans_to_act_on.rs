//! The lists of fans to act on (issue 17, migration 0019): `v_birthdays_upcoming` and
//! `v_replenishment_due`, on fan profiles published through the broker with birthdays
//! (`dim_fan_profile` v2) and copied by `wxpulse dims mirror`, a follow history with an
//! unfollow only the gateway reported, and orders through the orders service. Every date
//! is relative to today in Asia/Shanghai; the expected rows are computed from what was sent
//! ([`expected`]), and both views must return exactly them.

use std::collections::BTreeMap;
use std::time::Duration;

mod expected;

use crate::golden::*;
use expected::{at, civil, mm_dd, today, BirthdayFan, Sent};
use wxpulse_cli::produce::Outgoing;
use wxpulse_e2e::*;
use wxpulse_runtime::enrich::*;
use wxpulse_runtime::events::*;

const DB: &str = "wx_fans_to_act_on";
const APP: &str = "wxa";

fn profile(
    openid: &str,
    status: CustomerStatus,
    associate: Option<&str>,
    followed: Option<i64>,
    unfollowed: Option<i64>,
    birthday: Option<&str>,
) -> DimensionRecord {
    DimensionRecord::FanProfile(FanProfileRecord {
        app_id: APP.into(),
        openid: openid.into(),
        status,
        member_tier: None,
        associate_userid: associate.map(Into::into),
        followed_at: followed,
        unfollowed_at: unfollowed,
        follow_source: Some("ADD_SCENE_SEARCH".into()),
        updated_at: 0,
        birthday: birthday.map(Into::into),
    })
}

/// A customer bound to `associate`, following since 100 days, with a birthday.
fn birthday_fan(
    openid: &'static str,
    associate: Option<&'static str>,
    birthday: String,
    eligible: bool,
) -> BirthdayFan {
    BirthdayFan {
        openid,
        status: "customer",
        associate,
        followed: Some(at(today() - 100, 10)),
        unfollowed: None,
        birthday,
        eligible,
    }
}

fn order_record(n: u32, s: &Sent) -> Outgoing {
    let id = event_id(n);
    let t = at(s.day, s.hour);
    record(
        "wxpulse.orders",
        APP,
        s.openid,
        &Order {
            event_id: &id,
            order_id: &s.order_id,
            kind: if s.purchase {
                OrderKind::Purchase
            } else {
                OrderKind::Refund
            },
            app_id: APP,
            openid: s.openid,
            unionid: None,
            order_time: t,
            server_time: t + 1_000,
            amount_fen: s.amount,
            currency: "CNY",
            store_id: Some("s1"),
            channel: OrderChannel::MiniProgram,
            share_code: s.share_code,
            items: 1,
        },
    )
}

async fn lines(stack: &Stack, sql: &str) -> anyhow::Result<Vec<String>> {
    let mut v: Vec<String> = stack.client(DB).query(sql).fetch_all().await?;
    v.sort();
    Ok(v)
}

const BIRTHDAYS: &str = "SELECT arrayStringConcat([app_id, toString(fan_id), associate_userid, \
     relationship, birthday, toString(next_birthday), toString(days_until), brand], '|') \
     FROM v_birthdays_upcoming";
const REPLENISHMENT: &str = "SELECT arrayStringConcat([app_id, toString(fan_id), \
     associate_userid, relationship, toString(purchases), toString(last_purchase), \
     toString(typical_interval_days), toString(due_date), toString(days_overdue), brand], '|') \
     FROM v_replenishment_due";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn birthdays_and_replenishments_due_are_listed_exactly() -> anyhow::Result<()> {
    let stack = Stack::start("fans_to_act_on")?;
    stack.prepare(DB, 2).await?;
    let t = today();
    let followed = Some(at(t - 100, 10));
    use CustomerStatus::{Customer, Vip};
    let f = |openid, day: i64, eligible| birthday_fan(openid, Some("u1"), mm_dd(t + day), eligible);
    let birthday_fans = vec![
        f("oB_PLUS3", 3, true),
        BirthdayFan {
            status: "vip",
            ..f("oB_TODAY", 0, true)
        },
        birthday_fan("oB_PLUS30", Some("u2"), mm_dd(t + 30), true),
        f("oB_PLUS31", 31, true),
        f("oB_YESTERDAY", -1, true),
        birthday_fan("oB_FEB29", Some("u1"), "02-29".into(), true),
        // Unfollowed after the follow: gone.
        BirthdayFan {
            unfollowed: Some(at(t - 10, 9)),
            ..f("oB_UNFOLLOWED", 3, false)
        },
        // Followed again after an unfollow: a follower.
        BirthdayFan {
            followed: Some(at(t - 5, 9)),
            unfollowed: Some(at(t - 50, 9)),
            ..f("oB_REFOLLOWED", 4, true)
        },
        BirthdayFan {
            followed: None,
            ..f("oB_NOT_FOLLOWING", 3, false)
        },
        birthday_fan("oB_NO_ASSOCIATE", None, mm_dd(t + 3), false),
        // The profile says following; WeChat reported an unfollow since (gateway).
        f("oB_GATEWAY_UNFOLLOW", 5, false),
        // Not a birthday: published by a producer that skipped `dims load`'s check.
        birthday_fan("oB_BAD", Some("u1"), "13-45".into(), false),
        // Tombstoned after it was published.
        f("oB_DELETED", 3, false),
    ];
    let mut dims = vec![
        account(APP, "Maison"),
        store("s1", "east"),
        associate("u1", "s1"),
        associate("u2", "s1"),
        associate("u3", "s1"),
    ];
    for b in &birthday_fans {
        let status = if b.status == "vip" { Vip } else { Customer };
        let (f, u) = (b.followed, b.unfollowed);
        dims.push(profile(
            b.openid,
            status,
            b.associate,
            f,
            u,
            Some(&b.birthday),
        ));
    }
    dims.push(DimensionRecord::FanFollow(FanFollowRecord {
        app_id: APP.into(),
        openid: "oB_GATEWAY_UNFOLLOW".into(),
        kind: FollowKind::Unfollow,
        at: at(t - 2, 20),
        follow_source: None,
        updated_at: at(t - 2, 20),
    }));

    // Replenishment: profiles, then the orders.
    let mut statuses: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for openid in [
        "oR_DUE",
        "oR_SOON",
        "oR_TWO",
        "oR_AGAIN",
        "oR_REFUND",
        "oR_EVEN",
        "oR_SAMEDAY",
        "oR_ODD",
    ] {
        dims.push(profile(openid, Customer, Some("u2"), followed, None, None));
        statuses.insert(openid, ("customer", "u2"));
    }
    // Bound to nobody: the last purchase's share code names the associate.
    dims.push(profile("oR_SHARE", Vip, None, followed, None, None));
    statuses.insert("oR_SHARE", ("vip", ""));
    publish(&stack, dims).await?;
    send(
        &stack,
        vec![Outgoing {
            topic: Dimension::FanProfile.topic(),
            key: format!("{APP}|oB_DELETED").into_bytes(),
            payload: None,
            at_ms: 0,
        }],
    )
    .await?;

    let mut sent: Vec<Sent> = Vec::new();
    let mut buy = |openid: &'static str, days: &[(i64, i64)], share: Option<&'static str>| {
        for (day, hour) in days {
            let n = sent.len();
            sent.push(Sent {
                openid,
                order_id: format!("{openid}-{n}"),
                purchase: true,
                day: t + day,
                hour: *hour,
                amount: 10_000,
                share_code: share,
            });
        }
    };
    buy("oR_DUE", &[(-30, 12), (-20, 12), (-10, 12)], None); // due today
    buy("oR_SOON", &[(-28, 12), (-18, 12), (-8, 12)], None); // due in 2 days
    buy("oR_TWO", &[(-20, 12), (-10, 12)], None); // 2 purchases
    buy(
        "oR_AGAIN",
        &[(-40, 12), (-30, 12), (-20, 12), (-5, 12)],
        None,
    ); // bought again
    buy(
        "oR_REFUND",
        &[(-30, 12), (-20, 12), (-10, 12), (-5, 12)],
        None,
    );
    buy("oR_EVEN", &[(-43, 12), (-33, 12), (-22, 12)], None); // gaps 10, 11: 10.5 → 11
    buy("oR_SAMEDAY", &[(-20, 10), (-20, 15), (-10, 12)], None); // 2 days, 3 purchases
    buy(
        "oR_ODD",
        &[(-60, 12), (-57, 12), (-47, 12), (-35, 12)],
        None,
    ); // median 10
    buy("oR_SHARE", &[(-21, 12), (-14, 12)], None);
    buy("oR_SHARE", &[(-7, 18)], Some("u3"));
    buy("oR_NONE", &[(-21, 12), (-14, 12), (-7, 12)], None); // no profile, no code
                                                             // oR_DUE's last order re-sent under a new event id (and later): counted once.
    let mut resent = sent[2].clone();
    resent.hour = 13;
    sent.push(resent);
    // oR_REFUND: the last purchase refunded in two parts (fully), the third in part.
    let refund = |order: &str, day: i64, amount: i64| Sent {
        openid: "oR_REFUND",
        order_id: order.to_string(),
        purchase: false,
        day: t + day,
        hour: 12,
        amount,
        share_code: None,
    };
    let last = sent
        .iter()
        .find(|s| s.openid == "oR_REFUND" && s.day == t - 5);
    let third = sent
        .iter()
        .find(|s| s.openid == "oR_REFUND" && s.day == t - 10);
    let (last, third) = (
        last.expect("sent").order_id.clone(),
        third.expect("sent").order_id.clone(),
    );
    sent.push(refund(&last, -4, 6_000));
    sent.push(refund(&last, -3, 4_000));
    sent.push(refund(&third, -9, 2_500));

    let mut orders_service = Service::start("wxpulse-orders", &stack, DB, &[])?;
    let records: Vec<Outgoing> = sent
        .iter()
        .enumerate()
        .map(|(i, s)| order_record(5_000 + i as u32, s))
        .collect();
    send(&stack, records).await?;
    rows_in(&stack, DB, "orders", sent.len() as u64).await;
    mirror_profiles(&stack, DB)?;
    let ch = stack.client(DB);
    // 22 profiles, one of them deleted (the broker may have compacted its record away
    // before the mirror read the topic; either way the tombstone is the newest version).
    assert_eq!(
        count(&ch, "fan_profiles FINAL WHERE is_deleted = 0").await?,
        21
    );

    // The bad birthday was mirrored as unknown, the good ones as published.
    let stored: Vec<(u64, String)> = ch
        .query("SELECT fan_id, birthday FROM fan_profiles FINAL WHERE is_deleted = 0")
        .fetch_all()
        .await?;
    let stored: BTreeMap<u64, String> = stored.into_iter().collect();
    for b in &birthday_fans {
        let want = if b.openid == "oB_BAD" {
            ""
        } else {
            &b.birthday
        };
        if b.openid != "oB_DELETED" {
            assert_eq!(stored[&expected_fan_id(b.openid)], want, "{}", b.openid);
        }
    }

    // The views, with today read on each side of the query (a run across midnight retries).
    let (mut got_birthdays, mut got_due, mut day) = (Vec::new(), Vec::new(), 0);
    for _ in 0..3 {
        day = today();
        got_birthdays = lines(&stack, BIRTHDAYS).await?;
        got_due = lines(&stack, REPLENISHMENT).await?;
        if today() == day {
            break;
        }
    }
    let want_birthdays = expected::birthdays(day, &birthday_fans);
    assert_eq!(got_birthdays, want_birthdays);
    // Not vacuous: today, 3 and 30 days away, and the re-follower are there.
    for (openid, days) in [
        ("oB_TODAY", 0),
        ("oB_PLUS3", 3),
        ("oB_PLUS30", 30),
        ("oB_REFOLLOWED", 4),
    ] {
        let id = format!("|{}|", expected_fan_id(openid));
        assert!(
            got_birthdays
                .iter()
                .any(|l| l.contains(&id) && l.ends_with(&format!("|{days}|Maison"))),
            "{openid}: {got_birthdays:#?}"
        );
    }

    let want_due = expected::replenishment(day, &sent, &statuses);
    assert_eq!(got_due, want_due);
    let listed = |openid: &str| {
        let id = format!("|{}|", expected_fan_id(openid));
        got_due.iter().find(|l| l.contains(&id)).cloned()
    };
    for absent in ["oR_SOON", "oR_TWO", "oR_AGAIN", "oR_SAMEDAY", "oR_NONE"] {
        assert_eq!(listed(absent), None, "{absent}");
    }
    let due_today = |l: &str| l.ends_with(&format!("|{}|0|Maison", civil(day).date()));
    let line = listed("oR_DUE").expect("oR_DUE is due");
    assert!(
        line.contains("|u2|customer|3|") && line.contains("|10|") && due_today(&line),
        "{line}"
    );
    let line = listed("oR_REFUND").expect("oR_REFUND is due: its refunded purchase is not one");
    assert!(line.contains("|3|") && due_today(&line), "{line}");
    let line = listed("oR_SHARE").expect("oR_SHARE: the share code's associate");
    assert!(line.contains("|u3|vip|3|") && due_today(&line), "{line}");
    let line = listed("oR_EVEN").expect("oR_EVEN is overdue");
    assert!(
        line.contains("|10.5|") && line.ends_with("|11|Maison"),
        "{line}"
    );
    let line = listed("oR_ODD").expect("oR_ODD is overdue");
    assert!(
        line.contains("|10|") && line.ends_with("|25|Maison"),
        "{line}"
    );

    // What the notifier selects: the birthdays N days away, the replenishments due today.
    let in_3 = lines(&stack, &format!("{BIRTHDAYS} WHERE days_until = 3")).await?;
    assert_eq!(
        in_3.len(),
        want_birthdays
            .iter()
            .filter(|l| l.ends_with("|3|Maison"))
            .count()
    );
    let today_due = lines(
        &stack,
        &format!("{REPLENISHMENT} WHERE due_date = toDate(now(), 'Asia/Shanghai')"),
    )
    .await?;
    assert_eq!(today_due.len(), 3, "{today_due:#?}");

    // The notifier's scheduled rules tell exactly those fans' associates, once: polling
    // every 2 s, through a SIGKILL and a restart (the orders it also reads are days old,
    // past its max_age, so nothing else is told).
    let field = |l: &str, i: usize| l.split('|').nth(i).unwrap_or_default().to_string();
    let mut want: Vec<String> = in_3
        .iter()
        .map(|l| format!("birthday {} {}", field(l, 2), field(l, 1)))
        .chain(
            today_due
                .iter()
                .map(|l| format!("replenishment {} {}", field(l, 2), field(l, 1))),
        )
        .collect();
    want.sort();
    assert!(want.iter().any(|w| w.starts_with("birthday")), "{want:#?}");
    let env = [("WXPULSE__NOTIFIER__SCHEDULED_EVERY", "2s")];
    let mut notifier = Service::start("wxpulse-notifier", &stack, DB, &env)?;
    let told = || count(&ch, "notifications");
    let got = wait_for(Duration::from_secs(90), want.len() as u64, told).await;
    assert_eq!(got, want.len() as u64, "scheduled notifications stored");
    // More polls, a SIGKILL and a restart that polls at once: nothing told twice.
    tokio::time::sleep(Duration::from_secs(6)).await;
    notifier.restart()?;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let stored: Vec<String> = ch
        .query(
            "SELECT concat(rule, ' ', associate_userid, ' ', toString(fan_id)) \
             FROM notifications ORDER BY rule, associate_userid, fan_id",
        )
        .fetch_all()
        .await?;
    let mut stored_sorted = stored.clone();
    stored_sorted.sort();
    assert_eq!(
        stored_sorted, want,
        "one notification per fan due, no copies"
    );
    let _ = notifier.terminate(Duration::from_secs(10));

    let _ = orders_service.terminate(Duration::from_secs(10));
    Ok(())
}

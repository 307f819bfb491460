//! Associates' reply figures do not depend on the order chat messages arrive in: the same
//! conversations delivered in event order, and shuffled with 1% of messages hours late and
//! 2% re-sent, give identical `v_associate_daily` and `v_associate_kpis`, equal to a
//! pairing computed here from the conversations themselves.

use std::collections::{BTreeMap, BTreeSet};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use wxpulse_cli::produce::Outgoing;
use wxpulse_e2e::*;
use wxpulse_runtime::events::{ConversationKind, Direction};

use crate::golden::{associate, message, publish, rows_in, send, store};

const D: i64 = 86_400_000;
const MIN: i64 = 60_000;
const SHANGHAI: i64 = 8 * 3_600_000;
const ASSOCIATES: [(&str, &str); 3] = [("zhang", "sh01"), ("wang", "sh01"), ("li", "bj01")];

/// One 1:1 message: (event time, from the associate, fan, associate).
#[derive(Clone, Copy)]
struct Message {
    t: i64,
    from_associate: bool,
    fan: usize,
    associate: usize,
}

/// About 900 messages of 180 conversations in the month starting at `month_start`: gaps of
/// seconds to 6 hours (a conversation stays well inside the 7-day reply window even when a
/// message arrives 30 hours late), some at the same instant as the message before.
fn conversations(month_start: i64) -> Vec<Message> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let mut out = Vec::new();
    for fan in 0..60 {
        for associate in 0..ASSOCIATES.len() {
            let mut t = month_start + D + rng.gen_range(0..24 * D);
            for n in 0..rng.gen_range(2..9) {
                out.push(Message {
                    t,
                    from_associate: n > 0 && rng.gen_bool(0.45),
                    fan,
                    associate,
                });
                t += match rng.gen_range(0..50) {
                    0 => 0,
                    1..=30 => rng.gen_range(1_000..30 * MIN),
                    _ => rng.gen_range(30 * MIN..6 * 60 * MIN),
                };
            }
        }
    }
    out
}

/// The record of message `n` received at `server`.
fn record(n: usize, m: &Message, server: i64) -> Outgoing {
    let direction = if m.from_associate {
        Direction::AssociateToFan
    } else {
        Direction::FanToAssociate
    };
    message(
        n as u32 + 1,
        &format!("oPAIR_{:03}", m.fan),
        ConversationKind::WecomPrivate,
        direction,
        Some(ASSOCIATES[m.associate].0),
        m.t,
        server,
    )
}

/// Per (Shanghai day number, associate): messages in, out, fans who wrote, answered fans,
/// replies, reply ms sum, median, p90 — paired here in event-time order: a reply answers
/// the fan messages since the associate's previous one, from the earliest.
fn reference(messages: &[Message]) -> BTreeMap<(i64, String), String> {
    #[derive(Default)]
    struct Day {
        messages_in: u64,
        messages_out: u64,
        wrote: BTreeSet<usize>,
        answered: BTreeSet<usize>,
        replies: Vec<i64>,
    }
    let day_of = |t: i64| (t + SHANGHAI).div_euclid(D);
    let mut days: BTreeMap<(i64, usize), Day> = BTreeMap::new();
    let mut by_conversation: BTreeMap<(usize, usize), Vec<(i64, bool)>> = BTreeMap::new();
    for m in messages {
        let d = days.entry((day_of(m.t), m.associate)).or_default();
        if m.from_associate {
            d.messages_out += 1;
        } else {
            d.messages_in += 1;
            d.wrote.insert(m.fan);
        }
        by_conversation
            .entry((m.fan, m.associate))
            .or_default()
            .push((m.t, m.from_associate));
    }
    for ((fan, associate), mut list) in by_conversation {
        list.sort();
        let mut first_waiting: Option<i64> = None;
        for (t, from_associate) in list {
            match (from_associate, first_waiting) {
                (false, None) => first_waiting = Some(t),
                (false, Some(_)) => {}
                (true, Some(since)) => {
                    let d = days.entry((day_of(since), associate)).or_default();
                    d.answered.insert(fan);
                    d.replies.push(t - since);
                    first_waiting = None;
                }
                (true, None) => {}
            }
        }
    }
    days.into_iter()
        .map(|((day, a), mut d)| {
            d.replies.sort();
            let n = d.replies.len();
            let q = |p: f64| {
                if n == 0 {
                    "null".to_string()
                } else {
                    d.replies[((p * n as f64) as usize).min(n - 1)].to_string()
                }
            };
            let figures = format!(
                "{} {} {} {} {} {} {} {}",
                d.messages_in,
                d.messages_out,
                d.wrote.len(),
                d.answered.len(),
                n,
                d.replies.iter().sum::<i64>(),
                q(0.5),
                q(0.9)
            );
            ((day, ASSOCIATES[a].0.to_string()), figures)
        })
        .collect()
}

/// The views' figures after `records` went through the chat service.
async fn figures(
    name: &str,
    records: Vec<Outgoing>,
    distinct: u64,
) -> anyhow::Result<(BTreeMap<(i64, String), String>, Vec<String>)> {
    let db = "wx_pairing";
    let stack = Stack::start(name)?;
    stack.prepare(db, 2).await?;
    let mut dims = vec![store("sh01", "East"), store("bj01", "North")];
    dims.extend(ASSOCIATES.iter().map(|(u, s)| associate(u, s)));
    publish(&stack, dims).await?;
    let mut service = Service::start("wxpulse-chat-messages", &stack, db, &[])?;
    send(&stack, records).await?;
    rows_in(&stack, db, "chat_messages", distinct).await;
    let ch = stack.client(db);
    let daily: Vec<(i64, String, String)> = ch
        .query(
            "SELECT toInt64(toUInt16(day)), associate_userid, concat(toString(messages_in), ' ', \
             toString(messages_out), ' ', toString(conversations_with_fan_message), ' ', \
             toString(answered_conversations), ' ', toString(replies), ' ', \
             toString(toInt64(round(ifNull(avg_first_reply_ms, 0) * replies))), ' ', \
             ifNull(toString(median_first_reply_ms), 'null'), ' ', \
             ifNull(toString(p90_first_reply_ms), 'null')) \
             FROM v_associate_daily",
        )
        .fetch_all()
        .await?;
    let kpis: Vec<String> = ch
        .query(
            "SELECT arrayStringConcat(arrayMap(x -> ifNull(x, 'null'), [toString(month), level, \
             region, store_id, associate_userid, toString(answered_conversations), \
             toString(reply_rate), toString(replies), toString(avg_first_reply_ms), \
             toString(median_first_reply_ms), toString(p90_first_reply_ms)]), ' ') AS row \
             FROM v_associate_kpis ORDER BY row",
        )
        .fetch_all()
        .await?;
    assert_eq!(
        service.terminate(std::time::Duration::from_secs(20)),
        Some(0)
    );
    let daily = daily.into_iter().map(|(d, a, f)| ((d, a), f)).collect();
    Ok((daily, kpis))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_pair_in_event_time_whatever_the_arrival_order() -> anyhow::Result<()> {
    let month = {
        let stack = Stack::start("pairing-clock")?;
        last_month(&stack).await?.0
    };
    let messages = conversations(month);
    let want = reference(&messages);
    let n = messages.len() as u64;

    // In event order, received half a second later.
    let mut ordered: Vec<usize> = (0..messages.len()).collect();
    ordered.sort_by_key(|&i| (messages[i].t, i));
    let in_order = ordered
        .iter()
        .map(|&i| record(i, &messages[i], messages[i].t + 500))
        .collect();
    let (daily, kpis) = figures("pairing-ordered", in_order, n).await?;
    assert_eq!(daily, want, "v_associate_daily, delivered in order");

    // Shuffled; 1% received hours late (and sent last); 2% re-sent at a random later point.
    let mut rng = rand::rngs::StdRng::seed_from_u64(41);
    let mut order: Vec<usize> = (0..messages.len()).collect();
    order.shuffle(&mut rng);
    let mut shuffled: Vec<Outgoing> = Vec::new();
    let mut late: Vec<Outgoing> = Vec::new();
    for &i in &order {
        let m = &messages[i];
        if rng.gen_bool(0.01) {
            late.push(record(i, m, m.t + rng.gen_range(2..30) * 3_600_000));
            continue;
        }
        let r = record(i, m, m.t + 500);
        if rng.gen_bool(0.02) {
            let copy = Outgoing {
                topic: r.topic,
                key: r.key.clone(),
                payload: r.payload.clone(),
                at_ms: 0,
            };
            let at = rng.gen_range(0..=shuffled.len());
            shuffled.insert(at, copy);
        }
        shuffled.push(r);
    }
    assert!(!late.is_empty(), "the seed makes some messages late");
    shuffled.extend(late);
    let (daily_shuffled, kpis_shuffled) = figures("pairing-shuffled", shuffled, n).await?;
    assert_eq!(
        daily_shuffled, want,
        "v_associate_daily, shuffled, late and re-sent"
    );
    assert_eq!(
        kpis_shuffled, kpis,
        "v_associate_kpis, shuffled vs in order"
    );
    Ok(())
}

//! Scans and chats per associate, replies paired as `v_chat_replies` pairs them: the
//! tally's fourth section, apart from the fans' activity and the reads.

use std::collections::{BTreeMap, HashMap, HashSet};

use wxpulse_runtime::enrich::SceneChannel;
use wxpulse_runtime::events::{ConversationKind, Direction};

use super::report::{AssociateDay, Report};
use crate::generate::plan::{Planned, Scene, What};
use crate::world::{shanghai, Civil, World, DAY_MS};

/// How long a fan's 1:1 message waits for an associate's reply (by server time), as
/// `v_chat_replies` pairs them: an older fan message cannot start the reply's wait.
const REPLY_WINDOW_MS: i64 = 7 * DAY_MS;

/// The value at 0-based index floor(q·n) of sorted values (ClickHouse `quantilesExact`).
pub(super) fn quantile(sorted: &[i64], q: f64) -> Option<i64> {
    let i = ((q * sorted.len() as f64).floor() as usize).min(sorted.len().checked_sub(1)?);
    sorted.get(i).copied()
}

/// A conversation's 1:1 messages: (event time, from the associate, server time).
type Timeline = Vec<(i64, bool, i64)>;

#[derive(Default)]
struct AssociateTally {
    month: u32,
    day: AssociateDay,
    conversations: HashSet<u32>,
    wrote: HashSet<u32>,
    answered: HashSet<u32>,
    scanners: HashSet<u32>,
}

/// What the associates hand the headline figures.
pub(super) struct ChatTally {
    /// Waits for a reply that started.
    pub(super) waits: u64,
    /// Every answered wait's first-reply time, ms.
    pub(super) all_replies: Vec<i64>,
    /// New contacts per associate userid.
    pub(super) contacts: BTreeMap<String, u64>,
}

/// Scans and chats per associate, by day and month; QR follows by day and channel.
pub(super) fn tally_associates(r: &mut Report, world: &World, planned: &[Planned]) -> ChatTally {
    let app = |a: u32| world.accounts[a as usize].record.app_id.as_str();
    // Scans and chats per associate; replies as `v_chat_replies` pairs them.
    let mut tallies: BTreeMap<(u32, String, String), AssociateTally> = BTreeMap::new();
    let mut month_customers: HashMap<(u32, String, u32), HashSet<u32>> = HashMap::new();
    let mut month_scanners: HashMap<(u32, String, u32), HashSet<u32>> = HashMap::new();
    let mut month_replies: HashMap<(u32, String, u32), Vec<i64>> = HashMap::new();
    // 1:1 messages per conversation (account, fan, associate): (event time, is the
    // associate's, server time), paired after the pass in event-time order.
    let mut conversations: HashMap<(u32, u32, String), Timeline> = HashMap::new();
    let (mut waits, mut all_replies) = (0u64, Vec::new());
    for e in planned {
        let day = shanghai(e.client);
        match &e.what {
            What::Scan { subscribe, scene } => {
                let known = match scene {
                    Scene::Known(i) => Some(&world.scenes[*i]),
                    Scene::Unknown(_) => None,
                };
                if *subscribe {
                    let channel = known.map_or("unknown", |s| s.channel.as_str());
                    *r.qr_follows
                        .entry(app(e.account).to_string())
                        .or_default()
                        .entry(day.date())
                        .or_default()
                        .entry(channel.to_string())
                        .or_default() += 1;
                }
                let Some(userid) = known
                    .filter(|s| s.channel == SceneChannel::Associate)
                    .and_then(|s| s.userid.clone())
                else {
                    continue;
                };
                let t = associate(&mut tallies, e.account, &userid, day);
                t.day.code_scans += 1;
                t.day.new_contacts += u64::from(*subscribe);
                t.scanners.insert(e.fan);
                month_scanners
                    .entry((e.account, userid, day.yyyymm()))
                    .or_default()
                    .insert(e.fan);
            }
            What::Chat(chat) => {
                let Some(userid) = chat.associate.userid(world) else {
                    continue;
                };
                if chat.conversation == ConversationKind::WecomGroup {
                    associate(&mut tallies, e.account, userid, day)
                        .day
                        .group_messages += 1;
                    continue;
                }
                if chat.conversation != ConversationKind::WecomPrivate {
                    continue;
                }
                let t = associate(&mut tallies, e.account, userid, day);
                t.conversations.insert(e.fan);
                month_customers
                    .entry((e.account, userid.to_string(), day.yyyymm()))
                    .or_default()
                    .insert(e.fan);
                let from_associate = match chat.direction {
                    Direction::FanToAssociate => {
                        t.day.messages_in += 1;
                        t.wrote.insert(e.fan);
                        false
                    }
                    Direction::AssociateToFan => {
                        t.day.messages_out += 1;
                        true
                    }
                    _ => continue,
                };
                conversations
                    .entry((e.account, e.fan, userid.to_string()))
                    .or_default()
                    .push((e.client, from_associate, e.server));
            }
            _ => {}
        }
    }
    // Replies in event-time order, whatever order the messages arrive in (VIEWS.md, "reply
    // pairing"): an associate's message answers the fan messages since their previous one
    // (a fan message at the same instant comes first); the wait started at the earliest of
    // them the reply can still answer (server times within REPLY_WINDOW_MS).
    for ((account, fan, userid), mut messages) in conversations {
        messages.sort_unstable();
        let mut since_last_reply: Vec<(i64, i64)> = Vec::new();
        for (t, from_associate, server) in messages {
            if !from_associate {
                if since_last_reply.is_empty() {
                    waits += 1;
                }
                since_last_reply.push((t, server));
                continue;
            }
            let since = since_last_reply
                .iter()
                .filter(|(_, s)| server - s <= REPLY_WINDOW_MS)
                .map(|(t, _)| *t)
                .min();
            since_last_reply.clear();
            let Some(since) = since else {
                continue;
            };
            let ms = t - since;
            let wait_day = shanghai(since);
            let w = associate(&mut tallies, account, &userid, wait_day);
            w.day.first_replies += 1;
            w.day.first_reply_ms_sum += ms;
            w.answered.insert(fan);
            month_replies
                .entry((account, userid.clone(), wait_day.yyyymm()))
                .or_default()
                .push(ms);
            all_replies.push(ms);
        }
    }
    let mut contacts: BTreeMap<String, u64> = BTreeMap::new();
    for ((a, userid, date), mut t) in tallies {
        t.day.conversations = t.conversations.len() as u64;
        t.day.conversations_with_fan_message = t.wrote.len() as u64;
        t.day.answered_conversations = t.answered.len() as u64;
        t.day.scanning_fans = t.scanners.len() as u64;
        *contacts.entry(userid.clone()).or_default() += t.day.new_contacts;
        let month = t.month;
        let assoc = r
            .associates
            .entry(app(a).to_string())
            .or_default()
            .entry(userid.clone())
            .or_default();
        let m = assoc.months.entry(month).or_default();
        let d = &t.day;
        let s = &mut m.totals;
        s.messages_in += d.messages_in;
        s.messages_out += d.messages_out;
        s.group_messages += d.group_messages;
        s.conversations += d.conversations;
        s.conversations_with_fan_message += d.conversations_with_fan_message;
        s.answered_conversations += d.answered_conversations;
        s.first_replies += d.first_replies;
        s.first_reply_ms_sum += d.first_reply_ms_sum;
        s.code_scans += d.code_scans;
        s.new_contacts += d.new_contacts;
        assoc.days.insert(date, t.day);
    }
    for (app_id, assocs) in r.associates.iter_mut() {
        let a = world
            .accounts
            .iter()
            .position(|acc| &acc.record.app_id == app_id)
            .unwrap_or(0) as u32;
        for (userid, assoc) in assocs.iter_mut() {
            for (&month, m) in assoc.months.iter_mut() {
                let key = (a, userid.clone(), month);
                m.unique_customers = month_customers.get(&key).map_or(0, |s| s.len() as u64);
                m.totals.scanning_fans = month_scanners.get(&key).map_or(0, |s| s.len() as u64);
                let mut replies = month_replies.remove(&key).unwrap_or_default();
                replies.sort_unstable();
                m.first_reply_p50_ms = quantile(&replies, 0.5);
                m.first_reply_p90_ms = quantile(&replies, 0.9);
            }
        }
    }
    ChatTally {
        waits,
        all_replies,
        contacts,
    }
}

/// The tally of an associate with an account's fans on a day.
fn associate<'t>(
    tallies: &'t mut BTreeMap<(u32, String, String), AssociateTally>,
    account: u32,
    userid: &str,
    day: Civil,
) -> &'t mut AssociateTally {
    tallies
        .entry((account, userid.to_string(), day.date()))
        .or_insert_with(|| AssociateTally {
            month: day.yyyymm(),
            ..AssociateTally::default()
        })
}

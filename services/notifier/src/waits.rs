//! Fans' WeCom messages waiting for their associate's reply. A wait expires — and tells
//! the associate — when its partition's server time passes the message's receive time
//! plus the reply target without a reply, or, on a partition that went quiet, when the
//! wall clock does. Nothing here is saved: the consumer never commits past the oldest
//! open wait, so a restart re-reads every message still waiting and rebuilds the same
//! waits (what they already told is known from the topic).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use uuid::Uuid;
use wxpulse_runtime::events::{ChatMessage, ConversationKind, Direction};
use wxpulse_runtime::pii::FanId;

/// A message waiting for a reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    /// Event id of the message (the notification's trigger).
    pub message_id: Uuid,
    /// Account.
    pub app_id: Arc<str>,
    /// The fan.
    pub fan_id: FanId,
    /// The associate written to.
    pub associate: Arc<str>,
    /// Device time of the message, ms.
    pub client_time: i64,
    /// Receive time of the message, ms.
    pub server_time: i64,
    /// Chat partition.
    pub partition: i32,
    /// Offset of the message.
    pub offset: i64,
}

type Key = (i32, FanId, Arc<str>);

#[derive(Default)]
struct Partition {
    /// Waits by receive time (then offset, unique).
    by_time: BTreeMap<(i64, i64), Key>,
    offsets: BTreeSet<i64>,
    newest: i64,
    last_record: Option<Instant>,
}

/// Every open wait of the partitions this process reads.
pub struct Waits {
    target_ms: i64,
    max: usize,
    waits: HashMap<Key, Wait>,
    partitions: HashMap<i32, Partition>,
}

impl Waits {
    /// Waits expiring `target` after their message; at most `max` held.
    pub fn new(target: Duration, max: usize) -> Self {
        Waits {
            target_ms: i64::try_from(target.as_millis()).unwrap_or(i64::MAX),
            max: max.max(1),
            waits: HashMap::new(),
            partitions: HashMap::new(),
        }
    }

    /// Open waits.
    pub fn len(&self) -> usize {
        self.waits.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.waits.is_empty()
    }

    /// Takes one chat record of `partition`: first returns the waits it proves expired
    /// (its server time is past their deadline), then opens a wait for a fan's message
    /// to an associate or closes the fan's wait on the associate's reply. Anything else
    /// (group chats, the Official Account's own conversation) only advances time.
    pub fn message(
        &mut self,
        partition: i32,
        offset: i64,
        m: &ChatMessage<'_>,
        message_id: Uuid,
        fan_id: FanId,
    ) -> Vec<Wait> {
        let p = self.partitions.entry(partition).or_default();
        p.last_record = Some(Instant::now());
        p.newest = p.newest.max(m.server_time);
        let mut expired = self.expire(partition, m.server_time);
        let Some(userid) = m.userid.filter(|u| !u.is_empty()) else {
            return expired;
        };
        if m.conversation != ConversationKind::WecomPrivate {
            return expired;
        }
        let key: Key = (partition, fan_id, Arc::from(userid));
        match m.direction {
            Direction::FanToAssociate if !self.waits.contains_key(&key) => {
                let p = self.partitions.entry(partition).or_default();
                p.by_time.insert((m.server_time, offset), key.clone());
                p.offsets.insert(offset);
                let wait = Wait {
                    message_id,
                    app_id: Arc::from(m.app_id),
                    fan_id,
                    associate: key.2.clone(),
                    client_time: m.client_time,
                    server_time: m.server_time,
                    partition,
                    offset,
                };
                self.waits.insert(key, wait);
                if self.waits.len() > self.max {
                    expired.extend(self.evict_oldest());
                }
            }
            Direction::AssociateToFan => {
                self.close(&key);
            }
            _ => {}
        }
        expired
    }

    /// Waits whose deadline passed `now_ms` on partitions that received nothing for
    /// `idle_after`: with no newer message, the wall clock is the only clock.
    pub fn idle(&mut self, now_ms: i64, idle_after: Duration) -> Vec<Wait> {
        let idle: Vec<i32> = self
            .partitions
            .iter()
            .filter(|(_, p)| {
                !p.by_time.is_empty() && p.last_record.is_none_or(|t| t.elapsed() >= idle_after)
            })
            .map(|(id, _)| *id)
            .collect();
        let mut expired = Vec::new();
        for partition in idle {
            expired.extend(self.expire(partition, now_ms));
        }
        expired
    }

    /// The offset before which every message of `partition` is done with: the oldest
    /// open wait's, if any.
    pub fn oldest_offset(&self, partition: i32) -> Option<i64> {
        self.partitions
            .get(&partition)
            .and_then(|p| p.offsets.first().copied())
    }

    /// Drops a revoked partition's waits (its next owner re-reads them).
    pub fn forget(&mut self, partition: i32) {
        self.partitions.remove(&partition);
        self.waits.retain(|k, _| k.0 != partition);
    }

    fn expire(&mut self, partition: i32, now: i64) -> Vec<Wait> {
        let target = self.target_ms;
        let Some(p) = self.partitions.get_mut(&partition) else {
            return Vec::new();
        };
        let mut due = Vec::new();
        while let Some((&(t, offset), _)) = p.by_time.first_key_value() {
            if t.saturating_add(target) >= now {
                break;
            }
            if let Some((_, key)) = p.by_time.pop_first() {
                p.offsets.remove(&offset);
                due.push(key);
            }
        }
        due.into_iter()
            .filter_map(|k| self.waits.remove(&k))
            .collect()
    }

    fn close(&mut self, key: &Key) {
        if let Some(w) = self.waits.remove(key) {
            if let Some(p) = self.partitions.get_mut(&key.0) {
                p.by_time.remove(&(w.server_time, w.offset));
                p.offsets.remove(&w.offset);
            }
        }
    }

    fn evict_oldest(&mut self) -> Option<Wait> {
        let key = self
            .partitions
            .values()
            .filter_map(|p| p.by_time.first_key_value())
            .min_by_key(|(t, _)| **t)
            .map(|(_, k)| k.clone())?;
        let wait = self.waits.get(&key).cloned();
        self.close(&key);
        wait
    }
}

#[cfg(test)]
mod tests;

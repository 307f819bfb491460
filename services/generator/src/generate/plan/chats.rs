//! Chat messages: conversations between fans and the account or its associates, with
//! the associates' answer rates and reply times.

use rand::prelude::*;
use wxpulse_runtime::events::{ConversationKind, Direction};

use super::model::{Associate, Chat, What};
use super::planner::Planner;

impl Planner<'_> {
    /// Exactly `budget` chat messages, as conversations: a fan writes to the account or to
    /// an associate (1:1 or in a group), or an associate reaches out, and the other side
    /// answers — or does not.
    pub(super) fn chats(&mut self, budget: usize) {
        let mut left = budget;
        while left > 0 {
            let (account, fan, lo, hi) = self.pick_fan();
            let kind = self.rng.gen_range(0..20);
            let associate = if kind <= 3 {
                Associate::None
            } else if self.rng.gen_bool(self.spec.unknown_dimension_share) {
                Associate::Unknown(self.world.unknown_associate(&mut self.rng))
            } else {
                Associate::Known(self.world.associate_index_of(account, fan))
            };
            let skill = match associate {
                Associate::Known(i) => self.world.skill[i],
                _ => 0.0,
            };
            let start = self.rng.gen_range(lo..hi);
            let mut messages = match kind {
                0..=3 => self.official_account(start),
                4..=5 => self.outreach(start, skill),
                6..=15 => self.private(start, skill),
                _ => self.group(start),
            };
            messages.retain(|m| m.0 < hi);
            messages.truncate(left);
            left -= messages.len();
            for (client, conversation, direction) in messages {
                let associate = match &associate {
                    Associate::None => Associate::None,
                    Associate::Known(i) => Associate::Known(*i),
                    Associate::Unknown(u) => Associate::Unknown(u.clone()),
                };
                let chat = Chat {
                    conversation,
                    direction,
                    associate,
                };
                self.push_at_client(account, fan, client, What::Chat(chat));
            }
        }
    }

    /// 1–3 fan messages a few seconds to two minutes apart.
    fn burst(&mut self, from: i64, out: &mut Vec<(i64, ConversationKind, Direction)>) -> i64 {
        let mut t = from;
        for k in 0..self.rng.gen_range(1..=3) {
            if k > 0 {
                t += self.rng.gen_range(5_000..120_000);
            }
            out.push((t, ConversationKind::WecomPrivate, Direction::FanToAssociate));
        }
        t
    }

    /// Whether an associate of this skill answers, and after how long (ms): most within
    /// minutes, some hours later when busy or off shift (seeds 003/004 judge associates on
    /// reply rate and time).
    fn answer(&mut self, skill: f64) -> Option<i64> {
        let p = (0.88 + 0.05 * skill).clamp(0.6, 0.98);
        if !self.rng.gen_bool(p) {
            return None;
        }
        Some(if self.rng.gen_bool(0.12) {
            self.lognormal(2.5 * 3_600_000.0, 0.9)
        } else {
            self.lognormal(4.0 * 60_000.0 * (-0.35 * skill).exp(), 1.1)
        })
        .map(|d| d.max(1_000))
    }

    /// A fan writes to an associate, who answers; they may go on for a few rounds.
    fn private(&mut self, start: i64, skill: f64) -> Vec<(i64, ConversationKind, Direction)> {
        let mut out = Vec::new();
        let mut t = start;
        for _ in 0..4 {
            let last = self.burst(t, &mut out);
            let Some(delay) = self.answer(skill) else {
                break;
            };
            let reply = (t + delay).max(last + 1_000);
            out.push((
                reply,
                ConversationKind::WecomPrivate,
                Direction::AssociateToFan,
            ));
            if !self.rng.gen_bool(0.4) {
                break;
            }
            t = reply + self.lognormal(3.0 * 60_000.0, 1.0).max(5_000);
        }
        out
    }

    /// An associate reaches out (new arrivals, invitations: seed 001); some fans answer.
    fn outreach(&mut self, start: i64, skill: f64) -> Vec<(i64, ConversationKind, Direction)> {
        let mut out = vec![(
            start,
            ConversationKind::WecomPrivate,
            Direction::AssociateToFan,
        )];
        if self.rng.gen_bool(0.35) {
            let back = start + self.lognormal(20.0 * 60_000.0, 1.2).max(5_000);
            out.extend(self.private(back, skill));
        }
        out
    }

    /// A fan writes to the account; customer service answers half the time.
    fn official_account(&mut self, start: i64) -> Vec<(i64, ConversationKind, Direction)> {
        let mut out = vec![(
            start,
            ConversationKind::OfficialAccount,
            Direction::FanToBrand,
        )];
        if self.rng.gen_bool(0.5) {
            out.push((
                start + self.rng.gen_range(5_000..120_000),
                ConversationKind::OfficialAccount,
                Direction::FanToBrand,
            ));
        }
        if self.rng.gen_bool(0.6) {
            let last = out.last().map_or(start, |m| m.0);
            out.push((
                last + self.lognormal(90_000.0, 1.0).max(1_000),
                ConversationKind::OfficialAccount,
                Direction::BrandToFan,
            ));
        }
        out
    }

    /// A fan writes in an associate's customer group; the associate answers now and then.
    fn group(&mut self, start: i64) -> Vec<(i64, ConversationKind, Direction)> {
        let mut out = vec![(
            start,
            ConversationKind::WecomGroup,
            Direction::FanToAssociate,
        )];
        if self.rng.gen_bool(0.4) {
            out.push((
                start + self.lognormal(10.0 * 60_000.0, 1.2).max(1_000),
                ConversationKind::WecomGroup,
                Direction::AssociateToFan,
            ));
        }
        out
    }
}

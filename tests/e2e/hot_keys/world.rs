//! The world both hot-key tests run in: the fans (one hot), the events they send, and the
//! rows a run without the lane would write for them, computed without wxpulse's code.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use wxpulse_cli::produce::Outgoing;
use wxpulse_e2e::*;
use wxpulse_runtime::enrich::CustomerStatus;

use super::{APP, BUTTONS, FANS, HOT, HOT_SHARE, NEW_FOR, PARTITIONS};
use crate::golden::{account, button, click, event_id, fan, publish, D};

/// A fan of the test: its profile as published (none: relationship unknown).
pub(super) struct Fan {
    pub(super) openid: String,
    pub(super) profile: Option<(CustomerStatus, &'static str, i64)>,
}

impl Fan {
    pub(super) fn relationship(&self) -> &'static str {
        self.profile.map_or("unknown", |(_, r, _)| r)
    }

    /// Lifecycle at `t` for a fan with no unfollow and no gap of 60 days: new within
    /// `new_for` of the follow, else active.
    pub(super) fn lifecycle(&self, t: i64) -> &'static str {
        match self.profile {
            Some((_, _, followed)) if t < followed + NEW_FOR => "new",
            _ => "active",
        }
    }
}

/// One distinct event: number (its event id), fan index (0 = hot), button, client time.
#[derive(Clone, Copy)]
pub(super) struct Event {
    pub(super) n: u32,
    pub(super) fan: usize,
    pub(super) button: usize,
    pub(super) t: i64,
}

pub(super) fn outgoing(fans: &[Fan], e: &Event) -> Outgoing {
    let t = e.t;
    click(
        e.n,
        APP,
        &fans[e.fan].openid,
        BUTTONS[e.button].0,
        t,
        t + 700,
    )
}

/// The fans: the hot one (a VIP who followed so that the stream crosses the end of its
/// "new" month), and `FANS` others of every relationship, some without a profile.
pub(super) fn fans(boundary: i64, t0: i64) -> Vec<Fan> {
    let mut fans = vec![Fan {
        openid: HOT.into(),
        profile: Some((CustomerStatus::Vip, "vip", boundary - NEW_FOR)),
    }];
    for j in 0..FANS {
        let followed = if j % 5 == 0 {
            boundary - NEW_FOR
        } else {
            t0 - 400 * D
        };
        let profile = match j % 4 {
            0 => Some((CustomerStatus::Prospect, "prospect", followed)),
            1 => Some((CustomerStatus::Customer, "customer", followed)),
            2 => Some((CustomerStatus::Vip, "vip", followed)),
            _ => None,
        };
        fans.push(Fan {
            openid: format!("oFAN_{j:03}"),
            profile,
        });
    }
    fans
}

/// A private stack for `db` with its topics (the overflow topic among them, as `wxpulse
/// topics create` makes it) and the world published (the account, the buttons, the fans),
/// and `n` distinct events 2 days long around the hot fan's "new" boundary, 30 % from the
/// hot fan, drawn from `seed` (the generator is returned for the test's copies).
pub(super) async fn world(
    name: &str,
    db: &str,
    n: u32,
    seed: u64,
) -> anyhow::Result<(Stack, Vec<Fan>, Vec<Event>, rand::rngs::StdRng)> {
    let stack = Stack::start(name)?;
    stack.prepare(db, PARTITIONS).await?;
    let t0 = last_month(&stack).await?.0 + D;
    // Fans following at boundary - 30 days are "new" until it: the stream crosses it.
    let boundary = t0 + 3 * D + 1_234;
    let fans = fans(boundary, t0);
    let mut dims = vec![account(APP, "Maison")];
    for (key, _, category) in BUTTONS {
        dims.push(button(APP, key, category, key));
    }
    for f in &fans {
        if let Some((status, _, followed)) = f.profile {
            dims.push(fan(APP, &f.openid, status, followed, None));
        }
    }
    publish(&stack, dims).await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let step = 2 * D / i64::from(n);
    let events: Vec<Event> = (0..n)
        .map(|i| Event {
            n: i + 1,
            fan: if rng.gen_bool(HOT_SHARE) {
                0
            } else {
                1 + rng.gen_range(0..FANS)
            },
            button: rng.gen_range(0..BUTTONS.len()),
            t: t0 + 2 * D + i64::from(i) * step,
        })
        .collect();
    Ok((stack, fans, events, rng))
}

/// The rows of menu_clicks that differ from what a run without the lane writes for
/// `events`: `category|relationship|lifecycle|month count` (the fan's events in order),
/// after the topic `lane(n)` says event `n` came through, if given. Also every row read.
pub(super) async fn rows_differing(
    ch: &clickhouse::Client,
    fans: &[Fan],
    events: &[Event],
    lane: Option<&dyn Fn(u32) -> &'static str>,
) -> anyhow::Result<(Vec<String>, BTreeMap<String, String>)> {
    let mut expected = BTreeMap::new();
    let mut month_count = vec![0u32; fans.len()];
    for e in events {
        let f = &fans[e.fan];
        month_count[e.fan] += 1;
        let topic = lane.map(|l| format!("{}|", l(e.n))).unwrap_or_default();
        expected.insert(
            event_id(e.n),
            format!(
                "{topic}{}|{}|{}|{}",
                BUTTONS[e.button].1,
                f.relationship(),
                f.lifecycle(e.t),
                month_count[e.fan]
            ),
        );
    }
    let topic = if lane.is_some() {
        "toString(kafka_topic), "
    } else {
        ""
    };
    let got: BTreeMap<String, String> = ch
        .query(&format!(
            "SELECT toString(event_id), arrayStringConcat([{topic}toString(category), \
             toString(relationship), toString(lifecycle), toString(month_interactions)], '|') \
             FROM menu_clicks"
        ))
        .fetch_all::<(String, String)>()
        .await?
        .into_iter()
        .collect();
    let wrong = expected
        .iter()
        .filter(|(id, want)| got.get(*id) != Some(*want))
        .map(|(id, want)| format!("{id}: want {want}, got {:?}", got.get(id)))
        .collect();
    Ok((wrong, got))
}

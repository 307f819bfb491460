use super::*;
use proptest::prelude::*;

const H: i64 = 3_600_000;
const WINDOW: i64 = 7 * 24 * H;
const SKEW: i64 = 300_000;

fn limits() -> WaitLimits {
    WaitLimits {
        window_ms: WINDOW,
        skew_ms: SKEW,
    }
}

#[test]
fn the_limits_follow_the_config() {
    let cfg = Config::load(None, Vec::new()).expect("defaults");
    let l = WaitLimits::from_config(&cfg);
    assert_eq!((l.window_ms, l.skew_ms), (WINDOW, SKEW));
}

#[test]
fn a_reply_in_another_account_does_not_answer_the_wait() {
    // The same openid (so the same pseudonym) in two accounts: two conversations.
    let mut w = Waiting::new(limits());
    let (in_a, in_b) = (conversation_of("wxa", 1), conversation_of("wxb", 1));
    assert_ne!(in_a, in_b);
    assert_eq!(conversation_of("wxa", 1), in_a, "stable across restarts");
    w.fan_wrote(in_a, "zhang", 10 * H, 10 * H);
    assert_eq!(w.associate_wrote(in_b, "zhang", 11 * H, 11 * H), None);
    assert_eq!(
        w.associate_wrote(in_a, "zhang", 12 * H, 12 * H),
        Some(2 * H)
    );
}

#[test]
fn first_reply_measures_from_the_earliest_waiting_fan_message() {
    let mut w = Waiting::new(limits());
    w.fan_wrote(1, "zhang", 10 * H, 10 * H);
    w.fan_wrote(1, "zhang", 11 * H, 11 * H);
    assert_eq!(
        w.associate_wrote(1, "li", 12 * H, 12 * H),
        None,
        "another associate"
    );
    assert_eq!(w.associate_wrote(1, "zhang", 12 * H, 12 * H), Some(2 * H));
    assert_eq!(
        w.associate_wrote(1, "zhang", 13 * H, 13 * H),
        None,
        "already answered"
    );
    w.fan_wrote(1, "zhang", 20 * H, 20 * H);
    assert_eq!(
        w.associate_wrote(1, "zhang", 19 * H, 20 * H),
        None,
        "not a reply: earlier"
    );
    assert_eq!(w.associate_wrote(1, "zhang", 21 * H, 21 * H), Some(H));
}

#[test]
fn a_wait_expires_after_the_window() {
    let mut w = Waiting::new(limits());
    w.fan_wrote(1, "zhang", 0, 0);
    let late = WINDOW + 1;
    assert_eq!(w.associate_wrote(1, "zhang", late, late), None);
    w.fan_wrote(2, "zhang", 0, 0);
    w.fan_wrote(2, "zhang", late, late); // the stale wait restarts
    assert_eq!(w.associate_wrote(2, "zhang", late + H, late + H), Some(H));
}

#[test]
fn answered_and_expired_waits_are_dropped() {
    let mut w = Waiting::new(limits());
    for fan in 0..10 {
        w.fan_wrote(fan, "zhang", 10 * H, 10 * H);
    }
    w.fan_wrote(10, "li", 20 * H, 20 * H);
    assert_eq!(w.len(), 11);
    assert_eq!(w.associate_wrote(3, "zhang", 11 * H, 11 * H), Some(H));
    assert_eq!(w.len(), 10, "answered");
    // Past the window and the skew after 10 h, nothing can answer the ten any more.
    let later = 10 * H + WINDOW + SKEW + H;
    w.fan_wrote(11, "li", later, later);
    assert_eq!(w.len(), 2, "fan 10's wait (20 h) is still answerable");
    assert_eq!(w.evicted.expired.get(), 9);
    assert_eq!(
        w.associate_wrote(10, "li", later, later),
        Some(later - 20 * H)
    );
}

#[test]
fn over_the_cap_the_oldest_waits_go_first() {
    let mut w = Waiting::new(limits());
    for fan in 0..20 {
        w.fan_wrote(fan, "zhang", fan as i64 * H, fan as i64 * H);
    }
    w.trim(15);
    assert_eq!(w.len(), 15);
    assert_eq!(w.evicted.capacity.get(), 5);
    assert_eq!(
        w.associate_wrote(4, "zhang", 30 * H, 30 * H),
        None,
        "dropped"
    );
    assert_eq!(w.associate_wrote(5, "zhang", 30 * H, 30 * H), Some(25 * H));
}

#[test]
fn the_cap_is_shared_by_the_partitions_owned() {
    let env = vec![("WXPULSE__CHAT__MAX_WAITS".to_string(), "64".to_string())];
    let cfg = Config::load(None, env).expect("valid");
    let mut chat = ChatMessages::new(&cfg);
    let mut full = Waiting::new(limits());
    for fan in 0..64 {
        full.fan_wrote(fan, "zhang", H, H);
    }
    chat.waiting.insert(0, full);
    chat.enforce_cap();
    assert_eq!(chat.waiting[&0].len(), 64);
    // A second partition is assigned: the first gives up half.
    chat.waiting.insert(1, Waiting::new(limits()));
    chat.enforce_cap();
    assert_eq!(chat.waiting[&0].len(), 30, "32 less 1/16");
}

#[test]
fn the_metrics_register_with_the_service_label() {
    let cfg = Config::load(None, Vec::new()).expect("defaults");
    let chat = ChatMessages::new(&cfg);
    let metrics = wxpulse_runtime::metrics::Metrics::new("chat-messages");
    chat.register_metrics(metrics.registry())
        .expect("registers");
    chat.metrics.waits.set(3);
    let text = metrics.render();
    assert!(
        text.contains("wxpulse_chat_reply_waits{service=\"chat-messages\"} 3"),
        "{text}"
    );
    assert!(text.contains(
        "wxpulse_chat_reply_waits_evicted_total{reason=\"expired\",service=\"chat-messages\"} 0"
    ));
}

/// The waits as they were before any was dropped unanswered: a reference model.
struct Unbounded(HashMap<(FanId, u8), (i64, i64)>, i64);

impl Unbounded {
    fn fan_wrote(&mut self, key: (FanId, u8), t: i64, server: i64) {
        let w = self.0.entry(key).or_insert((t, server));
        if server - w.1 > self.1 {
            *w = (t, server);
        }
    }

    fn associate_wrote(&mut self, key: (FanId, u8), t: i64, server: i64) -> Option<i64> {
        let &(since, since_server) = self.0.get(&key)?;
        if t < since {
            return None;
        }
        self.0.remove(&key);
        (server - since_server <= self.1).then_some(t - since)
    }
}

proptest! {
    /// Dropping waits no reply can count any more changes no first-reply time, as
    /// long as server time goes back by at most the skew. (A short window and a long
    /// skew, next to the hourly sweep, so the edge cases come up.)
    #[test]
    fn dropping_expired_waits_changes_no_reply_time(
        steps in prop::collection::vec(
            (0u64..4, 0u8..2, any::<bool>(), prop_oneof![4 => 0i64..H / 4, 1 => 0i64..6 * H], 0i64..=H, 0i64..2 * H),
            1..300,
        ),
    ) {
        let names = ["zhang", "li"];
        let limits = WaitLimits { window_ms: 3 * H, skew_ms: H };
        let mut bounded = Waiting::new(limits);
        let mut model = Unbounded(HashMap::new(), limits.window_ms);
        let mut clock = 1_760_000_000_000;
        for (fan, who, from_fan, advance, back, lateness) in steps {
            clock += advance;
            let server = clock - back;
            let t = server - lateness;
            if from_fan {
                bounded.fan_wrote(fan, names[who as usize], t, server);
                model.fan_wrote((fan, who), t, server);
            } else {
                prop_assert_eq!(
                    bounded.associate_wrote(fan, names[who as usize], t, server),
                    model.associate_wrote((fan, who), t, server)
                );
            }
            prop_assert!(bounded.len() <= model.0.len());
        }
    }
}

#[test]
fn a_row_names_known_unknown_and_no_associates_as_the_event_does() {
    use wxpulse_runtime::enrich::{AssociateRecord, DimensionRecord, UNKNOWN};
    let zhang = AssociateRecord::of_store("zhang", "sh01");
    let dims = Dimensions::detached_with([DimensionRecord::Associate(zhang)]);
    let of = |userid| {
        let (u, store, _) = place(&dims, userid);
        (u.to_string(), store.to_string())
    };
    assert_eq!(of("zhang"), ("zhang".into(), "sh01".into()));
    assert_eq!(of("li"), ("li".into(), UNKNOWN.into()));
    assert_eq!(of(""), (String::new(), String::new()));
}

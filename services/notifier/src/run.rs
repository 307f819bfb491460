//! The notifier's loop: read the four topics, ask the rules, send what the limits allow,
//! commit. Order of a flush: rows into ClickHouse, then records to the topic (acknowledged),
//! then the input offsets. A crash anywhere replays the uncommitted records; what was
//! already produced is in the ledger and is not sent again, and a row stored twice is
//! one row to every view (`ReplacingMergeTree` by id, read with `FINAL`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wxpulse_runtime::codec::{self, Registry};
use wxpulse_runtime::config::Config;
use wxpulse_runtime::enrich::follow::{Feed, Update};
use wxpulse_runtime::enrich::{DimensionRecord, Dimensions};
use wxpulse_runtime::events::{ArticleRead, ChatMessage, Order, QrScan};
use wxpulse_runtime::pii::Pseudonymizer;
use wxpulse_runtime::retry::Backoff;
use wxpulse_runtime::streams::EventStream;

use crate::ledger::{Catchup, Ledger};
use crate::limits::{decide, Quiet, Sent, SentNote, Verdict};
use crate::metrics::NotifierMetrics;
use crate::notification::{self, Notification, NotificationRow, Trigger};
use crate::rules::{self, Candidate, Rule, Skip};
use crate::scheduled::{self, Due};
use crate::waits::{Wait, Waits};

/// The streams the notifier reads.
pub const STREAMS: [EventStream; 4] = [
    EventStream::QrScans,
    EventStream::ArticleReads,
    EventStream::ChatMessages,
    EventStream::Orders,
];

/// Tracks the assignment and makes a new one wait for the ledger.
pub struct Rebalances {
    assigned: Mutex<HashSet<(String, i32)>>,
    catchup: Catchup,
    wait: Duration,
}

impl Rebalances {
    /// New assignments wait up to `wait` for the ledger.
    pub fn new(catchup: Catchup, wait: Duration) -> Self {
        Rebalances {
            assigned: Mutex::new(HashSet::new()),
            catchup,
            wait: wait.max(Duration::from_secs(5)),
        }
    }
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let (Rebalance::Revoke(tpl), Ok(mut a)) = (rebalance, self.assigned.lock()) {
            for e in tpl.elements() {
                a.remove(&(e.topic().to_string(), e.partition()));
            }
        }
    }

    fn post_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(tpl) = rebalance else {
            return;
        };
        // Before any record of the new partitions is handled: know what their previous
        // owner sent. Blocking here keeps those records from being returned meanwhile.
        if let Err(e) = self.catchup.wait(self.wait) {
            tracing::error!(error = %format!("{e:#}"), "ledger behind; duplicates possible");
        }
        if let Ok(mut a) = self.assigned.lock() {
            for e in tpl.elements() {
                a.insert((e.topic().to_string(), e.partition()));
            }
        }
    }
}

/// The input consumer and everything else the loop holds.
pub struct Notifier {
    /// Input consumer.
    pub consumer: BaseConsumer<Rebalances>,
    /// The rest.
    pub engine: Engine,
}

/// What decides and sends (everything but the consumer, whose records borrow it).
pub struct Engine {
    /// Effective configuration.
    pub config: Arc<Config>,
    /// Output producer (idempotent).
    pub producer: FutureProducer,
    /// ClickHouse, wxpulse database.
    pub client: clickhouse::Client,
    /// Writer schemas.
    pub registry: Arc<Registry>,
    /// Dimensions, followed.
    pub dims: Dimensions,
    /// Dimension updates.
    pub feed: Feed,
    /// Fan pseudonyms.
    pub pii: Pseudonymizer,
    /// What was sent.
    pub sent: Arc<Mutex<Sent>>,
    /// Reads the notification topic back (kept alive here).
    pub _ledger: Ledger,
    /// Registry id and schema the notifications are written with.
    pub schema: (u32, codec::Schema),
    /// Own metrics.
    pub metrics: NotifierMetrics,
    /// Stops the loop.
    pub shutdown: CancellationToken,
    /// The async runtime (ClickHouse inserts, delivery reports).
    pub handle: tokio::runtime::Handle,
}

/// A notification decided but not yet stored and sent.
pub(crate) struct Pending {
    pub(crate) notification: Notification,
    pub(crate) row: NotificationRow,
    pub(crate) source: (String, i32),
}

struct State {
    waits: Waits,
    quiet: Quiet,
    positions: HashMap<(String, i32), i64>,
    pending: Vec<Pending>,
    last_commit: Instant,
    last_scheduled: Option<Instant>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Notifier {
    /// Runs until shutdown; the last flush and commit happen before it returns.
    pub fn run(mut self) -> anyhow::Result<()> {
        let topics: Vec<&str> = STREAMS.iter().map(|s| s.topic()).collect();
        self.consumer
            .subscribe(&topics)
            .context("cannot subscribe to the event topics")?;
        let config = self.engine.config.clone();
        let n = &config.notifier;
        let mut st = State {
            waits: Waits::new(n.reply_target, n.max_waits),
            quiet: Quiet::new(n),
            positions: HashMap::new(),
            pending: Vec::new(),
            last_commit: Instant::now(),
            last_scheduled: None,
        };
        while !self.engine.shutdown.is_cancelled() {
            let owner = self.owns_schedule();
            while let Ok(batch) = self.engine.feed.updates.try_recv() {
                for u in batch {
                    if owner {
                        self.engine.profile_update(&mut st, &u);
                    }
                    self.engine.dims.apply(u.dimension, &u.key, u.record);
                }
            }
            if owner
                && st
                    .last_scheduled
                    .is_none_or(|t| t.elapsed() >= n.scheduled_every)
            {
                self.engine.scheduled(&mut st);
                st.last_scheduled = Some(Instant::now());
            }
            let deadline = Instant::now() + Duration::from_millis(200);
            let mut read = 0;
            while read < 2000 {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.consumer.poll(left) {
                    None => break,
                    Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
                    Some(Ok(m)) => {
                        self.engine.record(&mut st, &m);
                        read += 1;
                    }
                }
                if left.is_zero() {
                    break;
                }
            }
            let idle = st.waits.idle(now_ms(), n.idle_after);
            for w in idle {
                self.engine.wait_expired(&mut st, w);
            }
            self.engine.metrics.open_waits.set(st.waits.len() as i64);
            if let Ok(s) = self.engine.sent.lock() {
                self.engine.metrics.ledger.set(s.len() as i64);
            }
            if !st.pending.is_empty() || st.last_commit.elapsed() >= Duration::from_secs(1) {
                self.engine.flush(&self.consumer, &mut st)?;
            }
        }
        self.engine.flush(&self.consumer, &mut st)
    }

    /// Profile changes and the scheduled rules are told by one instance: the owner of
    /// partition 0 of the order topic.
    fn owns_schedule(&self) -> bool {
        self.consumer
            .context()
            .assigned
            .lock()
            .is_ok_and(|a| a.contains(&(EventStream::Orders.topic().to_string(), 0)))
    }
}

impl Engine {
    fn profile_update(&mut self, st: &mut State, u: &Update) {
        let Some(DimensionRecord::FanProfile(r)) = &u.record else {
            return;
        };
        let fan_id = self.pii.fan_id(&r.openid);
        let cfg = self.config.clone();
        if let Some(due) = scheduled::tier_change(&cfg.notifier, fan_id, r, &self.dims, now_ms()) {
            self.due(st, due);
        }
    }

    fn scheduled(&mut self, st: &mut State) {
        let cfg = self.config.clone();
        let now = now_ms();
        // Older changes would be stale: max_age bounds how far back to look.
        let since = cfg.notifier.stale_before(now);
        // Each read on its own: a missing view (0022 not applied yet) must not stop the
        // birthdays and replenishments, nor the reverse.
        let changes = self.handle.block_on(scheduled::changes_since(
            &cfg.notifier,
            &self.client,
            &self.dims,
            since,
        ));
        let today = self.handle.block_on(scheduled::due_today(
            &cfg.notifier,
            &self.client,
            &self.dims,
            now,
        ));
        for (what, found) in [("fan_relationship_changes", changes), ("views", today)] {
            match found {
                Ok(list) => {
                    for due in list {
                        self.due(st, due);
                    }
                }
                Err(e) => {
                    self.metrics.errors.with_label_values(&["clickhouse"]).inc();
                    tracing::warn!(error = %e, what, "scheduled rules' read failed; next poll retries");
                }
            }
        }
    }

    fn due(&mut self, st: &mut State, due: Result<Due, Skip>) {
        match due {
            Ok(d) => {
                let trigger = (d.key, d.source.to_string(), 0, -1);
                self.send(st, &d.candidate, d.key, &d.app_id, trigger);
            }
            Err(Skip::NoAssociate) => self.count(None, "no_associate"),
            Err(_) => {}
        }
    }

    fn record(&mut self, st: &mut State, m: &BorrowedMessage<'_>) {
        let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
        st.positions
            .insert((topic.to_string(), partition), offset + 1);
        self.metrics.records.with_label_values(&[topic]).inc();
        if let Err(reason) = self.handle_record(st, m) {
            self.metrics.skipped.with_label_values(&[reason]).inc();
        }
    }

    fn handle_record(
        &mut self,
        st: &mut State,
        m: &BorrowedMessage<'_>,
    ) -> Result<(), &'static str> {
        let stream = EventStream::of_topic(m.topic()).ok_or("unknown_topic")?;
        let (id, datum) =
            codec::split_frame(m.payload().unwrap_or_default()).map_err(|_| "undecodable")?;
        let writer = self.writer(id)?;
        if writer.record != stream.record() {
            return Err("wrong_schema");
        }
        let cfg = self.config.clone();
        let n = &cfg.notifier;
        match stream {
            EventStream::QrScans => {
                let e: QrScan<'_> =
                    codec::decode(datum, &writer.schema).map_err(|_| "undecodable")?;
                let fan_id = self.pii.fan_id(e.openid);
                let c = rules::in_store_scan(n, &e, fan_id, self.dims.fan(fan_id), &self.dims);
                self.consider(st, c, e.event_id, e.app_id, m);
            }
            EventStream::ArticleReads => {
                let e: ArticleRead<'_> =
                    codec::decode(datum, &writer.schema).map_err(|_| "undecodable")?;
                let fan_id = self.pii.fan_id(e.openid);
                let c = rules::high_intent_read(n, &e, fan_id, self.dims.fan(fan_id), &self.dims);
                self.consider(st, c, e.event_id, e.app_id, m);
            }
            EventStream::Orders => {
                let e: Order<'_> =
                    codec::decode(datum, &writer.schema).map_err(|_| "undecodable")?;
                let fan_id = self.pii.fan_id(e.openid);
                let c = rules::order(n, &e, fan_id, self.dims.fan(fan_id), &self.dims);
                self.consider(st, c, e.event_id, e.app_id, m);
            }
            EventStream::ChatMessages => {
                let e: ChatMessage<'_> =
                    codec::decode(datum, &writer.schema).map_err(|_| "undecodable")?;
                let message_id = Uuid::parse_str(e.event_id).map_err(|_| "invalid_event_id")?;
                let fan_id = self.pii.fan_id(e.openid);
                let expired = st
                    .waits
                    .message(m.partition(), m.offset(), &e, message_id, fan_id);
                for w in expired {
                    self.wait_expired(st, w);
                }
            }
            EventStream::MenuClicks => return Err("unknown_topic"),
        }
        Ok(())
    }

    fn writer(&self, id: u32) -> Result<Arc<codec::Writer>, &'static str> {
        if let Some(w) = self.registry.cached(id) {
            return Ok(w);
        }
        let mut backoff = Backoff::new(&self.config.retry);
        loop {
            match self.registry.fetch_blocking(id) {
                Ok(Some(w)) => return Ok(w),
                Ok(None) => return Err("unknown_schema"),
                Err(e) if !self.shutdown.is_cancelled() => {
                    tracing::warn!(error = %e, "schema registry unavailable; waiting");
                    std::thread::sleep(backoff.next_delay());
                }
                Err(_) => return Err("registry_unavailable"),
            }
        }
    }

    fn consider(
        &mut self,
        st: &mut State,
        c: Result<Candidate, Skip>,
        event_id: &str,
        app_id: &str,
        m: &BorrowedMessage<'_>,
    ) {
        let c = match c {
            Ok(c) => c,
            Err(Skip::NoAssociate) => {
                return self.count(None, "no_associate");
            }
            Err(_) => return,
        };
        let Ok(event_id) = Uuid::parse_str(event_id) else {
            return self.count(Some(c.rule), "invalid_event_id");
        };
        let trigger = (event_id, m.topic().to_string(), m.partition(), m.offset());
        self.send(st, &c, event_id, app_id, trigger);
    }

    fn wait_expired(&mut self, st: &mut State, w: Wait) {
        let n = &self.config.notifier;
        let status = self
            .dims
            .fan(w.fan_id)
            .map(|f| f.status)
            .unwrap_or_default();
        if !rules::fires_for(&n.rules.unanswered_message, status) {
            return;
        }
        let target = i64::try_from(n.reply_target.as_millis()).unwrap_or(i64::MAX);
        let c = Candidate {
            rule: Rule::UnansweredMessage,
            associate: w.associate.clone(),
            fan_id: w.fan_id,
            relationship: status,
            event_time: w.client_time.saturating_add(target),
            server_time: w.server_time.saturating_add(target),
            amount_fen: 0,
            article_id: String::new(),
            scene: String::new(),
            detail: String::new(),
        };
        let topic = EventStream::ChatMessages.topic().to_string();
        let trigger = (w.message_id, topic, w.partition, w.offset);
        let app_id = w.app_id.clone();
        self.send(st, &c, w.message_id, &app_id, trigger);
    }

    fn send(
        &mut self,
        st: &mut State,
        c: &Candidate,
        key: Uuid,
        app_id: &str,
        (event_id, topic, partition, offset): (Uuid, String, i32, i64),
    ) {
        let cfg = self.config.clone();
        let n = &cfg.notifier;
        let id = notification::id(c.rule, &key);
        let verdict = match self.sent.lock() {
            Ok(sent) => decide(n, &st.quiet, &sent, &id, c),
            Err(_) => return,
        };
        let verdict = match verdict {
            Verdict::Send { .. } if c.server_time < n.stale_before(now_ms()) => {
                return self.count(Some(c.rule), "stale");
            }
            v => v,
        };
        let Verdict::Send { deliver_after } = verdict else {
            return self.count(Some(c.rule), verdict.outcome(false));
        };
        let brand = self
            .dims
            .account(app_id)
            .map_or_else(|| "unknown".to_string(), |a| a.brand.to_string());
        let store = self
            .dims
            .associate(&c.associate)
            .map_or_else(String::new, |a| a.store_id.to_string());
        let trigger = Trigger {
            event_id,
            app_id,
            brand: &brand,
            topic: &topic,
            partition,
            offset,
        };
        let reply_min = n.reply_target.as_secs() / 60;
        let note = notification::build(
            id,
            c,
            &trigger,
            &store,
            deliver_after,
            &n.link_page,
            reply_min,
        );
        let row = NotificationRow::of(&note, id, event_id, c.fan_id);
        if let Ok(mut sent) = self.sent.lock() {
            sent.record(SentNote {
                id,
                rule: c.rule,
                associate: c.associate.clone(),
                fan_id: c.fan_id,
                server_time: c.server_time,
            });
        }
        self.count(Some(c.rule), verdict.outcome(deliver_after > c.server_time));
        // Events are owned with their partition; the rest with partition 0 of the orders.
        let source = if EventStream::of_topic(&topic).is_some() {
            (topic, partition)
        } else {
            (EventStream::Orders.topic().to_string(), 0)
        };
        st.pending.push(Pending {
            notification: note,
            row,
            source,
        });
    }

    fn count(&self, rule: Option<Rule>, outcome: &str) {
        let rule = rule.map_or("any", Rule::as_str);
        self.metrics
            .notifications
            .with_label_values(&[rule, outcome])
            .inc();
    }

    /// Stores, sends and commits what the records so far decided.
    fn flush(&mut self, consumer: &BaseConsumer<Rebalances>, st: &mut State) -> anyhow::Result<()> {
        let assigned = consumer
            .context()
            .assigned
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default();
        // A partition given away: its next owner re-reads those records; sending them now
        // could race its read-back of the topic.
        st.pending.retain(|p| assigned.contains(&p.source));
        if !st.pending.is_empty() {
            if !self.store(&st.pending) {
                return Ok(());
            }
            if !self.produce(&st.pending)? {
                return Ok(());
            }
            st.pending.clear();
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in &st.positions {
            if !assigned.contains(&(topic.clone(), *partition)) {
                continue;
            }
            let mut next = *next;
            if topic == EventStream::ChatMessages.topic() {
                if let Some(oldest) = st.waits.oldest_offset(*partition) {
                    next = next.min(oldest);
                }
            }
            tpl.add_partition_offset(topic, *partition, Offset::Offset(next))?;
        }
        st.positions.retain(|k, _| assigned.contains(k));
        if tpl.count() > 0 {
            if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                tracing::debug!(error = %e, "offset commit failed; the next one covers it");
            }
        }
        st.last_commit = Instant::now();
        Ok(())
    }
}

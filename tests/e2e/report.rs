//! A generated month for 2 brands (1,000,000 events) through Kafka, the four
//! services and the fan-profile mirror; every BI view must equal the generator's own
//! ground truth (computed while generating, never from the pipeline) exactly where the
//! view promises exactness, and the headline shares must land near the seed report's.
//!
//! The month's orders (about 15,000 purchases and their refunds) through the
//! orders service too; the attribution views (by associate, push, scene, and per model and
//! touch), orders per day and the social-selling funnel (monthly, and over the month with
//! another threshold) must equal the generator's conversions truth — counts exactly,
//! weighted sums within 1e-9 — and each brand's funnel must land near seed 003's.
//!
//! The input is messy on purpose: 1% late by hours, 1% upstream retries and 2% copies
//! re-sent minutes to days later, 0.5% malformed and 0.5% of unknown accounts, delivered
//! shuffled within each 4-minute span of server time ([`arrival_order`]).

use std::collections::BTreeMap;
use std::time::Duration;

use wxpulse_cli::{dims, produce};
use wxpulse_e2e::*;
use wxpulse_generator::generate::{self, Spec};
use wxpulse_generator::world::{follow_source_group, World};

const DB: &str = "wx_report";

#[derive(clickhouse::Row, serde::Deserialize)]
struct ArticleRow {
    article_id: String,
    reads: u64,
    push_reads: u64,
    readers: u64,
    push_readers: u64,
    shares: u64,
    favorites: u64,
    cta_clicks: u64,
    at_screen: Vec<u64>,
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct AssociateRow {
    app_id: String,
    month: String,
    associate_userid: String,
    code_scans: u64,
    new_contacts: u64,
    conversations: u64,
    messages_in: u64,
    messages_out: u64,
    conversations_with_fan_message: u64,
    answered_conversations: u64,
    replies: u64,
    unique_customers: u64,
    p90_first_reply_ms: Option<i64>,
}
const EVENTS: u64 = 1_000_000;

fn month_date(yyyymm: u32) -> String {
    format!("{}-{:02}-01", yyyymm / 100, yyyymm % 100)
}

fn month_of_day(day: &str) -> String {
    format!("{}-01", &day[..7])
}

/// The records as several gateways deliver them: shuffled within each 4-minute span of
/// server time (fans' events, copies and late ones interleaved in any order), never by more,
/// since the services rely on server time within a partition not going back by more than
/// `validation.max_future_skew` (5 minutes). Late (by client time) and re-sent records
/// already arrive out of event-time order from the generator.
fn arrival_order(records: Vec<produce::Outgoing>) -> Vec<produce::Outgoing> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    const SPAN_MS: i64 = 4 * 60_000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(20_251);
    let mut out = Vec::with_capacity(records.len());
    let mut span: Vec<produce::Outgoing> = Vec::new();
    for r in records {
        // A malformed record (at_ms 0) ends a span and keeps its place.
        if span
            .first()
            .is_some_and(|f| r.at_ms / SPAN_MS != f.at_ms / SPAN_MS)
        {
            span.shuffle(&mut rng);
            out.append(&mut span);
        }
        span.push(r);
    }
    span.shuffle(&mut rng);
    out.append(&mut span);
    out
}

fn near(name: &str, got: f64, seed: f64, tolerance: f64) {
    eprintln!("{name}: {:.2}% (seed {:.2}%)", got * 100.0, seed * 100.0);
    assert!(
        (got - seed).abs() <= tolerance,
        "{name}: {got:.4} is not within {tolerance} of the seed's {seed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_month_reproduces_the_report_in_every_view() -> anyhow::Result<()> {
    let stack = Stack::start("report")?;
    stack.prepare(DB, 4).await?;
    let (start_ms, end_ms) = last_month(&stack).await?;
    // 100,000 fans: Tansu-on-sqlite serves a 400,000-record fan-profile topic to four
    // services and the mirror at once too slowly for a test (fetches time out), so the month
    // is denser than the demo's (10 events per fan instead of 2.5), and the monthly-active
    // share is above the seed's 9.33%; at the demo's density the generator's own test
    // measures 9.4–9.8%. Every view must still equal the truth exactly.
    let spec = Spec {
        seed: 20_251,
        brands: 2,
        accounts_per_brand: 2,
        fans_per_account: 25_000,
        events: EVENTS,
        start_ms,
        end_ms,
        duplicate_share: 0.01,
        resend_share: 0.02,
        late_share: 0.01,
        malformed_share: 0.005,
        unknown_dimension_share: 0.01,
        unknown_account_share: 0.005,
    };
    let world = World::new(&spec);
    let (records, truth) = generate::generate_with(&spec, &world);
    let report = &truth.report;
    let producer = produce::producer(&stack.kafka())?;
    produce::send_all(
        &producer,
        dims::outgoing(&world.dimension_records())?,
        |_| {},
    )
    .await?;
    produce::send_all(&producer, arrival_order(records), |_| {}).await?;

    // The fan profiles into ClickHouse, then the four services.
    mirror_profiles(&stack, DB)?;
    let mut services = Vec::new();
    for bin in SERVICES.iter().map(|s| s.0).chain(["wxpulse-orders"]) {
        services.push(Service::start(
            bin,
            &stack,
            DB,
            &[("WXPULSE__BATCH__MAX_AGE", "1s")],
        )?);
    }
    let ch = stack.client(DB);
    for (_, table, stream) in SERVICES {
        let want = truth.events[stream];
        let got = wait_for(Duration::from_secs(900), want, || count(&ch, table)).await;
        assert_eq!(got, want, "{table}: rows");
    }
    let conversions = &truth.conversions;
    let want = conversions.purchases + conversions.refunds;
    let got = wait_for(Duration::from_secs(300), want, || count(&ch, "orders")).await;
    assert_eq!(got, want, "orders: rows");

    // Interaction mix per account and stream.
    let mix: Vec<(String, String, u64)> = ch
        .query("SELECT app_id, stream, sum(events) FROM v_interaction_mix GROUP BY 1, 2")
        .fetch_all()
        .await?;
    let mut want = Vec::new();
    for (stream, by_app) in &truth.events_by_account {
        for (app, n) in by_app {
            want.push((app.clone(), stream.clone(), *n));
        }
    }
    want.sort();
    let mut mix = mix;
    mix.sort();
    assert_eq!(mix, want, "v_interaction_mix");

    // Menu categories.
    let categories: BTreeMap<String, u64> = ch
        .query("SELECT category, sum(clicks) FROM v_menu_categories GROUP BY 1")
        .fetch_all::<(String, u64)>()
        .await?
        .into_iter()
        .collect();
    assert_eq!(
        categories, truth.menu_clicks_by_category,
        "v_menu_categories"
    );

    // Monthly and lifetime active, per account and month, among followers.
    let active: Vec<(String, String, String, u64, u64, u64, u64)> = ch
        .query(
            "SELECT app_id, toString(month), population, fans, interacting_fans, \
             monthly_active_fans, lifetime_active_fans FROM v_monthly_active ORDER BY 1, 2",
        )
        .fetch_all()
        .await?;
    let mut want = Vec::new();
    for (app, months) in &report.fan_activity {
        for (m, a) in months {
            want.push((
                app.clone(),
                month_date(*m),
                "followers".to_string(),
                a.followers,
                a.interacting_fans,
                a.monthly_active_fans,
                a.lifetime_active_fans,
            ));
        }
    }
    let active: Vec<_> = active
        .into_iter()
        .filter(|r| want.iter().any(|w| w.0 == r.0 && w.1 == r.1))
        .collect();
    assert_eq!(active, want, "v_monthly_active");

    // Follower sources per account, month and source group: QR follows from the scans,
    // every other follow from the mirrored profiles.
    let mut want: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for (app, days) in &report.follows {
        for (day, sources) in days {
            for (source, c) in sources {
                let group = follow_source_group(source);
                if group != "qr" && c.new_follows > 0 {
                    *want
                        .entry((app.clone(), month_of_day(day), group.to_string()))
                        .or_default() += c.new_follows;
                }
            }
        }
    }
    for (app, days) in &report.qr_follows {
        for (day, channels) in days {
            for n in channels.values() {
                *want
                    .entry((app.clone(), month_of_day(day), "qr".to_string()))
                    .or_default() += n;
            }
        }
    }
    let months: Vec<String> = want.keys().map(|k| k.1.clone()).collect();
    let sources: BTreeMap<(String, String, String), u64> = ch
        .query(
            "SELECT app_id, toString(month), source_group, sum(new_follows) FROM v_follower_sources \
             GROUP BY 1, 2, 3",
        )
        .fetch_all::<(String, String, String, u64)>()
        .await?
        .into_iter()
        .filter(|r| months.contains(&r.1))
        .map(|(a, m, g, n)| ((a, m, g), n))
        .collect();
    assert_eq!(sources, want, "v_follower_sources");

    // Articles: reads, readers, push readers, flags and the read-depth survival counts.
    type ArticleFigures = (u64, u64, u64, u64, u64, u64, u64, Vec<u64>);
    let articles: BTreeMap<String, ArticleFigures> = ch
        .query(
            "SELECT article_id, sum(reads) AS reads, sum(push_reads) AS push_reads, \
             sum(readers) AS readers, sum(push_readers) AS push_readers, \
             sum(shares) AS shares, sum(favorites) AS favorites, sum(cta_clicks) AS cta_clicks, \
             sumForEach(readers_at_screen) AS at_screen \
             FROM v_article_performance GROUP BY article_id",
        )
        .fetch_all::<ArticleRow>()
        .await?
        .into_iter()
        .map(|r| {
            let figures = (
                r.reads,
                r.push_reads,
                r.readers,
                r.push_readers,
                r.shares,
                r.favorites,
                r.cta_clicks,
                r.at_screen,
            );
            (r.article_id, figures)
        })
        .collect();
    let want: BTreeMap<String, ArticleFigures> = report
        .articles
        .iter()
        .filter(|(_, a)| a.reads.reads > 0)
        .map(|(id, a)| {
            let r = &a.reads;
            (
                id.clone(),
                (
                    r.reads,
                    r.push_reads,
                    r.readers,
                    r.push_readers,
                    r.shares,
                    r.favorites,
                    r.cta_clicks,
                    r.readers_at_screen.clone(),
                ),
            )
        })
        .collect();
    assert_eq!(articles.len(), want.len(), "articles read");
    assert_eq!(articles, want, "v_article_performance");

    // Pushes: cumulative push readers, engaged fans, fans reached, unfollows within 24 h.
    let pushes: BTreeMap<i64, (i64, u64, u64)> = ch
        .query("SELECT msgid, fans_reached, push_readers, engaged_fans FROM v_push_performance")
        .fetch_all::<(i64, i64, u64, u64)>()
        .await?
        .into_iter()
        .map(|(m, a, b, c)| (m, (a, b, c)))
        .collect();
    let want: BTreeMap<i64, (i64, u64, u64)> = report
        .pushes
        .iter()
        .filter(|(_, p)| p.reads.reads > 0)
        .map(|(m, p)| (*m, (p.fans_reached, p.reads.push_readers, p.reads.readers)))
        .collect();
    // Reads of articles no dimension has still carry the push id the client reported: the
    // view lists those pushes with nothing reached (their articles were compared above).
    let (pushes, unknown): (BTreeMap<_, _>, BTreeMap<_, _>) = pushes
        .into_iter()
        .partition(|(m, _)| report.pushes.contains_key(m));
    assert!(
        unknown.values().all(|(reached, _, _)| *reached == 0),
        "{unknown:?}"
    );
    assert_eq!(pushes, want, "v_push_performance");
    let unfollows: BTreeMap<i64, u64> = ch
        .query("SELECT msgid, unfollows_24h FROM v_unfollow_after_push")
        .fetch_all::<(i64, u64)>()
        .await?
        .into_iter()
        .collect();
    let want: BTreeMap<i64, u64> = report
        .pushes
        .iter()
        .filter(|(_, p)| p.reads.reads > 0)
        .map(|(m, p)| (*m, p.unfollows_24h))
        .collect();
    let unfollows: BTreeMap<i64, u64> = unfollows
        .into_iter()
        .filter(|(m, _)| report.pushes.contains_key(m))
        .collect();
    assert_eq!(unfollows, want, "v_unfollow_after_push");

    // Push-time heatmap.
    let heatmap: BTreeMap<(String, String, u8, u8), u64> = ch
        .query("SELECT app_id, toString(month), weekday, hour, pushes FROM v_push_heatmap")
        .fetch_all::<(String, String, u8, u8, u64)>()
        .await?
        .into_iter()
        .map(|(a, m, w, h, n)| ((a, m, w, h), n))
        .collect();
    let mut want = BTreeMap::new();
    for (app, months) in &report.push_heatmap {
        for (m, days) in months {
            for (w, hours) in days {
                for (h, n) in hours {
                    want.insert((app.clone(), month_date(*m), *w, *h), *n);
                }
            }
        }
    }
    assert_eq!(heatmap, want, "v_push_heatmap");

    // Associates per month.
    type AssociateFigures = (u64, u64, u64, u64, u64, u64, u64, u64, u64, Option<i64>);
    let associates: BTreeMap<(String, String, String), AssociateFigures> = ch
        .query(
            "SELECT app_id, toString(month) AS month, associate_userid, code_scans, new_contacts, conversations, \
             messages_in, messages_out, conversations_with_fan_message, answered_conversations, \
             replies, unique_customers, p90_first_reply_ms \
             FROM v_associate_kpis WHERE level = 'associate'",
        )
        .fetch_all::<AssociateRow>()
        .await?
        .into_iter()
        .map(|r| {
            let figures = (
                r.code_scans,
                r.new_contacts,
                r.conversations,
                r.messages_in,
                r.messages_out,
                r.conversations_with_fan_message,
                r.answered_conversations,
                r.replies,
                r.unique_customers,
                r.p90_first_reply_ms,
            );
            ((r.app_id, r.month, r.associate_userid), figures)
        })
        .collect();
    let mut want = BTreeMap::new();
    for (app, users) in &report.associates {
        for (userid, t) in users {
            for (m, a) in &t.months {
                let d = &a.totals;
                want.insert(
                    (app.clone(), month_date(*m), userid.clone()),
                    (
                        d.code_scans,
                        d.new_contacts,
                        d.conversations,
                        d.messages_in,
                        d.messages_out,
                        d.conversations_with_fan_message,
                        d.answered_conversations,
                        d.first_replies,
                        a.unique_customers,
                        a.first_reply_p90_ms,
                    ),
                );
            }
        }
    }
    assert_eq!(associates, want, "v_associate_kpis");

    // The shares, pooled over the accounts for last month, near the seed's figures.
    let month = month_date(report.shapes.month);
    let (monthly_active, fans): (u64, u64) = ch
        .query("SELECT sum(monthly_active_fans), sum(fans) FROM v_monthly_active WHERE month = ?")
        .bind(&month)
        .fetch_one()
        .await?;
    eprintln!(
        "monthly active: {:.2}% of followers at 10 events per fan (seed 9.33% at the seed's density)",
        100.0 * monthly_active as f64 / fans as f64
    );
    let slots: BTreeMap<String, f64> = ch
        .query(
            "SELECT slot, sum(readers) / sum(fans_reached) FROM v_open_rate_by_position \
             WHERE month = ? GROUP BY slot",
        )
        .bind(&month)
        .fetch_all::<(String, f64)>()
        .await?
        .into_iter()
        .collect();
    near(
        "open rate, single-article push",
        slots["single"],
        0.1026,
        0.02,
    );
    near(
        "open rate, first of a multi-article push",
        slots["first"],
        0.1054,
        0.02,
    );
    near(
        "cumulative open rate, multi-article push",
        slots["multi_cumulative"],
        0.1518,
        0.03,
    );
    let survival: BTreeMap<u8, f64> = ch
        .query(
            "SELECT screen, sum(still_reading) / sum(readers) FROM v_read_depth_curve \
             WHERE month = ? GROUP BY screen",
        )
        .bind(&month)
        .fetch_all::<(u8, f64)>()
        .await?
        .into_iter()
        .collect();
    // Weibull through 80% at 3.27 and 50% at 8.87 screens gives 81.7% at 3 and 49.5% at 9.
    near("still reading at screen 3", survival[&3], 0.817, 0.03);
    near("still reading at screen 9", survival[&9], 0.495, 0.03);
    let groups: BTreeMap<String, f64> = ch
        .query(
            "SELECT source_group, toFloat64(ifNull(sum(new_follows) / (SELECT sum(new_follows) FROM v_follower_sources WHERE month = ?), 0)) \
             FROM v_follower_sources WHERE month = ? GROUP BY source_group",
        )
        .bind(&month)
        .bind(&month)
        .fetch_all::<(String, f64)>()
        .await?
        .into_iter()
        .collect();
    near("new followers from search", groups["search"], 0.414, 0.03);
    near("new followers from QR codes", groups["qr"], 0.277, 0.03);
    let (unfollows, reached): (u64, i64) = ch
        .query("SELECT sum(unfollows_24h), sum(fans_reached) FROM v_unfollow_after_push WHERE month = ?")
        .bind(&month)
        .fetch_one()
        .await?;
    near(
        "unfollows within 24 h of a push",
        unfollows as f64 / reached as f64,
        0.004,
        0.003,
    );

    conversions_equal_the_truth(&ch, &world, &truth).await?;
    let orders = services
        .iter()
        .find(|s| s.name == "wxpulse-orders")
        .expect("started");
    let dead = metric(&orders.scrape()?, "wxpulse_dlq_events_total", &[]).unwrap_or(0.0);
    let want = conversions.dead_letters.values().sum::<u64>() as f64;
    assert!(want > 0.0);
    assert_eq!(dead, want, "malformed orders dead-lettered");

    // Messy input: every malformed record and every event of an unknown account is a dead
    // letter with its reason, once; every copy (5 s retries and re-sends minutes to days
    // later) was dropped as a duplicate, none written.
    let letters: BTreeMap<String, u64> = ch
        .query("SELECT reason, sum(letters) FROM v_dead_letters_daily GROUP BY reason")
        .fetch_all::<(String, u64)>()
        .await?
        .into_iter()
        .collect();
    let mut want = truth.dead_letters.clone();
    for (reason, n) in &conversions.dead_letters {
        *want.entry(reason.clone()).or_default() += n;
    }
    assert!(want.get("unknown_account").copied().unwrap_or(0) > 0);
    assert_eq!(letters, want, "v_dead_letters_daily by reason");
    let mut dropped = 0.0;
    for s in services.iter().filter(|s| s.name != "wxpulse-orders") {
        let text = s.scrape()?;
        dropped += metric(&text, "wxpulse_dedup_duplicates_by_age_total", &[]).unwrap_or(0.0);
        for age in ["1h", "1d", "older"] {
            let n = metric(
                &text,
                "wxpulse_dedup_duplicates_by_age_total",
                &[&format!("age=\"{age}\"")],
            );
            eprintln!("{}: duplicates {age}: {n:?}", s.name);
        }
    }
    assert_eq!(
        dropped, truth.duplicates as f64,
        "copies dropped as duplicates"
    );

    for s in &mut services {
        assert_eq!(s.terminate(Duration::from_secs(30)), Some(0), "{}", s.name);
    }
    Ok(())
}

/// A row of an attribution view: its key columns as strings, buyers, and the weighted
/// figures (orders, gross, refunded, net, and a fifth per view).
#[derive(clickhouse::Row, serde::Deserialize)]
struct CreditRow {
    key: Vec<String>,
    buyers: u64,
    figures: Vec<f64>,
}

/// A row of the funnel: key columns, counts (buyers, added, active, repurchasing,
/// purchases, spent_fen) and the ratios (add, active, repurchase, repurchase frequency,
/// basket).
#[derive(clickhouse::Row, serde::Deserialize)]
struct FunnelViewRow {
    key: Vec<String>,
    counts: Vec<i64>,
    rates: Vec<Option<f64>>,
}

/// A row of `v_orders_daily`: key, counts (purchases, refunds, buyers, items, gross,
/// refunded, net) and the basket.
#[derive(clickhouse::Row, serde::Deserialize)]
struct OrdersDayRow {
    key: Vec<String>,
    counts: Vec<i64>,
    basket_fen: Option<f64>,
}

/// Weighted sums (linear credit is fractional) agree to 1e-9, relatively.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

type Credits = BTreeMap<Vec<String>, (u64, Vec<f64>)>;

fn credits_match(name: &str, got: Vec<CreditRow>, want: Credits) {
    let got: Credits = got
        .into_iter()
        .map(|r| (r.key, (r.buyers, r.figures)))
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{name}: groups"
    );
    assert!(!got.is_empty(), "{name}: rows");
    for (key, (buyers, figures)) in &got {
        let (want_buyers, want_figures) = &want[key];
        assert_eq!(buyers, want_buyers, "{name} {key:?}: buyers");
        assert_eq!(figures.len(), want_figures.len());
        for (i, (g, w)) in figures.iter().zip(want_figures).enumerate() {
            assert!(close(*g, *w), "{name} {key:?} [{i}]: {g} vs {w}");
        }
    }
    eprintln!("{name}: {} groups equal the truth", got.len());
}

fn rates_match(name: &str, key: &[String], got: &[Option<f64>], want: &[Option<f64>]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let same = match (g, w) {
            (Some(g), Some(w)) => close(*g, *w),
            (None, None) => true,
            _ => false,
        };
        assert!(same, "{name} {key:?} rate [{i}]: {g:?} vs {w:?}");
    }
}

/// Funnel rows by key: counts and ratios.
type Funnel = BTreeMap<Vec<String>, (Vec<i64>, Vec<Option<f64>>)>;

fn funnel_matches(name: &str, got: Vec<FunnelViewRow>, want: &[generate::FunnelRow]) {
    let want: Funnel = want
        .iter()
        .map(|r| {
            let key = vec![
                r.month.clone(),
                r.app_id.clone(),
                r.store_id.clone(),
                r.level.clone(),
                r.associate_userid.clone(),
            ];
            let counts = [r.buyers, r.added, r.active, r.repurchasing, r.purchases]
                .iter()
                .map(|&n| n as i64)
                .chain([r.spent_fen])
                .collect();
            let rates = vec![
                r.add_rate,
                r.active_rate,
                r.repurchase_rate,
                r.repurchase_frequency,
                r.basket_fen,
            ];
            (key, (counts, rates))
        })
        .collect();
    let got: Funnel = got
        .into_iter()
        .map(|r| (r.key, (r.counts, r.rates)))
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{name}: rows"
    );
    assert!(!got.is_empty(), "{name}: rows");
    for (key, (counts, rates)) in &got {
        let (want_counts, want_rates) = &want[key];
        assert_eq!(counts, want_counts, "{name} {key:?}");
        rates_match(name, key, rates, want_rates);
    }
    eprintln!("{name}: {} rows equal the truth", got.len());
}

/// The conversion views of migration 0007 against the generator's truth.
async fn conversions_equal_the_truth(
    ch: &clickhouse::Client,
    world: &World,
    truth: &generate::GroundTruth,
) -> anyhow::Result<()> {
    let c = &truth.conversions;
    let figures = |x: &generate::Credited, fifth: f64| {
        (
            x.buyers,
            vec![x.orders, x.gross_fen, x.refunded_fen, x.net_fen, fifth],
        )
    };
    const SUMS: &str = "toUInt64(buyers) AS buyers, [toFloat64(orders), toFloat64(gross_fen), \
                        toFloat64(refunded_fen), toFloat64(net_fen)";

    // Attribution by associate (chats, codes, share codes), per month and model.
    let got = ch
        .query(&format!(
            "SELECT [toString(month), toString(app_id), toString(currency), toString(model), \
             toString(associate_userid), toString(store_id), toString(region)] AS key, \
             {SUMS}, toFloat64(share_code_orders)] AS figures FROM v_attribution_by_associate"
        ))
        .fetch_all::<CreditRow>()
        .await?;
    let want = c
        .by_associate
        .iter()
        .map(|r| (r.key(), figures(&r.credited, r.share_code_orders)))
        .collect();
    credits_match("v_attribution_by_associate", got, want);

    // By pushed article.
    let got = ch
        .query(&format!(
            "SELECT [toString(month), toString(app_id), toString(currency), toString(model), \
             toString(msgid), article_id, toString(campaign)] AS key, \
             {SUMS}, 0] AS figures FROM v_attribution_by_push"
        ))
        .fetch_all::<CreditRow>()
        .await?;
    let want = c
        .by_push
        .iter()
        .map(|r| (r.key(), figures(&r.credited, 0.0)))
        .collect();
    credits_match("v_attribution_by_push", got, want);

    // By QR scene.
    let got = ch
        .query(&format!(
            "SELECT [toString(month), toString(app_id), toString(currency), toString(model), \
             scene, toString(qr_channel)] AS key, {SUMS}, 0] AS figures \
             FROM v_attribution_by_scene"
        ))
        .fetch_all::<CreditRow>()
        .await?;
    let want = c
        .by_scene
        .iter()
        .map(|r| (r.key(), figures(&r.credited, 0.0)))
        .collect();
    credits_match("v_attribution_by_scene", got, want);

    // Per model and touch over the month: the daily view summed (refunds as the fifth
    // figure), buyers distinct over the month from the credit rows themselves.
    let got = ch
        .query(
            "SELECT [toString(model), toString(touch)] AS key, toUInt64(b.buyers) AS buyers, \
             [sum(orders), sum(gross_fen), sum(refunded_fen), sum(net_fen), sum(refunds)] \
             AS figures FROM v_attribution_daily AS d \
             LEFT JOIN (SELECT model, touch, uniqExactIf(fan_id, record = 'purchase') AS buyers \
                        FROM order_credits GROUP BY model, touch) AS b \
             ON toString(d.model) = toString(b.model) AND toString(d.touch) = toString(b.touch) \
             GROUP BY d.model, d.touch, b.buyers",
        )
        .fetch_all::<CreditRow>()
        .await?;
    let want = c
        .by_touch
        .iter()
        .map(|t| {
            (
                vec![t.model.clone(), t.touch.clone()],
                figures(&t.credited, t.credited.refunds),
            )
        })
        .collect();
    credits_match("v_attribution_daily per model and touch", got, want);

    // Orders as sold, per day, store and channel.
    let got = ch
        .query(
            "SELECT [toString(day), toString(app_id), toString(brand), toString(store_id), \
             toString(region), toString(channel), toString(currency)] AS key, \
             [toInt64(purchases), toInt64(refunds), toInt64(buyers), toInt64(items), \
             toInt64(gross_fen), toInt64(refunded_fen), toInt64(net_fen)] AS counts, \
             basket_fen FROM v_orders_daily",
        )
        .fetch_all::<OrdersDayRow>()
        .await?;
    let want: BTreeMap<Vec<String>, (Vec<i64>, Option<f64>)> = c
        .orders_daily
        .iter()
        .map(|d| {
            let key = vec![
                d.day.clone(),
                d.app_id.clone(),
                d.brand.clone(),
                d.store_id.clone(),
                d.region.clone(),
                d.channel.clone(),
                d.currency.clone(),
            ];
            let counts = vec![
                d.purchases as i64,
                d.refunds as i64,
                d.buyers as i64,
                d.items as i64,
                d.gross_fen,
                d.refunded_fen,
                d.net_fen,
            ];
            (key, (counts, d.basket_fen))
        })
        .collect();
    let got: BTreeMap<Vec<String>, (Vec<i64>, Option<f64>)> = got
        .into_iter()
        .map(|r| (r.key, (r.counts, r.basket_fen)))
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "v_orders_daily: rows"
    );
    for (key, (counts, basket)) in &got {
        let (want_counts, want_basket) = &want[key];
        assert_eq!(counts, want_counts, "v_orders_daily {key:?}");
        rates_match("v_orders_daily", key, &[*basket], &[*want_basket]);
    }
    eprintln!("v_orders_daily: {} rows equal the truth", got.len());

    // The funnel: per month (active over 4), and over the month with another threshold.
    const FUNNEL: &str = "toString(app_id), toString(store_id), toString(level), \
        toString(associate_userid)] AS key, [toInt64(buyers), toInt64(added), toInt64(active), \
        toInt64(repurchasing), toInt64(purchases), toInt64(spent_fen)] AS counts, \
        [add_rate, active_rate, repurchase_rate, repurchase_frequency, basket_fen] AS rates";
    let got = ch
        .query(&format!(
            "SELECT [toString(month), {FUNNEL} FROM v_social_funnel_monthly"
        ))
        .fetch_all::<FunnelViewRow>()
        .await?;
    funnel_matches("v_social_funnel_monthly", got, &c.funnel);
    let month = c.shapes.month;
    let date = generate::month_date(month);
    let got = ch
        .query(&format!(
            "SELECT ['{date}', {FUNNEL} FROM v_social_funnel(from_month = '{date}', \
             to_month = '{date}', active_over = 2)"
        ))
        .fetch_all::<FunnelViewRow>()
        .await?;
    funnel_matches(
        "v_social_funnel(active_over = 2)",
        got,
        &c.social_funnel(month, month, 2),
    );

    // Each brand's stores, pooled, near seed 003's funnel for its model.
    let pooled: Vec<(String, u64, u64, u64, u64, u64, i64)> = ch
        .query(
            "SELECT toString(app_id), toUInt64(sum(buyers)), toUInt64(sum(added)), \
             toUInt64(sum(active)), toUInt64(sum(repurchasing)), toUInt64(sum(purchases)), \
             toInt64(sum(spent_fen)) FROM v_social_funnel_monthly \
             WHERE level = 'store' AND month = ? GROUP BY app_id",
        )
        .bind(&date)
        .fetch_all()
        .await?;
    let mut by_model: BTreeMap<&str, (generate::Model, [f64; 6])> = BTreeMap::new();
    for (app, buyers, added, active, repurchasing, purchases, spent) in pooled {
        let account = world
            .accounts
            .iter()
            .find(|a| a.record.app_id == app)
            .expect("an account of the world");
        let model = generate::model(account.brand);
        let e = by_model.entry(model.name).or_insert((model, [0.0; 6]));
        for (x, v) in e.1.iter_mut().zip([
            buyers as f64,
            added as f64,
            active as f64,
            repurchasing as f64,
            purchases as f64,
            spent as f64,
        ]) {
            *x += v;
        }
    }
    assert_eq!(by_model.len(), 2, "a luxury and a clothing brand");
    for (name, (model, [buyers, added, active, repurchasing, purchases, spent])) in by_model {
        near(
            &format!("{name}: add rate (seed 003)"),
            added / buyers,
            model.add_rate,
            0.05,
        );
        near(
            &format!("{name}: active among the added"),
            active / added,
            model.active_rate,
            0.02,
        );
        near(
            &format!("{name}: repurchasing among the active"),
            repurchasing / active,
            model.repurchase_rate,
            0.07,
        );
        let basket = spent / purchases;
        eprintln!(
            "{name}: basket {:.0} yuan (seed {:.0})",
            basket / 100.0,
            model.basket_fen / 100.0
        );
        assert!(
            (basket / model.basket_fen - 1.0).abs() < 0.1,
            "{name}: basket {basket} fen"
        );
    }
    Ok(())
}

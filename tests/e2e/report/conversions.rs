//! The conversion views of migration 0007 (attribution, orders per day and the
//! social-selling funnel) against the generator's conversions truth, and each brand's
//! funnel near seed 003's.

use std::collections::BTreeMap;

use wxpulse_generator::generate;
use wxpulse_generator::world::World;

use super::helpers::near;

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
pub(super) async fn conversions_equal_the_truth(
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

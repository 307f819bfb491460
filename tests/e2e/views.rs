//! The rollups (0005) and BI views (0006) on the real engine. Hand-built raw rows
//! (`views_fixture.sql`: a few fans, a 2-article and a 1-article push, three associates,
//! follows and unfollows) go straight into the raw tables, every insert twice with the same
//! `insert_deduplication_token` as a retrying service would send it (orders too, for the
//! conversion views of 0007), and every view must
//! return exactly the figures worked out by hand below. The BI grants file is checked to
//! parse (it cannot run: the local engine has no RBAC), and every query of the Grafana
//! business dashboard runs on the same data (deploy/ops/check_dashboard_sql.py).

use clickhouse::Client;
use wxpulse_e2e::*;

const DB: &str = "wx_views";
const FIXTURE: &str = include_str!("views_fixture.sql");

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month) of a day count.
fn civil_month(days: i64) -> (i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m)
}

fn month_before((y, m): (i64, i64)) -> (i64, i64) {
    if m == 1 {
        (y - 1, 12)
    } else {
        (y, m - 1)
    }
}

/// ISO weekday (1 = Monday) of a date.
fn weekday((y, m): (i64, i64), d: i64) -> i64 {
    (days_from_civil(y, m, d) + 3).rem_euclid(7) + 1
}

/// The test's two months: M, the last full month in Asia/Shanghai (UTC+8, no DST), and P
/// before it, so that every row is in the past and well within the raw tables' TTL.
fn months() -> ((i64, i64), (i64, i64)) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let m = month_before(civil_month((now + 8 * 3600).div_euclid(86_400)));
    (m, month_before(m))
}

fn ym((y, m): (i64, i64)) -> String {
    format!("{y:04}-{m:02}")
}

/// Runs `sql` and compares its TSV output, row by row, with `expected`.
async fn check(ch: &Client, sql: &str, expected: &[String]) -> anyhow::Result<()> {
    let bytes = ch.query(sql).fetch_bytes("TabSeparated")?.collect().await?;
    let got = String::from_utf8(bytes.to_vec())?;
    let got: Vec<&str> = got.lines().collect();
    assert_eq!(got, expected, "\n{sql}");
    Ok(())
}

/// Expected TSV rows written with spaces for tabs (an empty value is two spaces).
fn rows(rows: &[&str]) -> Vec<String> {
    rows.iter().map(|r| r.replace(' ', "\t")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_return_the_hand_computed_figures_and_retries_count_once() -> anyhow::Result<()> {
    let (m, p) = months();
    let (month_m, month_p) = (ym(m), ym(p));
    let stack = Stack::start("views")?;
    stack.prepare(DB, 1).await?;
    let ch = stack
        .client(DB)
        .with_setting("insert_deduplicate", "1")
        .with_setting("deduplicate_blocks_in_dependent_materialized_views", "1");

    let fixture = FIXTURE.replace("{M}", &month_m).replace("{P}", &month_p);
    let inserts = wxpulse_cli::migrate::statements(&fixture);
    assert_eq!(inserts.len(), 13);
    // Each insert, then all of them again with the same tokens: a service retrying inserts
    // whose acknowledgement it lost. The raw tables and every rollup must count them once.
    for _attempt in 0..2 {
        for (i, sql) in inserts.iter().enumerate() {
            ch.query(sql)
                .with_setting("insert_deduplication_token", format!("views-{i}"))
                .execute()
                .await?;
        }
    }
    for (table, n) in [
        ("menu_clicks", 9),
        ("qr_scans", 3),
        ("chat_messages", 12),
        ("article_reads", 11),
        ("fan_profiles FINAL", 7),
        ("orders", 6),
        ("associate_contact_events FINAL", 8),
        ("v_notifications", 1),
    ] {
        assert_eq!(count(&ch, table).await?, n, "{table}");
    }

    let a = |view: &str, month: &str, columns: &str| {
        format!(
            "SELECT {columns} FROM {view} WHERE app_id = 'wxv_a' AND month = '{month}-01' \
             ORDER BY ALL"
        )
    };
    let (mm, pm) = (month_m.as_str(), month_p.as_str());

    // Interactions in M (rows of the four tables; a chat message counts either way):
    // menu F1 3 + F3 1 + F7 1 = 5; QR F2 1 + F4 1 = 2; chat F1 2+1+1 (group)+2 (wang) +
    // F3 1 + F4 2 + F5 3 = 12; articles 11 (F1 3, F2 1, F3 2, F4 2, F5 1, F6 1, F7 1).
    // Total 30. Fans per stream: menu {F1,F3,F7}, QR {F2,F4}, chat {F1,F3,F4,F5}, all 7 read.
    let mix = "stream, events, round(share, 4), fans";
    check(
        &ch,
        &a("v_interaction_mix", mm, mix),
        &rows(&[
            "article_read 11 0.3667 7",
            "chat_message 12 0.4 4",
            "menu_click 5 0.1667 3",
            "qr_scan 2 0.0667 2",
        ]),
    )
    .await?;
    // P: F2's 3 menu clicks and F1's QR follow.
    check(
        &ch,
        &a("v_interaction_mix", pm, mix),
        &rows(&[
            "article_read 0 0 0",
            "chat_message 0 0 0",
            "menu_click 3 0.75 1",
            "qr_scan 1 0.25 1",
        ]),
    )
    .await?;

    // Menu clicks in M: F1 ecommerce x2 + crm, F3 ecommerce, F7 other.
    check(
        &ch,
        &a(
            "v_menu_categories",
            mm,
            "category, clicks, round(share, 4), fans",
        ),
        &rows(&["crm 1 0.2 1", "ecommerce 3 0.6 2", "other 1 0.2 1"]),
    )
    .await?;

    // Segments on the engagement rollup: F1's clicks were vip/active, F3's new.
    check(
        &ch,
        &format!(
            "SELECT category, relationship, lifecycle, events, fans FROM v_engagement_daily \
             WHERE app_id = 'wxv_a' AND month = '{mm}-01' AND stream = 'menu_click' \
             ORDER BY ALL"
        ),
        &rows(&[
            "crm vip active 1 1",
            "ecommerce unknown new 1 1",
            "ecommerce vip active 2 1",
            "other unknown unknown 1 1",
        ]),
    )
    .await?;

    // Followers at the end of M (follow history): F1, F2, F3, F4 and F6 (followed again on
    // M-15); F5 and F8 unfollowed, F7 has no profile. Interactions in M / up to M:
    // F1 12/13, F2 2/5, F3 4/4, F4 5/5, F6 1/1 -> monthly active F1, F4 (F3's 4 is not
    // more than 4); lifetime active F1, F2, F4; inactive F3, F6. 7 fans interacted in M.
    let active = "population, fans, interacting_fans, monthly_active_fans, \
                  lifetime_active_fans, inactive_fans, round(monthly_active_share, 4), \
                  round(lifetime_active_share, 4), round(inactive_share, 4)";
    check(
        &ch,
        &a("v_monthly_active", mm, active),
        &rows(&["followers 5 7 2 3 2 0.4 0.6 0.4"]),
    )
    .await?;
    // End of P: F1, F2, F5, F6, F8 follow; F1 (1) and F2 (3) interacted, nobody > 4.
    check(
        &ch,
        &a("v_monthly_active", pm, active),
        &rows(&["followers 5 2 0 0 5 0 0 1"]),
    )
    .await?;
    // wxv_b has no fan profiles: the population falls back to the fans that interacted.
    check(
        &ch,
        &format!(
            "SELECT {active} FROM v_monthly_active WHERE app_id = 'wxv_b' AND month = '{mm}-01'"
        ),
        &rows(&["interacting_fans 1 1 0 0 1 0 0 1"]),
    )
    .await?;

    // New followers in M: F4 by zhang's code (QR stream), F3 and F6 (again) from search
    // (profiles; F4's profile follow is the same QR follow and is not counted twice).
    let sources = "source, source_group, data_source, new_follows, round(share, 4)";
    check(
        &ch,
        &a("v_follower_sources", mm, sources),
        &rows(&[
            "qr_associate qr qr_scans 1 0.3333",
            "search search fan_profiles 2 0.6667",
        ]),
    )
    .await?;
    // P: F6 article, F8 other (profile card), F5 paid media, F1 store code, F2 search.
    check(
        &ch,
        &a("v_follower_sources", pm, sources),
        &rows(&[
            "article article fan_profiles 1 0.2",
            "other other fan_profiles 1 0.2",
            "paid_media paid_media fan_profiles 1 0.2",
            "qr_store qr qr_scans 1 0.2",
            "search search fan_profiles 1 0.2",
        ]),
    )
    .await?;
    // Daily growth in M; an unfollow counts for the source of the follow it ended (F6's
    // article follow, although its latest profile says search).
    check(
        &ch,
        &a(
            "v_follower_growth",
            mm,
            "toDayOfMonth(day), source_group, new_follows, unfollows, net",
        ),
        &rows(&[
            "2 search 1 0 1",
            "4 qr 1 0 1",
            "11 article 0 1 -1",
            "11 other 0 1 -1",
            "12 paid_media 0 1 -1",
            "15 search 1 0 1",
        ]),
    )
    .await?;

    // Articles. art-1 (9001, first): readers F1, F2 (push), F3 (Moments) -> open 2/40;
    // F2's read came before art-1 was in the dimension and still counts for the push.
    // art-2 (9001, second): F1, F3 (push), F5 (chat) -> 2/40. art-3 (9002, single): F1,
    // F4 (push, F4 twice), F7 (search) -> 2/20. art-x: never pushed, no open rate.
    // Depth: readers still reading at screen n (max depth per fan).
    check(
        &ch,
        &a(
            "v_article_performance",
            mm,
            "msgid, article_id, position_class, target_segment, fans_reached, reads, \
             push_reads, readers, push_readers, round(open_rate, 4), shares, favorites, \
             cta_clicks, read_seconds, readers_at_screen",
        ),
        &rows(&[
            "0 art-x unknown unknown 0 1 0 1 0 \\N 0 0 0 25 [1,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]",
            "9001 art-1 first vip 40 3 2 3 2 0.05 1 0 1 185 [2,2,2,2,2,1,1,1,1,1,1,1,0,0,0,0,0,0,0,0]",
            "9001 art-2 non_first vip 40 3 2 3 2 0.05 0 1 1 60 [3,2,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]",
            "9002 art-3 single none 20 4 2 3 2 0.1 1 0 0 363 [2,2,2,2,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]",
        ]),
    )
    .await?;
    // Pushes: 9001 published M-10 20:00, push readers {F1,F2,F3} -> cumulative 3/40,
    // engaged (any source) {F1,F2,F3,F5} -> 4/40; 9002 M-12 08:30, {F1,F4} -> 2/20,
    // engaged {F1,F4,F7} -> 3/20.
    check(
        &ch,
        &a(
            "v_push_performance",
            mm,
            "msgid, toDayOfMonth(published_at), weekday, hour, articles_in_push, \
             segmentation, fans_reached, push_readers, round(cumulative_open_rate, 4), \
             engaged_fans, round(engagement_rate, 4)",
        ),
        &[
            format!(
                "9001\t10\t{}\t20\t2\tsegmented\t40\t3\t0.075\t4\t0.1",
                weekday(m, 10)
            ),
            format!(
                "9002\t12\t{}\t8\t1\tunsegmented\t20\t2\t0.1\t3\t0.15",
                weekday(m, 12)
            ),
        ],
    )
    .await?;
    // By position: all three articles 6/100 (mean of 0.05, 0.05, 0.1), first 2/40,
    // second 2/40, single 2/20, cumulative of the 2-article push 3/40.
    check(
        &ch,
        &a(
            "v_open_rate_by_position",
            mm,
            "slot, units, pushes, fans_reached, readers, round(open_rate, 4), \
             round(avg_open_rate, 4)",
        ),
        &rows(&[
            "all_articles 3 2 100 6 0.06 0.0667",
            "first 1 1 40 2 0.05 0.05",
            "multi_cumulative 1 1 40 3 0.075 0.075",
            "non_first 1 1 40 2 0.05 0.05",
            "single 1 1 20 2 0.1 0.1",
        ]),
    )
    .await?;
    // Depth curve: the per-article arrays above summed; 3+3+3+1 = 10 readers.
    let mut curve = vec![
        "1 10 8 0.8".to_string(),
        "2 10 7 0.7".to_string(),
        "3 10 5 0.5".to_string(),
        "4 10 4 0.4".to_string(),
        "5 10 3 0.3".to_string(),
    ];
    curve.extend((6..=12).map(|n| format!("{n} 10 2 0.2")));
    curve.extend((13..=20).map(|n| format!("{n} 10 1 0.1")));
    let curve: Vec<&str> = curve.iter().map(String::as_str).collect();
    check(
        &ch,
        &a(
            "v_read_depth_curve",
            mm,
            "screen, readers, still_reading, round(survival, 4)",
        ),
        &rows(&curve),
    )
    .await?;
    let mut heatmap = [
        format!("{}\t20\t1\t40\t3\t0.075", weekday(m, 10)),
        format!("{}\t8\t1\t20\t2\t0.1", weekday(m, 12)),
    ];
    heatmap.sort();
    check(
        &ch,
        &a(
            "v_push_heatmap",
            mm,
            "weekday, hour, pushes, fans_reached, readers, round(open_rate, 4)",
        ),
        &heatmap,
    )
    .await?;
    // Unfollows within 24 h: 9001 (M-10 20:00) gets F6 at M-11 10:00 but not F8 at exactly
    // M-11 20:00; 9002 (M-12 08:30) gets F5 at 09:00.
    check(
        &ch,
        &a(
            "v_unfollow_after_push",
            mm,
            "msgid, fans_reached, unfollows_24h, round(unfollow_rate, 4)",
        ),
        &rows(&["9001 40 1 0.025", "9002 20 1 0.05"]),
    )
    .await?;
    check(
        &ch,
        &a(
            "v_segmented_engagement",
            mm,
            "segmentation, pushes, fans_reached, engaged_fans, round(engagement_rate, 4), \
             round(avg_engagement_rate, 4)",
        ),
        &rows(&["segmented 1 40 4 0.1 0.1", "unsegmented 1 20 3 0.15 0.15"]),
    )
    .await?;

    // Associates. zhang (S1): M-04 F4 follows by his code; M-05 F1 writes twice and gets a
    // reply after 5 min, F4 writes at 23:50 and gets one at 00:20 the next day (30 min; the
    // wait started on M-05, so it is answered there); M-06 F2 scans his code, F3 writes and
    // gets no reply; M-07 F1 writes in his group. wang (S1): F1, 10 min on M-08. li (S2):
    // F5, 2 min on M-06.
    let metrics = "code_scans, new_contacts, scanning_fans, conversations, unique_customers, \
                   messages_in, messages_out, group_messages, conversations_with_fan_message, \
                   answered_conversations, round(reply_rate, 4), replies, avg_first_reply_ms, \
                   median_first_reply_ms, p90_first_reply_ms";
    check(
        &ch,
        &a(
            "v_associate_daily",
            mm,
            &format!("toDayOfMonth(day), region, store_id, associate_userid, {metrics}"),
        ),
        &rows(&[
            "4 east S1 zhang 1 1 1 0 0 0 0 0 0 0 \\N 0 \\N \\N \\N",
            "5 east S1 zhang 0 0 0 2 2 3 1 0 2 2 1 2 1050000 1800000 1800000",
            "6 east S1 zhang 1 0 1 2 2 1 1 0 1 0 0 0 \\N \\N \\N",
            "6 east S2 li 0 0 0 1 1 1 1 0 1 1 1 1 120000 120000 120000",
            "7 east S1 zhang 0 0 0 0 0 0 0 1 0 0 \\N 0 \\N \\N \\N",
            "8 east S1 wang 0 0 0 1 1 1 1 0 1 1 1 1 600000 600000 600000",
        ]),
    )
    .await?;
    // The month, per associate, store (S1: zhang + wang, F1 counted once among its unique
    // customers) and region (all three). Reply times sorted: 120000, 300000, 600000,
    // 1800000; the exact quantile q of n values is the value at 0-based index floor(q*n).
    check(
        &ch,
        &a(
            "v_associate_kpis",
            mm,
            &format!("level, region, store_id, associate_userid, associates, {metrics}"),
        ),
        &rows(&[
            "associate east S1 wang 1 0 0 0 1 1 1 1 0 1 1 1 1 600000 600000 600000",
            "associate east S1 zhang 1 2 1 2 4 3 4 2 1 3 2 0.6667 2 1050000 1800000 1800000",
            "associate east S2 li 1 0 0 0 1 1 1 1 0 1 1 1 1 120000 120000 120000",
            "region east   3 2 1 2 6 4 6 4 1 5 4 0.8 4 705000 600000 1800000",
            "store east S1  2 2 1 2 5 3 5 3 1 4 3 0.75 3 900000 600000 1800000",
            "store east S2  1 0 0 0 1 1 1 1 0 1 1 1 1 120000 120000 120000",
        ]),
    )
    .await?;

    // The BI grants need RBAC, which the local engine lacks, so they cannot be applied here;
    // but the engine parses each statement before refusing it, so a syntax error would show.
    let hash = wxpulse_cli::migrate::password_sha256("not-a-real-password");
    for sql in wxpulse_cli::migrate::grants(DB, None, &hash) {
        let err = ch.query(&sql).execute().await.expect_err("no RBAC locally");
        let err = err.to_string();
        assert!(
            ["ACCESS_DENIED", "UNKNOWN_ROLE", "UNKNOWN_USER"]
                .iter()
                .any(|code| err.contains(code)),
            "{sql}\n{err}"
        );
    }

    // Conversions (0007), last touch: o1 -> wang's chat (the latest of its 7 touches), its
    // refund follows; o2 -> push 9002's art-3; o3 -> zhang's reply; o4 -> zhang's code
    // (F2's scan); o5 -> li's share code.
    check(
        &ch,
        &a(
            "v_attribution_by_associate",
            mm,
            "model, associate_userid, store_id, region, orders, buyers, gross_fen, \
             refunded_fen, net_fen, share_code_orders",
        )
        .replace("ORDER BY ALL", "AND model = 'last_touch' ORDER BY ALL"),
        &rows(&[
            "last_touch li S2 east 1 1 10000 0 10000 1",
            "last_touch wang S1 east 1 1 150000 30000 120000 0",
            "last_touch zhang S1 east 2 2 50000 0 50000 0",
        ]),
    )
    .await?;
    // First touch: o1 -> the e-commerce click of M-03, o2 -> wang, o3 -> zhang's code.
    // Linear: o1's 7 touches (2 clicks, 3 chats with zhang, 2 with wang) get 1/7 each, o2's
    // 5 (wang's 2 chats, 3 push reads) 1/5, o3's 3 (zhang's code and 2 chats) 1/3.
    check(
        &ch,
        &format!(
            "SELECT model, touch, round(sum(orders), 4), round(sum(net_fen), 2) \
             FROM v_attribution_daily WHERE app_id = 'wxv_a' AND toStartOfMonth(day) = '{mm}-01' \
             GROUP BY model, touch ORDER BY ALL"
        ),
        &rows(&[
            "first_touch associate_chat 1 50000",
            "first_touch menu_ecommerce 1 120000",
            "first_touch qr_scan 2 50000",
            "first_touch share_code 1 10000",
            "last_touch article 1 50000",
            "last_touch associate_chat 2 150000",
            "last_touch qr_scan 1 20000",
            "last_touch share_code 1 10000",
            "linear article 0.6 30000",
            "linear associate_chat 1.781 125714.29",
            "linear menu_ecommerce 0.2857 34285.71",
            "linear qr_scan 1.3333 30000",
            "linear share_code 1 10000",
        ]),
    )
    .await?;
    // The funnel of M: S1 sold to F1 (zhang's, 12 interactions, 2 purchases) and F4
    // (zhang's, 5 interactions); S2 to F5 (4 interactions, no associate); the mall, with no
    // store, to F2.
    check(
        &ch,
        &a(
            "v_social_funnel_monthly",
            mm,
            "store_id, level, associate_userid, buyers, added, active, repurchasing, \
             add_rate, active_rate, repurchase_rate, purchases, spent_fen, \
             repurchase_frequency, round(basket_fen, 2)",
        ),
        &rows(&[
            " store  1 0 0 0 0 \\N \\N 1 20000 \\N 20000",
            "S1 associate zhang 2 2 2 1 1 1 0.5 3 230000 2 76666.67",
            "S1 store  2 2 2 1 1 1 0.5 3 230000 2 76666.67",
            "S2 store  1 0 0 0 0 \\N \\N 1 10000 \\N 10000",
        ]),
    )
    .await?;

    // Dead letters: the record rejected twice counts once; days are Asia/Shanghai.
    check(
        &ch,
        "SELECT toString(day), service, source_topic, reason, letters, payload_bytes \
         FROM v_dead_letters_daily ORDER BY day, service, reason",
        &rows(&[
            &format!("{pm}-20 qr-scans wxpulse.qr_scans missing_field 1 80"),
            &format!("{mm}-05 menu-clicks wxpulse.menu_clicks too_old 1 90"),
            &format!("{mm}-05 menu-clicks wxpulse.menu_clicks undecodable 1 12"),
        ]),
    )
    .await?;

    // Quarantined events: held, each once, in their own view only (the loop below checks
    // that no other view has wxv_q).
    check(
        &ch,
        "SELECT toString(day), stream_table, app_id, events, brand FROM v_quarantine_daily",
        &rows(&[&format!("{mm}-06 menu_clicks wxv_q 2 ")]),
    )
    .await?;

    // Every BI view has `brand`, its account's (the row policies of grants/bi_brand.sql filter
    // on it; they cannot run here, the engine has no access control): the newest known brand
    // of the account's rows, so wxv_a is Acme in every view although most of its rows, its
    // orders included, were stamped `unknown`. Dead letters belong to no account.
    let in_db: Vec<String> = ch
        .query(
            "SELECT name FROM system.tables WHERE database = ? AND name LIKE 'v\\_%' ORDER BY name",
        )
        .bind(DB)
        .fetch_all()
        .await?;
    let mut bi = wxpulse_cli::migrate::bi_views();
    bi.sort_unstable();
    assert_eq!(
        in_db, bi,
        "the BI views of the grants file are the database's v_* views"
    );
    for view in &bi {
        let (from, pairs) = match *view {
            "v_social_funnel" => (
                "v_social_funnel(from_month = '2000-01-01', to_month = '2100-01-01', active_over = 4)"
                    .to_string(),
                "app_id, brand",
            ),
            "v_dead_letters_daily" => (view.to_string(), "'', brand"),
            _ => (view.to_string(), "app_id, brand"),
        };
        let sql = format!("SELECT DISTINCT {pairs} FROM {from} ORDER BY ALL FORMAT TabSeparated");
        let got = ch
            .query(&sql)
            .fetch_bytes("TabSeparated")?
            .collect()
            .await?;
        let got = String::from_utf8(got.to_vec())?;
        let want = match *view {
            "v_dead_letters_daily" => "\t\n",
            "v_quarantine_daily" => "wxv_q\t\n",
            "v_birthdays_upcoming" | "v_replenishment_due" => "", // no row: fans_to_act_on.rs
            // Accounts wxv_b has rows in: its menu click only.
            "v_engagement_daily" | "v_interaction_mix" | "v_menu_categories"
            | "v_monthly_active" => "wxv_a\tAcme\nwxv_b\tBeta\n",
            _ => "wxv_a\tAcme\n",
        };
        assert_eq!(got, want, "{view}: {sql}");
    }

    // Grafana variables substituted (account wxv_a, month M), must run on the engine, return
    // rows on this fixture, and return every field its panel names.
    let out = std::process::Command::new("python3")
        .arg(repo_root().join("deploy/ops/check_dashboard_sql.py"))
        .arg(repo_root().join("deploy/grafana/dashboards/wxpulse-business.json"))
        .args([
            "--clickhouse",
            &stack.clickhouse,
            "--database",
            DB,
            "--require-rows",
        ])
        .args(["--set", "app_id=wxv_a", "--set", &format!("month={mm}-01")])
        .output()?;
    assert!(
        out.status.success(),
        "check_dashboard_sql.py:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

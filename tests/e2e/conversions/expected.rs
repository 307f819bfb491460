//! What the scenario of `conversions.rs` must give, worked out by hand: every order
//! record's credits and the BI views.

use wxpulse_e2e::Stack;

use super::{all_models, lines, query_lines, DB};

/// Every order record's credits (the lines of [`credits`]) of the scenario, worked out by
/// hand.
pub(super) fn expected() -> Vec<String> {
    let chat_a = "associate_chat|u1|s1|east|0|";
    [
        // A: both chats with u1 in the window; the partial refund follows the credit.
        vec![
            format!("oA1|purchase|last_touch|{chat_a}|1|100000"),
            format!("oA1|purchase|first_touch|{chat_a}|1|100000"),
            format!("oA1|purchase|linear|{chat_a}|0.5|50000"),
            format!("oA1|purchase|linear|{chat_a}|0.5|50000"),
            format!("oA1|refund|last_touch|{chat_a}|1|-30000"),
            format!("oA1|refund|first_touch|{chat_a}|1|-30000"),
            format!("oA1|refund|linear|{chat_a}|0.5|-15000"),
            format!("oA1|refund|linear|{chat_a}|0.5|-15000"),
            format!("oA2|purchase|last_touch|{chat_a}|1|50000"),
            format!("oA2|purchase|first_touch|{chat_a}|1|50000"),
            format!("oA2|purchase|linear|{chat_a}|0.5|25000"),
            format!("oA2|purchase|linear|{chat_a}|0.5|25000"),
        ],
        all_models("oB", "purchase", "none||||0||1|9000"),
        // C: last = the e-commerce click, first = the push read, linear = half each.
        vec![
            "oC|purchase|last_touch|menu_ecommerce||||0||1|60000".into(),
            "oC|purchase|first_touch|article||||101||1|60000".into(),
            "oC|purchase|linear|menu_ecommerce||||0||0.5|30000".into(),
            "oC|purchase|linear|article||||101||0.5|30000".into(),
        ],
        all_models("oD", "purchase", "share_code|u2|s2|west|0||1|40000"),
        all_models("oE", "purchase", "associate_chat|u2|s2|west|0||1|20000"),
        all_models("oF", "purchase", "qr_scan||s2|west|0|store_s2|1|8000"),
        all_models("oG", "purchase", "none||||0||1|12000"),
        all_models("oG", "refund", "none||||0||1|-5000"),
    ]
    .concat()
}

/// The BI views of the scenario (the profiles mirrored), worked out by hand.
pub(super) async fn assert_views(stack: &Stack) -> anyhow::Result<()> {
    // BI views. Per associate (last touch): u1 from A's chats, u2 from the share code and
    // E's late chat.
    assert_eq!(
        query_lines(
            stack,
            "SELECT arrayStringConcat([model, associate_userid, store_id, region, \
             toString(orders), toString(buyers), toString(gross_fen), toString(refunded_fen), \
             toString(net_fen), toString(share_code_orders)], '|') \
             FROM v_attribution_by_associate",
        )
        .await?,
        lines(&[
            "last_touch|u1|s1|east|2|1|150000|30000|120000|0",
            "first_touch|u1|s1|east|2|1|150000|30000|120000|0",
            "linear|u1|s1|east|2|1|150000|30000|120000|0",
            "last_touch|u2|s2|west|2|2|60000|0|60000|1",
            "first_touch|u2|s2|west|2|2|60000|0|60000|1",
            "linear|u2|s2|west|2|2|60000|0|60000|1",
        ])
    );
    assert_eq!(
        query_lines(
            stack,
            "SELECT arrayStringConcat([model, toString(msgid), article_id, campaign, \
             toString(orders), toString(net_fen)], '|') FROM v_attribution_by_push",
        )
        .await?,
        lines(&[
            "first_touch|101|art1|autumn|1|60000",
            "linear|101|art1|autumn|0.5|30000"
        ])
    );
    assert_eq!(
        query_lines(
            stack,
            "SELECT arrayStringConcat([model, scene, qr_channel, toString(orders), \
             toString(net_fen)], '|') FROM v_attribution_by_scene",
        )
        .await?,
        lines(&[
            "last_touch|store_s2|store|1|8000",
            "first_touch|store_s2|store|1|8000",
            "linear|store_s2|store|1|8000",
        ])
    );
    assert_eq!(
        query_lines(
            stack,
            "SELECT arrayStringConcat([store_id, channel, toString(sum(purchases)), \
             toString(sum(refunds)), toString(sum(gross_fen)), toString(sum(refunded_fen))], '|') \
             FROM v_orders_daily GROUP BY store_id, channel",
        )
        .await?,
        lines(&[
            "s1|store_pos|4|2|222000|35000",
            "s2|store_pos|1|0|20000|0",
            "s2|mini_program|1|0|40000|0",
            "s9|store_pos|1|0|9000|0",
            "|mini_program|1|0|8000|0",
        ])
    );

    // s1: A (u1, 5 interactions, 2 purchases), C (u1, 2 interactions), G (no associate).
    // s2: D (u2, 1 interaction), E (no profile). s9: B. No store: F.
    assert_eq!(
        query_lines(
            stack,
            "SELECT arrayStringConcat([store_id, level, associate_userid, toString(buyers), \
             toString(added), toString(active), toString(repurchasing), toString(purchases), \
             toString(spent_fen), ifNull(toString(round(add_rate, 4)), 'null'), ifNull(toString(active_rate), 'null'), ifNull(toString(repurchase_rate), 'null'), \
             ifNull(toString(repurchase_frequency), 'null'), ifNull(toString(basket_fen), 'null')], '|') \
             FROM v_social_funnel_monthly",
        )
        .await?,
        lines(&[
            "s1|store||3|2|1|1|4|222000|0.6667|0.5|1|2|55500",
            "s1|associate|u1|3|2|1|1|3|210000|0.6667|0.5|1|2|70000",
            "s2|store||2|1|0|0|2|60000|0.5|0|null|null|30000",
            "s2|associate|u2|2|1|0|0|1|40000|0.5|0|null|null|40000",
            "s9|store||1|0|0|0|1|9000|0|null|null|null|9000",
            "|store||1|0|0|0|1|8000|0|null|null|null|8000",
        ])
    );
    // Over a period with another threshold: A and C both active with > 1 interaction.
    let month: String = stack
        .client(DB)
        .query("SELECT toString(toStartOfMonth(min(event_time))) FROM orders")
        .fetch_one()
        .await?;
    let period: Vec<String> = query_lines(
        stack,
        &format!(
            "SELECT arrayStringConcat([store_id, level, toString(active), \
             toString(repurchasing)], '|') FROM v_social_funnel(from_month = '{month}', \
             to_month = '{month}', active_over = 1) WHERE store_id = 's1'"
        ),
    )
    .await?;
    assert_eq!(period, lines(&["s1|store|2|1", "s1|associate|2|1"]));
    Ok(())
}

//! The chat-message service: associate, store, region and the first reply across a restart.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::golden::*;
use wxpulse_e2e::*;
use wxpulse_runtime::enrich::*;
use wxpulse_runtime::events::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_messages_resolve_associate_store_region_and_first_reply_across_a_restart(
) -> anyhow::Result<()> {
    use ConversationKind::{OfficialAccount as Oa, WecomPrivate as Private};
    use Direction::{AssociateToFan as ToFan, FanToAssociate as ToAssociate, FanToBrand};
    const DB: &str = "wx_svc_chat";
    let stack = Stack::start("svc-chat")?;
    stack.prepare(DB, 2).await?;
    let t0 = last_month(&stack).await?.0 + D;
    let (a, b, c) = ("oRAW_A", "oRAW_B", "oRAW_C");
    publish(
        &stack,
        vec![
            account("wxa", "Maison"),
            store("sh01", "East"),
            store("sh02", "East-2"),
            associate("zhang", "sh01"),
            associate("li", "bj01"), // bj01 is not in the store dimension yet
        ],
    )
    .await?;
    let mut service = Service::start("wxpulse-chat-messages", &stack, DB, &[])?;
    let s = 1_000;
    let m = 60_000;
    send(
        &stack,
        vec![
            message(
                1,
                a,
                Private,
                ToAssociate,
                Some("zhang"),
                t0 + 10 * H,
                t0 + 10 * H + s,
            ),
            message(
                3,
                b,
                Private,
                ToAssociate,
                Some("li"),
                t0 + 10 * H,
                t0 + 10 * H + s,
            ),
            message(
                1,
                a,
                Private,
                ToAssociate,
                Some("zhang"),
                t0 + 10 * H,
                t0 + 10 * H + 6 * s,
            ),
            message(
                2,
                a,
                Private,
                ToFan,
                Some("zhang"),
                t0 + 10 * H + 30 * m,
                t0 + 10 * H + 30 * m + s,
            ),
            message(5, c, Oa, FanToBrand, None, t0 + 11 * H, t0 + 11 * H + s),
            // Late: written on day 0, received on day 2.
            message(6, c, Oa, FanToBrand, None, t0 - 12 * H, t0 + 2 * D),
        ],
    )
    .await?;
    rows_in(&stack, DB, "chat_messages", 5).await;
    publish(
        &stack,
        vec![store("bj01", "North"), associate("zhang", "sh02")],
    )
    .await?;
    applied(&service, Dimension::Store, 3).await;
    applied(&service, Dimension::Associate, 3).await;
    send(
        &stack,
        vec![message(
            7,
            b,
            Private,
            ToAssociate,
            Some("li"),
            t0 + 2 * D,
            t0 + 2 * D + s,
        )],
    )
    .await?;
    rows_in(&stack, DB, "chat_messages", 6).await;
    // The crash: B has been waiting for li since message 3; the new process must know.
    service.kill();
    service.restart()?;
    send(
        &stack,
        vec![
            message(
                8,
                b,
                Private,
                ToFan,
                Some("li"),
                t0 + 2 * D + H,
                t0 + 2 * D + H + s,
            ),
            message(
                9,
                a,
                Private,
                ToFan,
                Some("zhang"),
                t0 + 3 * D,
                t0 + 3 * D + s,
            ),
        ],
    )
    .await?;
    rows_in(&stack, DB, "chat_messages", 8).await;
    let got = stored(
        &stack,
        DB,
        "chat_messages",
        &[
            "conversation",
            "direction",
            "associate_userid",
            "store_id",
            "region",
            "ifNull(toString(first_reply_ms), '-')",
            "relationship",
            "month_interactions",
        ],
    )
    .await?;
    let reply_b = 2 * D + H - 10 * H; // from message 3 to message 8
    let want: BTreeMap<String, String> = expect(&[
        (
            1,
            "WECOM_PRIVATE|FAN_TO_ASSOCIATE|zhang|sh01|East|-|unknown|1",
        ),
        (
            2,
            "WECOM_PRIVATE|ASSOCIATE_TO_FAN|zhang|sh01|East|1800000|unknown|2",
        ),
        (
            3,
            "WECOM_PRIVATE|FAN_TO_ASSOCIATE|li|bj01|unknown|-|unknown|1",
        ),
        (5, "OFFICIAL_ACCOUNT|FAN_TO_BRAND||||-|unknown|1"),
        // Late, but in the same month as 5, and counted after it.
        (6, "OFFICIAL_ACCOUNT|FAN_TO_BRAND||||-|unknown|2"),
        (
            7,
            "WECOM_PRIVATE|FAN_TO_ASSOCIATE|li|bj01|North|-|unknown|2",
        ),
        (
            8,
            "WECOM_PRIVATE|ASSOCIATE_TO_FAN|li|bj01|North|REPLY_B|unknown|3",
        ),
        // Already answered (message 2): no new first reply; zhang now works in sh02.
        (
            9,
            "WECOM_PRIVATE|ASSOCIATE_TO_FAN|zhang|sh02|East-2|-|unknown|3",
        ),
    ])
    .into_iter()
    .map(|(k, v)| (k, v.replace("REPLY_B", &reply_b.to_string())))
    .collect();
    assert_eq!(got, want);
    // Chat text never reaches ClickHouse.
    let text: u64 = stack
        .client(DB)
        .query("SELECT count() FROM chat_messages WHERE position(formatRow('TSV', *), 'private words') > 0")
        .fetch_one()
        .await?;
    assert_eq!(text, 0);
    no_raw_ids(&stack, DB).await?;
    assert_eq!(service.terminate(Duration::from_secs(20)), Some(0));
    Ok(())
}

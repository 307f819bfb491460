use wxpulse_runtime::events::MsgType;

use super::*;

const MIN: i64 = 60_000;
const T0: i64 = 1_764_561_600_000;

fn msg(direction: Direction, userid: &'static str, server_time: i64) -> ChatMessage<'static> {
    ChatMessage {
        event_id: "00000000-0000-0000-0000-000000000000",
        app_id: "wx1",
        openid: "o1",
        unionid: None,
        client_time: server_time,
        server_time,
        msg_id: 1,
        conversation: ConversationKind::WecomPrivate,
        direction,
        msg_type: MsgType::Text,
        userid: Some(userid),
        chat_id: None,
        content: None,
        content_length: 3,
    }
}

fn waits() -> Waits {
    Waits::new(Duration::from_secs(30 * 60), 100)
}

#[test]
fn a_message_answered_in_time_never_expires() {
    let mut w = waits();
    let id = Uuid::from_u128(1);
    assert!(w
        .message(0, 10, &msg(Direction::FanToAssociate, "a", T0), id, 7)
        .is_empty());
    assert_eq!(w.oldest_offset(0), Some(10));
    // A second message does not restart the wait.
    w.message(
        0,
        11,
        &msg(Direction::FanToAssociate, "a", T0 + 5 * MIN),
        Uuid::from_u128(2),
        7,
    );
    assert_eq!(w.len(), 1);
    assert!(w
        .message(
            0,
            12,
            &msg(Direction::AssociateToFan, "a", T0 + 30 * MIN),
            Uuid::from_u128(3),
            7
        )
        .is_empty());
    assert!(w.is_empty());
    assert_eq!(w.oldest_offset(0), None);
    assert!(w
        .message(
            0,
            13,
            &msg(Direction::FanToBrand, "a", T0 + 90 * MIN),
            Uuid::from_u128(4),
            7
        )
        .is_empty());
}

#[test]
fn a_later_record_of_the_partition_expires_the_wait_once() {
    let mut w = waits();
    w.message(
        0,
        10,
        &msg(Direction::FanToAssociate, "a", T0),
        Uuid::from_u128(1),
        7,
    );
    w.message(
        0,
        11,
        &msg(Direction::FanToAssociate, "b", T0 + MIN),
        Uuid::from_u128(2),
        8,
    );
    // Another partition's time does not count.
    assert!(w
        .message(
            1,
            5,
            &msg(Direction::FanToBrand, "x", T0 + 60 * MIN),
            Uuid::from_u128(3),
            9
        )
        .is_empty());
    let expired = w.message(
        0,
        12,
        &msg(Direction::FanToBrand, "x", T0 + 30 * MIN + 1),
        Uuid::from_u128(4),
        9,
    );
    assert_eq!(expired.len(), 1);
    assert_eq!(
        (expired[0].message_id, expired[0].offset),
        (Uuid::from_u128(1), 10)
    );
    assert_eq!(w.oldest_offset(0), Some(11));
    // The late reply finds no wait.
    assert!(w
        .message(
            0,
            13,
            &msg(Direction::AssociateToFan, "a", T0 + 31 * MIN),
            Uuid::from_u128(5),
            7
        )
        .is_empty());
    let expired = w.message(
        0,
        14,
        &msg(Direction::FanToBrand, "x", T0 + 32 * MIN),
        Uuid::from_u128(6),
        9,
    );
    assert_eq!(expired.len(), 1);
    assert!(w.is_empty());
}

#[test]
fn an_idle_partition_expires_by_the_wall_clock_and_a_revoked_one_forgets() {
    let mut w = waits();
    w.message(
        0,
        10,
        &msg(Direction::FanToAssociate, "a", T0),
        Uuid::from_u128(1),
        7,
    );
    w.message(
        1,
        10,
        &msg(Direction::FanToAssociate, "a", T0),
        Uuid::from_u128(2),
        8,
    );
    assert!(w.idle(T0 + 31 * MIN, Duration::from_secs(3600)).is_empty());
    w.forget(1);
    let expired = w.idle(T0 + 31 * MIN, Duration::ZERO);
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].partition, 0);
    assert!(w.is_empty());
}

#[test]
fn past_the_cap_the_oldest_wait_is_told_at_once() {
    let mut w = Waits::new(Duration::from_secs(1800), 2);
    w.message(
        0,
        1,
        &msg(Direction::FanToAssociate, "a", T0),
        Uuid::from_u128(1),
        1,
    );
    w.message(
        0,
        2,
        &msg(Direction::FanToAssociate, "a", T0 + 1),
        Uuid::from_u128(2),
        2,
    );
    let told = w.message(
        0,
        3,
        &msg(Direction::FanToAssociate, "a", T0 + 2),
        Uuid::from_u128(3),
        3,
    );
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].fan_id, 1);
    assert_eq!(w.len(), 2);
}

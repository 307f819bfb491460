use super::*;
use wxpulse_runtime::enrich::CustomerStatus;

#[test]
fn rows_carry_the_pseudonym_and_tombstones_mark_deletion() {
    let pii = Pseudonymizer::new(b"k");
    let record = FanProfileRecord {
        app_id: "wxa".into(),
        openid: "oRAW".into(),
        status: CustomerStatus::Vip,
        member_tier: None,
        associate_userid: Some("zhang".into()),
        followed_at: Some(5),
        unfollowed_at: None,
        follow_source: Some("ADD_SCENE_SEARCH".into()),
        updated_at: 9,
        birthday: None,
    };
    let at = |time_ms| Origin {
        partition: 1,
        offset: 7,
        time_ms,
    };
    let r = row(&pii, "wxa|oRAW", Some(record), at(100)).expect("row");
    assert_eq!(r.fan_id, pii.fan_id("oRAW"));
    assert_eq!((r.status, r.updated_at, r.is_deleted), ("vip", 9, 0));
    assert_eq!((r.kafka_partition, r.kafka_offset), (1, 7));
    let t = row(&pii, "wxa|oRAW", None, at(100)).expect("tombstone");
    assert_eq!((t.fan_id, t.updated_at, t.is_deleted), (r.fan_id, 100, 1));
    assert!(row(&pii, "no-separator", None, at(1)).is_none());
    assert_eq!((r.birthday.as_str(), t.birthday.as_str()), ("", ""));
    assert!(!format!("{r:?}{t:?}").contains("oRAW"));
}

#[test]
fn a_reported_follow_is_a_history_row_whose_source_counts_only_when_told() {
    let pii = Pseudonymizer::new(b"k");
    let record = |source: Option<&str>| FanFollowRecord {
        app_id: "wxa".into(),
        openid: "oRAW".into(),
        kind: wxpulse_runtime::enrich::FollowKind::Unfollow,
        at: 42_000,
        follow_source: source.map(str::to_string),
        updated_at: 43_000,
    };
    let r = follow_row(&pii, record(None));
    assert_eq!(
        (
            r.fan_id,
            r.kind,
            r.at,
            r.follow_source.as_str(),
            r.source_known
        ),
        (pii.fan_id("oRAW"), "unfollow", 42_000, "", 0)
    );
    assert_eq!(
        follow_row(&pii, record(Some("ADD_SCENE_QR_CODE"))).source_known,
        1
    );
    assert!(!format!("{r:?}").contains("oRAW"));
}

#[test]
fn a_birthday_is_copied_and_one_not_of_the_form_mm_dd_is_unknown() {
    let pii = Pseudonymizer::new(b"k");
    let origin = Origin {
        partition: 0,
        offset: 1,
        time_ms: 2,
    };
    let with = |birthday: Option<&str>| FanProfileRecord {
        app_id: "wxa".into(),
        openid: "oRAW".into(),
        status: CustomerStatus::Customer,
        member_tier: None,
        associate_userid: None,
        followed_at: None,
        unfollowed_at: None,
        follow_source: None,
        updated_at: 9,
        birthday: birthday.map(str::to_string),
    };
    for (given, stored) in [
        (Some("02-29"), "02-29"),
        (Some("12-01"), "12-01"),
        (None, ""),
        (Some(""), ""),
        (Some("1990-12-01"), ""),
        (Some("02-30"), ""),
        (Some("garbage"), ""),
    ] {
        let r = row(&pii, "wxa|oRAW", Some(with(given)), origin).expect("row");
        assert_eq!(r.birthday, stored, "{given:?}");
    }
}

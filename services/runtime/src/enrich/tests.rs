use super::*;

fn dims() -> Dimensions {
    Dimensions::detached(Pseudonymizer::new(b"k"))
}

fn button(app_id: &str, key: &str, category: MenuCategory, label: &str) -> DimensionRecord {
    DimensionRecord::MenuButton(MenuButtonRecord {
        app_id: app_id.into(),
        event_key: key.into(),
        category,
        label: label.into(),
        updated_at: 0,
    })
}

#[test]
fn the_latest_record_of_a_key_wins_and_tombstones_delete() {
    let mut d = dims();
    let first = button("wxa", "SHOP", MenuCategory::BrandInfo, "Shop");
    let second = button("wxa", "SHOP", MenuCategory::Ecommerce, "Mall");
    d.apply(Dimension::MenuButton, &first.key(), Some(first.clone()));
    d.apply(Dimension::MenuButton, &second.key(), Some(second.clone()));
    let b = d.button("wxa", "SHOP").expect("present");
    assert_eq!(b.category, MenuCategory::Ecommerce);
    assert_eq!(&*b.label, "Mall");
    assert!(d.button("wxb", "SHOP").is_none(), "buttons are per account");
    d.apply(Dimension::MenuButton, "wxa|SHOP", None);
    assert!(d.button("wxa", "SHOP").is_none());
    assert_eq!(d.len(Dimension::MenuButton), 0);
}

#[test]
fn scenes_are_per_account_with_a_fallback_to_codes_of_every_account() {
    let mut d = dims();
    let scene = |app_id: &str, store: &str| {
        DimensionRecord::QrScene(QrSceneRecord {
            scene: "1001".into(),
            channel: SceneChannel::Store,
            store_id: Some(store.into()),
            userid: None,
            campaign: None,
            updated_at: 0,
            app_id: app_id.into(),
        })
    };
    for record in [
        scene("wxa", "sh01"),
        scene("wxb", "bj01"),
        scene("", "gz01"),
    ] {
        let key = record.key();
        d.apply(Dimension::QrScene, &key, Some(record));
    }
    let store = |d: &Dimensions, app_id| {
        d.scene(app_id, "1001")
            .and_then(|s| s.store_id.as_deref().map(str::to_string))
    };
    assert_eq!(store(&d, "wxa").as_deref(), Some("sh01"));
    assert_eq!(store(&d, "wxb").as_deref(), Some("bj01"), "no collision");
    assert_eq!(store(&d, "wxc").as_deref(), Some("gz01"), "a v1 code");
    assert_eq!(d.len(Dimension::QrScene), 3);
    d.apply(Dimension::QrScene, "wxa|1001", None);
    assert_eq!(store(&d, "wxa").as_deref(), Some("gz01"));
    d.apply(Dimension::QrScene, "1001", None);
    assert_eq!(store(&d, "wxa"), None);
    assert_eq!(store(&d, "wxb").as_deref(), Some("bj01"));
}

#[test]
fn reported_follows_merge_with_the_crm_profile_by_the_later_time() {
    // One per fan of the brand in every service: a second source must not grow it.
    assert!(std::mem::size_of::<FanProfile>() <= 56);
    let counters: [IntCounter; Dimension::COUNT] =
        std::array::from_fn(|i| IntCounter::new(format!("f{i}"), "f").expect("counter"));
    let mut d = Dimensions::new(Pseudonymizer::new(b"k"), counters.clone());
    let pii = Pseudonymizer::new(b"k");
    let profile = |followed: i64| {
        DimensionRecord::FanProfile(FanProfileRecord {
            app_id: "wxa".into(),
            openid: "o1".into(),
            status: CustomerStatus::Vip,
            member_tier: None,
            associate_userid: Some("zhang".into()),
            followed_at: Some(followed),
            unfollowed_at: None,
            follow_source: None,
            updated_at: 0,
            birthday: None,
        })
    };
    let reported = |openid: &str, kind, at| {
        DimensionRecord::FanFollow(FanFollowRecord {
            app_id: "wxa".into(),
            openid: openid.into(),
            kind,
            at,
            follow_source: None,
            updated_at: 0,
        })
    };
    let apply = |d: &mut Dimensions, r: DimensionRecord| {
        let (dimension, key) = (r.dimension(), r.key());
        d.apply(dimension, &key, Some(r));
    };
    let times = |d: &Dimensions, openid: &str| {
        let f = d.fan(pii.fan_id(openid)).expect("known");
        (f.status, f.followed_at(), f.unfollowed_at())
    };
    apply(&mut d, profile(100));
    apply(&mut d, reported("o1", FollowKind::Unfollow, 200));
    assert_eq!(times(&d, "o1"), (CustomerStatus::Vip, Some(100), Some(200)));
    // The CRM republishes its (older) view: the reported unfollow stays.
    apply(&mut d, profile(100));
    assert_eq!(times(&d, "o1"), (CustomerStatus::Vip, Some(100), Some(200)));
    apply(&mut d, reported("o1", FollowKind::Follow, 300));
    // An older report delivered late moves nothing back.
    apply(&mut d, reported("o1", FollowKind::Follow, 250));
    assert_eq!(times(&d, "o1"), (CustomerStatus::Vip, Some(300), Some(200)));
    assert_eq!(
        d.fan(pii.fan_id("o1"))
            .and_then(|f| f.associate.clone())
            .as_deref(),
        Some("zhang"),
        "the CRM's fields are not touched"
    );
    // Only callbacks know o2: follow times, no relationship, and still a profile miss.
    let misses = counters[Dimension::FanProfile as usize].get();
    apply(&mut d, reported("o2", FollowKind::Follow, 50));
    assert_eq!(times(&d, "o2"), (CustomerStatus::Other, Some(50), None));
    assert_eq!(counters[Dimension::FanProfile as usize].get(), misses + 1);
    assert_eq!(
        (d.len(Dimension::FanProfile), d.len(Dimension::FanFollow)),
        (1, 2)
    );
    // A profile tombstone keeps what callbacks said; their tombstones then forget it.
    d.apply(Dimension::FanProfile, "wxa|o1", None);
    assert_eq!(
        times(&d, "o1"),
        (CustomerStatus::Other, Some(300), Some(200))
    );
    d.apply(Dimension::FanFollow, "wxa|o1|follow", None);
    assert_eq!(times(&d, "o1"), (CustomerStatus::Other, None, Some(200)));
    d.apply(Dimension::FanFollow, "wxa|o1|unfollow", None);
    assert!(d.fan(pii.fan_id("o1")).is_none());
    assert_eq!(
        (d.len(Dimension::FanProfile), d.len(Dimension::FanFollow)),
        (0, 1)
    );
    d.clear(Dimension::FanFollow);
    assert!(d.fan(pii.fan_id("o2")).is_none());
}

#[test]
fn misses_are_counted_per_dimension() {
    let counters: [IntCounter; Dimension::COUNT] =
        std::array::from_fn(|i| IntCounter::new(format!("c{i}"), "c").expect("counter"));
    let mut d = Dimensions::new(Pseudonymizer::new(b"k"), counters.clone());
    assert!(d.store("s1").is_none());
    assert!(d.store("s1").is_none());
    d.apply(
        Dimension::Store,
        "s1",
        Some(DimensionRecord::Store(StoreRecord {
            store_id: "s1".into(),
            name: "n".into(),
            city: "Shanghai".into(),
            region: "East".into(),
            tier: "1".into(),
            updated_at: 0,
        })),
    );
    assert_eq!(&*d.store("s1").expect("arrived").region, "East");
    assert_eq!(counters[Dimension::Store as usize].get(), 2);
    assert_eq!(counters[Dimension::Account as usize].get(), 0);
}

#[test]
fn fan_profiles_are_keyed_by_pseudonym_never_by_raw_openid() {
    let mut d = dims();
    let profile = DimensionRecord::FanProfile(FanProfileRecord {
        app_id: "wxa".into(),
        openid: "oRAW".into(),
        status: CustomerStatus::Vip,
        member_tier: None,
        associate_userid: Some("zhang.wei".into()),
        followed_at: Some(1),
        unfollowed_at: None,
        follow_source: None,
        updated_at: 0,
        birthday: None,
    });
    d.apply(Dimension::FanProfile, &profile.key(), Some(profile));
    let id = Pseudonymizer::new(b"k").fan_id("oRAW");
    assert_eq!(d.fan(id).expect("by pseudonym").status, CustomerStatus::Vip);
    d.apply(Dimension::FanProfile, "wxa|oRAW", None);
    assert!(d.fan(id).is_none());
}

proptest::proptest! {
    /// Whatever the interleaving of updates and tombstones, the table ends with the
    /// last record per key: what reading an uncompacted topic from the start must give.
    #[test]
    fn last_write_per_key_wins(ops in proptest::collection::vec((0u8..4, proptest::option::of(0u8..3)), 0..40)) {
        let mut d = dims();
        let mut model = std::collections::HashMap::new();
        let categories = [MenuCategory::Ecommerce, MenuCategory::BrandInfo, MenuCategory::Crm];
        for (key, value) in ops {
            let k = format!("K{key}");
            let record = value.map(|v| button("wxa", &k, categories[v as usize], &format!("L{v}")));
            d.apply(Dimension::MenuButton, &format!("wxa|{k}"), record);
            match value {
                Some(v) => { model.insert(k, v); }
                None => { model.remove(&k); }
            }
        }
        for key in 0u8..4 {
            let k = format!("K{key}");
            let got = d.button("wxa", &k).map(|b| b.label.to_string());
            proptest::prop_assert_eq!(got, model.get(&k).map(|v| format!("L{v}")));
        }
        proptest::prop_assert_eq!(d.len(Dimension::MenuButton), model.len());
    }
}

#[test]
fn equal_values_share_one_allocation() {
    let mut d = dims();
    for (id, region) in [("s1", "East"), ("s2", "East")] {
        let store = DimensionRecord::Store(StoreRecord {
            store_id: id.into(),
            name: id.into(),
            city: "c".into(),
            region: region.into(),
            tier: "1".into(),
            updated_at: 0,
        });
        d.apply(Dimension::Store, id, Some(store));
    }
    let (a, b) = (d.store("s1").expect("s1"), d.store("s2").expect("s2"));
    assert!(Arc::ptr_eq(&a.region, &b.region));
}

#[test]
fn a_fan_profile_reads_from_v1_and_v2_and_a_bad_birthday_is_no_error() {
    let schema_of = |version: u32| {
        let s = crate::codec::EMBEDDED
            .iter()
            .find(|s| s.subject == "wxpulse.dim.fan_profile-value" && s.version == version)
            .expect("embedded");
        (s.id, crate::codec::parse(s.json).expect("parses"))
    };
    let ((id1, v1), (id2, v2)) = (schema_of(1), schema_of(2));
    assert_eq!((id1, id2), (17, 22));
    assert_eq!(
        crate::codec::latest("wxpulse.dim.fan_profile-value").map(|s| s.id),
        Some(22),
        "producers write v2"
    );
    let record = |birthday: Option<&str>| FanProfileRecord {
        app_id: "wxa".into(),
        openid: "o1".into(),
        status: CustomerStatus::Customer,
        member_tier: None,
        associate_userid: Some("zhang".into()),
        followed_at: Some(1),
        unfollowed_at: None,
        follow_source: None,
        updated_at: 5,
        birthday: birthday.map(str::to_string),
    };
    // What a v1 producer wrote: the v1 schema's fields only.
    #[derive(serde::Serialize)]
    struct V1<'a> {
        app_id: &'a str,
        openid: &'a str,
        status: CustomerStatus,
        member_tier: Option<&'a str>,
        associate_userid: Option<&'a str>,
        followed_at: Option<i64>,
        unfollowed_at: Option<i64>,
        follow_source: Option<&'a str>,
        updated_at: i64,
    }
    let old = V1 {
        app_id: "wxa",
        openid: "o1",
        status: CustomerStatus::Customer,
        member_tier: None,
        associate_userid: Some("zhang"),
        followed_at: Some(1),
        unfollowed_at: None,
        follow_source: None,
        updated_at: 5,
    };
    let mut framed = Vec::new();
    crate::codec::encode_into(&old, id1, &v1, &mut framed).expect("v1 encodes");
    let read = DimensionRecord::decode(Dimension::FanProfile, &framed[5..], &v1).expect("v1");
    assert_eq!(read, DimensionRecord::FanProfile(record(None)));
    let mut d = dims();
    for birthday in [Some("02-29"), Some("not a day"), Some(""), None] {
        let r = DimensionRecord::FanProfile(record(birthday));
        let framed = r.encode().expect("v2 encodes");
        assert_eq!(framed[1..5], 22u32.to_be_bytes());
        let back = DimensionRecord::decode(Dimension::FanProfile, &framed[5..], &v2).expect("v2");
        assert_eq!(back, r);
        // The follower stores what the services need; a bad birthday stops nothing.
        d.apply(Dimension::FanProfile, &back.key(), Some(back));
        let id = Pseudonymizer::new(b"k").fan_id("o1");
        assert_eq!(d.fan(id).expect("applied").status, CustomerStatus::Customer);
    }
    assert_eq!(birthday::stored(Some("not a day")), "");
}

use super::*;
use wxpulse_runtime::enrich::{CustomerStatus, MenuCategory, SceneChannel};

fn csv(dimension: Dimension, text: &str) -> Result<Vec<DimensionRecord>, Vec<BadRecord>> {
    parse(dimension, Format::Csv, text)
}

#[test]
fn csv_empty_cells_are_absent_fields() {
    let text = "app_id,scene,channel,store_id,userid,campaign,updated_at\n\
                    ,store_sh01_counter,STORE,sh01,,,\n\
                    wxa,1001, PACKAGING ,,,spring,1700000000000\n";
    let records = csv(Dimension::QrScene, text).expect("valid");
    assert_eq!(
        records,
        vec![
            DimensionRecord::QrScene(QrSceneRecord {
                scene: "store_sh01_counter".into(),
                channel: SceneChannel::Store,
                store_id: Some("sh01".into()),
                userid: None,
                campaign: None,
                updated_at: 0,
                app_id: String::new(),
            }),
            DimensionRecord::QrScene(QrSceneRecord {
                scene: "1001".into(),
                channel: SceneChannel::Packaging,
                store_id: None,
                userid: None,
                campaign: Some("spring".into()),
                updated_at: 1_700_000_000_000,
                app_id: "wxa".into(),
            }),
        ]
    );
    // Scene ids are per account: the second is keyed by its app_id.
    assert_eq!(records[0].key(), "store_sh01_counter");
    assert_eq!(records[1].key(), "wxa|1001");
}

#[test]
fn csv_may_omit_defaulted_columns() {
    let text = "userid,name,store_id\nzhangwei,张伟,sh01\n";
    let records = csv(Dimension::Associate, text).expect("valid");
    let DimensionRecord::Associate(a) = &records[0] else {
        panic!("an associate");
    };
    assert!(a.active, "active defaults to true");
}

#[test]
fn json_array_and_json_lines_parse_alike() {
    let json = r#"[
  {"app_id": "wxb00a00", "event_key": "MEMBER_CENTER", "category": "CRM", "label": "会员中心"},
  {"app_id": "wxb00a00", "event_key": "pages/mall/index", "category": "ECOMMERCE",
   "label": "小程序商城", "updated_at": null}
]"#;
    let jsonl = "{\"app_id\": \"wxb00a00\", \"event_key\": \"MEMBER_CENTER\", \"category\": \"CRM\", \"label\": \"会员中心\"}\n\
                     \n\
                     {\"app_id\": \"wxb00a00\", \"event_key\": \"pages/mall/index\", \"category\": \"ECOMMERCE\", \"label\": \"小程序商城\"}\n";
    let a = parse(Dimension::MenuButton, Format::Json, json).expect("json");
    let b = parse(Dimension::MenuButton, Format::JsonLines, jsonl).expect("jsonl");
    assert_eq!(a, b);
    assert_eq!(a.len(), 2);
    assert_eq!(a[1].key(), "wxb00a00|pages/mall/index");
    let DimensionRecord::MenuButton(m) = &a[1] else {
        panic!("a button");
    };
    assert_eq!(m.category, MenuCategory::Ecommerce);
}

#[test]
fn a_bad_csv_line_is_reported_with_its_number_and_field() {
    let text = "article_id,msgid,idx,articles_in_push,published_at\n\
                    a1,2650000001,1,2,1700000000000\n\
                    a2,2650000001,two,2,1700000000000\n\
                    a3,2650000002,1,1,1700000000000\n";
    let errors = csv(Dimension::Article, text).expect_err("line 3 is bad");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, 3);
    assert_eq!(errors[0].field.as_deref(), Some("idx"));
    assert!(errors[0].to_string().starts_with("line 3, field `idx`: "));
}

#[test]
fn every_bad_record_is_reported_and_none_is_returned() {
    let text = "app_id,openid,status,followed_at\n\
                    wxb00a00,o1,VIP,\n\
                    wxb00a00,o2,GOLD,\n\
                    wxb00a00,,PROSPECT,\n\
                    wxb00a00,o4,PROSPECT,yesterday\n\
                    wxb00a00,o1,CUSTOMER,\n";
    let errors = csv(Dimension::FanProfile, text).expect_err("bad lines");
    let found: Vec<(u64, Option<&str>)> = errors
        .iter()
        .map(|e| (e.line, e.field.as_deref()))
        .collect();
    assert_eq!(
        found,
        vec![
            (3, Some("status")),
            (4, Some("openid")),
            (5, Some("followed_at")),
            (6, None),
        ],
        "{errors:#?}"
    );
    assert!(errors[0].message.contains("PROSPECT, CUSTOMER, VIP"));
    assert!(errors[3].message.contains("duplicate key `wxb00a00|o1`"));
}

#[test]
fn a_birthday_is_month_and_day_and_anything_else_is_reported() {
    let text = "app_id,openid,status,birthday\n\
                    wxb00a00,o1,VIP,02-29\n\
                    wxb00a00,o2,VIP,\n\
                    wxb00a00,o3,VIP,1990-03-07\n\
                    wxb00a00,o4,VIP,04-31\n\
                    wxb00a00,o5,VIP,3-7\n";
    let errors = csv(Dimension::FanProfile, text).expect_err("bad birthdays");
    let found: Vec<(u64, Option<&str>)> = errors
        .iter()
        .map(|e| (e.line, e.field.as_deref()))
        .collect();
    assert_eq!(
        found,
        vec![
            (4, Some("birthday")),
            (5, Some("birthday")),
            (6, Some("birthday"))
        ],
        "{errors:#?}"
    );
    assert!(
        errors[0].message.contains("\"MM-DD\""),
        "{}",
        errors[0].message
    );
    let good = csv(
        Dimension::FanProfile,
        &text.lines().take(3).collect::<Vec<_>>().join("\n"),
    )
    .expect("valid");
    let birthdays: Vec<Option<String>> = good
        .iter()
        .map(|r| match r {
            DimensionRecord::FanProfile(p) => p.birthday.clone(),
            _ => panic!("a fan profile"),
        })
        .collect();
    assert_eq!(birthdays, vec![Some("02-29".to_string()), None]);
    // JSON: an empty string is no birthday, as an empty CSV cell is.
    let json = r#"[{"app_id": "wxa", "openid": "o1", "birthday": ""},
                   {"app_id": "wxa", "openid": "o2", "birthday": "12-31"}]"#;
    assert!(parse(Dimension::FanProfile, Format::Json, json).is_ok());
    let json = r#"[{"app_id": "wxa", "openid": "o1", "birthday": "31-12"}]"#;
    let errors = parse(Dimension::FanProfile, Format::Json, json).expect_err("day-month");
    assert_eq!(errors[0].field.as_deref(), Some("birthday"));
}

#[test]
fn a_bad_json_element_is_reported_with_the_line_it_starts_on() {
    let json = "[\n  {\"store_id\": \"sh01\", \"name\": \"n\", \"city\": \"Shanghai\", \"region\": \"East\", \"tier\": \"1\"},\n  {\"store_id\": \"bj01\",\n   \"name\": \"n\", \"city\": \"Beijing\", \"region\": \"North\"}\n]";
    let errors = parse(Dimension::Store, Format::Json, json).expect_err("no tier");
    assert_eq!(
        errors,
        vec![bad(3, Some("tier"), "is required")],
        "{errors:?}"
    );
    let jsonl = "{\"store_id\": \"sh01\", \"name\": \"n\", \"city\": \"c\", \"region\": \"r\", \"tier\": \"1\", \"updated_at\": \"now\"}\n{oops\n";
    let errors = parse(Dimension::Store, Format::JsonLines, jsonl).expect_err("bad");
    assert_eq!(errors.len(), 2);
    assert_eq!(
        (errors[0].line, errors[0].field.as_deref()),
        (1, Some("updated_at"))
    );
    assert_eq!((errors[1].line, errors[1].field.as_deref()), (2, None));
}

#[test]
fn unknown_columns_and_fields_are_rejected() {
    let errors = csv(Dimension::Store, "store_id,name,city,region,tier,cty\n")
        .expect_err("typo in a column");
    assert_eq!(errors, vec![bad(1, Some("cty"), errors[0].message.clone())]);
    let json = r#"[{"app_id": "a", "brand": "b", "name": "n", "fanz": 3}]"#;
    let errors = parse(Dimension::Account, Format::Json, json).expect_err("typo");
    assert_eq!(errors[0].field.as_deref(), Some("fanz"));
}

#[test]
fn element_lines_skip_strings_and_nesting() {
    let text = "[{\"a\": \"x,[{\\\"\"},\n {\"b\": [1,\n 2]},\n\n 3]";
    assert_eq!(element_lines(text), vec![1, 2, 5]);
}

#[test]
fn stamp_fills_only_missing_update_times() {
    let text = "store_id,name,city,region,tier,updated_at\ns1,n,c,r,t,\ns2,n,c,r,t,5\n";
    let mut records = csv(Dimension::Store, text).expect("valid");
    stamp(&mut records, 99);
    let times: Vec<i64> = records
        .iter()
        .map(|r| match r {
            DimensionRecord::Store(s) => s.updated_at,
            _ => -1,
        })
        .collect();
    assert_eq!(times, vec![99, 5]);
}

#[test]
fn tombstones_check_composite_keys() {
    let t = tombstone(Dimension::FanProfile, "wxb00a00|o1").expect("valid");
    assert_eq!(t.topic, "wxpulse.dim.fan_profile");
    assert_eq!(t.key, b"wxb00a00|o1");
    assert!(t.payload.is_none());
    assert!(tombstone(Dimension::FanProfile, "o1").is_err());
    assert!(tombstone(Dimension::FanFollow, "wxb00a00|o1|unfollow").is_ok());
    for bad in [
        "wxb00a00|o1",
        "wxb00a00|o1|gone",
        "|o1|follow",
        "wxb00a00||follow",
    ] {
        assert!(tombstone(Dimension::FanFollow, bad).is_err(), "{bad}");
    }
    assert!(tombstone(Dimension::AssociateContact, "ww1|zhang|wmEXT1|removed").is_ok());
    for bad in [
        "ww1|zhang|wmEXT1",
        "ww1|zhang|wmEXT1|gone",
        "ww1||wmEXT1|added",
        "ww1|zhang|wm|EXT1|added",
    ] {
        assert!(
            tombstone(Dimension::AssociateContact, bad).is_err(),
            "{bad}"
        );
    }
    assert!(tombstone(Dimension::MenuButton, "wxb00a00|").is_err());
    assert!(tombstone(Dimension::Store, " ").is_err());
    assert!(tombstone(Dimension::Store, "aur_sh01").is_ok());
}

fn examples() -> BTreeMap<Dimension, Vec<DimensionRecord>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local/dims");
    let mut loaded = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("deploy/local/dims exists") {
        let path = entry.expect("dir entry").path();
        if Format::of_path(&path).is_none() {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let dimension = Dimension::parse(stem)
            .unwrap_or_else(|| panic!("{}: not named after a dimension", path.display()));
        let records = read_file(dimension, &path).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(!records.is_empty(), "{} is empty", path.display());
        loaded.insert(dimension, records);
    }
    loaded
}

#[test]
fn every_example_file_loads() {
    let loaded = examples();
    for d in Dimension::ALL {
        assert!(
            loaded.contains_key(&d),
            "no example file for {}",
            d.as_str()
        );
    }
    assert!(outgoing(&loaded[&Dimension::Store]).is_ok());
}

#[test]
fn example_files_reference_each_other() {
    let loaded = examples();
    let keys = |d: Dimension| -> Vec<String> { loaded[&d].iter().map(|r| r.key()).collect() };
    let (accounts, stores, associates) = (
        keys(Dimension::Account),
        keys(Dimension::Store),
        keys(Dimension::Associate),
    );
    let has = |set: &[String], k: &str| set.iter().any(|s| s == k);
    for r in loaded.values().flatten() {
        match r {
            DimensionRecord::Associate(a) => assert!(has(&stores, &a.store_id), "{a:?}"),
            DimensionRecord::QrScene(s) => {
                assert!(s.store_id.iter().all(|k| has(&stores, k)), "{s:?}");
                assert!(s.userid.iter().all(|k| has(&associates, k)), "{s:?}");
            }
            DimensionRecord::MenuButton(b) => assert!(has(&accounts, &b.app_id), "{b:?}"),
            DimensionRecord::FanProfile(f) => {
                assert!(has(&accounts, &f.app_id), "{f:?}");
                assert!(f.associate_userid.iter().all(|k| has(&associates, k)));
                assert_ne!(f.status, CustomerStatus::Other);
            }
            _ => {}
        }
    }
}

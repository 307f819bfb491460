use super::*;

#[test]
fn versions_are_increasing_and_every_statement_renders_both_ways() {
    let mut last = 0;
    for m in MIGRATIONS {
        assert!(m.version > last, "{} out of order", m.name);
        last = m.version;
        for s in statements(m.sql) {
            let single = render(&s, None);
            assert!(
                !single.contains("{ON_CLUSTER}") && !single.contains("ON CLUSTER"),
                "{single}"
            );
            let clustered = render(&s, Some("wx"));
            // A backfill (INSERT ... SELECT) runs once, on the node that migrates: its
            // rows are read by every shard through the Distributed table.
            let backfill = s.starts_with("INSERT INTO ");
            assert_eq!(
                clustered.contains("ON CLUSTER 'wx'"),
                !backfill,
                "{clustered}"
            );
            if clustered.contains("ENGINE = ") {
                assert!(clustered.contains("ENGINE = Replicated"), "{clustered}");
                assert!(!clustered.contains("non_replicated"), "{clustered}");
            }
            for sql in [&single, &clustered] {
                assert!(!sql.contains("{ALL}"), "{sql}");
            }
        }
    }
}

/// The identifiers that follow each occurrence of `prefix` in `sql`.
fn names_after<'a>(sql: &'a str, prefix: &str) -> Vec<&'a str> {
    sql.match_indices(prefix)
        .map(|(i, _)| {
            let rest = &sql[i + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

/// Every statement of every migration, without comments.
fn all_sql() -> String {
    MIGRATIONS
        .iter()
        .flat_map(|m| statements(m.sql))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn engines_with_parameters_replicate_with_the_keeper_path_first() {
    let s = "CREATE TABLE t {ON_CLUSTER} (v UInt8, d UInt8)\n\
                 ENGINE = ReplacingMergeTree(v, d)\nORDER BY v";
    assert_eq!(
            render(s, Some("wx")),
            "CREATE TABLE t ON CLUSTER 'wx' (v UInt8, d UInt8)\n\
             ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', \
             '{replica}', v, d)\nORDER BY v"
        );
    assert_eq!(
        render("SELECT * FROM r{ALL} JOIN s{ALL} USING k", Some("wx")),
        "SELECT * FROM r_all JOIN s_all USING k"
    );
    assert_eq!(render("SELECT * FROM r{ALL}", None), "SELECT * FROM r");
}

#[test]
fn every_materialized_view_target_has_a_dedup_window() {
    // Without its own window an MV target double-counts a retried insert (ADAPTER.md).
    let sql = all_sql();
    let creates: Vec<String> = MIGRATIONS
        .iter()
        .flat_map(|m| statements(m.sql))
        .filter(|s| s.starts_with("CREATE TABLE"))
        .collect();
    let targets = names_after(&sql, "{ON_CLUSTER} TO ");
    assert_eq!(
        targets.len(),
        sql.matches("CREATE MATERIALIZED VIEW").count(),
        "every materialized view writes TO a table: {targets:?}"
    );
    for target in targets {
        let create = creates
            .iter()
            .find(|c| names_after(c, "CREATE TABLE IF NOT EXISTS ")[0] == target)
            .unwrap_or_else(|| panic!("no CREATE TABLE for MV target {target}"));
        assert!(
            create.contains("non_replicated_deduplication_window"),
            "{target} has no dedup window"
        );
    }
}

#[test]
fn views_read_tables_that_get_a_distributed_table_before_them() {
    for m in MIGRATIONS {
        let sql = statements(m.sql).join("\n");
        for (i, _) in sql.match_indices("{ALL}") {
            let before = &sql[..i];
            let start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |p| p + 1);
            let table = &before[start..];
            assert!(
                DISTRIBUTED
                    .iter()
                    .any(|(v, t, _)| *t == table && *v <= m.version),
                "{}: {table}{{ALL}} has no Distributed table",
                m.name
            );
        }
    }
    let m5 = MIGRATIONS.iter().find(|m| m.version == 5).expect("0005");
    let sql = rendered(m5, "wxpulse", Some("wx"));
    assert!(sql.iter().any(|s| s.starts_with(
        "CREATE TABLE IF NOT EXISTS fan_profiles_all ON CLUSTER 'wx' AS fan_profiles \
             ENGINE = Distributed('wx', 'wxpulse', 'fan_profiles', cityHash64(fan_id))"
    )));
    assert!(sql
        .last()
        .expect("statements")
        .contains("associate_daily_all"));
    assert_eq!(
        rendered(m5, "wxpulse", None).len(),
        statements(m5.sql).len(),
        "a single node gets no Distributed tables"
    );
}

/// The `v_*` views the migrations create, each once, in the order first created (a later
/// migration replaces a view, never adds it twice).
fn bi_views_of_migrations(sql: &str) -> Vec<&str> {
    let mut bi: Vec<&str> = Vec::new();
    for v in names_after(sql, "CREATE OR REPLACE VIEW ") {
        if v.starts_with("v_") && !bi.contains(&v) {
            bi.push(v);
        }
    }
    bi
}

/// The latest definition of `view` in the migrations.
fn latest_definition(view: &str) -> String {
    MIGRATIONS
        .iter()
        .rev()
        .flat_map(|m| statements(m.sql).into_iter().rev())
        .find(|s| s.starts_with(&format!("CREATE OR REPLACE VIEW {view} ")))
        .unwrap_or_else(|| panic!("{view} is not created"))
}

#[test]
fn the_bi_role_may_read_every_v_view_and_nothing_else() {
    let sql = all_sql();
    let bi = bi_views_of_migrations(&sql);
    assert!(bi.len() >= 10, "{bi:?}");
    let granted: Vec<&str> = statements(GRANTS_SQL)
        .iter()
        .filter(|s| s.ends_with("TO wxpulse_bi_readonly"))
        .map(|s| names_after(s, "{DATABASE}.")[0])
        .map(|v| {
            *bi.iter()
                .find(|b| **b == v)
                .unwrap_or_else(|| panic!("{v} granted"))
        })
        .collect();
    assert_eq!(granted, bi, "one SELECT grant per BI view, in order");
    let owned = names_after(
        GRANTS_SQL,
        "MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner",
    );
    assert_eq!(owned.len(), bi.len(), "every BI view runs as its owner");
    for v in &bi {
        assert!(
            GRANTS_SQL.contains(&format!(
                "ALTER TABLE {{DATABASE}}.{v} {{ON_CLUSTER}} MODIFY SQL SECURITY DEFINER"
            )),
            "{v} has no owner"
        );
    }
}

#[test]
fn grants_render_for_a_node_and_a_cluster_without_the_password() {
    let hash = password_sha256("s3cret");
    assert_eq!(hash.len(), 64);
    for cluster in [None, Some("wx")] {
        let sql = grants("wxpulse", cluster, &hash);
        assert_eq!(sql.len(), statements(GRANTS_SQL).len());
        for s in &sql {
            assert!(!s.contains('{') || s.contains("{shard}"), "token left: {s}");
            assert!(!s.contains("s3cret"), "{s}");
            assert_eq!(s.contains("ON CLUSTER 'wx'"), cluster.is_some(), "{s}");
        }
        assert!(sql.iter().any(|s| s.contains(&hash)));
        assert!(sql
            .iter()
            .any(|s| s.contains("SELECT ON `wxpulse`.v_monthly_active TO wxpulse_bi_readonly")));
    }
}

#[test]
fn every_bi_view_has_the_brand_of_its_account() {
    let sql = all_sql();
    let bi = bi_views_of_migrations(&sql);
    assert_eq!(
        bi_views(),
        bi,
        "bi_views() lists the views of the grants file"
    );
    for v in &bi {
        let def = latest_definition(v);
        assert!(def.contains(" AS brand"), "{v}: no brand column\n{def}");
        // Dead letters and quarantined events belong to no known account.
        if !matches!(*v, "v_dead_letters_daily" | "v_quarantine_daily") {
            assert!(
                def.contains("transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand")
                    && def.contains("FROM account_brand) AS brand_of"),
                "{v}: brand is not its account's (account_brand)\n{def}"
            );
        }
    }
}

#[test]
fn brands_parse_with_an_id_and_refuse_what_cannot_name_a_role() {
    let b = Brand::parse("aur=Maison Aurel").expect("id=name");
    assert_eq!((b.id.as_str(), b.name.as_str()), ("aur", "Maison Aurel"));
    assert_eq!(
        (b.role(), b.user(), b.password_env()),
        (
            "wxpulse_brand_aur".to_string(),
            "wxpulse_bi_aur".to_string(),
            "WXPULSE_BI_PASSWORD_AUR".to_string()
        )
    );
    let plain = Brand::parse("velmont").expect("a name that is an id");
    assert_eq!(
        (plain.id.as_str(), plain.name.as_str()),
        ("velmont", "velmont")
    );
    assert_eq!(
        Brand::parse("lnd=Lune Dorée").expect("any text").name,
        "Lune Dorée"
    );
    for bad in [
        "Maison Aurel",
        "Velmont",
        "1x=X",
        "a-b=X",
        "a b=X",
        "=X",
        "x=",
        "x=unknown",
        "unknown",
        "x=a\nb",
    ] {
        assert!(Brand::parse(bad).is_err(), "{bad:?} accepted");
    }
    let e = Brand::parse("Maison Aurel").expect_err("not an id");
    assert!(e.to_string().contains("--brand <id>=<brand"), "{e}");
}

#[test]
fn a_brand_role_reads_every_bi_view_through_its_row_policy_and_nothing_else() {
    let brand = Brand::parse("aur=Maison Aurel").expect("brand");
    let hash = password_sha256("s3cret");
    let views = bi_views();
    for cluster in [None, Some("wx")] {
        let sql = brand_grants("wxpulse", cluster, &brand, &hash);
        let on = if cluster.is_some() {
            " ON CLUSTER 'wx'"
        } else {
            ""
        };
        for s in &sql {
            assert!(!s.contains('{') || s.contains("{shard}"), "token left: {s}");
            assert!(!s.contains("s3cret"), "{s}");
            assert_eq!(s.contains("ON CLUSTER 'wx'"), cluster.is_some(), "{s}");
        }
        let index = |want: &str| {
            let found: Vec<usize> = (0..sql.len()).filter(|i| sql[*i] == want).collect();
            assert_eq!(found.len(), 1, "{want:?} is there once: {found:?}");
            found[0]
        };
        for v in &views {
            let open = index(&format!(
                "CREATE ROW POLICY OR REPLACE wxpulse_all_rows{on} ON `wxpulse`.{v} \
                     FOR SELECT USING 1 AS PERMISSIVE TO ALL"
            ));
            let policy = index(&format!(
                "CREATE ROW POLICY OR REPLACE wxpulse_brand_aur{on} ON `wxpulse`.{v} \
                     FOR SELECT USING brand = 'Maison Aurel' AS RESTRICTIVE TO wxpulse_brand_aur"
            ));
            let grant = index(&format!(
                "GRANT{on} SELECT ON `wxpulse`.{v} TO wxpulse_brand_aur"
            ));
            assert!(
                open < grant && policy < grant,
                "{v}: readable before its policy"
            );
        }
        // The role gets the views and nothing else; the login gets the role.
        let granted: Vec<&String> = sql.iter().filter(|s| s.starts_with("GRANT")).collect();
        assert_eq!(granted.len(), views.len() + 1, "{granted:#?}");
        for g in granted {
            assert!(
                g.ends_with(" TO wxpulse_brand_aur") && g.contains(" SELECT ON `wxpulse`.v_")
                    || g == &format!("GRANT{on} wxpulse_brand_aur TO wxpulse_bi_aur"),
                "{g}"
            );
        }
        let has = |prefix: &str, parts: &[&str]| {
            sql.iter()
                .any(|s| s.starts_with(prefix) && parts.iter().all(|p| s.contains(p)))
        };
        assert!(has("CREATE ROLE IF NOT EXISTS wxpulse_brand_aur", &[]));
        assert!(has(
            "CREATE SETTINGS PROFILE OR REPLACE wxpulse_brand_aur",
            &["readonly = 2", "max_execution_time", "TO wxpulse_brand_aur"]
        ));
        assert!(has(
            "CREATE QUOTA OR REPLACE wxpulse_brand_aur",
            &["FOR INTERVAL 1 hour MAX queries", "TO wxpulse_brand_aur"]
        ));
        assert!(has(
            "CREATE USER IF NOT EXISTS wxpulse_bi_aur",
            &["IDENTIFIED WITH sha256_hash BY", &hash]
        ));
        assert!(has(
            "ALTER USER wxpulse_bi_aur",
            &[
                "DEFAULT ROLE wxpulse_brand_aur",
                "DEFAULT DATABASE `wxpulse`",
                "readonly = 2"
            ]
        ));
    }
}

#[test]
fn a_brand_name_cannot_escape_its_string_literal() {
    let brand = Brand::parse(r"evil=x' OR 1 = 1 OR brand = '\").expect("any text");
    let sql = brand_grants("wxpulse", None, &brand, "h");
    let policies: Vec<&String> = sql
        .iter()
        .filter(|s| s.starts_with("CREATE ROW POLICY OR REPLACE wxpulse_brand_evil"))
        .collect();
    assert_eq!(policies.len(), bi_views().len());
    for p in policies {
        assert!(
            p.ends_with(
                r"USING brand = 'x\' OR 1 = 1 OR brand = \'\\' AS RESTRICTIVE TO wxpulse_brand_evil"
            ),
            "{p}"
        );
    }
}

#[test]
fn database_and_cluster_names_must_be_identifiers() {
    for good in ["wxpulse", "wx_2", "_x", "A1"] {
        assert!(identifier("database", good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "1db",
        "wx-pulse",
        "wx.pulse",
        "db`; DROP TABLE x",
        "a'b",
        "wx pulse",
        "ü",
    ] {
        let e = identifier("database", bad).expect_err(bad).to_string();
        assert!(
            e.contains("not a valid identifier") && e.contains("database"),
            "{e}"
        );
    }
    let e = check_names("wxpulse", Some("c'; DROP")).expect_err("cluster");
    assert!(e.to_string().starts_with("cluster \"c'; DROP\""), "{e}");
}

#[test]
fn statements_split_and_drop_comments() {
    let s = statements("-- c\nCREATE TABLE a (x UInt8) ENGINE = Memory;\n\n-- d\nSELECT 1;\n");
    assert_eq!(
        s,
        vec!["CREATE TABLE a (x UInt8) ENGINE = Memory", "SELECT 1"]
    );
}

#[test]
fn the_birthday_column_reaches_the_distributed_fan_profiles_on_a_cluster() {
    let m19 = MIGRATIONS.iter().find(|m| m.version == 19).expect("0019");
    let sql = rendered(m19, "wxpulse", Some("wx"));
    let alters: Vec<&String> = sql
        .iter()
        .filter(|s| s.contains("ADD COLUMN IF NOT EXISTS birthday String DEFAULT ''"))
        .collect();
    assert_eq!(alters.len(), 2, "{sql:#?}");
    assert!(alters[0].starts_with("ALTER TABLE fan_profiles ON CLUSTER 'wx'"));
    assert!(alters[1].starts_with("ALTER TABLE fan_profiles_all ON CLUSTER 'wx'"));
    for view in ["v_birthdays_upcoming", "v_replenishment_due"] {
        let def = latest_definition(view);
        assert!(
            def.contains("toDate(now(), 'Asia/Shanghai') AS today"),
            "{view}"
        );
        assert!(!def.contains("today()"), "{view}: the server's day");
    }
    let single = rendered(m19, "wxpulse", None);
    assert!(single.iter().all(|s| !s.contains("_all")), "{single:#?}");
}

#[test]
fn projections_and_indexes_stay_off_the_distributed_tables() {
    // A Distributed table has no parts: only column ALTERs are repeated on `<name>_all`.
    for version in [12, 20] {
        let m = MIGRATIONS
            .iter()
            .find(|m| m.version == version)
            .expect("migration");
        let sql = rendered(m, "wxpulse", Some("wx"));
        assert!(
            sql.iter()
                .all(|s| !(s.starts_with("ALTER TABLE") && s.contains("_all ON CLUSTER"))),
            "{sql:#?}"
        );
    }
    let m20 = MIGRATIONS.iter().find(|m| m.version == 20).expect("0020");
    let sql = rendered(m20, "wxpulse", Some("wx"));
    assert!(sql[0].starts_with(
        "ALTER TABLE fan_touches ON CLUSTER 'wx'\n    ADD PROJECTION IF NOT EXISTS fan_touches_by_time"
    ));
    assert!(sql[1].starts_with("ALTER TABLE fan_touches ON CLUSTER 'wx' MATERIALIZE PROJECTION"));
    // The open touch join reads every shard's touches and orders.
    let credited = latest_definition("order_purchases_open_credited");
    assert!(credited.contains("FROM fan_touches{ALL}"), "{credited}");
}

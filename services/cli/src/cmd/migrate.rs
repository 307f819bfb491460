//! `wxpulse migrate`: apply pending ClickHouse migrations, and the BI grants.

use super::prelude::*;

/// Apply pending ClickHouse migrations (idempotent).
#[derive(Args)]
pub struct Migrate {
    /// Render for a cluster: ON CLUSTER, Replicated engines, Distributed tables.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Print the rendered SQL instead of applying it.
    #[arg(long)]
    pub print: bool,
    /// Then apply schemas/clickhouse/grants/bi_readonly.sql: the read-only BI role and
    /// user `wxpulse_bi` (password from WXPULSE_BI_PASSWORD). Needs users and grants: a
    /// real ClickHouse, not the local chdb adapter.
    #[arg(long)]
    pub grants: bool,
    /// With --grants, per brand: a role, a login `wxpulse_bi_<id>` (password from
    /// WXPULSE_BI_PASSWORD_<ID>), a settings profile, a quota and row policies, so that
    /// its users see only the brand's rows in every v_* view (grants/bi_brand.sql).
    /// `<id>=<brand as on the rows>`, e.g. `aur=Maison Aurel`; repeat it, or give a
    /// comma-separated list.
    #[arg(
        long = "brand",
        env = "WXPULSE_BI_BRANDS",
        value_delimiter = ',',
        value_parser = brand
    )]
    pub brands: Vec<migrate::Brand>,
}

impl Migrate {
    /// Applies (or prints) the migrations, then the grants if asked.
    pub async fn run(self, cx: &Ctx) -> anyhow::Result<()> {
        let clickhouse = &cx.clickhouse;
        let Migrate {
            cluster,
            print,
            grants,
            brands,
        } = self;

        let cluster = cluster.as_deref();
        migrate::check_names(&clickhouse.database, cluster)?;
        // Not a clap `requires`: WXPULSE_BI_BRANDS set where plain migrations run (the
        // Kubernetes Job) must not fail them.
        let brands = if grants {
            brands
        } else {
            if !brands.is_empty() {
                eprintln!("wxpulse: --brand / WXPULSE_BI_BRANDS ignored: brands are created with --grants");
            }
            Vec::new()
        };
        let bi_password = std::env::var("WXPULSE_BI_PASSWORD").unwrap_or_default();
        if print {
            for m in migrate::MIGRATIONS {
                println!("-- {}", m.name);
                for s in migrate::rendered(m, &clickhouse.database, cluster) {
                    println!("{s};\n");
                }
            }
            if grants {
                println!("-- grants/bi_readonly.sql");
                let hash = match bi_password.as_str() {
                    "" => "<sha256 of WXPULSE_BI_PASSWORD>".to_string(),
                    password => migrate::password_sha256(password),
                };
                for s in migrate::grants(&clickhouse.database, cluster, &hash) {
                    println!("{s};\n");
                }
            }
            for b in &brands {
                println!("-- grants/bi_brand.sql: {} ({})", b.id, b.name);
                let hash = match std::env::var(b.password_env()) {
                    Ok(password) if !password.is_empty() => migrate::password_sha256(&password),
                    _ => format!("<sha256 of {}>", b.password_env()),
                };
                for s in migrate::brand_grants(&clickhouse.database, cluster, b, &hash) {
                    println!("{s};\n");
                }
            }
            return Ok(());
        }
        let applied = migrate::migrate(clickhouse, cluster).await?;
        println!(
            "migrations applied: {applied:?} (database {})",
            clickhouse.database
        );
        if grants {
            let n = migrate::apply_grants(clickhouse, cluster, &bi_password).await?;
            println!("grants applied: {n} statements (role wxpulse_bi_readonly, user wxpulse_bi)");
            let n = migrate::apply_brand_grants(clickhouse, cluster, &brands, |var| {
                std::env::var(var).ok()
            })
            .await?;
            if !brands.is_empty() {
                println!("brand grants applied: {n} statements");
            }
            for b in &brands {
                println!("brand {:?}: role {}, user {}", b.name, b.role(), b.user());
            }
        }
        Ok(())
    }
}

-- Per-brand BI access (issue 13, item 6): a role, a login, a settings profile and a quota
-- for one brand, whose users read the v_* views but see only the rows of their brand's
-- accounts. Rendered once per brand by
--     WXPULSE_BI_PASSWORD=... WXPULSE_BI_PASSWORD_<ID>=... \
--         wxpulse migrate --grants --brand <id>=<brand> [--cluster NAME]
-- after grants/bi_readonly.sql (which makes the views run as their owner, so no BI user
-- needs rights on the rollups). Real ClickHouse only, like that file. Idempotent; rerun it
-- after a migration that adds a view, to rotate the password or to change the limits.
--
-- Tokens: {ON_CLUSTER}, {DATABASE}, {BRAND_ID} (a plain identifier: the names below),
-- {BRAND} (the brand as the rows carry it, escaped for a string literal),
-- {BI_PASSWORD_SHA256}; a statement with {VIEW} is repeated for every BI view (every view
-- granted to wxpulse_bi_readonly), so a new view is covered as soon as it is granted there.
--
-- Why row policies on the views (VIEWS.md, "Access control"): a row policy filters the
-- rows of the table it is defined on, for the users it names. The views run as
-- wxpulse_views_owner (SQL SECURITY DEFINER), so a policy on a rollup would filter the
-- owner, not the brand's user, and one owner serves every brand. A policy on the view
-- itself is evaluated for the user who reads the view: that user sees the view's rows whose
-- `brand` is theirs, whatever the view reads inside. Every view has `brand` (0011).

CREATE ROLE IF NOT EXISTS wxpulse_brand_{BRAND_ID} {ON_CLUSTER};

-- readonly = 2: no writes or DDL, but the session settings BI drivers send are allowed,
-- within these bounds (a user may lower a limit, not raise it past MAX).
CREATE SETTINGS PROFILE OR REPLACE wxpulse_brand_{BRAND_ID} {ON_CLUSTER}
    SETTINGS readonly = 2,
        max_execution_time = 120 MAX 600,
        max_memory_usage = 4000000000 MAX 16000000000,
        max_result_rows = 1000000 MAX 10000000,
        max_concurrent_queries_for_user = 8 CONST
    TO wxpulse_brand_{BRAND_ID};

-- Shared by every user of the brand (not keyed): one brand cannot starve the others.
CREATE QUOTA OR REPLACE wxpulse_brand_{BRAND_ID} {ON_CLUSTER}
    FOR INTERVAL 1 hour MAX queries = 3600, errors = 600, execution_time = 7200, read_rows = 100000000000
    TO wxpulse_brand_{BRAND_ID};

-- The brand's login. Running the file again sets the password again (rotation).
CREATE USER IF NOT EXISTS wxpulse_bi_{BRAND_ID} {ON_CLUSTER} IDENTIFIED WITH sha256_hash BY '{BI_PASSWORD_SHA256}';

GRANT {ON_CLUSTER} wxpulse_brand_{BRAND_ID} TO wxpulse_bi_{BRAND_ID};

ALTER USER wxpulse_bi_{BRAND_ID} {ON_CLUSTER} IDENTIFIED WITH sha256_hash BY '{BI_PASSWORD_SHA256}'
    DEFAULT ROLE wxpulse_brand_{BRAND_ID} DEFAULT DATABASE {DATABASE} SETTINGS readonly = 2;

-- Once a table has a row policy, a user none of its permissive policies names sees no row
-- of it (unless the server's users_without_row_policies_can_read_rows says otherwise). This
-- one keeps every other reader (wxpulse_bi, the views' owner reading a view inside another,
-- Grafana, operators) seeing every row, whatever that server setting.
CREATE ROW POLICY OR REPLACE wxpulse_all_rows {ON_CLUSTER} ON {DATABASE}.{VIEW} FOR SELECT USING 1 AS PERMISSIVE TO ALL;

-- RESTRICTIVE: ANDed with the permissive policy above, so the brand's users see exactly
-- their brand's rows. A user holding two brand roles sees neither (the conditions AND):
-- give each user one brand.
CREATE ROW POLICY OR REPLACE wxpulse_brand_{BRAND_ID} {ON_CLUSTER} ON {DATABASE}.{VIEW} FOR SELECT USING brand = '{BRAND}' AS RESTRICTIVE TO wxpulse_brand_{BRAND_ID};

-- Last, so that no view is readable before its policy exists (a run that fails part-way
-- grants nothing unfiltered). Nothing else is granted to the role: not the rollups, not
-- the raw tables, not the internal views with fan ids.
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.{VIEW} TO wxpulse_brand_{BRAND_ID}

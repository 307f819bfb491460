-- Read-only BI access (issue 5): a role that may SELECT the v_* views of
-- migrations/0006_views.sql and nothing else, and a login user holding it.
--
-- Not a migration: it needs users and grants (RBAC), which the local ClickHouse (chdb behind
-- deploy/local/chdb_http.py) does not have: there CREATE USER fails with ACCESS_DENIED and
-- GRANT with UNKNOWN_ROLE. On a real ClickHouse (24.2 or newer, for SQL SECURITY) run
--     WXPULSE_BI_PASSWORD=... wxpulse migrate --grants [--cluster NAME]
-- which applies the migrations, then this file. It is idempotent; run it again after any
-- migration that replaces a view, because CREATE OR REPLACE VIEW resets the view's SQL
-- SECURITY to the server default (INVOKER). Tokens: {ON_CLUSTER}, {DATABASE} and
-- {BI_PASSWORD_SHA256} (hex SHA-256 of WXPULSE_BI_PASSWORD: the password itself is never
-- sent to the server).
--
-- Views run as their owner (SQL SECURITY DEFINER), so a BI user needs SELECT on the views
-- only, never on the rollups or raw tables behind them. The owner may read the database but
-- cannot log in (HOST NONE). No v_* view has a fan id column but the two lists of fans to
-- act on (v_birthdays_upcoming, v_replenishment_due, migration 0019): their fan_id is the
-- pseudonym, never the openid, and the first also shows the fan's birthday (VIEWS.md).

CREATE USER IF NOT EXISTS wxpulse_views_owner {ON_CLUSTER} HOST NONE;

GRANT {ON_CLUSTER} SELECT ON {DATABASE}.* TO wxpulse_views_owner;

CREATE ROLE IF NOT EXISTS wxpulse_bi_readonly {ON_CLUSTER};

-- The login for BI tools. readonly = 2: no writes or DDL whatever its grants, but the
-- session settings BI drivers send are allowed. Running the file again sets the password
-- again (rotation).
CREATE USER IF NOT EXISTS wxpulse_bi {ON_CLUSTER} IDENTIFIED WITH sha256_hash BY '{BI_PASSWORD_SHA256}';

GRANT {ON_CLUSTER} wxpulse_bi_readonly TO wxpulse_bi;

ALTER USER wxpulse_bi {ON_CLUSTER} IDENTIFIED WITH sha256_hash BY '{BI_PASSWORD_SHA256}'
    DEFAULT ROLE wxpulse_bi_readonly DEFAULT DATABASE {DATABASE} SETTINGS readonly = 2;

-- One grant and one owner per BI view (a unit test in services/cli/src/migrate.rs checks
-- that every v_* view of the migrations is here, and nothing else is granted to the role).
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_engagement_daily TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_interaction_mix TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_menu_categories TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_monthly_active TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_follower_sources TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_follower_growth TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_article_performance TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_push_performance TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_open_rate_by_position TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_read_depth_curve TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_push_heatmap TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_unfollow_after_push TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_segmented_engagement TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_associate_daily TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_associate_kpis TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_attribution_daily TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_attribution_by_associate TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_attribution_by_push TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_attribution_by_scene TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_orders_daily TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_social_funnel_monthly TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_social_funnel TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_dead_letters_daily TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_quarantine_daily TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_associate_contacts TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_notifications TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_notifications_daily TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_birthdays_upcoming TO wxpulse_bi_readonly;
GRANT {ON_CLUSTER} SELECT ON {DATABASE}.v_replenishment_due TO wxpulse_bi_readonly;

ALTER TABLE {DATABASE}.v_engagement_daily {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_interaction_mix {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_menu_categories {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_monthly_active {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_follower_sources {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_follower_growth {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_article_performance {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_push_performance {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_open_rate_by_position {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_read_depth_curve {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_push_heatmap {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_unfollow_after_push {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_segmented_engagement {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_associate_daily {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_associate_kpis {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_attribution_daily {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_attribution_by_associate {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_attribution_by_push {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_attribution_by_scene {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_orders_daily {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_social_funnel_monthly {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_social_funnel {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_dead_letters_daily {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_quarantine_daily {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_associate_contacts {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_notifications {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_notifications_daily {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_birthdays_upcoming {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner;
ALTER TABLE {DATABASE}.v_replenishment_due {ON_CLUSTER} MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner

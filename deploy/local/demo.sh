#!/usr/bin/env bash
# `make demo`: the whole pipeline on the local stack with demo data, then the results.
#
#   deploy/local/demo.sh          install what is missing, start Tansu + chdb-http, migrate,
#                                 create topics, start the five services, generate a month of
#                                 telemetry and orders, wait until it is in ClickHouse, print reports
#   deploy/local/demo.sh stop     stop the services and the stack
#
# Settings: WXPULSE_DEMO_EVENTS (default 200000), and stack.sh's WXPULSE_KAFKA_PORT,
# WXPULSE_CH_PORT, WXPULSE_STACK_DIR.
set -euo pipefail
LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$LOCAL_DIR/../.." && pwd)"
STACK="$LOCAL_DIR/stack.sh"
STACK_DIR="${WXPULSE_STACK_DIR:-$LOCAL_DIR/.data}"
EVENTS="${WXPULSE_DEMO_EVENTS:-200000}"
BIN="$REPO_ROOT/target/release"
SERVICES=(menu-clicks qr-scans chat-messages article-reads orders)

log() { echo "[demo] $*"; }

stop_services() {
  for s in "${SERVICES[@]}" gateway notifier; do
    local pidfile="$STACK_DIR/pids/service-$s.pid"
    [ -f "$pidfile" ] || continue
    local pid
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
}

if [ "${1:-}" = "stop" ]; then
  stop_services
  "$STACK" down
  exit 0
fi

# Each run starts from empty topics and tables, so the reports below compare this run's
# ground truth with this run's pipeline output only.
log "starting from an empty stack (a demo run replaces the previous one's data)"
stop_services
"$STACK" down --purge >/dev/null 2>&1 || true
"$STACK" up
eval "$("$STACK" env)"
CH="$WXPULSE__CLICKHOUSE__URL"
sql() { curl -sS --fail-with-body "$CH/?database=wxpulse&default_format=PrettyCompactMonoBlock" --data-binary "$1"; }

log "building release binaries (first time: a few minutes)"
(cd "$REPO_ROOT" && cargo build --release --workspace --bins --quiet)

log "migrating ClickHouse and creating topics"
"$BIN/wxpulse" migrate
"$BIN/wxpulse" topics create --partitions 4

log "publishing a world (accounts, stores, associates, QR scenes, pushes, menus, fan profiles) to the dimension topics,"
log "then $EVENTS interactions over the last month (2 brands, 4 accounts)"
seed=$(date +%s)
"$BIN/wxpulse-generate" --seed "$seed" --events "$EVENTS" --truth "$STACK_DIR/truth.json"


log "mirroring the fan profiles into ClickHouse (fan_profiles: follows, unfollows, follower base)"
"$BIN/wxpulse" dims mirror --once

log "starting the five services (each loads the dimension topics, then consumes)"
stop_services
mkdir -p "$STACK_DIR/pids" "$STACK_DIR/logs"
port=9464
for s in "${SERVICES[@]}"; do
  WXPULSE__METRICS__LISTEN="127.0.0.1:$port" WXPULSE__LOG__FORMAT=json \
    nohup "$BIN/wxpulse-$s" >"$STACK_DIR/logs/service-$s.log" 2>&1 &
  echo $! >"$STACK_DIR/pids/service-$s.pid"
  log "  wxpulse-$s: pid $!, metrics http://127.0.0.1:$port/metrics"
  port=$((port + 1))
done

# The notifier tells associates of their fans' behaviour. The demo's month of history is
# older than the 2 h a live deployment notifies of (notifier.max_age), so the demo lets it
# notify of the whole month; the per-fan and per-associate limits still apply.
WXPULSE__METRICS__LISTEN="127.0.0.1:9470" WXPULSE__LOG__FORMAT=json \
  WXPULSE__NOTIFIER__MAX_AGE=40days WXPULSE__NOTIFIER__LOOKBACK=40days \
  nohup "$BIN/wxpulse-notifier" >"$STACK_DIR/logs/service-notifier.log" 2>&1 &
echo $! >"$STACK_DIR/pids/service-notifier.pid"
log "  wxpulse-notifier: pid $!, writes wxpulse.notifications, metrics http://127.0.0.1:9470/metrics"

# WeChat's side, as an Official Account's server configuration sends it: a few menu clicks
# of fans of account wxb00a00 through wxpulse-gateway (plaintext mode, SHA-1 signature).
GATEWAY=127.0.0.1:8088
CALLBACKS=20
# A WeCom corp too: its callbacks are always encrypted (AES-256-CBC with the app's
# EncodingAESKey, the CorpID inside), which wecom_post below does with openssl.
WECOM_CORP=wwdemo0001
WECOM_KEY=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG
cat >"$STACK_DIR/gateway-accounts.toml" <<TOML
[[account]]
app_id = "wxb00a00"
token = "demo-token"

[[account]]
app_id = "$WECOM_CORP"
token = "demo-token"
encoding_aes_key = "$WECOM_KEY"
TOML
WXPULSE__GATEWAY__LISTEN="$GATEWAY" WXPULSE__GATEWAY__ACCOUNTS_FILE="$STACK_DIR/gateway-accounts.toml" \
  WXPULSE__METRICS__LISTEN="127.0.0.1:$port" WXPULSE__LOG__FORMAT=json \
  nohup "$BIN/wxpulse-gateway" >"$STACK_DIR/logs/service-gateway.log" 2>&1 &
echo $! >"$STACK_DIR/pids/service-gateway.pid"
log "  wxpulse-gateway: pid $!, callbacks http://$GATEWAY/wechat/<app_id>, metrics http://127.0.0.1:$port/metrics"
for _ in $(seq 50); do curl -s "http://$GATEWAY/" >/dev/null && break; sleep 0.2; done
sent=0
for i in $(seq "$CALLBACKS"); do
  ts=$(date +%s); nonce="demo$i"
  sig=$(printf '%s\n' demo-token "$ts" "$nonce" | LC_ALL=C sort | tr -d '\n' | sha1sum | cut -d' ' -f1)
  body="<xml><ToUserName><![CDATA[gh_demo]]></ToUserName><FromUserName><![CDATA[owxb00a00_$(printf '%06d' "$i")]]></FromUserName><CreateTime>$ts</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[GATEWAY_DEMO]]></EventKey></xml>"
  answer=$(curl -sS -X POST "http://$GATEWAY/wechat/wxb00a00?timestamp=$ts&nonce=$nonce&signature=$sig" --data-binary "$body" || true)
  [ "$answer" = "success" ] && sent=$((sent + 1))
done
log "  $sent of $CALLBACKS WeChat callbacks answered 'success' by the gateway"
# Two fans follow without a QR code and one of them unfollows: WeChat tells only the
# gateway, which writes wxpulse.dim.fan_follow; the mirror copies it into fan_follow_events.
follows_since=$(date +%s)
follows=0
for step in "subscribe 1" "subscribe 2" "unsubscribe 2"; do
  read -r event fan <<<"$step"
  ts=$(date +%s); nonce="follow$event$fan"
  sig=$(printf '%s\n' demo-token "$ts" "$nonce" | LC_ALL=C sort | tr -d '\n' | sha1sum | cut -d' ' -f1)
  body="<xml><ToUserName><![CDATA[gh_demo]]></ToUserName><FromUserName><![CDATA[owxb00a00_gw$fan]]></FromUserName><CreateTime>$ts</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[$event]]></Event><EventKey><![CDATA[]]></EventKey></xml>"
  answer=$(curl -sS -X POST "http://$GATEWAY/wechat/wxb00a00?timestamp=$ts&nonce=$nonce&signature=$sig" --data-binary "$body" || true)
  [ "$answer" = "success" ] && follows=$((follows + 1))
done
log "  $follows of 3 follow/unfollow callbacks answered 'success'; mirroring them into fan_follow_events"
# WeCom's side: customers add or delete associate zhang (change_external_contact), encrypted
# as WeCom's callback documentation says: random(16) | len(4, big-endian) | xml | CorpID,
# AES-256-CBC, key = base64(EncodingAESKey + "="), IV = its first 16 bytes.
wecom_post() { # $1 ChangeType, $2 ExternalUserID
  local ts nonce xml key iv encrypt sig
  ts=$(date +%s); nonce="wecom$1$2"
  xml="<xml><ToUserName><![CDATA[$WECOM_CORP]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>$ts</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[$1]]></ChangeType><UserID><![CDATA[zhang]]></UserID><ExternalUserID><![CDATA[$2]]></ExternalUserID></xml>"
  key=$(printf '%s=' "$WECOM_KEY" | base64 -d | od -An -tx1 | tr -d ' \n')
  iv=${key:0:32}
  encrypt=$({ head -c 16 /dev/urandom; python3 -c "import sys; sys.stdout.buffer.write((${#xml}).to_bytes(4, 'big'))"; printf '%s%s' "$xml" "$WECOM_CORP"; } |
    openssl enc -aes-256-cbc -K "$key" -iv "$iv" | base64 -w0)
  sig=$(printf '%s\n' demo-token "$ts" "$nonce" "$encrypt" | LC_ALL=C sort | tr -d '\n' | sha1sum | cut -d' ' -f1)
  curl -sS -X POST "http://$GATEWAY/wecom/$WECOM_CORP?timestamp=$ts&nonce=$nonce&msg_signature=$sig" \
    --data-binary "<xml><ToUserName><![CDATA[$WECOM_CORP]]></ToUserName><Encrypt><![CDATA[$encrypt]]></Encrypt></xml>" || true
}
contacts=0
for step in "add_external_contact wmDEMO1" "add_external_contact wmDEMO2" "add_external_contact wmDEMO3" "del_follow_user wmDEMO3"; do
  read -r change customer <<<"$step"
  [ "$(wecom_post "$change" "$customer")" = "success" ] && contacts=$((contacts + 1))
done
log "  $contacts of 4 WeCom contact callbacks answered 'success'; mirroring them into associate_contact_events"
"$BIN/wxpulse" dims mirror --once >/dev/null

expected=$(python3 -c "import json;print(sum(json.load(open('$STACK_DIR/truth.json'))['events'].values()) + $sent)")
log "waiting until ClickHouse holds the $expected distinct valid events"
for _ in $(seq 300); do
  got=$(curl -sS "$CH/?database=wxpulse" --data-binary \
    "SELECT (SELECT count() FROM menu_clicks)+(SELECT count() FROM qr_scans)+(SELECT count() FROM chat_messages)+(SELECT count() FROM article_reads)+(SELECT count() FROM orders)" || echo 0)
  [ "$got" -ge "$expected" ] 2>/dev/null && break
  sleep 1
done
log "ClickHouse holds $got"
if ! [ "$got" -ge "$expected" ] 2>/dev/null; then
  log "WARNING: $got of $expected events after 300 s; the reports below are incomplete."
  log "  Service logs: $STACK_DIR/logs/service-*.log. A log with SESSTMOUT and no"
  log "  'partitions assigned' after it means the broker stalled past the group session and"
  log "  Tansu 0.6 left the group without an owner (README, local stack): restart the broker"
  log "  with '$LOCAL_DIR/stack.sh stop kafka && $LOCAL_DIR/stack.sh start kafka'; nothing is lost."
  for f in "$STACK_DIR"/logs/service-*.log; do
    grep -q SESSTMOUT "$f" 2>/dev/null && log "  SESSTMOUT in $f"
  done
fi

echo
echo "== Events per account and stream"
sql "SELECT app_id, stream, sum(events) AS events FROM interactions_hourly GROUP BY app_id, stream ORDER BY app_id, events DESC"
echo
echo "== Ingest watermarks (resume point of each partition)"
sql "SELECT table_name, kafka_partition, max(max_offset) AS max_offset, max(max_server_time) AS newest
     FROM ingest_watermarks GROUP BY table_name, kafka_partition ORDER BY table_name, kafka_partition"
echo
echo "== Through the gateway (WeChat callbacks -> wxpulse-gateway -> Kafka -> wxpulse-menu-clicks)"
sql "SELECT app_id, event_key, count() AS clicks, groupUniqArray(relationship) AS relationships
     FROM menu_clicks WHERE event_key = 'GATEWAY_DEMO' GROUP BY app_id, event_key"
echo
echo "== Follows and unfollows WeChat reported to the gateway (no CRM sync needed)"
sql "SELECT kind, count() AS fans FROM fan_follow_events FINAL
     WHERE source_known = 0 AND follow_source = '' AND at >= toDateTime($follows_since) GROUP BY kind ORDER BY kind"
echo
echo "== WeCom: associate zhang's contacts, from WeCom's own callbacks (v_associate_contacts)"
sql "SELECT userid, contacts_now, contacts_ever_added, removed_by_customer, removed_by_associate
     FROM v_associate_contacts WHERE app_id = '$WECOM_CORP'"
echo
echo "== Dead letters (malformed records the generator injected)"
"$BIN/wxpulse" dlq list
M=$(curl -sS "$CH/?database=wxpulse" --data-binary "SELECT month FROM v_interaction_mix GROUP BY month ORDER BY sum(events) DESC LIMIT 1")
echo
echo "=============================================================================================="
echo " The benchmark report (seed 000), computed from this run's telemetry by the BI views"
echo " month $M, all accounts pooled; the seed's figures alongside (schemas/clickhouse/VIEWS.md)"
echo "=============================================================================================="
echo
echo "== Interaction mix (v_interaction_mix) — seed: menu 70 / article 13 / chat 11 / QR 6 %"
sql "SELECT stream, sum(events) AS events, round(100 * events / sum(events) OVER (), 2) AS pct,
            multiIf(stream='menu_click', 70, stream='article_read', 13, stream='chat_message', 11, 6) AS seed_pct
     FROM v_interaction_mix WHERE month = '$M' GROUP BY stream ORDER BY events DESC"
echo
echo "== Menu categories (v_menu_categories) — seed: e-commerce 45 / brand info 33 / CRM 22 %"
sql "SELECT category, sum(clicks) AS clicks, round(100 * clicks / sum(clicks) OVER (), 2) AS pct,
            multiIf(category='ecommerce', '45', category='brand_info', '33', category='crm', '22', '-') AS seed_pct
     FROM v_menu_categories WHERE month = '$M' GROUP BY category ORDER BY clicks DESC"
echo
echo "== Monthly active (v_monthly_active) — seed: 9.33 % monthly active, 35 % lifetime active, 65 % inactive"
sql "SELECT any(population) AS population, sum(fans) AS fans, sum(monthly_active_fans) AS monthly_active,
            round(100 * monthly_active / fans, 2) AS monthly_active_pct, round(100 * sum(lifetime_active_fans) / fans, 2) AS lifetime_active_pct,
            round(100 * sum(inactive_fans) / fans, 2) AS inactive_pct
     FROM v_monthly_active WHERE month = '$M'"
echo
echo "== New followers by source (v_follower_sources) — seed: search 41.4 / QR 27.7 / paid media 1.15 %"
sql "SELECT source_group, sum(new_follows) AS new_follows, round(100 * new_follows / sum(new_follows) OVER (), 2) AS pct,
            multiIf(source_group='search', '41.4', source_group='qr', '27.7', source_group='paid_media', '1.15', '-') AS seed_pct
     FROM v_follower_sources WHERE month = '$M' GROUP BY source_group ORDER BY new_follows DESC"
echo
echo "== Open rate by position (v_open_rate_by_position) — seed: all 7.68 / single 10.26 / first 10.54 / cumulative multi 15.18 %"
sql "SELECT slot, sum(units) AS units, sum(readers) AS readers, sum(fans_reached) AS fans_reached,
            round(100 * readers / fans_reached, 2) AS open_rate_pct,
            multiIf(slot='all_articles', '7.68', slot='single', '10.26', slot='first', '10.54', slot='multi_cumulative', '15.18', '-') AS seed_pct
     FROM v_open_rate_by_position WHERE month = '$M' GROUP BY slot ORDER BY slot"
echo
echo "== Read-depth survival (v_read_depth_curve) — seed: ~80 % still reading at 3.27 screens, 50 % at 8.87"
sql "SELECT screen, sum(still_reading) AS still_reading, round(100 * still_reading / sum(readers), 1) AS survival_pct
     FROM v_read_depth_curve WHERE month = '$M' AND screen IN (1, 2, 3, 4, 6, 8, 9, 12, 16, 20) GROUP BY screen ORDER BY screen"
echo
echo "== Unfollows within 24 h of a push (v_unfollow_after_push) — seed: 0.4 %"
sql "SELECT count() AS pushes, sum(unfollows_24h) AS unfollows, sum(fans_reached) AS fans_reached,
            round(100 * unfollows / fans_reached, 3) AS unfollow_rate_pct
     FROM v_unfollow_after_push WHERE month = '$M'"
echo
echo "== Engagement per push (v_segmented_engagement) — seed: segmented 7.86 %, unsegmented 6.33 %"
sql "SELECT segmentation, sum(pushes) AS pushes, sum(engaged_fans) AS engaged, sum(fans_reached) AS reached,
            round(100 * engaged / reached, 2) AS engagement_pct
     FROM v_segmented_engagement WHERE month = '$M' GROUP BY segmentation"
echo
echo "== Push-time heatmap, busiest slots (v_push_heatmap; weekday 1 = Monday, Asia/Shanghai)"
sql "SELECT weekday, hour, sum(pushes) AS pushes, round(100 * sum(readers) / sum(fans_reached), 2) AS open_rate_pct
     FROM v_push_heatmap WHERE month = '$M' GROUP BY weekday, hour ORDER BY pushes DESC, weekday, hour LIMIT 8"
echo
echo "== Associates by region (v_associate_kpis) — seed KPI: >= 10 new contacts per associate per week"
sql "SELECT region, sum(associates) AS associates, sum(new_contacts) AS new_contacts, sum(conversations) AS conversations,
            round(100 * sum(answered_conversations) / sum(conversations_with_fan_message), 1) AS reply_rate_pct,
            round(avg(avg_first_reply_ms) / 60000, 1) AS avg_first_reply_min
     FROM v_associate_kpis WHERE month = '$M' AND level = 'region' GROUP BY region ORDER BY new_contacts DESC"
echo
echo "=============================================================================================="
echo " Conversions (seeds 003, 004): orders attributed to the touches before them, and the funnel"
echo "=============================================================================================="
echo
echo "== Social-selling funnel per store (v_social_funnel_monthly), the 4 busiest stores of each account — seed 003:"
echo "   clothing: add rate 35-45 %, active 11-13 % of added, repurchase 70-80 % of active, basket ~1,500 yuan"
echo "   luxury:   add rate 50-60 %, active ~10 % of added, repurchase 70-80 % of active, basket 20,000-25,000 yuan"
sql "SELECT app_id, store_id, buyers, added, active, repurchasing,
            round(100 * add_rate, 1) AS add_pct, round(100 * active_rate, 1) AS active_pct,
            round(100 * repurchase_rate, 1) AS repurchase_pct, round(repurchase_frequency, 2) AS orders_per_repurchaser,
            round(basket_fen / 100) AS basket_yuan
     FROM v_social_funnel_monthly WHERE month = '$M' AND level = 'store' AND store_id != ''
     ORDER BY app_id, buyers DESC LIMIT 4 BY app_id"
echo
echo "== Top associates by attributed net revenue, last touch (v_attribution_by_associate)"
sql "SELECT app_id, associate_userid, store_id, region, orders, buyers, share_code_orders,
            round(net_fen / 100) AS net_yuan, round(refunded_fen / 100) AS refunded_yuan
     FROM v_attribution_by_associate WHERE month = '$M' AND model = 'last_touch'
     ORDER BY net_fen DESC LIMIT 10"
echo
echo "== Net revenue by touch under each model (v_attribution_daily)"
sql "SELECT touch, round(sumIf(net_fen, model = 'last_touch') / 100) AS last_touch_yuan,
            round(sumIf(net_fen, model = 'first_touch') / 100) AS first_touch_yuan,
            round(sumIf(net_fen, model = 'linear') / 100) AS linear_yuan,
            round(sumIf(orders, model = 'last_touch'), 1) AS last_touch_orders
     FROM v_attribution_daily WHERE toStartOfMonth(day) = '$M'
     GROUP BY touch ORDER BY last_touch_yuan DESC"
echo
echo "== Pushes and QR scenes by attributed revenue, last touch (v_attribution_by_push, v_attribution_by_scene)"
sql "SELECT * FROM (SELECT 'push' AS kind, toString(msgid) AS id, any(campaign) AS campaign, sum(orders) AS orders, round(sum(net_fen) / 100) AS net_yuan
     FROM v_attribution_by_push WHERE month = '$M' AND model = 'last_touch' GROUP BY msgid
     UNION ALL
     SELECT 'qr_scene', scene, any(qr_channel), sum(orders), round(sum(net_fen) / 100)
     FROM v_attribution_by_scene WHERE month = '$M' AND model = 'last_touch' GROUP BY scene)
     ORDER BY net_yuan DESC LIMIT 10"
echo
echo "== Menu clicks by button category vs the seed report (000: e-commerce 45 / brand info 33 / CRM 22)"
sql "SELECT category, count() AS clicks, round(100 * clicks / sum(clicks) OVER (), 2) AS share_pct,
            multiIf(category='ecommerce', '45', category='brand_info', '33', category='crm', '22', '-') AS benchmark_pct
     FROM menu_clicks GROUP BY category ORDER BY clicks DESC"
echo
echo "== New followers from QR codes by channel (follow source)"
sql "SELECT channel, countIf(is_new_follow) AS new_follows, count() AS scans
     FROM qr_scans GROUP BY channel ORDER BY new_follows DESC"
echo
echo "== Events by relationship segment (fan-profile dimension) and lifecycle at event time"
sql "SELECT relationship, lifecycle, count() AS events FROM (
       SELECT relationship, lifecycle FROM menu_clicks UNION ALL SELECT relationship, lifecycle FROM qr_scans
       UNION ALL SELECT relationship, lifecycle FROM chat_messages UNION ALL SELECT relationship, lifecycle FROM article_reads)
     GROUP BY relationship, lifecycle ORDER BY relationship, events DESC"
echo
echo "== Associate first-reply time in WeCom 1:1 chats, by region"
sql "SELECT region, count() AS replies, round(avg(first_reply_ms) / 60000, 1) AS avg_min,
            round(quantile(0.9)(first_reply_ms) / 60000, 1) AS p90_min
     FROM chat_messages WHERE first_reply_ms IS NOT NULL GROUP BY region ORDER BY replies DESC"
echo
echo "== Notifications for associates (wxpulse-notifier: wxpulse.notifications and the notifications table)"
# The notifier reads the same topics in its own group: wait until it has read them all.
last=-1
for _ in $(seq 120); do
  read_so_far=$(curl -sS "http://127.0.0.1:9470/metrics" 2>/dev/null | awk '/^wxpulse_notifier_records_total/ {s += $2} END {print s + 0}')
  [ "$read_so_far" = "$last" ] && [ "$read_so_far" != 0 ] && break
  last=$read_so_far
  sleep 2
done
sql "SELECT rule, count() AS notifications, uniqExact(associate_userid) AS associates,
            uniqExact(fan_id) AS fans, countIf(deliver_after > server_time) AS deferred_to_morning
     FROM notifications FINAL GROUP BY rule ORDER BY notifications DESC"
echo "   held back or sent, by rule and outcome (wxpulse_notifier_notifications_total):"
curl -sS "http://127.0.0.1:9470/metrics" | grep '^wxpulse_notifier_notifications_total' | grep -v ' 0$' || true
echo
echo "== Events written with an unknown dimension value (metric wxpulse_enrich_dimension_missing_total)"
for p in 9464 9465 9466 9467 9468; do
  curl -sS "http://127.0.0.1:$p/metrics" | grep '^wxpulse_enrich_dimension_missing_total' | grep -v ' 0$' || true
done
echo
echo "== Generator ground truth: $STACK_DIR/truth.json"
python3 -c "import json;t=json.load(open('$STACK_DIR/truth.json'));print('events', t['events']); print('dead letters', t['dead_letters']); print('duplicates dropped', t['duplicates']); print('menu clicks by category', t.get('menu_clicks_by_category')); print('new follows by channel', t.get('new_follows_by_channel')); print('events by segment', t.get('events_by_segment')); print('events with a missing dimension', t.get('dimension_missing'))"
echo
log "the pipeline keeps running: query $CH (database wxpulse), scrape :9464-9468/metrics;"
log "stop everything with: make down"

-- Hand-built raw rows for tests/e2e/views.rs, one INSERT per statement (each is sent with its
-- own insert_deduplication_token). {P} and {M} are two consecutive past months ('YYYY-MM'),
-- times are Asia/Shanghai (the columns' time zone). Account wxv_a is the scenario, wxv_b
-- only checks that accounts stay apart. Fans: 101..108 (F1..F8 in views.rs), 201 on wxv_b.

-- Menu clicks. F1: 3 in M (vip/active), F2: 3 in P, F3: 1 in M, F7: 1 in M; wxv_b: 1.
-- Brands (only here; every other row has the default `unknown`): wxv_a is Acme, wxv_b
-- Beta; F7's click was enriched before the account dimension knew wxv_a.
INSERT INTO menu_clicks (app_id, brand, fan_id, event_time, category, relationship, lifecycle) VALUES
    ('wxv_a', 'Acme', 101, '{M}-03 10:00:00', 'ecommerce', 'vip', 'active'),
    ('wxv_a', 'Acme', 101, '{M}-03 10:01:00', 'ecommerce', 'vip', 'active'),
    ('wxv_a', 'Acme', 101, '{M}-03 10:02:00', 'crm', 'vip', 'active'),
    ('wxv_a', 'Acme', 102, '{P}-10 09:00:00', 'brand_info', 'prospect', 'new'),
    ('wxv_a', 'Acme', 102, '{P}-10 09:01:00', 'brand_info', 'prospect', 'new'),
    ('wxv_a', 'Acme', 102, '{P}-10 09:02:00', 'brand_info', 'prospect', 'new'),
    ('wxv_a', 'Acme', 103, '{M}-03 11:00:00', 'ecommerce', 'unknown', 'new'),
    ('wxv_a', 'unknown', 107, '{M}-03 12:00:00', 'other', 'unknown', 'unknown'),
    ('wxv_b', 'Beta', 201, '{M}-03 12:00:00', 'crm', 'unknown', 'unknown');

-- QR scans. F1 followed in P through a store code; F4 followed in M through associate
-- zhang's code (a new contact); F2, already a fan, scanned zhang's code in M.
INSERT INTO qr_scans (app_id, fan_id, event_time, event, channel, store_id, associate_userid, region, is_new_follow, follow_source) VALUES
    ('wxv_a', 101, '{P}-05 15:00:00', 'SUBSCRIBE', 'store', 'S1', '', 'east', true, 'qr_store'),
    ('wxv_a', 104, '{M}-04 16:00:00', 'SUBSCRIBE', 'associate', 'S1', 'zhang', 'east', true, 'qr_associate'),
    ('wxv_a', 102, '{M}-06 17:00:00', 'SCAN', 'associate', 'S1', 'zhang', 'east', false, '');

-- Chat messages. zhang (S1) answers F1 after 5 min and F4 after 30 min, the next day
-- (the wait started on M-05); F3's message to zhang stays unanswered; wang (S1) answers F1
-- after 10 min; li (S2) answers F5 after 2 min. F1 also writes in zhang's customer group,
-- and F5 writes to the Official Account (no associate).
INSERT INTO chat_messages (app_id, fan_id, event_time, conversation, direction, associate_userid, store_id, region, first_reply_ms) VALUES
    ('wxv_a', 101, '{M}-05 10:00:00', 'WECOM_PRIVATE', 'FAN_TO_ASSOCIATE', 'zhang', 'S1', 'east', NULL),
    ('wxv_a', 101, '{M}-05 10:00:30', 'WECOM_PRIVATE', 'FAN_TO_ASSOCIATE', 'zhang', 'S1', 'east', NULL),
    ('wxv_a', 101, '{M}-05 10:05:00', 'WECOM_PRIVATE', 'ASSOCIATE_TO_FAN', 'zhang', 'S1', 'east', 300000),
    ('wxv_a', 104, '{M}-05 23:50:00', 'WECOM_PRIVATE', 'FAN_TO_ASSOCIATE', 'zhang', 'S1', 'east', NULL),
    ('wxv_a', 104, '{M}-06 00:20:00', 'WECOM_PRIVATE', 'ASSOCIATE_TO_FAN', 'zhang', 'S1', 'east', 1800000),
    ('wxv_a', 103, '{M}-06 11:00:00', 'WECOM_PRIVATE', 'FAN_TO_ASSOCIATE', 'zhang', 'S1', 'east', NULL),
    ('wxv_a', 101, '{M}-07 12:00:00', 'WECOM_GROUP', 'FAN_TO_ASSOCIATE', 'zhang', 'S1', 'east', NULL),
    ('wxv_a', 101, '{M}-08 09:00:00', 'WECOM_PRIVATE', 'FAN_TO_ASSOCIATE', 'wang', 'S1', 'east', NULL),
    ('wxv_a', 101, '{M}-08 09:10:00', 'WECOM_PRIVATE', 'ASSOCIATE_TO_FAN', 'wang', 'S1', 'east', 600000),
    ('wxv_a', 105, '{M}-06 12:00:00', 'WECOM_PRIVATE', 'FAN_TO_ASSOCIATE', 'li', 'S2', 'east', NULL),
    ('wxv_a', 105, '{M}-06 12:02:00', 'WECOM_PRIVATE', 'ASSOCIATE_TO_FAN', 'li', 'S2', 'east', 120000),
    ('wxv_a', 105, '{M}-03 08:00:00', 'OFFICIAL_ACCOUNT', 'FAN_TO_BRAND', '', '', '', NULL);

-- Article reads. Push 9001 (M-10 20:00, art-1 then art-2, segment vip, 40 fans reached) and
-- push 9002 (M-12 08:30, art-3 alone, unsegmented, 20 fans reached); art-x was never pushed.
INSERT INTO article_reads (app_id, fan_id, event_time, article_id, msgid, idx, articles_in_push, published_at, campaign, target_segment, fans_reached, source, read_depth, read_seconds, shared, favorited, cta_clicked) VALUES
    ('wxv_a', 101, '{M}-10 20:30:00', 'art-1', 9001, 1, 2, '{M}-10 20:00:00', 'spring', 'vip', 40, 'PUSH', 5.5, 60, true, false, true),
    ('wxv_a', 101, '{M}-10 20:40:00', 'art-2', 9001, 2, 2, '{M}-10 20:00:00', 'spring', 'vip', 40, 'PUSH', 2.0, 20, false, false, false),
    ('wxv_a', 103, '{M}-11 08:00:00', 'art-1', 9001, 1, 2, '{M}-10 20:00:00', 'spring', 'vip', 40, 'MOMENTS', 0.5, 5, false, false, false),
    ('wxv_a', 103, '{M}-10 22:00:00', 'art-2', 9001, 2, 2, '{M}-10 20:00:00', 'spring', 'vip', 40, 'PUSH', 3.0, 30, false, true, true),
    ('wxv_a', 105, '{M}-11 09:00:00', 'art-2', 9001, 2, 2, '{M}-10 20:00:00', 'spring', 'vip', 40, 'CHAT', 1.5, 10, false, false, false),
    ('wxv_a', 101, '{M}-12 09:00:00', 'art-3', 9002, 1, 1, '{M}-12 08:30:00', '', 'none', 20, 'PUSH', 20.5, 300, true, false, false),
    ('wxv_a', 104, '{M}-12 08:45:00', 'art-3', 9002, 1, 1, '{M}-12 08:30:00', '', 'none', 20, 'PUSH', 1.0, 15, false, false, false),
    ('wxv_a', 104, '{M}-13 10:00:00', 'art-3', 9002, 1, 1, '{M}-12 08:30:00', '', 'none', 20, 'HISTORY', 4.0, 40, false, false, false),
    ('wxv_a', 107, '{M}-14 10:00:00', 'art-3', 9002, 1, 1, '{M}-12 08:30:00', '', 'none', 20, 'SEARCH', 0.8, 8, false, false, false),
    ('wxv_a', 106, '{M}-20 10:00:00', 'art-x', 0, 0, 0, NULL, 'unknown', 'unknown', 0, 'SEARCH', 2.0, 25, false, false, false);

-- F2's read of art-1 was enriched before art-1 was in the article dimension: the rollup
-- must keep art-1's known push data.
INSERT INTO article_reads (app_id, fan_id, event_time, article_id, msgid, idx, articles_in_push, published_at, campaign, target_segment, fans_reached, source, read_depth, read_seconds, shared, favorited, cta_clicked) VALUES
    ('wxv_a', 102, '{M}-10 21:00:00', 'art-1', 9001, 1, 0, NULL, 'unknown', 'unknown', 0, 'PUSH', 12.0, 120, false, false, false);

-- Fan profiles, as the writer stores the dimension topic: one row per version. F6 followed
-- from an article in P, unfollowed 14 h after push 9001 and followed again from search; F8
-- unfollowed exactly 24 h after push 9001 (outside the window); F5 unfollowed 30 min after
-- push 9002. F7 has no profile. F1 and F4 are zhang's WeCom contacts.
INSERT INTO fan_profiles (app_id, fan_id, status, followed_at, unfollowed_at, follow_source, updated_at, associate_userid) VALUES
    ('wxv_a', 101, 'vip', '{P}-05 15:00:00', NULL, 'ADD_SCENE_QR_CODE', '{P}-05 15:00:01', 'zhang'),
    ('wxv_a', 102, 'prospect', '{P}-03 09:00:00', NULL, 'ADD_SCENE_SEARCH', '{P}-03 09:00:01', ''),
    ('wxv_a', 103, 'unknown', '{M}-02 09:00:00', NULL, 'ADD_SCENE_SEARCH', '{M}-02 09:00:01', ''),
    ('wxv_a', 104, 'customer', '{M}-04 16:00:00', NULL, 'ADD_SCENE_QR_CODE', '{M}-04 16:00:01', 'zhang'),
    ('wxv_a', 105, 'prospect', '{P}-20 10:00:00', NULL, 'ADD_SCENE_WECHAT_ADVERTISEMENT', '{P}-20 10:00:01', ''),
    ('wxv_a', 106, 'prospect', '{P}-01 10:00:00', NULL, 'ADD_SCENE_PROFILE_LINK', '{P}-01 10:00:01', ''),
    ('wxv_a', 108, 'prospect', '{P}-02 10:00:00', NULL, 'ADD_SCENE_PROFILE_CARD', '{P}-02 10:00:01', '');

INSERT INTO fan_profiles (app_id, fan_id, status, followed_at, unfollowed_at, follow_source, updated_at) VALUES
    ('wxv_a', 106, 'prospect', '{P}-01 10:00:00', '{M}-11 10:00:00', 'ADD_SCENE_PROFILE_LINK', '{M}-11 10:00:01'),
    ('wxv_a', 108, 'prospect', '{P}-02 10:00:00', '{M}-11 20:00:00', 'ADD_SCENE_PROFILE_CARD', '{M}-11 20:00:01'),
    ('wxv_a', 105, 'prospect', '{P}-20 10:00:00', '{M}-12 09:00:00', 'ADD_SCENE_WECHAT_ADVERTISEMENT', '{M}-12 09:00:01');

INSERT INTO fan_profiles (app_id, fan_id, status, followed_at, unfollowed_at, follow_source, updated_at) VALUES
    ('wxv_a', 106, 'prospect', '{M}-15 09:00:00', '{M}-11 10:00:00', 'ADD_SCENE_SEARCH', '{M}-15 09:00:01');

-- Orders (0007). F1 buys at S1 on M-09 (touches in its 7 days: 2 e-commerce clicks, 3 chats
-- with zhang, 2 with wang) and again on M-13 (wang's chats, then three push reads), with
-- 300 yuan of the first refunded on M-15; F4 buys S1's goods in the mall on M-06 (zhang's
-- code, then two chats with zhang); F2 buys on M-07 after scanning zhang's code; F5 buys
-- at S2 through li's share link.
INSERT INTO orders (app_id, fan_id, event_time, order_id, kind, amount_fen, currency, channel, store_id, region, share_code, share_store_id, share_region, items, attribution_window_s) VALUES
    ('wxv_a', 101, '{M}-09 12:00:00', 'o1', 'purchase', 150000, 'CNY', 'store_pos', 'S1', 'east', '', '', '', 3, 604800),
    ('wxv_a', 101, '{M}-13 10:00:00', 'o2', 'purchase', 50000, 'CNY', 'store_pos', 'S1', 'east', '', '', '', 1, 604800),
    ('wxv_a', 101, '{M}-15 10:00:00', 'o1', 'refund', 30000, 'CNY', 'store_pos', 'S1', 'east', '', '', '', 0, 604800),
    ('wxv_a', 104, '{M}-06 12:00:00', 'o3', 'purchase', 30000, 'CNY', 'mini_program', 'S1', 'east', '', '', '', 1, 604800),
    ('wxv_a', 102, '{M}-07 10:00:00', 'o4', 'purchase', 20000, 'CNY', 'mini_program', '', '', '', '', '', 2, 604800),
    ('wxv_a', 105, '{M}-20 10:00:00', 'o5', 'purchase', 10000, 'CNY', 'mini_program', 'S2', 'east', 'li', 'S2', 'east', 1, 604800);

-- Dead letters: two records of menu-clicks on {M}-05 (one of them rejected twice: a
-- redelivery, which the view counts once) and one of qr-scans on {P}-20.
INSERT INTO dead_letters (service, reason, source_topic, source_partition, source_offset, first_seen, detail, payload_length, payload_sha256) VALUES
    ('menu-clicks', 'undecodable', 'wxpulse.menu_clicks', 0, 17, '{M}-05 10:00:00', 'magic byte is not 0', 12, 'aaaa'),
    ('menu-clicks', 'undecodable', 'wxpulse.menu_clicks', 0, 17, '{M}-05 10:05:00', 'magic byte is not 0', 12, 'aaaa'),
    ('menu-clicks', 'too_old', 'wxpulse.menu_clicks', 1, 3, '{M}-05 11:00:00', 'server_time - client_time > 7days', 90, 'bbbb'),
    ('qr-scans', 'missing_field', 'wxpulse.qr_scans', 0, 5, '{P}-20 08:00:00', 'openid is empty', 80, 'cccc');

-- WeCom contacts of wxv_a's associates (as corp): zhang added F1 through his code and F2
-- and F3 plainly; F2 deleted zhang, zhang deleted F3 and added F3 again; li added F4 and
-- deleted F4. F1's addition is there twice (the mirror re-read it): it merges away.
INSERT INTO associate_contact_events (corp_id, userid, contact_id, change, at, state) VALUES
    ('wxv_a', 'zhang', 101, 'added', '{M}-03 10:00:00', 'zhang_qr'),
    ('wxv_a', 'zhang', 101, 'added', '{M}-03 10:00:00', 'zhang_qr'),
    ('wxv_a', 'zhang', 102, 'added', '{M}-04 10:00:00', ''),
    ('wxv_a', 'zhang', 102, 'removed_by_customer', '{M}-10 10:00:00', ''),
    ('wxv_a', 'zhang', 103, 'added', '{M}-05 10:00:00', ''),
    ('wxv_a', 'zhang', 103, 'removed_by_associate', '{M}-06 10:00:00', ''),
    ('wxv_a', 'zhang', 103, 'added', '{M}-07 10:00:00', ''),
    ('wxv_a', 'li', 104, 'added', '{P}-02 10:00:00', ''),
    ('wxv_a', 'li', 104, 'removed_by_associate', '{P}-09 10:00:00', '');

-- Quarantine (validation.unknown_account = "quarantine"): account wxv_q, unknown to the
-- dimension, clicked twice on {M}-06; one click was inserted twice (a re-read batch: the
-- twin merges it). No other view may show wxv_q.
INSERT INTO menu_clicks_quarantine (event_id, app_id, fan_id, event_time, category) VALUES
    ('00000000-0000-4000-8000-00000000aa01', 'wxv_q', 301, '{M}-06 09:00:00', 'unknown'),
    ('00000000-0000-4000-8000-00000000aa01', 'wxv_q', 301, '{M}-06 09:00:00', 'unknown'),
    ('00000000-0000-4000-8000-00000000aa02', 'wxv_q', 302, '{M}-06 09:30:00', 'unknown');

-- Notifications (0018): zhang was told of F1's purchase o1 ({M}-09); a replay of the
-- notifier stored it twice (the views count it once). Not followed up: the chat rows here
-- have no server_time (notifications_views.rs tests the follow-ups).
INSERT INTO notifications (notification_id, rule, app_id, brand, associate_userid, store_id, fan_id, relationship, event_time, server_time, deliver_after, amount_fen) VALUES
    ('00000000-0000-4000-8000-0000000bb001', 'purchase', 'wxv_a', 'Acme', 'zhang', 'S1', 101, 'vip', '{M}-09 12:00:00', '{M}-09 12:00:01', '{M}-09 12:00:01', 150000),
    ('00000000-0000-4000-8000-0000000bb001', 'purchase', 'wxv_a', 'Acme', 'zhang', 'S1', 101, 'vip', '{M}-09 12:00:00', '{M}-09 12:00:01', '{M}-09 12:00:01', 150000)

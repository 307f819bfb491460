//! `wxpulse-gateway` with WeChat's side played by the test, from the developer
//! documentation's specification (a client written here: SHA-1 signatures of the sorted
//! token, timestamp and nonce; AES-256-CBC with the EncodingAESKey for compatible and safe
//! mode): menu clicks, QR scans and a fan's message in all three modes land in ClickHouse
//! once each, enriched and segmented by the consumers, while retries are dropped, a wrong
//! signature is 401, an unknown account 404, and a tampered ciphertext or a signed body
//! that is not a callback 400 and dead-lettered (never replayed: it is not an event).

mod beacons;
mod callbacks;
mod follows;
mod helpers;

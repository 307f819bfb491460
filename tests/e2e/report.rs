//! A generated month for 2 brands (1,000,000 events) through Kafka, the four
//! services and the fan-profile mirror; every BI view must equal the generator's own
//! ground truth (computed while generating, never from the pipeline) exactly where the
//! view promises exactness, and the headline shares must land near the seed report's.
//!
//! The month's orders (about 15,000 purchases and their refunds) through the
//! orders service too; the attribution views (by associate, push, scene, and per model and
//! touch), orders per day and the social-selling funnel (monthly, and over the month with
//! another threshold) must equal the generator's conversions truth — counts exactly,
//! weighted sums within 1e-9 — and each brand's funnel must land near seed 003's.
//!
//! The input is messy on purpose: 1% late by hours, 1% upstream retries and 2% copies
//! re-sent minutes to days later, 0.5% malformed and 0.5% of unknown accounts, delivered
//! shuffled within each 4-minute span of server time ([`helpers::arrival_order`]).

mod conversions;
mod helpers;
mod month;

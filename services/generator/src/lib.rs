//! The synthetic world (brands, accounts, stores, associates, QR scenes, pushes, menu
//! buttons, fan profiles) and a month of its telemetry shaped by the seed report, with the
//! ground truth every view is checked against. A crate of its own so the production image
//! never carries it: the demo and the tests link it, operators never run it against real
//! topics by accident.

pub mod generate;
pub mod spec;
pub mod world;

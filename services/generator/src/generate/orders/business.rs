//! Brands' business models and seed 003's funnel for each: what the planner aims a
//! store's month at. A leaf, so the planner and the conversions' tally share it.

/// A brand's business model, with seed 003's funnel for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    /// `luxury` (seed 003's model 3) or `clothing` (model 1).
    pub name: &'static str,
    /// Buyers added on WeCom (bound to an associate) / buyers.
    pub add_rate: f64,
    /// Added buyers with more than 4 interactions in the month / added.
    pub active_rate: f64,
    /// Active buyers with 2 or more purchases at the store in the month / active.
    pub repurchase_rate: f64,
    /// Mean amount of a purchase, fen.
    pub basket_fen: f64,
}

/// Seed 003, model 3 (luxury): add 50–60%, active about 10%, repurchase 70–80%, basket
/// 20,000–25,000 yuan.
pub const LUXURY: Model = Model {
    name: "luxury",
    add_rate: 0.55,
    active_rate: 0.10,
    repurchase_rate: 0.75,
    basket_fen: 2_250_000.0,
};

/// Seed 003, model 1 (a clothing store, 5k buyers a year): add 35–45%, active 11–13%,
/// repurchase 70–80%, basket about 1,500 yuan.
pub const CLOTHING: Model = Model {
    name: "clothing",
    add_rate: 0.40,
    active_rate: 0.12,
    repurchase_rate: 0.75,
    basket_fen: 150_000.0,
};

/// The model of a brand (index into the world's brands): luxury, clothing, luxury, …
pub fn model(brand: usize) -> Model {
    if brand % 2 == 0 {
        LUXURY
    } else {
        CLOTHING
    }
}

//! What the tests of `generate` share: the small spec each of them varies.

use crate::generate::Spec;

pub(super) fn spec(events: u64) -> Spec {
    Spec {
        seed: 7,
        brands: 2,
        accounts_per_brand: 2,
        fans_per_account: 500,
        events,
        start_ms: 1_760_000_000_000,
        end_ms: 1_760_000_000_000 + 30 * 86_400_000,
        duplicate_share: 0.02,
        resend_share: 0.0,
        late_share: 0.03,
        malformed_share: 0.01,
        unknown_dimension_share: 0.01,
        unknown_account_share: 0.0,
    }
}

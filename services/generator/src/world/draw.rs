//! Exact shares and random draws the world is built with (and the plan and orders reuse):
//! apportioning a total by weights, expanding counts, a standard normal draw.

use rand::prelude::*;

/// Splits `total` in proportion to `weights`, exactly (largest remainders, ties to the
/// earlier weight): shares the seed gives as percentages come out to the unit.
pub fn apportion(total: usize, weights: &[f64]) -> Vec<usize> {
    let sum: f64 = weights.iter().sum();
    if sum <= 0.0 || weights.is_empty() {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut out: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&i, &j| {
        let (ri, rj) = (exact[i] - exact[i].floor(), exact[j] - exact[j].floor());
        rj.total_cmp(&ri).then(i.cmp(&j))
    });
    let given: usize = out.iter().sum();
    for &i in order.iter().cycle().take(total.saturating_sub(given)) {
        out[i] += 1;
    }
    out
}

/// `counts[i]` copies of `values[i]`, in order.
pub(super) fn expand<T: Copy, const N: usize>(counts: Vec<usize>, values: [T; N]) -> Vec<T> {
    counts
        .into_iter()
        .zip(values)
        .flat_map(|(n, v)| std::iter::repeat_n(v, n))
        .collect()
}

/// A standard normal draw (Box–Muller): lognormal propensities, skills and delays.
pub fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1 = 1.0 - rng.gen::<f64>(); // (0, 1]: ln is finite
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

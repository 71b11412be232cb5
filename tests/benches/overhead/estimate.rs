//! Means of per-round (or per-pair) ratios with their 95 % confidence intervals.

/// A mean of per-pair on/off ratios with its 95 % confidence half-width.
#[derive(Clone, Copy)]
pub(crate) struct Estimate {
    pub(crate) mean: f64,
    pub(crate) half_width: f64,
}

impl Estimate {
    pub(crate) fn of(ratios: &[f64]) -> Estimate {
        let n = ratios.len() as f64;
        let mean = ratios.iter().sum::<f64>() / n;
        let var = ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        // One sample gives no interval: an infinite one, whatever its variance.
        let half_width = if ratios.len() < 2 {
            f64::INFINITY
        } else {
            t95(ratios.len()) * (var / n).sqrt()
        };
        Estimate { mean, half_width }
    }

    /// The slowdown the ratio means, in percent, with the interval's ends (low, high).
    pub(crate) fn slowdown(&self) -> (f64, f64, f64) {
        let pct = |r: f64| (1.0 - r) * 100.0;
        (
            pct(self.mean),
            pct(self.mean + self.half_width),
            pct(self.mean - self.half_width),
        )
    }

    /// "12.3 % (95 % CI 10.1 … 14.5 %)".
    pub(crate) fn slowdown_text(&self) -> String {
        let (pct, lo, hi) = self.slowdown();
        if self.half_width.is_finite() {
            format!("{pct:.1} % (95 % CI {lo:.1} … {hi:.1} %)")
        } else {
            format!("{pct:.1} % (one sample: no interval)")
        }
    }

    /// The slowdown's verdict against a target of at most `limit` percent.
    pub(crate) fn verdict(&self, limit: f64) -> String {
        let (_, lo, hi) = self.slowdown();
        verdict(limit, lo, hi)
    }
}

/// The verdict against a target of at most `limit` percent for a cost whose 95 % interval is
/// `lo … hi` percent.
pub(crate) fn verdict(limit: f64, lo: f64, hi: f64) -> String {
    if hi <= limit {
        format!("≤ {limit} %: met")
    } else if lo > limit {
        format!("≤ {limit} %: missed")
    } else {
        format!("≤ {limit} %: not resolved (CI spans {limit} %)")
    }
}

/// Two-sided 95 % quantile of Student's t for `n` samples (n - 1 degrees of freedom).
fn t95(n: usize) -> f64 {
    const TABLE: [f64; 10] = [12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23];
    match n.saturating_sub(1) {
        0 => f64::INFINITY,
        df @ 1..=10 => TABLE[df - 1],
        // The value at the low end of each range: the interval errs wide.
        11..=20 => 2.20,
        21..=30 => 2.09,
        _ => 2.04,
    }
}

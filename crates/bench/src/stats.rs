//! Summaries of a set of samples.

use std::time::Duration;

/// Percentiles of a set of durations, by the nearest-rank method: the p-th percentile is
/// the smallest sample that at least p % of the samples do not exceed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latencies {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Latencies {
    /// `None` for no samples.
    pub fn of(samples: &[Duration]) -> Option<Latencies> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let total: Duration = sorted.iter().sum();
        Some(Latencies {
            count: sorted.len(),
            p50: nearest_rank(&sorted, 50),
            p90: nearest_rank(&sorted, 90),
            p99: nearest_rank(&sorted, 99),
            max: sorted[sorted.len() - 1],
            mean: total / sorted.len() as u32,
        })
    }
}

/// The `p`-th percentile (0 < p <= 100) of sorted, non-empty samples.
fn nearest_rank(sorted: &[Duration], p: usize) -> Duration {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Average and maximum of a set of sizes in KiB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sizes {
    pub count: usize,
    pub mean_kib: f64,
    pub max_kib: u64,
}

impl Sizes {
    pub fn of(samples: &[u64]) -> Option<Sizes> {
        if samples.is_empty() {
            return None;
        }
        Some(Sizes {
            count: samples.len(),
            mean_kib: samples.iter().sum::<u64>() as f64 / samples.len() as f64,
            max_kib: samples.iter().copied().max().unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn percentiles_of_one_to_hundred() {
        let samples: Vec<Duration> = (1..=100).rev().map(ms).collect();
        let l = Latencies::of(&samples).expect("samples");
        assert_eq!(l.count, 100);
        assert_eq!(l.p50, ms(50));
        assert_eq!(l.p90, ms(90));
        assert_eq!(l.p99, ms(99));
        assert_eq!(l.max, ms(100));
        assert_eq!(l.mean, Duration::from_micros(50_500));
    }

    #[test]
    fn percentiles_of_few_samples() {
        let l = Latencies::of(&[ms(3), ms(1), ms(2)]).expect("samples");
        assert_eq!((l.p50, l.p90, l.p99, l.max), (ms(2), ms(3), ms(3), ms(3)));
        let one = Latencies::of(&[ms(7)]).expect("samples");
        assert_eq!((one.p50, one.max), (ms(7), ms(7)));
        assert!(Latencies::of(&[]).is_none());
    }

    #[test]
    fn sizes() {
        let s = Sizes::of(&[1000, 2000, 1500]).expect("samples");
        assert_eq!(s.count, 3);
        assert_eq!(s.max_kib, 2000);
        assert!((s.mean_kib - 1500.0).abs() < 1e-9);
        assert!(Sizes::of(&[]).is_none());
    }
}

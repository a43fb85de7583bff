//! Request metrics of a proxy host from its access log: how many requests, by status class,
//! the share of server errors, and upstream response time percentiles.

use serde::{Deserialize, Serialize};

/// One request as the metrics see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSample {
    /// The response status.
    pub status: u16,
    /// The upstream's response time in milliseconds (the sum over attempts), `None` when no
    /// upstream answered (a redirect host, a cached answer, a refused request).
    pub upstream_millis: Option<u64>,
}

/// What a host's requests over a period add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AccessMetrics {
    /// Requests in all.
    pub requests: u64,
    /// Requests answered 1xx.
    pub status_1xx: u64,
    /// Requests answered 2xx.
    pub status_2xx: u64,
    /// Requests answered 3xx.
    pub status_3xx: u64,
    /// Requests answered 4xx.
    pub status_4xx: u64,
    /// Requests answered 5xx.
    pub status_5xx: u64,
    /// The share of requests answered 5xx, from 0 to 1 (0 without requests).
    pub server_error_ratio: f64,
    /// The median upstream response time in milliseconds, over requests an upstream answered.
    pub upstream_p50_millis: Option<u64>,
    /// The 95th percentile upstream response time in milliseconds.
    pub upstream_p95_millis: Option<u64>,
}

/// Adds up `samples`. Percentiles are nearest-rank: the smallest time at least the given
/// share of the answered requests took no longer than.
pub fn summarize(samples: impl IntoIterator<Item = RequestSample>) -> AccessMetrics {
    let mut m = AccessMetrics::default();
    let mut times = Vec::new();
    for s in samples {
        m.requests += 1;
        match s.status / 100 {
            1 => m.status_1xx += 1,
            2 => m.status_2xx += 1,
            3 => m.status_3xx += 1,
            4 => m.status_4xx += 1,
            5 => m.status_5xx += 1,
            _ => {}
        }
        if let Some(t) = s.upstream_millis {
            times.push(t);
        }
    }
    if m.requests > 0 {
        #[allow(clippy::cast_precision_loss)]
        {
            m.server_error_ratio = m.status_5xx as f64 / m.requests as f64;
        }
    }
    times.sort_unstable();
    m.upstream_p50_millis = percentile(&times, 50);
    m.upstream_p95_millis = percentile(&times, 95);
    m
}

/// The nearest-rank `p`th percentile of sorted `times`.
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    // rank = ceil(p/100 * n), 1-based.
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample(status: u16, upstream_millis: Option<u64>) -> RequestSample {
        RequestSample {
            status,
            upstream_millis,
        }
    }

    #[test]
    fn classes_ratio_and_percentiles() {
        let mut samples: Vec<_> = (1..=100).map(|t| sample(200, Some(t))).collect();
        samples.extend([sample(502, None), sample(404, None), sample(301, None)]);
        let m = summarize(samples);
        assert_eq!(m.requests, 103);
        assert_eq!(
            (m.status_2xx, m.status_3xx, m.status_4xx, m.status_5xx),
            (100, 1, 1, 1)
        );
        assert!((m.server_error_ratio - 1.0 / 103.0).abs() < 1e-12);
        assert_eq!(m.upstream_p50_millis, Some(50));
        assert_eq!(m.upstream_p95_millis, Some(95));
        assert_eq!(summarize([]), AccessMetrics::default());
        let one = summarize([sample(200, Some(7))]);
        assert_eq!(
            (one.upstream_p50_millis, one.upstream_p95_millis),
            (Some(7), Some(7))
        );
    }

    proptest! {
        #[test]
        fn percentiles_are_observed_times_in_order(
            times in proptest::collection::vec(0_u64..10_000, 0..300),
            statuses in proptest::collection::vec(100_u16..600, 0..300),
        ) {
            let samples: Vec<_> = statuses.iter().zip(times.iter().map(|t| Some(*t)).chain(std::iter::repeat(None)))
                .map(|(s, t)| sample(*s, t)).collect();
            let m = summarize(samples.clone());
            prop_assert_eq!(m.requests, samples.len() as u64);
            prop_assert_eq!(m.status_1xx + m.status_2xx + m.status_3xx + m.status_4xx + m.status_5xx, m.requests);
            prop_assert!((0.0..=1.0).contains(&m.server_error_ratio));
            let answered: Vec<u64> = samples.iter().filter_map(|s| s.upstream_millis).collect();
            match (m.upstream_p50_millis, m.upstream_p95_millis) {
                (Some(p50), Some(p95)) => {
                    prop_assert!(p50 <= p95);
                    prop_assert!(answered.contains(&p50) && answered.contains(&p95));
                    let at_most = answered.iter().filter(|t| **t <= p95).count();
                    prop_assert!(at_most * 100 >= answered.len() * 95);
                }
                (None, None) => prop_assert!(answered.is_empty()),
                other => prop_assert!(false, "{other:?}"),
            }
        }
    }
}

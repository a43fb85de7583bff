//! Request metrics in the Prometheus text format, kept in process.
//!
//! Counted by method, matched route and status class, with a latency histogram per route.
//! Routes are the matched templates (`/api/v1/members/{user_id}`), never raw paths, so user
//! input cannot grow the label set.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket bounds, seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// The in-process metrics registry.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Series>>,
}

impl Metrics {
    /// Records one finished request.
    pub fn record(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let class = status / 100 * 100;
        if let Ok(mut map) = self.requests.lock() {
            *map.entry((method.to_owned(), route.to_owned(), class))
                .or_default() += 1;
        }
        if let Ok(mut map) = self.latency.lock() {
            let series = map.entry(route.to_owned()).or_default();
            let secs = elapsed.as_secs_f64();
            series.count += 1;
            series.sum += secs;
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    series.buckets[i] += 1;
                }
            }
        }
    }

    /// The Prometheus exposition text.
    pub fn render(&self, extra: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP infrapilot_http_requests_total HTTP requests by method, route and status class.\n");
        out.push_str("# TYPE infrapilot_http_requests_total counter\n");
        if let Ok(map) = self.requests.lock() {
            for ((method, route, class), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "infrapilot_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{class}\"}} {n}",
                    escape(route)
                );
            }
        }
        out.push_str(
            "# HELP infrapilot_http_request_duration_seconds HTTP request latency by route.\n",
        );
        out.push_str("# TYPE infrapilot_http_request_duration_seconds histogram\n");
        if let Ok(map) = self.latency.lock() {
            for (route, s) in map.iter() {
                let route = escape(route);
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "infrapilot_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                        s.buckets[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "infrapilot_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    s.count
                );
                let _ = writeln!(
                    out,
                    "infrapilot_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                    s.sum
                );
                let _ = writeln!(
                    out,
                    "infrapilot_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    s.count
                );
            }
        }
        for (name, help, value) in extra {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.record("GET", "/api/v1/members", 200, Duration::from_millis(3));
        m.record("GET", "/api/v1/members", 404, Duration::from_millis(30));
        let text = m.render(&[("infrapilot_up", "Whether the server runs.", 1.0)]);
        assert!(text.contains(
            "infrapilot_http_requests_total{method=\"GET\",route=\"/api/v1/members\",status=\"200\"} 1"
        ));
        assert!(text.contains("status=\"400\"} 1"));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("le=\"0.05\"} 2"));
        assert!(text.contains("_count{route=\"/api/v1/members\"} 2"));
        assert!(text.contains("infrapilot_up 1"));
    }
}

//! Throughput of log line parsing and alert evaluation.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::collections::BTreeMap;

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use infrapilot_core::alerts::{
    AlertRule, AlertRuleSpec, ContainerSample, Observation, Observations, RuleKind, RuleState,
    Scope, Severity, evaluate,
};
use infrapilot_core::ids::{AgentId, AlertRuleId};
use infrapilot_core::logs::{analyze_line, parse_combined, parse_error_line, parse_json_access};
use infrapilot_core::values::ContainerName;
use uuid::Uuid;

const APP_LINES: [&str; 8] = [
    r#"{"level":30,"time":1795341600000,"pid":1,"hostname":"api","msg":"request completed","res":{"statusCode":200},"responseTime":3}"#,
    r#"{"level":"warn","ts":1795341600.5,"caller":"db/pool.go:88","msg":"slow query","duration":"1.2s"}"#,
    "2026-11-22T10:00:00.123456789Z INFO [main] listening on :8080",
    "2026-11-22 10:00:00,123 - app.db - ERROR - connection lost",
    "2026-11-22 10:00:00.123 UTC [42] FATAL:  password authentication failed for user \"app\"",
    "time=\"2026-11-22T10:00:00Z\" level=warning msg=\"disk almost full\" free=1.2GB",
    "W1122 10:00:00.123456       1 reflector.go:42] watch of *v1.Pod ended",
    "just a plain line with no level in it at all, from some shell script",
];

const COMBINED: &str = r#"172.18.0.1 - - [22/Nov/2026:10:00:00 +0000] "GET /api/v1/items?page=2 HTTP/1.1" 200 5120 "https://app.example/" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36""#;
const JSON: &str = r#"{"time_iso8601":"2026-11-22T10:00:00+00:00","remote_addr":"172.18.0.1","host":"app.example","request_method":"GET","uri":"/health","status":200,"body_bytes_sent":17,"request_time":0.004,"upstream_response_time":"0.004","upstream_addr":"10.0.0.5:8080","http_referer":"","http_user_agent":"kube-probe/1.29","proxy_host_id":"00000000-0000-0000-0000-000000000abc"}"#;
const ERROR: &str = r#"2026/11/22 10:00:00 [error] 123#0: *4 connect() failed (111: Connection refused) while connecting to upstream, client: 172.18.0.1, server: app.example, request: "GET /api HTTP/1.1", upstream: "http://172.18.0.5:80/api", host: "app.example""#;

fn logs(c: &mut Criterion) {
    let mut g = c.benchmark_group("logs");
    g.throughput(Throughput::Elements(APP_LINES.len() as u64));
    g.bench_function("analyze_line x8", |b| {
        b.iter(|| {
            for line in APP_LINES {
                black_box(analyze_line(black_box(line.as_bytes())));
            }
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_combined", |b| {
        b.iter(|| parse_combined(black_box(COMBINED.as_bytes())))
    });
    g.bench_function("parse_json_access", |b| {
        b.iter(|| parse_json_access(black_box(JSON.as_bytes())))
    });
    g.bench_function("parse_error_line", |b| {
        b.iter(|| parse_error_line(black_box(ERROR.as_bytes())))
    });
    g.finish();
}

fn alerts(c: &mut Criterion) {
    let Ok(rule) = AlertRule::new(AlertRuleSpec {
        id: AlertRuleId::from_uuid(Uuid::from_u128(1)),
        name: "cpu".to_owned(),
        kind: RuleKind::CpuAbove {
            percent: 80.0,
            samples: 3,
        },
        scope: Scope::default(),
        severity: Severity::Warning,
        cooldown_secs: 300,
        enabled: true,
        notify_on_resolve: true,
    }) else {
        return;
    };
    let containers: Vec<ContainerName> = (0..50)
        .filter_map(|i| ContainerName::parse(&format!("c{i}")).ok())
        .collect();
    let mut items = Vec::new();
    for t in 0..200i64 {
        for (i, container) in containers.iter().enumerate() {
            items.push(Observation::ContainerSample(ContainerSample {
                agent: AgentId::from_uuid(Uuid::from_u128(i as u128 % 5)),
                container: container.clone(),
                cpu_percent: ((t * 7 + i as i64 * 13) % 100) as f64,
                memory_bytes: 0,
                memory_limit_bytes: None,
                at: t * 10,
            }));
        }
    }
    let obs = Observations {
        agent_labels: BTreeMap::new(),
        items,
    };
    let mut g = c.benchmark_group("alerts");
    g.throughput(Throughput::Elements(obs.items.len() as u64));
    g.bench_function("evaluate cpu 10k samples", |b| {
        b.iter(|| evaluate(&rule, black_box(&obs), RuleState::new(), 2_000))
    });
    g.finish();
}

criterion_group!(benches, logs, alerts);
criterion_main!(benches);

//! One policy decision: the eight container rules, and a set of 100 policies.

// A benchmark is test code: a broken fixture should stop it loudly.
#![allow(clippy::unwrap_used)]
// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use infrapilot_core::ids::PolicyId;
use infrapilot_core::policy::{
    ActionKind, Condition, EvalContext, Operator, Policy, PolicyAction, PolicySet, Template,
};
use infrapilot_core::values::Labels;
use serde_json::{Value, json};

fn id(n: u128) -> PolicyId {
    PolicyId::from_uuid(uuid::Uuid::from_u128(n))
}

/// A container as `docker inspect` would describe it after conversion, compliant with all
/// eight rules.
fn container() -> Value {
    json!({
        "name": "shop-web-1",
        "image": "registry.example.com/shop/web:2.14.1",
        "created": 1_699_000_000,
        "config": {
            "user": "1000:1000",
            "env": ["NODE_ENV=production", "PORT=8080", "LOG_LEVEL=info"],
            "cmd": ["node", "server.js"],
            "working_dir": "/app",
            "exposed_ports": {"8080/tcp": {}},
            "healthcheck": {"test": ["CMD", "wget", "-qO-", "http://localhost:8080/health"], "interval": 30_000_000_000_u64},
        },
        "host_config": {
            "privileged": false,
            "network_mode": "shop_default",
            "restart_policy": {"name": "unless-stopped", "maximum_retry_count": 0},
            "memory": 536_870_912,
            "nano_cpus": 1_000_000_000,
            "cap_add": [],
            "port_bindings": {"8080/tcp": [{"host_ip": "", "host_port": "8080"}]},
            "log_config": {"type": "json-file", "config": {"max-size": "10m"}},
        },
        "mounts": [
            {"type": "volume", "source": "/var/lib/docker/volumes/shop_data/_data", "destination": "/app/data", "rw": true},
            {"type": "bind", "source": "/srv/shop/config", "destination": "/app/config", "rw": false},
        ],
        "labels": {
            "com.docker.compose.project": "shop",
            "com.docker.compose.service": "web",
            "team": "storefront",
        },
    })
}

/// The same container with three violations (a warn, two blocks).
fn violating() -> Value {
    let mut c = container();
    c["image"] = json!("nginx:latest");
    c["host_config"]["privileged"] = json!(true);
    c["mounts"][1]["source"] = json!("/var/run/docker.sock");
    c
}

fn eight_rules() -> PolicySet {
    PolicySet::compile(
        Template::CONTAINER_RULES
            .iter()
            .enumerate()
            .map(|(i, t)| t.policy(id(i as u128))),
    )
    .unwrap()
}

/// The eight rules plus 92 team-specific policies of typical shapes.
fn hundred_policies() -> PolicySet {
    let mut policies: Vec<Policy> = Template::CONTAINER_RULES
        .iter()
        .enumerate()
        .map(|(i, t)| t.policy(id(i as u128)))
        .collect();
    for i in 0..92u32 {
        let condition = match i % 4 {
            0 => Condition::all([
                Condition::leaf("labels.team", Operator::Equals, format!("team-{i}")),
                Condition::leaf(
                    "host_config.memory",
                    Operator::GreaterThan,
                    f64::from(i) * 1e9,
                ),
            ]),
            1 => Condition::leaf(
                "image",
                Operator::Matches,
                format!("^registry-{i}\\.example/"),
            ),
            2 => Condition::any([
                Condition::leaf(
                    "mounts.*.source",
                    Operator::Equals,
                    format!("/srv/forbidden-{i}"),
                ),
                Condition::leaf("config.env", Operator::Contains, format!("SECRET_{i}=")),
            ]),
            _ => Condition::not(Condition::leaf(
                "host_config.network_mode",
                Operator::In,
                json!([format!("net-{i}"), "shop_default", "bridge"]),
            )),
        };
        policies.push(Policy {
            id: id(1000 + u128::from(i)),
            name: format!("team rule {i}"),
            description: String::new(),
            condition,
            action: PolicyAction::Warn,
            message: None,
            priority: i32::try_from(i % 7).unwrap(),
            enabled: true,
            applies_to: Default::default(),
        });
    }
    PolicySet::compile(policies).unwrap()
}

fn bench(c: &mut Criterion) {
    let ctx = EvalContext::for_agent(
        Labels::parse_pairs(["env=production"]).unwrap(),
        1_700_000_000,
    );
    let eight = eight_rules();
    let hundred = hundred_policies();
    let ok = container();
    let bad = violating();
    assert!(
        eight
            .evaluate(&ok, ActionKind::Create, &ctx)
            .violations()
            .is_empty()
    );
    assert_eq!(
        eight
            .evaluate(&bad, ActionKind::Create, &ctx)
            .violations()
            .len(),
        3
    );

    c.bench_function("8 container rules, compliant container", |b| {
        b.iter(|| {
            eight.evaluate(
                black_box(&ok),
                black_box(ActionKind::Create),
                black_box(&ctx),
            )
        })
    });
    c.bench_function("8 container rules, 3 violations", |b| {
        b.iter(|| {
            eight.evaluate(
                black_box(&bad),
                black_box(ActionKind::Create),
                black_box(&ctx),
            )
        })
    });
    c.bench_function("100 policies, compliant container", |b| {
        b.iter(|| {
            hundred.evaluate(
                black_box(&ok),
                black_box(ActionKind::Create),
                black_box(&ctx),
            )
        })
    });
    c.bench_function("compile 8 container rules", |b| b.iter(eight_rules));
}

criterion_group!(benches, bench);
criterion_main!(benches);

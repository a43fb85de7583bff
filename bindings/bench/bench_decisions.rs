//! Per-decision cost in Rust, the baseline for `bindings/bench/run.sh`, which runs the same
//! policy set and resources through the Python and Node bindings.
//!
//! ```sh
//! cargo run --release -p infrapilot-sdk --example bench_decisions
//! ```

use std::hint::black_box;
use std::time::Instant;

use infrapilot_sdk::{PolicyEngine, SdkError};
use serde_json::Value;

const ITERATIONS: u32 = 200_000;

fn main() -> Result<(), SdkError> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");
    let read = |name: &str| {
        std::fs::read_to_string(format!("{dir}/{name}"))
            .map_err(|e| SdkError::InvalidJson {
                message: format!("{name}: {e}"),
            })
            .and_then(|text| infrapilot_sdk::parse_json(&text))
    };
    let engine = PolicyEngine::from_json(&read("policies.json")?)?;
    let cases = read("cases.json")?;
    for name in ["hardened", "privileged_root_latest"] {
        let case = &cases[name];
        let action = case["action"].as_str().unwrap_or("create");
        let (resource, context): (&Value, &Value) = (&case["resource"], &case["context"]);
        for _ in 0..ITERATIONS / 10 {
            black_box(engine.evaluate(resource, action, context)?);
        }
        let start = Instant::now();
        for _ in 0..ITERATIONS {
            black_box(engine.evaluate(black_box(resource), action, context)?);
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS);
        println!("rust   {name:<24} {ns:>9.0} ns/decision");
    }
    Ok(())
}

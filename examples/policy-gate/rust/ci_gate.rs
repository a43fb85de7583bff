//! A CI gate: evaluates every service of a docker-compose file against a policy set and
//! exits non-zero when any service would be blocked.
//!
//! ```sh
//! cargo run -p infrapilot-sdk --example ci_gate -- examples/policy-gate/compose.yaml \
//!     examples/policy-gate/policies.json
//! ```
//!
//! Exit codes: 0 allow or warn, 1 block, 2 the gate itself could not run (bad arguments,
//! unreadable files, an invalid policy set or compose file).

use std::process::ExitCode;

use infrapilot_sdk::{Decision, PolicyEngine, SdkError, evaluate_compose_with};
use serde_json::json;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [compose_path, policies_path] = args.as_slice() else {
        eprintln!("usage: ci_gate <compose.yaml> <policies.json>");
        return ExitCode::from(2);
    };
    match run(compose_path, policies_path) {
        Ok(Decision::Block) => ExitCode::from(1),
        Ok(_) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ci_gate: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(compose_path: &str, policies_path: &str) -> Result<Decision, String> {
    let read = |path: &str| std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"));
    let engine = PolicyEngine::from_json_str(&read(policies_path)?).map_err(describe)?;
    // CI runs for the environment the stack deploys to; `env` selects environment policies.
    let environment = std::env::var("DEPLOY_ENV").unwrap_or_else(|_| "production".to_owned());
    let context = json!({ "agent_labels": { "env": environment } });
    let answer = evaluate_compose_with(&engine, &read(compose_path)?, "create", &context)
        .map_err(describe)?;
    for service in &answer.services {
        println!(
            "{:<5} {}",
            service.evaluation.decision.as_str(),
            service.service
        );
        for v in &service.evaluation.violations {
            println!("      {:<5} {}: {}", v.action, v.policy_name, v.message);
        }
    }
    println!("decision: {}", answer.decision.as_str());
    Ok(answer.decision)
}

fn describe(e: SdkError) -> String {
    match &e {
        SdkError::InvalidPolicy { diagnostics, .. } if !diagnostics.is_empty() => diagnostics
            .iter()
            .map(|d| format!("policies{}: {}", d.pointer, d.message))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => e.to_string(),
    }
}

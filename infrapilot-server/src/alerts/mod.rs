//! Alerts: notification channels, and the engine that evaluates rules and delivers alerts.
//!
//! The rules and their evaluation are the core's (`infrapilot_core::alerts`); this module
//! brings the I/O: what the rules observe (the event inventory, agents' heartbeats, access
//! logs, certificates), the alert history and the deliveries through SMTP, Slack and
//! webhooks.

pub mod channels;
pub mod engine;

#[cfg(test)]
mod tests;

//! Log line parsing: levels, timestamps and nginx's access and error logs.
//!
//! Every parser takes a line as `&[u8]` (container output is arbitrary bytes; invalid UTF-8
//! is replaced, not refused) and never panics, whatever it is given. Level and timestamp
//! detection ([`analyze_line`]) always answers, with [`Level::Unknown`] when it cannot
//! tell; the nginx parsers answer a structured entry or a [`LogParseError`] saying what was
//! missing. [`summarize`] adds a host's requests up into [`AccessMetrics`].
//! [`write_csv_cell`] writes a cell of a log export that no spreadsheet or terminal runs.
//! [`NGINX_JSON_LOG_FORMAT`] is the access log format the agent configures nginx
//! with, and [`parse_json_access`] reads exactly that.

mod csv;
mod cursor;
mod error;
mod level;
mod line;
mod metrics;
mod nginx_access;
mod nginx_error;
mod timestamp;

pub use csv::write_csv_cell;
pub use error::LogParseError;
pub use level::Level;
pub use line::{LineInfo, analyze_line, detect_level};
pub use metrics::{AccessMetrics, RequestSample, summarize};
pub use nginx_access::{
    AccessLogEntry, NGINX_JSON_LOG_FORMAT, NGINX_JSON_LOG_FORMAT_NAME, PROXY_HOST_ID_VARIABLE,
    parse_access_line, parse_combined, parse_json_access,
};
pub use nginx_error::{NginxErrorEntry, parse_error_line};
pub use timestamp::{format_rfc3339_millis, leading_timestamp, parse_rfc3339};

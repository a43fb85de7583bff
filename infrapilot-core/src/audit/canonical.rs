//! The canonical byte encoding of an audit entry, the input of its chain hash.
//!
//! The encoding does not depend on serde, on field order or on the key order of a JSON
//! object, so an entry read back from any database hashes to the same value as when it was
//! written. Version 1, all integers big-endian:
//!
//! | field            | bytes                                                             |
//! |------------------|-------------------------------------------------------------------|
//! | version          | `u8` = 1                                                          |
//! | seq              | `u64`                                                             |
//! | time_us          | `i64`                                                             |
//! | org              | 16 (the UUID's bytes)                                             |
//! | actor            | `u8` tag: 0 system, 1 user, 2 api token, 3 agent; then 16 UUID bytes unless system |
//! | action           | `u64` length, UTF-8                                               |
//! | resource kind    | `u64` length, UTF-8                                               |
//! | resource id      | `u64` length, UTF-8                                               |
//! | source ip        | `u8` 0 (none); or 4 and 4 bytes; or 6 and 16 bytes                |
//! | outcome          | `u8`: 0 success, 1 failure, 2 denied                              |
//! | details          | `u64` length, then [`canonical_json`]                             |
//!
//! The entry's hash is `SHA-256(prev_hash ‖ encoding)` where `prev_hash` is the 32-byte hash
//! of the previous entry, or [`super::ChainHash::GENESIS`] for seq 1.
//!
//! An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is encoded as IPv6: PostgreSQL's `inet`
//! keeps the family too, so the value round-trips as written.

use std::net::IpAddr;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Actor, AuditEntry, ChainHash, Outcome};

/// The version byte that starts every canonical entry encoding.
pub const ENCODING_VERSION: u8 = 1;

/// Encodes `entry`, placed at `seq`, in canonical form (see the module documentation).
pub fn canonical_entry(seq: u64, entry: &AuditEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.push(ENCODING_VERSION);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&entry.time_us.to_be_bytes());
    out.extend_from_slice(entry.org.as_uuid().as_bytes());
    match entry.actor {
        Actor::System => out.push(0),
        Actor::User(id) => tagged_uuid(&mut out, 1, id.as_uuid()),
        Actor::ApiToken(id) => tagged_uuid(&mut out, 2, id.as_uuid()),
        Actor::Agent(id) => tagged_uuid(&mut out, 3, id.as_uuid()),
    }
    length_prefixed(&mut out, entry.action.as_str().as_bytes());
    length_prefixed(&mut out, entry.resource.kind.as_str().as_bytes());
    length_prefixed(&mut out, entry.resource.id.as_str().as_bytes());
    match entry.source_ip {
        None => out.push(0),
        Some(IpAddr::V4(v4)) => {
            out.push(4);
            out.extend_from_slice(&v4.octets());
        }
        Some(IpAddr::V6(v6)) => {
            out.push(6);
            out.extend_from_slice(&v6.octets());
        }
    }
    out.push(match entry.outcome {
        Outcome::Success => 0,
        Outcome::Failure => 1,
        Outcome::Denied => 2,
    });
    length_prefixed(&mut out, &canonical_json(&entry.details));
    out
}

/// The chain hash of `entry` placed at `seq` after an entry whose hash is `prev_hash`:
/// `SHA-256(prev_hash ‖ canonical_entry(seq, entry))`.
pub fn entry_hash(prev_hash: &ChainHash, seq: u64, entry: &AuditEntry) -> ChainHash {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(canonical_entry(seq, entry));
    ChainHash::from_bytes(hasher.finalize().into())
}

/// The canonical JSON text of `value`, as UTF-8 bytes.
///
/// The form: no whitespace; object keys sorted by their UTF-8 bytes (whatever order the map
/// holds them in, so it does not matter whether serde_json's `preserve_order` feature is on);
/// strings escaped as serde_json writes them (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other
/// characters below U+0020 as `\u00xx` with lowercase hex, everything else as raw UTF-8);
/// numbers as serde_json writes them (integers in decimal, floats in the shortest form that
/// reads back to the same `f64`, e.g. `1.0`, `1e+300`), with one exception: negative zero is
/// written `0.0`, because PostgreSQL's `jsonb` cannot keep the sign of zero.
///
/// For every value without negative zero this is byte for byte what `serde_json::to_vec`
/// writes for a `Value` with sorted maps. Details read back from `jsonb` hash the same as
/// when written: `jsonb` keeps numbers as exact decimals, and serde_json reads them back to
/// the same integer or `f64`.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_json(&mut out, value);
    out
}

fn tagged_uuid(out: &mut Vec<u8>, tag: u8, id: uuid::Uuid) {
    out.push(tag);
    out.extend_from_slice(id.as_bytes());
}

fn length_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn write_json(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            let negative_zero = n.as_f64().is_some_and(|f| f == 0.0 && f.is_sign_negative());
            if n.is_f64() && negative_zero {
                out.extend_from_slice(b"0.0");
            } else {
                out.extend_from_slice(n.to_string().as_bytes());
            }
        }
        Value::String(s) => write_json_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            fields.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in fields.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_string(out, key);
                out.push(b':');
                write_json(out, item);
            }
            out.push(b'}');
        }
    }
}

fn write_json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::audit::test_support::arb_json;

    fn check(value: Value, expected: &str) {
        assert_eq!(String::from_utf8(canonical_json(&value)).unwrap(), expected);
    }

    #[test]
    fn canonical_json_examples() {
        check(
            json!({"b": 1, "a": {"d": [1.5, -2, null], "c": "x"}}),
            r#"{"a":{"c":"x","d":[1.5,-2,null]},"b":1}"#,
        );
        check(
            json!("tab\there \"q\" \\ \u{1} é"),
            r#""tab\there \"q\" \\ \u0001 é""#,
        );
        check(json!(1.0), "1.0");
        check(json!(-0.0), "0.0");
        check(json!(1e300), "1e+300");
        check(json!(u64::MAX), "18446744073709551615");
        check(json!({"é": 1, "z": 2, "Z": 3}), r#"{"Z":3,"z":2,"é":1}"#);
        check(json!({}), "{}");
    }

    #[test]
    fn the_encoding_is_stable() {
        // Pins version 1 of the encoding: changing it breaks every stored chain.
        let entry: AuditEntry = serde_json::from_value(json!({
            "time_us": 1_700_000_000_000_001_i64,
            "org": "00000000-0000-0000-0000-000000000001",
            "actor": {"type": "agent", "id": "00000000-0000-0000-0000-000000000002"},
            "action": "proxy_host.create",
            "resource": {"kind": "proxy_host", "id": "web"},
            "source_ip": "::1",
            "outcome": "failure",
            "details": {"b": [1], "a": "x"},
        }))
        .unwrap();
        let bytes = canonical_entry(7, &entry);
        let mut expected = vec![1];
        expected.extend_from_slice(&7u64.to_be_bytes());
        expected.extend_from_slice(&1_700_000_000_000_001_i64.to_be_bytes());
        expected.extend_from_slice(&1u128.to_be_bytes());
        expected.push(3);
        expected.extend_from_slice(&2u128.to_be_bytes());
        for text in ["proxy_host.create", "proxy_host", "web"] {
            expected.extend_from_slice(&(text.len() as u64).to_be_bytes());
            expected.extend_from_slice(text.as_bytes());
        }
        expected.push(6);
        expected.extend_from_slice(&1u128.to_be_bytes());
        expected.push(1);
        let details = br#"{"a":"x","b":[1]}"#;
        expected.extend_from_slice(&(details.len() as u64).to_be_bytes());
        expected.extend_from_slice(details);
        assert_eq!(bytes, expected);
        assert_eq!(
            entry_hash(&ChainHash::GENESIS, 7, &entry).to_string(),
            hex::encode(Sha256::digest([&[0u8; 32][..], &expected].concat()))
        );
    }

    proptest! {
        #[test]
        fn canonical_json_is_what_serde_json_writes(value in arb_json()) {
            let canonical = canonical_json(&value);
            prop_assert_eq!(&canonical, &serde_json::to_vec(&value).unwrap());
            let back: Value = serde_json::from_slice(&canonical).unwrap();
            prop_assert_eq!(canonical_json(&back), canonical);
        }
    }
}

//! Free TCP ports for the servers tests start (nginx, Pebble, the server binary).
//!
//! A port is chosen now and bound later by another process, so two things can take it in
//! between: the same test choosing it twice (two `bind(":0")` calls in a row may return the
//! same port once the first listener is dropped — nginx then refuses "a duplicate listen"),
//! and any outgoing connection on the machine, which takes its source port from the kernel's
//! ephemeral range. [`free_ports`] holds every port it has chosen until it has them all, so
//! they are distinct, and chooses them below the ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`), where no connection is given one. A process
//! never hands out the same port twice. What remains is another test process choosing the
//! same port at random out of thousands; the tests that start Pebble retry on that.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

/// How many ports below the ephemeral range are chosen from.
const SPAN: u16 = 12_000;

/// Ports this process has handed out.
static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// The lowest ephemeral port, from the kernel (32768 when it cannot be read).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// `N` distinct TCP ports nobody listens on (on any interface), below the ephemeral range.
///
/// # Panics
/// If `N` such ports cannot be found — the range is full, which is a broken test machine.
#[must_use]
pub fn free_ports<const N: usize>() -> [u16; N] {
    let high = ephemeral_low();
    let low = high.saturating_sub(SPAN).max(1024);
    let span = high - low;
    assert!(
        span as usize > N,
        "no port range below {high} to choose from"
    );
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    let start = rand::random::<u16>() % span;
    let mut held = Vec::with_capacity(N);
    for step in 0..span {
        let port = low + (start + step) % span;
        if given.contains(&port) {
            continue;
        }
        // 0.0.0.0 conflicts with a listener on any address, so the port is free everywhere.
        if let Ok(listener) = TcpListener::bind(("0.0.0.0", port)) {
            held.push((port, listener));
            if held.len() == N {
                break;
            }
        }
    }
    assert_eq!(held.len(), N, "no {N} free ports in {low}..{high}");
    let ports: [u16; N] = std::array::from_fn(|i| held[i].0);
    given.extend(ports);
    ports
}

/// One free TCP port; see [`free_ports`] when a test needs several.
#[must_use]
pub fn free_port() -> u16 {
    let [port] = free_ports::<1>();
    port
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let mut seen = HashSet::new();
        for _ in 0..50 {
            for port in free_ports::<4>() {
                assert!(seen.insert(port), "port {port} was handed out twice");
                assert!(port < ephemeral_low());
                TcpListener::bind(("127.0.0.1", port)).unwrap();
            }
        }
    }
}

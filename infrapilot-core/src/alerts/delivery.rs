//! When a failed notification is tried again.

/// How many times a notification is tried before it is given up.
pub const MAX_DELIVERY_ATTEMPTS: u32 = 8;

/// The first retry's delay, in seconds; each later one doubles, up to [`MAX_RETRY_SECS`].
pub const FIRST_RETRY_SECS: u64 = 10;

/// The longest delay between two attempts, in seconds.
pub const MAX_RETRY_SECS: u64 = 1800;

/// The delay before the next attempt after `attempts` failed ones, in seconds; `None` once
/// [`MAX_DELIVERY_ATTEMPTS`] have been made (the delivery is given up).
pub fn retry_after(attempts: u32) -> Option<u64> {
    if attempts == 0 || attempts >= MAX_DELIVERY_ATTEMPTS {
        return None;
    }
    let doubling = 1_u64.checked_shl(attempts - 1).unwrap_or(u64::MAX);
    Some(
        FIRST_RETRY_SECS
            .saturating_mul(doubling)
            .min(MAX_RETRY_SECS),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_up_to_the_cap_then_stop() {
        let delays: Vec<Option<u64>> = (0..=9).map(retry_after).collect();
        assert_eq!(
            delays,
            [
                None,
                Some(10),
                Some(20),
                Some(40),
                Some(80),
                Some(160),
                Some(320),
                Some(640),
                None,
                None
            ]
        );
        assert!((1..MAX_DELIVERY_ATTEMPTS).all(|a| retry_after(a) <= Some(MAX_RETRY_SECS)));
    }
}

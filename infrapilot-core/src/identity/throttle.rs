use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// What a login throttle counts failures against.
///
/// The server keeps one [`ThrottleState`] per key (in memory or in a table keyed by
/// [`ThrottleKey::storage_key`]) and checks both the account's and the source's state before
/// it verifies a password.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum ThrottleKey {
    /// The login name as typed, trimmed and lower-cased, whether or not such an account exists
    /// (so the throttle does not reveal which accounts exist).
    Account(String),
    /// The source address: an IPv4 address, or the /64 network of an IPv6 address (one
    /// subscriber usually holds a whole /64, so counting single IPv6 addresses is useless).
    Source(IpAddr),
    /// An account's second factor (TOTP or backup codes), by account id, across every login
    /// and every endpoint that checks one. Only a correct second factor resets it, never a
    /// correct password, so someone holding the password cannot buy more guesses by signing in
    /// again.
    SecondFactor(String),
    /// The instance's one-time setup code.
    Setup,
}

impl ThrottleKey {
    /// The key for a login name.
    pub fn account(login: &str) -> Self {
        ThrottleKey::Account(login.trim().to_lowercase())
    }

    /// The key for an account's second factor, by its id.
    pub fn second_factor(account_id: impl std::fmt::Display) -> Self {
        ThrottleKey::SecondFactor(account_id.to_string())
    }

    /// The key for a source address (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn source(addr: IpAddr) -> Self {
        match addr.to_canonical() {
            IpAddr::V4(v4) => ThrottleKey::Source(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                ThrottleKey::Source(IpAddr::V6(network.into()))
            }
        }
    }

    /// A stable text form to store the key under: `account:<login>`, `source:<address>`,
    /// `second-factor:<account id>` or `setup`.
    pub fn storage_key(&self) -> String {
        match self {
            ThrottleKey::Account(login) => format!("account:{login}"),
            ThrottleKey::Source(addr) => format!("source:{addr}"),
            ThrottleKey::SecondFactor(id) => format!("second-factor:{id}"),
            ThrottleKey::Setup => "setup".to_owned(),
        }
    }
}

/// An exponential-backoff policy for one kind of key.
///
/// The first `free_failures` failures cost nothing. Failure number `free_failures + n`
/// (n ≥ 1) locks the key for `base_lockout_secs · 2^(n−1)` seconds, capped at
/// `max_lockout_secs`. A key whose last failure is older than `forget_after_secs` starts
/// again from zero; [`ThrottlePolicy::record_success`] resets it at once (the server calls it
/// for the account key only, never for a source key, so that one valid account does not
/// unlock a source that is guessing others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottlePolicy {
    /// Failures allowed before any lockout.
    pub free_failures: u32,
    /// Lockout after the first failure past the free ones, in seconds.
    pub base_lockout_secs: i64,
    /// Longest lockout, in seconds.
    pub max_lockout_secs: i64,
    /// Quiet time after which failures are forgotten, in seconds.
    pub forget_after_secs: i64,
}

impl ThrottlePolicy {
    /// For account keys: 5 free failures, then 30 s doubling up to 15 min; forgotten after a
    /// day. A guesser gets about 100 tries a day per account, while the owner, locked out by
    /// someone else, waits at most 15 minutes.
    pub const ACCOUNT: ThrottlePolicy = ThrottlePolicy {
        free_failures: 5,
        base_lockout_secs: 30,
        max_lockout_secs: 15 * 60,
        forget_after_secs: 24 * 3600,
    };

    /// For source keys: 20 free failures (a shared NAT has many users), then 30 s doubling up
    /// to 1 h; forgotten after a day.
    pub const SOURCE: ThrottlePolicy = ThrottlePolicy {
        free_failures: 20,
        base_lockout_secs: 30,
        max_lockout_secs: 3600,
        forget_after_secs: 24 * 3600,
    };

    /// For second factors: 5 free failures, then 15 min doubling up to 12 h; forgotten after a
    /// day. A six-digit code is guessed with 1 chance in 10^6 per try, so a guesser who holds
    /// the password gets a handful of tries an hour and a few dozen a day.
    pub const SECOND_FACTOR: ThrottlePolicy = ThrottlePolicy {
        free_failures: 5,
        base_lockout_secs: 15 * 60,
        max_lockout_secs: 12 * 3600,
        forget_after_secs: 24 * 3600,
    };

    /// For the setup code: 10 free failures, then 1 min doubling up to 1 h. The code is long and
    /// random; this only keeps a scan of it from running at line rate.
    pub const SETUP: ThrottlePolicy = ThrottlePolicy {
        free_failures: 10,
        base_lockout_secs: 60,
        max_lockout_secs: 3600,
        forget_after_secs: 24 * 3600,
    };

    /// The lockout, in seconds, that the `failures`-th consecutive failure earns.
    pub fn lockout_after(&self, failures: u32) -> i64 {
        let Some(excess) = failures.checked_sub(self.free_failures).filter(|n| *n > 0) else {
            return 0;
        };
        let max = self.max_lockout_secs.max(0);
        let factor = 1i64.checked_shl(excess - 1).filter(|f| *f > 0);
        let lockout = factor.map_or(max, |f| self.base_lockout_secs.max(0).saturating_mul(f));
        lockout.min(max)
    }

    /// Whether an attempt may be made at `now`.
    pub fn check(&self, state: &ThrottleState, now: i64) -> Decision {
        if now < state.locked_until {
            Decision::RetryAfter(state.locked_until - now)
        } else {
            Decision::Allowed
        }
    }

    /// Counts a failed attempt at `now` and sets the lockout it earns. Call it only for
    /// attempts that [`ThrottlePolicy::check`] allowed (refused attempts are not evaluated,
    /// so they are not failures).
    pub fn record_failure(&self, state: &mut ThrottleState, now: i64) {
        let forgotten = state
            .last_failure_at
            .is_some_and(|last| now.saturating_sub(last) > self.forget_after_secs);
        if forgotten {
            *state = ThrottleState::default();
        }
        state.failures = state.failures.saturating_add(1);
        state.last_failure_at = Some(now);
        let lockout = self.lockout_after(state.failures);
        if lockout > 0 {
            state.locked_until = now.saturating_add(lockout);
        }
    }

    /// Resets the key after a successful login.
    pub fn record_success(&self, state: &mut ThrottleState) {
        *state = ThrottleState::default();
    }
}

/// The failures recorded against one [`ThrottleKey`]. `Default` is a key with no failures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleState {
    /// Consecutive failures (since the last success or the last forgetting).
    pub failures: u32,
    /// Time of the last failure, unix seconds.
    pub last_failure_at: Option<i64>,
    /// No attempt is allowed before this unix time (0 when never locked).
    pub locked_until: i64,
}

/// The answer of [`ThrottlePolicy::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The attempt may go ahead.
    Allowed,
    /// Refuse the attempt; the key unlocks in this many seconds (at least 1). The server
    /// sends it as `Retry-After`.
    RetryAfter(i64),
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    const T0: i64 = 1_700_000_000;

    fn check(policy: &ThrottlePolicy, failures: u32, lockout: i64) {
        assert_eq!(
            policy.lockout_after(failures),
            lockout,
            "failure {failures}"
        );
    }

    #[test]
    fn account_backoff_table() {
        let p = ThrottlePolicy::ACCOUNT;
        for n in 0..=5 {
            check(&p, n, 0);
        }
        check(&p, 6, 30);
        check(&p, 7, 60);
        check(&p, 8, 120);
        check(&p, 9, 240);
        check(&p, 10, 480);
        check(&p, 11, 900);
        check(&p, 70, 900);
        check(&p, u32::MAX, 900);
    }

    #[test]
    fn lockout_cycle() {
        let p = ThrottlePolicy::ACCOUNT;
        let mut s = ThrottleState::default();
        for i in 0..5 {
            assert_eq!(p.check(&s, T0 + i), Decision::Allowed);
            p.record_failure(&mut s, T0 + i);
        }
        assert_eq!(p.check(&s, T0 + 5), Decision::Allowed);
        p.record_failure(&mut s, T0 + 5);
        assert_eq!(p.check(&s, T0 + 5), Decision::RetryAfter(30));
        assert_eq!(p.check(&s, T0 + 34), Decision::RetryAfter(1));
        assert_eq!(p.check(&s, T0 + 35), Decision::Allowed);
        p.record_failure(&mut s, T0 + 35);
        assert_eq!(p.check(&s, T0 + 35), Decision::RetryAfter(60));
        p.record_success(&mut s);
        assert_eq!(s, ThrottleState::default());
        assert_eq!(p.check(&s, T0 + 36), Decision::Allowed);
    }

    #[test]
    fn old_failures_are_forgotten() {
        let p = ThrottlePolicy::ACCOUNT;
        let mut s = ThrottleState::default();
        for i in 0..8 {
            p.record_failure(&mut s, T0 + i * 1000);
        }
        assert_eq!(s.failures, 8);
        p.record_failure(&mut s, T0 + 7000 + p.forget_after_secs + 1);
        assert_eq!(s.failures, 1);
    }

    #[test]
    fn keys() {
        assert_eq!(
            ThrottleKey::account("  Alice@Example.com "),
            ThrottleKey::Account("alice@example.com".into())
        );
        let v6: Ipv6Addr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(
            ThrottleKey::source(v6.into()).storage_key(),
            "source:2001:db8:1:2::"
        );
        let mapped: Ipv6Addr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            ThrottleKey::source(mapped.into()),
            ThrottleKey::Source(Ipv4Addr::new(192, 0, 2, 7).into())
        );
        assert_eq!(ThrottleKey::account("bob").storage_key(), "account:bob");
        let json = serde_json::to_string(&ThrottleKey::account("bob")).unwrap();
        assert_eq!(json, r#"{"kind":"account","value":"bob"}"#);
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut s = ThrottleState::default();
        ThrottlePolicy::SOURCE.record_failure(&mut s, T0);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<ThrottleState>(&json).unwrap(), s);
    }

    fn any_policy() -> impl Strategy<Value = ThrottlePolicy> {
        (0u32..30, 1i64..100_000, 1i64..1_000_000, 1i64..1_000_000).prop_map(
            |(free_failures, base_lockout_secs, max_lockout_secs, forget_after_secs)| {
                ThrottlePolicy {
                    free_failures,
                    base_lockout_secs,
                    max_lockout_secs,
                    forget_after_secs,
                }
            },
        )
    }

    proptest! {
        #[test]
        fn backoff_is_monotone_and_capped(p in any_policy(), n in any::<u32>()) {
            let this = p.lockout_after(n);
            let next = p.lockout_after(n.saturating_add(1));
            prop_assert!(this <= next, "{} then {}", this, next);
            prop_assert!(next <= p.max_lockout_secs);
            prop_assert!(this >= 0);
            if n <= p.free_failures {
                prop_assert_eq!(this, 0);
            }
        }

        #[test]
        fn success_always_resets(
            p in any_policy(),
            gaps in proptest::collection::vec(0i64..2_000, 0..40),
        ) {
            let mut s = ThrottleState::default();
            let mut now = T0;
            for gap in gaps {
                now += gap;
                p.record_failure(&mut s, now);
                prop_assert!(s.locked_until <= now + p.max_lockout_secs);
            }
            p.record_success(&mut s);
            prop_assert_eq!(s, ThrottleState::default());
            prop_assert_eq!(p.check(&s, now), Decision::Allowed);
        }
    }
}

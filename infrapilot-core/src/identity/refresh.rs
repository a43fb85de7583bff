use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{OpaqueToken, SecretHash, TokenKind};
use crate::ids::UserId;

/// Lifetimes of a login session (a refresh token family), in seconds.
///
/// A family ends at whichever comes first: `absolute_lifetime_secs` after the login (default
/// 30 days; the user must then log in again however active they were), or
/// `idle_timeout_secs` after the last rotation (default 14 days; a laptop left closed for
/// two weeks is logged out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshPolicy {
    /// How long a family may go without a rotation.
    pub idle_timeout_secs: i64,
    /// How long a family lives from its creation, however often it is rotated.
    pub absolute_lifetime_secs: i64,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 14 * 24 * 3600,
            absolute_lifetime_secs: 30 * 24 * 3600,
        }
    }
}

/// Why a family was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RevocationReason {
    /// The user logged out.
    Logout,
    /// A token of the family that had already been rotated was presented again: it was copied,
    /// so every token of the family is now worthless.
    Reuse,
    /// The user changed or reset their password.
    PasswordChanged,
    /// An administrator ended the session, or the account was disabled.
    Administrative,
}

/// When and why a family was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// Unix seconds.
    pub at: i64,
    /// Why.
    pub reason: RevocationReason,
}

/// The stored state of one login session: a family of refresh tokens of which only the newest
/// (`generation`) is valid.
///
/// The token given to the client is an [`OpaqueToken`] of kind [`TokenKind::Refresh`] whose id
/// is the family `id` and whose secret is the caller's random bytes; only its hash is kept.
/// Each [`RefreshFamily::rotate`] replaces the current token by a new one. Presenting any
/// other token with this family's id (an old generation, or a guess) is treated as reuse and
/// revokes the whole family: only someone who saw a token of the family knows its id, and
/// when both the thief and the user hold tokens the server cannot tell which is which.
/// Clients must therefore not run two refreshes concurrently.
///
/// The server stores the state as it is (it is `Serialize`/`Deserialize`, or one column per
/// field) and must write a rotated state back with a compare-and-swap on `generation`, so two
/// concurrent rotations of the same token cannot both succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshFamily {
    /// The family (session) id; also the `sid` of the access tokens it mints.
    pub id: Uuid,
    /// The user logged in.
    pub user: UserId,
    /// Login time, unix seconds.
    pub created_at: i64,
    /// End of the absolute lifetime, unix seconds.
    pub expires_at: i64,
    /// Time of the last rotation (or of the login), unix seconds; the idle timeout counts
    /// from here.
    pub last_rotated_at: i64,
    /// How many rotations happened; 0 right after login.
    pub generation: u32,
    /// Hash of the secret of the one valid token.
    pub current_hash: SecretHash,
    /// Set once the family is revoked; a revoked family never becomes active again.
    pub revoked: Option<Revocation>,
}

/// Why a refresh was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// The token is not a refresh token of this family (the caller looked up the wrong row).
    #[error("token {token_id} is not a refresh token of family {family_id}")]
    NotThisFamily {
        /// The family the caller passed.
        family_id: Uuid,
        /// The id in the presented token.
        token_id: Uuid,
    },
    /// A token other than the current one was presented. The family is now revoked: store
    /// `revoked` and end the session.
    #[error("refresh token of family {} was reused; the session is revoked", revoked.id)]
    Reused {
        /// The family's new, revoked state, to be stored.
        revoked: Box<RefreshFamily>,
    },
    /// The family had been revoked before.
    #[error("session was revoked at {} ({:?})", revocation.at, revocation.reason)]
    Revoked {
        /// When and why.
        revocation: Revocation,
    },
    /// The absolute lifetime is over.
    #[error("session expired at {expires_at} (now {now})")]
    Expired {
        /// End of the absolute lifetime.
        expires_at: i64,
        /// The time of the refresh.
        now: i64,
    },
    /// The family was not used for longer than the idle timeout.
    #[error("session idle since {last_rotated_at}, too long at {now}")]
    Idle {
        /// Last rotation.
        last_rotated_at: i64,
        /// The time of the refresh.
        now: i64,
    },
}

impl RefreshFamily {
    /// Starts a family at login: generation 0, with the caller's family `id` and random
    /// `secret`. Returns the state to store and the token to hand to the client.
    pub fn start(
        id: Uuid,
        user: UserId,
        now: i64,
        secret: [u8; 32],
        policy: &RefreshPolicy,
    ) -> (Self, OpaqueToken) {
        let token = OpaqueToken::new(TokenKind::Refresh, id, secret);
        let family = Self {
            id,
            user,
            created_at: now,
            expires_at: now.saturating_add(policy.absolute_lifetime_secs),
            last_rotated_at: now,
            generation: 0,
            current_hash: token.hash(),
            revoked: None,
        };
        (family, token)
    }

    /// Exchanges the `presented` token for a new one made from `new_secret`, at `now`.
    ///
    /// Checks, in order: the token belongs to this family ([`RefreshError::NotThisFamily`],
    /// state unchanged); the family is not revoked ([`RefreshError::Revoked`]); the token is
    /// the current one, else [`RefreshError::Reused`] carrying the revoked state; the absolute
    /// lifetime ([`RefreshError::Expired`]) and the idle timeout ([`RefreshError::Idle`]).
    /// On success returns the next state (generation + 1) and the token to hand out.
    pub fn rotate(
        &self,
        presented: &OpaqueToken,
        now: i64,
        new_secret: [u8; 32],
        policy: &RefreshPolicy,
    ) -> Result<(Self, OpaqueToken), RefreshError> {
        if presented.kind() != TokenKind::Refresh || presented.id() != self.id {
            return Err(RefreshError::NotThisFamily {
                family_id: self.id,
                token_id: presented.id(),
            });
        }
        if let Some(revocation) = self.revoked {
            return Err(RefreshError::Revoked { revocation });
        }
        if !presented.matches(&self.current_hash) {
            return Err(RefreshError::Reused {
                revoked: Box::new(self.revoke(now, RevocationReason::Reuse)),
            });
        }
        if now >= self.expires_at {
            return Err(RefreshError::Expired {
                expires_at: self.expires_at,
                now,
            });
        }
        if now > self.idle_expires_at(policy) {
            return Err(RefreshError::Idle {
                last_rotated_at: self.last_rotated_at,
                now,
            });
        }
        let token = OpaqueToken::new(TokenKind::Refresh, self.id, new_secret);
        let next = Self {
            last_rotated_at: now,
            generation: self.generation.saturating_add(1),
            current_hash: token.hash(),
            ..self.clone()
        };
        Ok((next, token))
    }

    /// The state after revoking the family at `now` for `reason`. An already revoked family
    /// keeps its first revocation.
    #[must_use]
    pub fn revoke(&self, now: i64, reason: RevocationReason) -> Self {
        Self {
            revoked: Some(self.revoked.unwrap_or(Revocation { at: now, reason })),
            ..self.clone()
        }
    }

    /// When the family ends if it is not rotated before (the idle timeout), unix seconds.
    pub fn idle_expires_at(&self, policy: &RefreshPolicy) -> i64 {
        self.last_rotated_at
            .saturating_add(policy.idle_timeout_secs)
            .min(self.expires_at)
    }

    /// Whether the family can still be rotated at `now` (not revoked, not expired, not idle),
    /// e.g. to list a user's active sessions.
    pub fn is_active(&self, now: i64, policy: &RefreshPolicy) -> bool {
        self.revoked.is_none() && now < self.expires_at && now <= self.idle_expires_at(policy)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const T0: i64 = 1_700_000_000;

    fn start() -> (RefreshFamily, OpaqueToken) {
        RefreshFamily::start(
            Uuid::from_u128(5),
            UserId::from_uuid(Uuid::from_u128(6)),
            T0,
            [1u8; 32],
            &RefreshPolicy::default(),
        )
    }

    #[test]
    fn rotation_advances_the_generation() {
        let policy = RefreshPolicy::default();
        let (f0, t0) = start();
        assert_eq!(t0.kind(), TokenKind::Refresh);
        assert_eq!(t0.id(), f0.id);
        assert!(f0.is_active(T0, &policy));
        let (f1, t1) = f0.rotate(&t0, T0 + 60, [2u8; 32], &policy).unwrap();
        assert_eq!(f1.generation, 1);
        assert_eq!(f1.last_rotated_at, T0 + 60);
        assert_eq!(f1.expires_at, f0.expires_at);
        assert!(t1.matches(&f1.current_hash));
        assert!(!t0.matches(&f1.current_hash));
        let (f2, _) = f1.rotate(&t1, T0 + 120, [3u8; 32], &policy).unwrap();
        assert_eq!(f2.generation, 2);
    }

    #[test]
    fn reuse_revokes_the_family() {
        let policy = RefreshPolicy::default();
        let (f0, t0) = start();
        let (f1, t1) = f0.rotate(&t0, T0 + 1, [2u8; 32], &policy).unwrap();
        let Err(RefreshError::Reused { revoked }) = f1.rotate(&t0, T0 + 2, [3u8; 32], &policy)
        else {
            panic!("old token accepted");
        };
        let expected = Revocation {
            at: T0 + 2,
            reason: RevocationReason::Reuse,
        };
        assert_eq!(revoked.revoked, Some(expected));
        assert_eq!(
            revoked.rotate(&t1, T0 + 3, [4u8; 32], &policy),
            Err(RefreshError::Revoked {
                revocation: expected
            })
        );
        assert!(!revoked.is_active(T0 + 3, &policy));
        // Revoking again keeps the first reason.
        let again = revoked.revoke(T0 + 9, RevocationReason::Logout);
        assert_eq!(again.revoked, Some(expected));
    }

    #[test]
    fn lifetimes() {
        let policy = RefreshPolicy {
            idle_timeout_secs: 100,
            absolute_lifetime_secs: 250,
        };
        let (f0, t0) = RefreshFamily::start(
            Uuid::from_u128(5),
            UserId::from_uuid(Uuid::from_u128(6)),
            T0,
            [1u8; 32],
            &policy,
        );
        assert_eq!(
            f0.rotate(&t0, T0 + 101, [2u8; 32], &policy),
            Err(RefreshError::Idle {
                last_rotated_at: T0,
                now: T0 + 101
            })
        );
        let (f1, t1) = f0.rotate(&t0, T0 + 100, [2u8; 32], &policy).unwrap();
        let (f2, t2) = f1.rotate(&t1, T0 + 200, [3u8; 32], &policy).unwrap();
        assert_eq!(f2.idle_expires_at(&policy), T0 + 250);
        assert!(!f2.is_active(T0 + 250, &policy));
        assert_eq!(
            f2.rotate(&t2, T0 + 250, [4u8; 32], &policy),
            Err(RefreshError::Expired {
                expires_at: T0 + 250,
                now: T0 + 250
            })
        );
    }

    #[test]
    fn a_token_of_another_family_changes_nothing() {
        let policy = RefreshPolicy::default();
        let (f0, _) = start();
        let stranger = OpaqueToken::new(TokenKind::Refresh, Uuid::from_u128(99), [1u8; 32]);
        let api = OpaqueToken::new(TokenKind::PersonalApiToken, f0.id, [1u8; 32]);
        for token in [stranger, api] {
            assert!(matches!(
                f0.rotate(&token, T0, [2u8; 32], &policy),
                Err(RefreshError::NotThisFamily { .. })
            ));
        }
    }

    #[test]
    fn state_round_trips_through_json() {
        let (f0, _) = start();
        let f0 = f0.revoke(T0 + 5, RevocationReason::PasswordChanged);
        let json = serde_json::to_string(&f0).unwrap();
        assert!(json.contains("\"password_changed\""), "{json}");
        assert_eq!(serde_json::from_str::<RefreshFamily>(&json).unwrap(), f0);
    }

    proptest! {
        /// After any number of honest rotations, presenting any earlier token revokes the
        /// family, and afterwards even the newest token is refused.
        #[test]
        fn reuse_always_revokes(rotations in 1usize..8, reused in any::<prop::sample::Index>()) {
            let policy = RefreshPolicy::default();
            let (mut family, token) = start();
            let mut tokens = vec![token];
            for i in 0..rotations {
                let now = T0 + 10 * (i as i64 + 1);
                let current = tokens[i].clone();
                let (next, token) = family.rotate(&current, now, [i as u8 + 10; 32], &policy).unwrap();
                family = next;
                tokens.push(token);
            }
            let old = &tokens[reused.index(rotations)];
            let now = T0 + 1000;
            let result = family.rotate(old, now, [200u8; 32], &policy);
            let Err(RefreshError::Reused { revoked }) = result else {
                return Err(TestCaseError::fail(format!("old token gave {result:?}")));
            };
            prop_assert_eq!(revoked.revoked.map(|r| r.reason), Some(RevocationReason::Reuse));
            let newest = &tokens[rotations];
            prop_assert!(
                matches!(revoked.rotate(newest, now, [201u8; 32], &policy), Err(RefreshError::Revoked { .. })),
                "newest token still works after reuse"
            );
        }
    }
}

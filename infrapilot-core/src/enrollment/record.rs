//! The server's record of an enrollment token, and redeeming it.

use std::fmt;
use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{EnrollmentToken, TokenPublicId, TokenSecret};
use crate::ids::OrgId;
use crate::values::Labels;

/// How a new token may be used. `Default` is: no labels, never expires, unlimited uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Labels every agent enrolled with the token receives.
    pub labels: Labels,
    /// The first moment (unix seconds) at which the token no longer works; `None` for never.
    pub expires_at: Option<i64>,
    /// How many agents may enroll with it; `None` for any number.
    pub max_uses: Option<NonZeroU32>,
}

/// The server's record of an enrollment token. It holds only a hash of the secret.
///
/// Fields are private because `uses` never exceeds `max_uses` and a new record never expires
/// before it was created; [`TokenRecordParts`] is the plain form for storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    org: OrgId,
    public_id: TokenPublicId,
    secret_hash: SecretHash,
    labels: Labels,
    expires_at: Option<i64>,
    max_uses: Option<NonZeroU32>,
    uses: u32,
    revoked: bool,
    created_at: i64,
}

/// Every field of a [`TokenRecord`], public, to move it in and out of storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecordParts {
    /// The organization agents enrolled with the token join.
    pub org: OrgId,
    /// The token's public id, unique across the installation.
    pub public_id: TokenPublicId,
    /// The SHA-256 hash of the token's secret.
    pub secret_hash: SecretHash,
    /// Labels every agent enrolled with the token receives.
    pub labels: Labels,
    /// The first moment (unix seconds) at which the token no longer works.
    pub expires_at: Option<i64>,
    /// How many agents may enroll with it.
    pub max_uses: Option<NonZeroU32>,
    /// How many agents have enrolled with it.
    pub uses: u32,
    /// Whether an administrator revoked it.
    pub revoked: bool,
    /// When it was created (unix seconds).
    pub created_at: i64,
}

/// Where a token stands at a given moment, for listing tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// It can be redeemed.
    Active,
    /// An administrator revoked it.
    Revoked,
    /// Its expiry time has passed.
    Expired,
    /// It was used as often as allowed.
    Exhausted,
}

impl TokenRecord {
    /// The record of a newly created `token` for `org`, created at `created_at` (unix
    /// seconds), with no uses yet.
    pub fn issue(
        org: OrgId,
        token: &EnrollmentToken,
        policy: TokenPolicy,
        created_at: i64,
    ) -> Result<Self, RecordError> {
        if let Some(expires_at) = policy.expires_at
            && expires_at <= created_at
        {
            return Err(RecordError::ExpiresBeforeCreation {
                expires_at,
                created_at,
            });
        }
        Ok(Self {
            org,
            public_id: token.public_id,
            secret_hash: SecretHash::of(&token.secret),
            labels: policy.labels,
            expires_at: policy.expires_at,
            max_uses: policy.max_uses,
            uses: 0,
            revoked: false,
            created_at,
        })
    }

    /// Rebuilds a record read from storage, checking that `uses` does not exceed `max_uses`.
    ///
    /// Unlike [`TokenRecord::issue`], an expiry before creation is accepted: the record
    /// exists, it is simply expired.
    pub fn from_parts(parts: TokenRecordParts) -> Result<Self, RecordError> {
        if let Some(max_uses) = parts.max_uses
            && parts.uses > max_uses.get()
        {
            return Err(RecordError::UsesExceedMax {
                uses: parts.uses,
                max_uses,
            });
        }
        Ok(Self {
            org: parts.org,
            public_id: parts.public_id,
            secret_hash: parts.secret_hash,
            labels: parts.labels,
            expires_at: parts.expires_at,
            max_uses: parts.max_uses,
            uses: parts.uses,
            revoked: parts.revoked,
            created_at: parts.created_at,
        })
    }

    /// Takes the record apart for storage.
    pub fn into_parts(self) -> TokenRecordParts {
        TokenRecordParts {
            org: self.org,
            public_id: self.public_id,
            secret_hash: self.secret_hash,
            labels: self.labels,
            expires_at: self.expires_at,
            max_uses: self.max_uses,
            uses: self.uses,
            revoked: self.revoked,
            created_at: self.created_at,
        }
    }

    /// This record, revoked. Revoking is final: there is no way back.
    #[must_use]
    pub fn revoke(&self) -> Self {
        Self {
            revoked: true,
            ..self.clone()
        }
    }

    /// Where the token stands at `now` (unix seconds). When several apply, revoked wins over
    /// expired, which wins over exhausted: the same order [`redeem`] reports them in.
    pub fn status(&self, now: i64) -> TokenStatus {
        if self.revoked {
            TokenStatus::Revoked
        } else if self.expires_at.is_some_and(|at| now >= at) {
            TokenStatus::Expired
        } else if self.max_uses.is_some_and(|max| self.uses >= max.get()) {
            TokenStatus::Exhausted
        } else {
            TokenStatus::Active
        }
    }

    /// The organization agents enrolled with the token join.
    pub fn org(&self) -> OrgId {
        self.org
    }

    /// The token's public id.
    pub fn public_id(&self) -> TokenPublicId {
        self.public_id
    }

    /// The hash of the token's secret.
    pub fn secret_hash(&self) -> &SecretHash {
        &self.secret_hash
    }

    /// Labels every agent enrolled with the token receives.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// The first moment (unix seconds) at which the token no longer works.
    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }

    /// How many agents may enroll with it.
    pub fn max_uses(&self) -> Option<NonZeroU32> {
        self.max_uses
    }

    /// How many agents have enrolled with it.
    pub fn uses(&self) -> u32 {
        self.uses
    }

    /// Whether it was revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked
    }

    /// When it was created (unix seconds).
    pub fn created_at(&self) -> i64 {
        self.created_at
    }
}

/// Redeems a token: `record` is what the server found under the presented public id (`None`
/// when nothing was found), `presented` the secret the agent sent, `now` the time in unix
/// seconds. Returns the record with one more use, which the caller stores.
///
/// Checks, in order: the secret (a wrong secret is reported as [`RedeemError::Unknown`],
/// exactly like a missing record, so a guesser learns neither that the id exists nor in
/// which state its token is); revoked; expired (`now >= expires_at`); exhausted
/// (`uses >= max_uses`). The secret is compared as SHA-256 hashes in constant time, and a
/// missing record is compared against a dummy hash so both "unknown" paths do similar work.
///
/// Two agents may redeem the same token at once: store the result with a compare-and-swap
/// on the previous `uses` (`UPDATE … WHERE uses = $old`) and retry on conflict, or `max_uses`
/// can be overrun.
pub fn redeem(
    record: Option<&TokenRecord>,
    presented: &TokenSecret,
    now: i64,
) -> Result<TokenRecord, RedeemError> {
    let presented = SecretHash::of(presented);
    let Some(record) = record else {
        let _ = std::hint::black_box(presented.matches(&SecretHash([0; 32])));
        return Err(RedeemError::Unknown);
    };
    if !presented.matches(&record.secret_hash) {
        return Err(RedeemError::Unknown);
    }
    match record.status(now) {
        TokenStatus::Revoked => Err(RedeemError::Revoked {
            public_id: record.public_id,
        }),
        TokenStatus::Expired => Err(RedeemError::Expired {
            expires_at: record.expires_at.unwrap_or(now),
            now,
        }),
        TokenStatus::Exhausted => Err(RedeemError::Exhausted {
            max_uses: record.max_uses.map_or(record.uses, NonZeroU32::get),
        }),
        TokenStatus::Active => {
            let uses = record
                .uses
                .checked_add(1)
                .ok_or(RedeemError::Exhausted { max_uses: u32::MAX })?;
            Ok(TokenRecord {
                uses,
                ..record.clone()
            })
        }
    }
}

/// Why a token could not be redeemed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedeemError {
    /// No token has the presented id, or the secret is wrong. The two are deliberately not
    /// told apart.
    #[error("unknown enrollment token: check that it was copied completely")]
    Unknown,
    /// An administrator revoked the token.
    #[error("enrollment token {public_id} was revoked; ask for a new one")]
    Revoked {
        /// The token's public id.
        public_id: TokenPublicId,
    },
    /// The token's expiry time has passed.
    #[error(
        "the enrollment token expired at {expires_at} (unix seconds; now {now}); ask for a new one"
    )]
    Expired {
        /// When it expired (unix seconds).
        expires_at: i64,
        /// The time of the attempt (unix seconds).
        now: i64,
    },
    /// The token was used as often as allowed.
    #[error("the enrollment token was already used {max_uses} times, its limit; ask for a new one")]
    Exhausted {
        /// The limit that was reached.
        max_uses: u32,
    },
}

/// Why a [`TokenRecord`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// A new token would be expired from the start.
    #[error(
        "the token would expire at {expires_at}, not after its creation at {created_at} (unix seconds)"
    )]
    ExpiresBeforeCreation {
        /// The requested expiry.
        expires_at: i64,
        /// The creation time.
        created_at: i64,
    },
    /// A stored record claims more uses than it allows.
    #[error("the record has {uses} uses, more than its limit of {max_uses}")]
    UsesExceedMax {
        /// The stored number of uses.
        uses: u32,
        /// The stored limit.
        max_uses: NonZeroU32,
    },
}

/// The SHA-256 hash of a token secret: what the server stores instead of the secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// The hash of `secret`.
    pub fn of(secret: &TokenSecret) -> Self {
        Self(Sha256::digest(secret.expose()).into())
    }

    /// Wraps a hash read from storage.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The hash's bytes, for storage.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether the two hashes are equal, compared in constant time.
    pub fn matches(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({})", hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;
    use crate::enrollment::CaFingerprint;

    const NOW: i64 = 1_700_000_000;

    fn token(secret: u8) -> EnrollmentToken {
        EnrollmentToken {
            ca_fingerprint: CaFingerprint::of_der(b"ca"),
            public_id: TokenPublicId::from_bytes([7; 8]),
            secret: TokenSecret::from_bytes([secret; 32]),
        }
    }

    fn record(expires_at: Option<i64>, max_uses: Option<u32>) -> TokenRecord {
        let policy = TokenPolicy {
            labels: Labels::parse_pairs(["env=prod"]).unwrap(),
            expires_at,
            max_uses: max_uses.and_then(NonZeroU32::new),
        };
        TokenRecord::issue(OrgId::from_uuid(Uuid::from_u128(1)), &token(1), policy, NOW).unwrap()
    }

    fn secret(n: u8) -> TokenSecret {
        TokenSecret::from_bytes([n; 32])
    }

    #[test]
    fn redeeming_counts_uses() {
        let r = record(Some(NOW + 60), Some(2));
        assert_eq!(r.status(NOW), TokenStatus::Active);
        let once = redeem(Some(&r), &secret(1), NOW).unwrap();
        assert_eq!(once.uses(), 1);
        assert_eq!(once.labels().get("env").unwrap().as_str(), "prod");
        let twice = redeem(Some(&once), &secret(1), NOW + 59).unwrap();
        assert_eq!(twice.uses(), 2);
        assert_eq!(twice.status(NOW), TokenStatus::Exhausted);
        assert_eq!(
            redeem(Some(&twice), &secret(1), NOW),
            Err(RedeemError::Exhausted { max_uses: 2 })
        );
    }

    #[test]
    fn every_refusal() {
        let r = record(Some(NOW + 60), Some(1));
        assert_eq!(redeem(None, &secret(1), NOW), Err(RedeemError::Unknown));
        assert_eq!(redeem(Some(&r), &secret(2), NOW), Err(RedeemError::Unknown));
        assert_eq!(
            redeem(Some(&r), &secret(1), NOW + 60),
            Err(RedeemError::Expired {
                expires_at: NOW + 60,
                now: NOW + 60
            })
        );
        assert!(redeem(Some(&r), &secret(1), NOW + 59).is_ok());
        let revoked = r.revoke();
        assert_eq!(revoked.status(NOW), TokenStatus::Revoked);
        assert_eq!(
            redeem(Some(&revoked), &secret(1), NOW),
            Err(RedeemError::Revoked {
                public_id: TokenPublicId::from_bytes([7; 8])
            })
        );
        // Without the secret, a revoked or expired token looks like any unknown one.
        assert_eq!(
            redeem(Some(&revoked), &secret(2), NOW),
            Err(RedeemError::Unknown)
        );
        assert_eq!(
            redeem(Some(&r), &secret(2), NOW + 999),
            Err(RedeemError::Unknown)
        );
        // Revoked wins over expired, which wins over exhausted.
        let used = redeem(Some(&r), &secret(1), NOW).unwrap();
        assert!(matches!(
            redeem(Some(&used), &secret(1), NOW + 60),
            Err(RedeemError::Expired { .. })
        ));
        assert!(matches!(
            redeem(Some(&used.revoke()), &secret(1), NOW + 60),
            Err(RedeemError::Revoked { .. })
        ));
    }

    #[test]
    fn unlimited_tokens_stop_at_the_counter_limit() {
        let parts = TokenRecordParts {
            uses: u32::MAX,
            ..record(None, None).into_parts()
        };
        let r = TokenRecord::from_parts(parts).unwrap();
        assert_eq!(r.status(NOW), TokenStatus::Active);
        assert_eq!(
            redeem(Some(&r), &secret(1), NOW),
            Err(RedeemError::Exhausted { max_uses: u32::MAX })
        );
    }

    #[test]
    fn records_are_checked() {
        let org = OrgId::from_uuid(Uuid::from_u128(1));
        let policy = TokenPolicy {
            expires_at: Some(NOW),
            ..TokenPolicy::default()
        };
        assert_eq!(
            TokenRecord::issue(org, &token(1), policy, NOW),
            Err(RecordError::ExpiresBeforeCreation {
                expires_at: NOW,
                created_at: NOW
            })
        );
        let parts = TokenRecordParts {
            uses: 3,
            ..record(None, Some(2)).into_parts()
        };
        let err = TokenRecord::from_parts(parts.clone()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the record has 3 uses, more than its limit of 2"
        );
        let ok = TokenRecordParts { uses: 2, ..parts };
        assert_eq!(
            TokenRecord::from_parts(ok.clone()).unwrap().into_parts(),
            ok
        );
    }

    #[test]
    fn only_the_hash_is_stored() {
        let r = record(None, None);
        assert_eq!(
            r.secret_hash().as_bytes(),
            &<[u8; 32]>::from(Sha256::digest([1u8; 32]))
        );
        assert!(!format!("{r:?}").contains(&hex::encode([1u8; 32])));
    }

    /// One attempt in a random sequence: which secret, and how far in time from creation.
    fn arb_attempts() -> impl Strategy<Value = Vec<(bool, i64)>> {
        prop::collection::vec((prop::bool::weighted(0.8), -10..200i64), 0..40)
    }

    proptest! {
        #[test]
        fn uses_never_exceed_max_uses(
            max in proptest::option::of(1..10u32),
            expires in proptest::option::of(1..150i64),
            attempts in arb_attempts(),
        ) {
            let mut r = record(expires.map(|e| NOW + e), max);
            for (right_secret, dt) in attempts {
                let presented = secret(if right_secret { 1 } else { 2 });
                match redeem(Some(&r), &presented, NOW + dt) {
                    Ok(next) => {
                        prop_assert!(right_secret);
                        prop_assert_eq!(next.uses(), r.uses() + 1);
                        prop_assert!(expires.is_none_or(|e| dt < e));
                        r = next;
                    }
                    Err(RedeemError::Unknown) => prop_assert!(!right_secret),
                    Err(_) => prop_assert!(right_secret),
                }
                if let Some(max) = max {
                    prop_assert!(r.uses() <= max);
                }
            }
        }

        #[test]
        fn redeem_after_revoke_always_fails(
            max in proptest::option::of(1..10u32),
            uses in 0..10u32,
            presented in any::<u8>(),
            dt in any::<i64>(),
        ) {
            let parts = TokenRecordParts {
                uses: max.map_or(uses, |m| uses.min(m)),
                ..record(None, max).into_parts()
            };
            let revoked = TokenRecord::from_parts(parts).unwrap().revoke();
            let result = redeem(Some(&revoked), &secret(presented), NOW.saturating_add(dt));
            prop_assert!(result.is_err());
            prop_assert_eq!(result.is_err_and(|e| e == RedeemError::Unknown), presented != 1);
        }
    }
}

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::values::ValueError;

/// Cost parameters of argon2id password hashing.
///
/// [`PasswordParams::OWASP`] (also the `Default`) follows the OWASP Password Storage Cheat
/// Sheet's first argon2id configuration: 19 MiB of memory (`m=19456` KiB), 2 iterations
/// (`t=2`), 1 lane (`p=1`). On one core of a current server that takes in the order of 20–40 ms
/// per hash, which bounds how fast the server itself can be made to check passwords, so the
/// login throttle ([`super::ThrottlePolicy`]) must run before verification. The parameters
/// are written into every PHC string, so raising them later only affects new hashes;
/// [`needs_rehash`] tells the server when to upgrade a stored hash after a successful login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    memory_kib: u32,
    iterations: u32,
    lanes: u32,
}

impl PasswordParams {
    /// OWASP's recommendation: `m=19456` KiB (19 MiB), `t=2`, `p=1`.
    pub const OWASP: PasswordParams = PasswordParams {
        memory_kib: 19 * 1024,
        iterations: 2,
        lanes: 1,
    };

    /// Checks custom parameters against argon2's limits (memory at least 8 KiB per lane,
    /// at least one iteration, 1 to 2²⁴−1 lanes).
    pub fn new(memory_kib: u32, iterations: u32, lanes: u32) -> Result<Self, PasswordError> {
        Params::new(memory_kib, iterations, lanes, None).map_err(|e| {
            PasswordError::InvalidParams {
                memory_kib,
                iterations,
                lanes,
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            memory_kib,
            iterations,
            lanes,
        })
    }

    /// The cheapest parameters argon2 accepts (8 KiB, one iteration, one lane), for tests only:
    /// a hash with them is fast to compute and so fast to guess.
    pub const fn for_tests() -> Self {
        Self {
            memory_kib: 8,
            iterations: 1,
            lanes: 1,
        }
    }

    /// Memory cost in KiB (`m`).
    pub const fn memory_kib(&self) -> u32 {
        self.memory_kib
    }

    /// Number of passes over memory (`t`).
    pub const fn iterations(&self) -> u32 {
        self.iterations
    }

    /// Degree of parallelism (`p`).
    pub const fn lanes(&self) -> u32 {
        self.lanes
    }

    fn hasher(&self) -> Result<Argon2<'static>, PasswordError> {
        let params =
            Params::new(self.memory_kib, self.iterations, self.lanes, None).map_err(|e| {
                PasswordError::InvalidParams {
                    memory_kib: self.memory_kib,
                    iterations: self.iterations,
                    lanes: self.lanes,
                    reason: e.to_string(),
                }
            })?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

impl Default for PasswordParams {
    fn default() -> Self {
        Self::OWASP
    }
}

/// Why a password could not be hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The cost parameters are outside argon2's limits.
    #[error("invalid argon2 parameters m={memory_kib} t={iterations} p={lanes}: {reason}")]
    InvalidParams {
        /// Memory cost in KiB.
        memory_kib: u32,
        /// Iterations.
        iterations: u32,
        /// Lanes.
        lanes: u32,
        /// argon2's explanation.
        reason: String,
    },
    /// argon2 refused to hash (it should not happen with valid parameters and a 16-byte salt).
    #[error("argon2 failed: {reason}")]
    Hashing {
        /// argon2's explanation.
        reason: String,
    },
}

/// A new password that passed the policy, ready to be hashed with [`hash_password`].
///
/// The policy: 12 to 128 characters and at most 1024 bytes; not one character repeated
/// throughout; not equal (ignoring case and surrounding spaces) to the account's e-mail
/// address, the part of it before `@`, or the user name. Composition rules (a digit, a symbol)
/// are deliberately absent, following NIST SP 800-63B. `Debug` does not print the password,
/// and neither do the errors.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

/// Shortest accepted password, in characters.
pub const PASSWORD_MIN_CHARS: usize = 12;
/// Longest accepted password, in characters.
pub const PASSWORD_MAX_CHARS: usize = 128;
/// Longest accepted password, in bytes of UTF-8 (bounds hashing work for non-ASCII input).
pub const PASSWORD_MAX_BYTES: usize = 1024;

impl Password {
    /// Checks `candidate` against the policy. `identifiers` are the account's e-mail address
    /// and user name (or any other string the password must not equal).
    ///
    /// A refusal is a [`ValueError`] for field `password` whose value is `[redacted]` and whose
    /// reason says what to change.
    pub fn new(candidate: &str, identifiers: &[&str]) -> Result<Self, ValueError> {
        let err = |reason: &str| ValueError::new("password", "[redacted]", reason);
        // The byte bound first, so a huge input is refused before its characters are counted.
        let too_long = format!(
            "must be at most {PASSWORD_MAX_CHARS} characters ({PASSWORD_MAX_BYTES} bytes) long"
        );
        if candidate.len() > PASSWORD_MAX_BYTES {
            return Err(err(&too_long));
        }
        let chars = candidate.chars().count();
        if chars < PASSWORD_MIN_CHARS {
            return Err(err(&format!(
                "must be at least {PASSWORD_MIN_CHARS} characters long"
            )));
        }
        if chars > PASSWORD_MAX_CHARS {
            return Err(err(&too_long));
        }
        let mut all = candidate.chars();
        if let Some(first) = all.next()
            && all.all(|c| c == first)
        {
            return Err(err("must not be one character repeated"));
        }
        let folded = candidate.trim().to_lowercase();
        for id in identifiers {
            let id = id.trim().to_lowercase();
            let local = id.split_once('@').map(|(local, _)| local);
            if !id.is_empty() && (folded == id || local == Some(folded.as_str())) {
                return Err(err("must not be your e-mail address or user name"));
            }
        }
        Ok(Self(candidate.to_owned()))
    }

    /// The password text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// Hashes `password` with argon2id (version 0x13) under `params`, with the caller's random
/// 16-byte `salt`, and returns the PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) to
/// store.
pub fn hash_password(
    password: &Password,
    salt: &[u8; 16],
    params: &PasswordParams,
) -> Result<String, PasswordError> {
    let hashing = |e: argon2::password_hash::Error| PasswordError::Hashing {
        reason: e.to_string(),
    };
    let salt = SaltString::encode_b64(salt).map_err(hashing)?;
    let hash = params
        .hasher()?
        .hash_password(password.as_str().as_bytes(), &salt)
        .map_err(hashing)?;
    Ok(hash.to_string())
}

/// Whether `candidate` is the password behind the PHC string `phc`.
///
/// Only argon2id hashes are accepted; anything unparsable, of another algorithm, or a
/// candidate longer than [`PASSWORD_MAX_BYTES`] yields `false`. The comparison of the computed
/// and the stored hash is constant-time. The cost is the one recorded in `phc`.
pub fn verify_password(phc: &str, candidate: &str) -> bool {
    if candidate.len() > PASSWORD_MAX_BYTES {
        return false;
    }
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    if hash.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    Argon2::default()
        .verify_password(candidate.as_bytes(), &hash)
        .is_ok()
}

/// Whether the stored `phc` was made with other parameters than `params` (or is not an
/// argon2id v19 hash at all), so the server should re-hash the password, which it has in hand
/// right after a successful [`verify_password`].
pub fn needs_rehash(phc: &str, params: &PasswordParams) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return true;
    };
    if hash.algorithm != Algorithm::Argon2id.ident() || hash.version != Some(0x13) {
        return true;
    }
    let Ok(stored) = Params::try_from(&hash) else {
        return true;
    };
    (stored.m_cost(), stored.t_cost(), stored.p_cost())
        != (params.memory_kib, params.iterations, params.lanes)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const IDS: &[&str] = &["Alice.Smith@example.com", "asmith-the-admin"];

    fn check(candidate: &str, expected: Result<(), &str>) {
        match (Password::new(candidate, IDS), expected) {
            (Ok(p), Ok(())) => assert_eq!(p.as_str(), candidate),
            (Err(e), Err(reason)) => {
                assert!(e.reason().contains(reason), "{candidate:?}: {e}");
                assert_eq!(e.field(), "password");
                assert_eq!(e.value(), "[redacted]");
            }
            (got, want) => panic!("{candidate:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn policy() {
        check("correct horse battery", Ok(()));
        check("twelve chars", Ok(()));
        check("elevenchars", Err("at least 12"));
        check("ééééééééééé", Err("at least 12"));
        check(&"ab".repeat(64), Ok(()));
        check(&"ab".repeat(64).replace("ab", "abc"), Err("at most 128"));
        check(&"€$".repeat(64), Ok(()));
        check(&"😀🙃".repeat(64), Ok(()));
        check(&"x y".repeat(1000), Err("1024 bytes"));
        check(&"a".repeat(20), Err("repeated"));
        check("ALICE.SMITH@EXAMPLE.COM", Err("e-mail"));
        check("alice.smith ", Err("e-mail"));
        check(" ASMITH-the-admin ", Err("user name"));
        check("asmith-asmith", Ok(()));
        assert!(Password::new("alice.smith@example.com", &[""]).is_ok());
        let p = Password::new("correct horse battery", &[]).unwrap();
        assert_eq!(format!("{p:?}"), "Password([redacted])");
    }

    #[test]
    fn hash_and_verify() {
        let p = Password::new("correct horse battery", &[]).unwrap();
        let params = PasswordParams::for_tests();
        let phc = hash_password(&p, &[7u8; 16], &params).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert!(verify_password(&phc, "correct horse battery"));
        assert!(!verify_password(&phc, "correct horse batterY"));
        assert!(!verify_password(&phc, ""));
        assert!(!verify_password(
            "not a phc string",
            "correct horse battery"
        ));
        let argon2i = phc.replace("$argon2id$", "$argon2i$");
        assert!(!verify_password(&argon2i, "correct horse battery"));
        // Deterministic given the salt; a different salt gives a different hash.
        assert_eq!(hash_password(&p, &[7u8; 16], &params).unwrap(), phc);
        assert_ne!(hash_password(&p, &[8u8; 16], &params).unwrap(), phc);
    }

    #[test]
    fn rehash_when_params_change() {
        let p = Password::new("correct horse battery", &[]).unwrap();
        let phc = hash_password(&p, &[1u8; 16], &PasswordParams::for_tests()).unwrap();
        assert!(!needs_rehash(&phc, &PasswordParams::for_tests()));
        assert!(needs_rehash(&phc, &PasswordParams::OWASP));
        assert!(needs_rehash("garbage", &PasswordParams::OWASP));
    }

    #[test]
    fn params_are_checked() {
        assert_eq!(PasswordParams::default(), PasswordParams::OWASP);
        assert_eq!(PasswordParams::OWASP.memory_kib(), 19_456);
        assert!(PasswordParams::new(19_456, 2, 1).is_ok());
        let err = PasswordParams::new(4, 1, 1).unwrap_err();
        assert!(
            matches!(err, PasswordError::InvalidParams { memory_kib: 4, .. }),
            "{err}"
        );
        assert!(PasswordParams::new(64, 0, 1).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn verify_accepts_exactly_the_hashed_password(
            password in "[ -~]{12,40}",
            other in "[ -~]{0,40}",
            salt in any::<[u8; 16]>(),
        ) {
            prop_assume!(Password::new(&password, &[]).is_ok());
            let p = Password::new(&password, &[]).unwrap();
            let phc = hash_password(&p, &salt, &PasswordParams::for_tests()).unwrap();
            prop_assert!(verify_password(&phc, &password));
            prop_assert_eq!(verify_password(&phc, &other), other == password);
        }
    }
}

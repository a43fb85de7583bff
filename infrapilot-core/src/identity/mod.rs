//! Identity primitives: passwords, access tokens, refresh token families, TOTP and backup
//! codes, login throttling, and opaque API/invitation tokens.
//!
//! Everything here is pure. Time comes in as unix seconds (`i64`) and randomness as byte
//! arrays the caller draws from the OS RNG, so the server decides where both come from and
//! tests are deterministic. What the server stores is always a hash or a PHC string, never a
//! token or password itself (the TOTP secret is the exception: codes are computed from it, so
//! it is kept encrypted at rest).
//!
//! A login, as the server wires it:
//! 1. [`ThrottlePolicy::check`] for the [`ThrottleKey::account`] and [`ThrottleKey::source`]
//!    keys; refuse with `Retry-After` if either is locked.
//! 2. [`verify_password`] against the stored PHC string; record the outcome with
//!    [`ThrottlePolicy::record_failure`] on both keys, or
//!    [`ThrottlePolicy::record_success`] on the account key.
//! 3. With TOTP enabled: issue a short [`TokenType::MfaPending`] token, then accept
//!    [`Totp::verify`] (storing the returned step) or [`use_backup_code`].
//! 4. [`RefreshFamily::start`] and [`issue`] an access token with [`Claims::access`].
//!
//! Later requests [`verify`] the access token; when it expires the client presents its refresh
//! token to [`RefreshFamily::rotate`].

mod backup_codes;
mod base32;
mod jwt;
mod opaque;
mod password;
mod refresh;
mod secret_hash;
mod throttle;
mod totp;

pub use backup_codes::{
    BACKUP_CODE_COUNT, BACKUP_CODE_LEN, BackupCode, generate_backup_codes, use_backup_code,
};
pub use jwt::{
    ACCESS_TOKEN_TTL_SECS, Claims, JWT_LEEWAY_SECS, JWT_MAX_LEN, JwtKey, TokenError, TokenType,
    issue, verify, verify_as,
};
pub use opaque::{OpaqueToken, TokenKind};
pub use password::{
    PASSWORD_MAX_BYTES, PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS, Password, PasswordError,
    PasswordParams, hash_password, needs_rehash, verify_password,
};
pub use refresh::{RefreshError, RefreshFamily, RefreshPolicy, Revocation, RevocationReason};
pub use secret_hash::SecretHash;
pub use throttle::{Decision, ThrottleKey, ThrottlePolicy, ThrottleState};
pub use totp::{TOTP_PERIOD_SECS, TOTP_WINDOW_STEPS, Totp, TotpAlgorithm, TotpDigits, TotpSecret};

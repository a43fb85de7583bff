use std::fmt;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::base32;
use crate::values::ValueError;

/// Length of a TOTP time step, in seconds (RFC 6238's default `X`, which every authenticator
/// app assumes).
pub const TOTP_PERIOD_SECS: i64 = 30;

/// How many steps before and after the current one a code is still accepted: one, so a code
/// stays usable for 60 to 90 seconds around its step to absorb clock drift and typing time.
pub const TOTP_WINDOW_STEPS: u64 = 1;

/// The hash function of a TOTP credential. SHA-1 is what nearly every authenticator app
/// supports and is not weakened by SHA-1's collision attacks, since HMAC does not rely on
/// collision resistance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TotpAlgorithm {
    /// HMAC-SHA1, the default.
    #[default]
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl TotpAlgorithm {
    /// The name used in `otpauth://` URIs.
    pub const fn as_str(self) -> &'static str {
        match self {
            TotpAlgorithm::Sha1 => "SHA1",
            TotpAlgorithm::Sha256 => "SHA256",
            TotpAlgorithm::Sha512 => "SHA512",
        }
    }

    fn mac(self, key: &[u8], message: &[u8]) -> Option<Vec<u8>> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Option<Vec<u8>> {
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).ok()?;
            mac.update(message);
            Some(mac.finalize().into_bytes().to_vec())
        }
        match self {
            TotpAlgorithm::Sha1 => run::<Hmac<Sha1>>(key, message),
            TotpAlgorithm::Sha256 => run::<Hmac<Sha256>>(key, message),
            TotpAlgorithm::Sha512 => run::<Hmac<Sha512>>(key, message),
        }
    }
}

/// How many digits a code has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TotpDigits {
    /// Six digits, the default.
    #[default]
    Six,
    /// Eight digits.
    Eight,
}

impl TotpDigits {
    /// The number of digits.
    pub const fn count(self) -> usize {
        match self {
            TotpDigits::Six => 6,
            TotpDigits::Eight => 8,
        }
    }

    const fn modulus(self) -> u32 {
        match self {
            TotpDigits::Six => 1_000_000,
            TotpDigits::Eight => 100_000_000,
        }
    }
}

/// A TOTP shared secret of 16 to 64 bytes (RFC 4226 requires at least 128 bits and
/// recommends 160, which is what [`TotpSecret::generate`] makes).
///
/// The server keeps it encrypted at rest (it must compute codes from it, so a hash will not
/// do). `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// Shortest accepted secret, in bytes.
    pub const MIN_LEN: usize = 16;
    /// Longest accepted secret, in bytes.
    pub const MAX_LEN: usize = 64;

    /// A new 160-bit secret from the caller's random bytes.
    pub fn generate(random: [u8; 20]) -> Self {
        Self(random.to_vec())
    }

    /// Wraps secret bytes read back from storage.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ValueError> {
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&bytes.len()) {
            return Err(ValueError::new(
                "totp_secret",
                "[redacted]",
                format!(
                    "must be {} to {} bytes long, got {}",
                    Self::MIN_LEN,
                    Self::MAX_LEN,
                    bytes.len()
                ),
            ));
        }
        Ok(Self(bytes.to_vec()))
    }

    /// Parses the base32 form (either case; spaces, dashes and `=` padding are ignored).
    pub fn from_base32(input: &str) -> Result<Self, ValueError> {
        let bytes = base32::decode(input)
            .ok_or_else(|| ValueError::new("totp_secret", "[redacted]", "is not valid base32"))?;
        Self::from_bytes(&bytes)
    }

    /// The secret in unpadded upper-case base32, as shown to a user who cannot scan the QR code.
    pub fn to_base32(&self) -> String {
        base32::encode(&self.0)
    }

    /// The raw secret bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

/// A TOTP credential (RFC 6238): a secret, a hash function and a code length, with the fixed
/// period [`TOTP_PERIOD_SECS`] and epoch 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totp {
    /// The shared secret.
    pub secret: TotpSecret,
    /// The HMAC hash function.
    pub algorithm: TotpAlgorithm,
    /// The code length.
    pub digits: TotpDigits,
}

impl Totp {
    /// A credential with the settings every authenticator app supports: SHA-1, six digits.
    pub fn new(secret: TotpSecret) -> Self {
        Self {
            secret,
            algorithm: TotpAlgorithm::Sha1,
            digits: TotpDigits::Six,
        }
    }

    /// The time step containing unix time `now`, or `None` before 1970.
    pub fn step_at(now: i64) -> Option<u64> {
        u64::try_from(now.div_euclid(TOTP_PERIOD_SECS)).ok()
    }

    /// The code for time step `step` (the HOTP value of RFC 4226 with counter `step`),
    /// zero-padded to the configured number of digits.
    pub fn code_for_step(&self, step: u64) -> String {
        let mac = self
            .algorithm
            .mac(self.secret.as_bytes(), &step.to_be_bytes())
            .unwrap_or_default();
        let value = truncate(&mac) % self.digits.modulus();
        format!("{value:0width$}", width = self.digits.count())
    }

    /// The code valid at unix time `now`, or `None` before 1970.
    pub fn code_at(&self, now: i64) -> Option<String> {
        Self::step_at(now).map(|step| self.code_for_step(step))
    }

    /// Checks a code typed by the user at unix time `now` and returns the step it belongs to.
    ///
    /// Accepts the codes of the current step and [`TOTP_WINDOW_STEPS`] on either side, but
    /// only steps later than `last_used_step`: the caller stores the returned step and passes
    /// it next time, so an observed code cannot be replayed, nor an older one used after a
    /// newer one. Spaces in `code` are ignored; anything but exactly the configured number of
    /// ASCII digits is refused. Each candidate is compared in constant time, and all are
    /// computed, so timing does not reveal which step matched.
    pub fn verify(&self, code: &str, now: i64, last_used_step: Option<u64>) -> Option<u64> {
        let code: String = code.chars().filter(|c| *c != ' ').collect();
        if code.len() != self.digits.count() || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let current = Self::step_at(now)?;
        let mut matched = None;
        let first = current.saturating_sub(TOTP_WINDOW_STEPS);
        for step in first..=current.saturating_add(TOTP_WINDOW_STEPS) {
            let expected = self.code_for_step(step);
            let equal: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
            let fresh = last_used_step.is_none_or(|last| step > last);
            if equal && fresh && matched.is_none() {
                matched = Some(step);
            }
        }
        matched
    }

    /// The `otpauth://totp/…` URI that authenticator apps import (usually as a QR code), in
    /// the Key URI Format: `otpauth://totp/Issuer:account?secret=…&issuer=Issuer&algorithm=SHA1&digits=6&period=30`.
    ///
    /// `issuer` (the product or installation name) and `account` (the user's e-mail or name)
    /// are percent-encoded (everything but RFC 3986 unreserved characters). They must be
    /// 1 to 256 characters without `:` or control characters, else a [`ValueError`] names
    /// the field.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Result<String, ValueError> {
        check_label("issuer", issuer)?;
        check_label("account", account)?;
        let issuer = percent_encode(issuer);
        Ok(format!(
            "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm={algorithm}&digits={digits}&period={TOTP_PERIOD_SECS}",
            account = percent_encode(account),
            secret = self.secret.to_base32(),
            algorithm = self.algorithm.as_str(),
            digits = self.digits.count(),
        ))
    }
}

/// RFC 4226 §5.3 dynamic truncation: 31 bits from the offset named by the low nibble of the
/// last byte.
fn truncate(mac: &[u8]) -> u32 {
    let offset = mac.last().map_or(0, |b| usize::from(b & 0x0f));
    match mac.get(offset..offset + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a & 0x7f, b, c, d]),
        _ => 0,
    }
}

fn check_label(field: &str, value: &str) -> Result<(), ValueError> {
    let err = |reason: &str| Err(ValueError::new(field, value, reason));
    let chars = value.chars().count();
    if chars == 0 || chars > 256 {
        return err("must be 1 to 256 characters long");
    }
    if value.contains(':') {
        return err("must not contain ':'");
    }
    if value.chars().any(char::is_control) {
        return err("must not contain control characters");
    }
    Ok(())
}

fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn totp(seed: &[u8], algorithm: TotpAlgorithm, digits: TotpDigits) -> Totp {
        Totp {
            secret: TotpSecret::from_bytes(seed).unwrap(),
            algorithm,
            digits,
        }
    }

    fn check(algorithm: TotpAlgorithm, time: i64, expected: &str) {
        let seed: &[u8] = match algorithm {
            TotpAlgorithm::Sha1 => b"12345678901234567890",
            TotpAlgorithm::Sha256 => b"12345678901234567890123456789012",
            TotpAlgorithm::Sha512 => {
                b"1234567890123456789012345678901234567890123456789012345678901234"
            }
        };
        let t = totp(seed, algorithm, TotpDigits::Eight);
        assert_eq!(
            t.code_at(time).as_deref(),
            Some(expected),
            "{algorithm:?} at {time}"
        );
        assert_eq!(t.verify(expected, time, None), Totp::step_at(time));
    }

    #[test]
    fn rfc_6238_appendix_b() {
        use TotpAlgorithm::*;
        let table: [(i64, [&str; 3]); 6] = [
            (59, ["94287082", "46119246", "90693936"]),
            (1_111_111_109, ["07081804", "68084774", "25091201"]),
            (1_111_111_111, ["14050471", "67062674", "99943326"]),
            (1_234_567_890, ["89005924", "91819424", "93441116"]),
            (2_000_000_000, ["69279037", "90698825", "38618901"]),
            (20_000_000_000, ["65353130", "77737706", "47863826"]),
        ];
        for (time, codes) in table {
            for (algorithm, code) in [Sha1, Sha256, Sha512].into_iter().zip(codes) {
                check(algorithm, time, code);
            }
        }
    }

    #[test]
    fn rfc_4226_appendix_d_hotp() {
        let t = totp(
            b"12345678901234567890",
            TotpAlgorithm::Sha1,
            TotpDigits::Six,
        );
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(t.code_for_step(counter as u64), *code, "counter {counter}");
        }
    }

    #[test]
    fn window_and_replay() {
        let t = Totp::new(TotpSecret::generate([3u8; 20]));
        let now = 1_700_000_000;
        let step = Totp::step_at(now).unwrap();
        let code = t.code_for_step(step);
        assert_eq!(t.verify(&code, now, None), Some(step));
        assert_eq!(t.verify(&code, now + 30, None), Some(step));
        assert_eq!(t.verify(&code, now - 30, None), Some(step));
        assert_eq!(t.verify(&code, now + 60, None), None);
        assert_eq!(t.verify(&code, now - 60, None), None);
        // Replay of the same code, and use of an older code after a newer one, are refused.
        assert_eq!(t.verify(&code, now, Some(step)), None);
        let previous = t.code_for_step(step - 1);
        assert_eq!(t.verify(&previous, now, Some(step)), None);
        assert_eq!(t.verify(&previous, now, Some(step - 2)), Some(step - 1));
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(t.verify(&spaced, now, None), Some(step));
        assert_eq!(t.verify(&format!("{code}0"), now, None), None);
        assert_eq!(t.verify("abcdef", now, None), None);
        assert_eq!(t.verify("", now, None), None);
        assert_eq!(t.verify(&code, -1, None), None);
        assert_eq!(Totp::step_at(-1), None);
        assert_eq!(Totp::step_at(29), Some(0));
    }

    #[test]
    fn secrets() {
        let s = TotpSecret::generate(*b"12345678901234567890");
        assert_eq!(s.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            TotpSecret::from_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq").unwrap(),
            s
        );
        assert!(
            TotpSecret::from_base32("GEZDGNBV")
                .unwrap_err()
                .reason()
                .contains("16 to 64")
        );
        assert!(
            TotpSecret::from_base32("!!")
                .unwrap_err()
                .reason()
                .contains("base32")
        );
        assert_eq!(format!("{s:?}"), "TotpSecret([redacted])");
    }

    #[test]
    fn otpauth_uri() {
        let t = Totp::new(TotpSecret::generate(*b"12345678901234567890"));
        assert_eq!(
            t.otpauth_uri("Infra Pilot", "alice+ops@example.com")
                .unwrap(),
            "otpauth://totp/Infra%20Pilot:alice%2Bops%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Infra%20Pilot&algorithm=SHA1&digits=6&period=30"
        );
        let t = Totp {
            algorithm: TotpAlgorithm::Sha512,
            digits: TotpDigits::Eight,
            ..t
        };
        let uri = t.otpauth_uri("Zürich&Co", "bob").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/Z%C3%BCrich%26Co:bob?"),
            "{uri}"
        );
        assert!(
            uri.ends_with("&algorithm=SHA512&digits=8&period=30"),
            "{uri}"
        );
        let err = t.otpauth_uri("a:b", "bob").unwrap_err();
        assert_eq!(err.field(), "issuer");
        let err = t.otpauth_uri("x", "").unwrap_err();
        assert_eq!(err.field(), "account");
        assert!(t.otpauth_uri("x", "bo\nb").is_err());
    }

    proptest! {
        #[test]
        fn the_current_code_verifies_once(seed in any::<[u8; 20]>(), now in 0i64..5_000_000_000) {
            let t = Totp::new(TotpSecret::generate(seed));
            let code = t.code_at(now).unwrap();
            let step = t.verify(&code, now, None);
            prop_assert_eq!(step, Totp::step_at(now));
            prop_assert_eq!(t.verify(&code, now, step), None);
        }

        #[test]
        fn uri_has_no_raw_reserved_characters(issuer in "[^:\\p{Cc}]{1,40}", account in "[^:\\p{Cc}]{1,40}") {
            let t = Totp::new(TotpSecret::generate([1u8; 20]));
            let uri = t.otpauth_uri(&issuer, &account).unwrap();
            let label = &uri["otpauth://totp/".len()..uri.find('?').unwrap()];
            prop_assert_eq!(label.matches(':').count(), 1);
            prop_assert!(label.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%:".contains(&b)));
        }
    }
}

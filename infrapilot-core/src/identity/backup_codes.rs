use std::fmt;

use super::SecretHash;
use super::secret_hash::find_constant_time;

/// Characters of a backup code: Crockford's base32 alphabet in lower case, which leaves out
/// `i`, `l`, `o` and `u`. On input, `i` and `l` are read as `1` and `o` as `0`, so a code
/// copied from paper with the usual confusions still works.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Characters in a backup code (without the dash): 10 characters of 5 bits, 50 bits each.
pub const BACKUP_CODE_LEN: usize = 10;

/// How many backup codes to hand out at once, the usual ten.
pub const BACKUP_CODE_COUNT: usize = 10;

/// A one-time backup code for when the authenticator is lost, shown as `xxxxx-xxxxx`.
///
/// The server shows the codes once, stores only their [`BackupCode::hash`]es, and spends one
/// with [`use_backup_code`]. `Debug` does not print the code.
#[derive(Clone, PartialEq, Eq)]
pub struct BackupCode(String);

impl BackupCode {
    /// Reads a code as a user typed it: case, dashes and spaces are ignored and the look-alikes
    /// `i`/`l` (for `1`) and `o` (for `0`) are accepted. Returns `None` unless exactly
    /// [`BACKUP_CODE_LEN`] alphabet characters remain.
    pub fn parse(input: &str) -> Option<Self> {
        let mut code = String::with_capacity(BACKUP_CODE_LEN);
        for c in input.chars() {
            let c = match c.to_ascii_lowercase() {
                '-' | ' ' => continue,
                'i' | 'l' => '1',
                'o' => '0',
                other => other,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) || code.len() == BACKUP_CODE_LEN {
                return None;
            }
            code.push(c);
        }
        (code.len() == BACKUP_CODE_LEN).then_some(Self(code))
    }

    /// The SHA-256 hash of the normalized code, which is what the server stores.
    pub fn hash(&self) -> SecretHash {
        SecretHash::of(self.0.as_bytes())
    }
}

impl fmt::Display for BackupCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b) = self.0.split_at(BACKUP_CODE_LEN / 2);
        write!(f, "{a}-{b}")
    }
}

impl fmt::Debug for BackupCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BackupCode([redacted])")
    }
}

/// Makes one backup code from each array of the caller's random bytes (each byte gives one
/// character from its low five bits, so every character is uniformly distributed).
pub fn generate_backup_codes(random: &[[u8; BACKUP_CODE_LEN]]) -> Vec<BackupCode> {
    random
        .iter()
        .map(|bytes| {
            BackupCode(
                bytes
                    .iter()
                    .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
                    .collect(),
            )
        })
        .collect()
}

/// Spends `code` if its hash is among `stored`: removes that hash and returns `true`.
/// Returns `false` (and changes nothing) for an unknown, already used or malformed code.
/// Every stored hash is compared, in constant time.
pub fn use_backup_code(stored: &mut Vec<SecretHash>, code: &str) -> bool {
    let Some(code) = BackupCode::parse(code) else {
        return false;
    };
    match find_constant_time(stored, &code.hash()) {
        Some(index) => {
            stored.swap_remove(index);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn codes() -> Vec<BackupCode> {
        let random: Vec<[u8; BACKUP_CODE_LEN]> = (0..BACKUP_CODE_COUNT as u8)
            .map(|i| std::array::from_fn(|j| i.wrapping_mul(37).wrapping_add(j as u8 * 11)))
            .collect();
        generate_backup_codes(&random)
    }

    #[test]
    fn shape() {
        let codes = codes();
        assert_eq!(codes.len(), BACKUP_CODE_COUNT);
        let first = generate_backup_codes(&[[0, 1, 2, 3, 4, 29, 30, 31, 32, 255]]);
        assert_eq!(first[0].to_string(), "01234-xyz0z");
        assert_eq!(format!("{:?}", first[0]), "BackupCode([redacted])");
    }

    fn check(input: &str, expected: Option<&str>) {
        let parsed = BackupCode::parse(input).map(|c| c.to_string());
        assert_eq!(parsed.as_deref(), expected, "{input:?}");
    }

    #[test]
    fn parsing() {
        check("01234-xyz0z", Some("01234-xyz0z"));
        check("01234XYZ0Z", Some("01234-xyz0z"));
        check(" OI234-xyzoz ", Some("01234-xyz0z"));
        check("L1234-xyz0z", Some("11234-xyz0z"));
        check("01234-xyz0", None);
        check("01234-xyz0zz", None);
        check("01234-xyz0u", None);
        check("01234-xyz0é", None);
        check("", None);
    }

    #[test]
    fn single_use() {
        let codes = codes();
        let mut stored: Vec<SecretHash> = codes.iter().map(BackupCode::hash).collect();
        let typed = codes[3].to_string().to_uppercase().replace('-', "");
        assert!(use_backup_code(&mut stored, &typed));
        assert_eq!(stored.len(), BACKUP_CODE_COUNT - 1);
        assert!(!use_backup_code(&mut stored, &typed));
        assert!(!use_backup_code(&mut stored, "zzzzz-zzzzz"));
        assert!(!use_backup_code(&mut stored, "nonsense"));
        assert_eq!(stored.len(), BACKUP_CODE_COUNT - 1);
        for code in &codes[4..] {
            assert!(use_backup_code(&mut stored, &code.to_string()));
        }
        assert_eq!(stored.len(), 3);
    }

    proptest! {
        #[test]
        fn generated_codes_parse_back(random in any::<[u8; BACKUP_CODE_LEN]>()) {
            let code = generate_backup_codes(&[random]).remove(0);
            let text = code.to_string();
            prop_assert_eq!(text.len(), BACKUP_CODE_LEN + 1);
            prop_assert_eq!(BackupCode::parse(&text), Some(code.clone()));
            prop_assert_eq!(BackupCode::parse(&text.to_uppercase()), Some(code));
        }
    }
}

//! RFC 4648 base32 (the standard alphabet `A`–`Z`, `2`–`7`), as authenticator apps expect a
//! TOTP secret.

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Encodes `bytes` in base32 without `=` padding (the form `otpauth://` URIs use).
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u16 = 0;
    let mut bits = 0u32;
    for &byte in bytes {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[usize::from((buffer >> bits) & 31)]));
        }
    }
    if bits > 0 {
        out.push(char::from(
            ALPHABET[usize::from((buffer << (5 - bits)) & 31)],
        ));
    }
    out
}

/// Encodes `bytes` in base32 with `=` padding to a multiple of eight characters.
#[cfg(test)]
pub(crate) fn encode_padded(bytes: &[u8]) -> String {
    let mut out = encode(bytes);
    while !out.len().is_multiple_of(8) {
        out.push('=');
    }
    out
}

/// Decodes base32, accepting lower case, spaces, dashes and trailing `=` padding, as people
/// type or paste a secret. Returns `None` for any other character, for a length no encoder
/// produces, or when the unused trailing bits are not zero (so each byte string has exactly one
/// accepted spelling, up to case and separators).
pub(crate) fn decode(input: &str) -> Option<Vec<u8>> {
    let trimmed = input.trim_end_matches('=');
    let mut out = Vec::with_capacity(trimmed.len() * 5 / 8);
    let mut buffer: u16 = 0;
    let mut bits = 0u32;
    let mut symbols = 0usize;
    for c in trimmed.chars() {
        if c == ' ' || c == '-' {
            continue;
        }
        let value = match c.to_ascii_uppercase() {
            u @ 'A'..='Z' => u as u16 - 'A' as u16,
            d @ '2'..='7' => d as u16 - '2' as u16 + 26,
            _ => return None,
        };
        symbols += 1;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            // Truncation keeps the low 8 bits, which are the byte just completed.
            out.push(((buffer >> bits) & 0xff) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    // Valid lengths leave 0, 2, 4, 5 or 7 symbols in the last group of eight.
    if matches!(symbols % 8, 1 | 3 | 6) || buffer != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn check(bytes: &[u8], padded: &str) {
        assert_eq!(encode_padded(bytes), padded);
        assert_eq!(decode(padded).as_deref(), Some(bytes), "{padded}");
        assert_eq!(decode(&padded.to_lowercase()).as_deref(), Some(bytes));
    }

    #[test]
    fn rfc_4648_section_10_vectors() {
        check(b"", "");
        check(b"f", "MY======");
        check(b"fo", "MZXQ====");
        check(b"foo", "MZXW6===");
        check(b"foob", "MZXW6YQ=");
        check(b"fooba", "MZXW6YTB");
        check(b"foobar", "MZXW6YTBOI======");
    }

    #[test]
    fn refuses_what_no_encoder_writes() {
        assert_eq!(decode("MZ1W"), None);
        assert_eq!(decode("M"), None);
        assert_eq!(decode("MZX"), None);
        // "MZ" decodes to "f" only with zero trailing bits; "MZ" has them set.
        assert_eq!(decode("MZ"), None);
        assert_eq!(decode("my ======"), Some(b"f".to_vec()));
    }

    proptest! {
        #[test]
        fn round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            prop_assert_eq!(decode(&encode(&bytes)), Some(bytes.clone()));
            prop_assert_eq!(decode(&encode_padded(&bytes)), Some(bytes));
        }

        #[test]
        fn decode_never_panics(input in "\\PC{0,40}") {
            if let Some(bytes) = decode(&input) {
                prop_assert_eq!(decode(&encode(&bytes)), Some(bytes));
            }
        }
    }
}

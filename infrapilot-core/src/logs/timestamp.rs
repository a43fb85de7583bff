//! A small RFC 3339 parser and formatter (no clock, no time crate).
//!
//! Times are unix milliseconds as `i64`; fractions finer than a millisecond are truncated.

/// Parses a whole string as an RFC 3339 timestamp (`2026-11-22T10:00:00.123Z`,
/// `2026-11-22 10:00:00+01:00`) into unix milliseconds.
///
/// Accepts what [`leading_timestamp`] accepts, and nothing may follow it.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let (millis, len) = leading_timestamp(text)?;
    (len == text.len()).then_some(millis)
}

/// Reads a timestamp at the start of `text` and returns it in unix milliseconds, with the
/// number of bytes it took.
///
/// The shape is `YYYY-MM-DD`, then `T`, `t` or a space, `hh:mm:ss`, an optional fraction
/// after `.` or `,` (as Python's logging writes it), then an optional offset: `Z`, `z`,
/// `±hh:mm`, `±hhmm`, or ` UTC`/` GMT`. A timestamp without an offset is read as UTC, the
/// usual clock of a container. Leap second 60 is read as 59. Dates are checked (no 31 April,
/// 29 February only in leap years).
pub fn leading_timestamp(text: &str) -> Option<(i64, usize)> {
    let b = text.as_bytes();
    let year = digits(b, 0, 4)?;
    expect(b, 4, b'-')?;
    let month = digits(b, 5, 2)?;
    expect(b, 7, b'-')?;
    let day = digits(b, 8, 2)?;
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (hour, minute, second) = clock(b, 11)?;
    let mut at = 19;
    let mut millis = 0;
    if matches!(b.get(at), Some(b'.' | b',')) && b.get(at + 1).is_some_and(u8::is_ascii_digit) {
        at += 1;
        let mut scale = 100;
        while let Some(d) = b.get(at).filter(|d| d.is_ascii_digit()) {
            millis += i64::from(d - b'0') * scale;
            scale /= 10;
            at += 1;
        }
    }
    let offset_secs = match b.get(at) {
        Some(b'Z' | b'z') => {
            at += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let hours = digits(b, at + 1, 2)?;
            let (minutes, len) = match b.get(at + 3) {
                Some(b':') => (digits(b, at + 4, 2)?, 6),
                Some(d) if d.is_ascii_digit() => (digits(b, at + 3, 2)?, 5),
                _ => (0, 3),
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            at += len;
            let secs = hours * 3600 + minutes * 60;
            if sign == b'-' { -secs } else { secs }
        }
        Some(b' ') if matches!(b.get(at + 1..at + 4), Some(b"UTC" | b"GMT")) => {
            at += 4;
            0
        }
        _ => 0,
    };
    let days = days_from_civil(year, month, day)?;
    let local = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(((local - offset_secs) * 1000 + millis, at))
}

/// Formats unix milliseconds as RFC 3339 in UTC with milliseconds
/// (`2026-11-22T10:00:00.123Z`). Years outside 0000–9999 are clamped to that range.
pub fn format_rfc3339_millis(unix_millis: i64) -> String {
    let min = days_from_civil(0, 1, 1).unwrap_or(0) * 86_400_000;
    let max = (days_from_civil(9999, 12, 31).unwrap_or(0) + 1) * 86_400_000 - 1;
    let ms = unix_millis.clamp(min, max);
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (secs, frac) = (in_day / 1000, in_day % 1000);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Reads `hh:mm:ss` at `at`.
pub(super) fn clock(b: &[u8], at: usize) -> Option<(i64, i64, i64)> {
    let hour = digits(b, at, 2)?;
    expect(b, at + 2, b':')?;
    let minute = digits(b, at + 3, 2)?;
    expect(b, at + 5, b':')?;
    let second = digits(b, at + 6, 2)?;
    (hour <= 23 && minute <= 59 && second <= 60).then_some((hour, minute, second.min(59)))
}

/// Reads exactly `n` ASCII digits at `at`.
pub(super) fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let part = b.get(at..at.checked_add(n)?)?;
    part.iter().try_fold(0i64, |acc, d| {
        d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
    })
}

fn expect(b: &[u8], at: usize, want: u8) -> Option<()> {
    (b.get(at) == Some(&want)).then_some(())
}

/// Days since 1970-01-01 for a proleptic Gregorian date, or `None` for a date that does not
/// exist. (Howard Hinnant's `days_from_civil`.)
pub(super) fn days_from_civil(year: i64, month: i64, day: i64) -> Option<i64> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_len = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=month_len).contains(&day) {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn check(input: &str, want: Option<i64>) {
        assert_eq!(parse_rfc3339(input), want, "{input}");
    }

    #[test]
    fn rfc3339() {
        check("1970-01-01T00:00:00Z", Some(0));
        check("2026-11-22T10:00:00Z", Some(1_795_341_600_000));
        check("2026-11-22T10:00:00.5Z", Some(1_795_341_600_500));
        check("2026-11-22T10:00:00.123456789Z", Some(1_795_341_600_123));
        check("2026-11-22t10:00:00z", Some(1_795_341_600_000));
        check("2026-11-22 11:00:00+01:00", Some(1_795_341_600_000));
        check("2026-11-22T05:30:00-0430", Some(1_795_341_600_000));
        check("2026-11-22 10:00:00,250", Some(1_795_341_600_250));
        check("2026-11-22 10:00:00.000 UTC", Some(1_795_341_600_000));
        check("2024-02-29T00:00:00Z", Some(1_709_164_800_000));
        check("2023-02-29T00:00:00Z", None);
        check("2026-04-31T00:00:00Z", None);
        check("2026-13-01T00:00:00Z", None);
        check("2026-11-22T24:00:00Z", None);
        check("2026-11-22T10:00:00+25:00", None);
        check("2026-11-22T10:00Z", None);
        check("2026-11-22", None);
        check("2026-11-22T10:00:00Z trailing", None);
        check("1969-12-31T23:59:59.999Z", Some(-1));
    }

    #[test]
    fn leading() {
        assert_eq!(
            leading_timestamp("2026-11-22T10:00:00.123Z INFO hi"),
            Some((1_795_341_600_123, 24))
        );
        assert_eq!(leading_timestamp("INFO 2026-11-22T10:00:00Z"), None);
        assert_eq!(
            format_rfc3339_millis(1_795_341_600_123),
            "2026-11-22T10:00:00.123Z"
        );
        assert_eq!(format_rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
    }

    proptest! {
        #[test]
        fn format_and_parse_round_trip(ms in -62_167_219_200_000i64..253_402_300_799_999) {
            prop_assert_eq!(parse_rfc3339(&format_rfc3339_millis(ms)), Some(ms));
        }

        #[test]
        fn never_panics(text in ".{0,40}", bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            let _ = leading_timestamp(&text);
            let _ = parse_rfc3339(&String::from_utf8_lossy(&bytes));
            let _ = format_rfc3339_millis(i64::from_le_bytes({
                let mut a = [0u8; 8];
                for (d, s) in a.iter_mut().zip(&bytes) { *d = *s; }
                a
            }));
        }

        #[test]
        fn near_timestamps_never_panic(prefix in "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}", rest in "[.,0-9Z+:\\- UTCG]{0,12}") {
            let text = format!("{prefix}{rest}");
            if let Some((_, len)) = leading_timestamp(&text) {
                prop_assert!(len <= text.len());
            }
        }
    }
}

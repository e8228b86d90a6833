//! Times as the formats write them: RFC 3339 / ISO 8601 text with a time zone
//! (`Z`, `+00:00`, `-0400`, `+05`), any number of fractional digits, and
//! decimal epoch numbers (Zeek's `ts` in seconds, OCSF's `time` in ms), read
//! from their JSON text so no float rounding moves a millisecond.

use rampart_core::validate::Rejection;

const BAD: Rejection = Rejection::BadTimestamp;

/// Milliseconds since the Unix epoch of `YYYY-MM-DD(T| )hh:mm:ss[.frac](Z|±hh[:]mm|±hh)`.
/// The fraction is truncated to milliseconds; a time without a zone is refused
/// (its instant is unknown).
pub fn parse_rfc3339(text: &str) -> Result<i64, Rejection> {
    let b = text.as_bytes();
    if b.len() < 20 {
        return Err(BAD);
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return Err(BAD);
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(BAD);
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            if i - start < 3 {
                millis = millis * 10 + i64::from(d - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return Err(BAD);
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_minutes = match b.get(i..) {
        Some([b'Z' | b'z']) => 0,
        Some([sign @ (b'+' | b'-'), rest @ ..]) => {
            let (h, m) = match rest {
                [_, _] => (digits(rest, 0, 2)?, 0),
                [_, _, _, _] => (digits(rest, 0, 2)?, digits(rest, 2, 2)?),
                [_, _, b':', _, _] => (digits(rest, 0, 2)?, digits(rest, 3, 2)?),
                _ => return Err(BAD),
            };
            if h > 23 || m > 59 {
                return Err(BAD);
            }
            let minutes = h * 60 + m;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return Err(BAD),
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

/// A JSON number's text as an integer scaled by `10^scale` and truncated
/// toward zero: `parse_decimal("1591367999.305988", 3)` is the ms of Zeek's
/// `ts`. Exponents, signs other than a leading `-`, and overflow are refused.
pub fn parse_decimal(text: &str, scale: u32) -> Result<i64, Rejection> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    if whole.is_empty() || (body.contains('.') && fraction.is_empty()) {
        return Err(BAD);
    }
    let mut value: i64 = 0;
    let push = |value: i64, d: u8| -> Result<i64, Rejection> {
        if !d.is_ascii_digit() {
            return Err(BAD);
        }
        value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(d - b'0')))
            .ok_or(BAD)
    };
    for &d in whole.as_bytes() {
        value = push(value, d)?;
    }
    let fraction = fraction.as_bytes();
    for k in 0..scale as usize {
        value = push(value, fraction.get(k).copied().unwrap_or(b'0'))?;
    }
    if !fraction.iter().all(u8::is_ascii_digit) {
        return Err(BAD);
    }
    Ok(if negative { -value } else { value })
}

fn digits(b: &[u8], at: usize, n: usize) -> Result<i64, Rejection> {
    let field = b.get(at..at + n).ok_or(BAD)?;
    field.iter().try_fold(0i64, |v, &d| {
        if d.is_ascii_digit() {
            Ok(v * 10 + i64::from(d - b'0'))
        } else {
            Err(BAD)
        }
    })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day)` of a day count since 1970-01-01 (inverse of
/// [`days_from_civil`]).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// `time_ms` as RFC 3339 text in UTC with milliseconds, or, with
/// `offset_minutes`, in that zone written Suricata's way (`-0400`).
pub fn format_rfc3339(time_ms: i64, offset_minutes: Option<i64>) -> String {
    let shift = offset_minutes.unwrap_or(0);
    let local = time_ms + shift * 60_000;
    let (days, ms_of_day) = (local.div_euclid(86_400_000), local.rem_euclid(86_400_000));
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s, ms) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    let zone = match offset_minutes {
        None => "Z".to_owned(),
        Some(o) => format!(
            "{}{:02}{:02}",
            if o < 0 { '-' } else { '+' },
            o.abs() / 60,
            o.abs() % 60
        ),
    };
    // Suricata writes microseconds; three more zeros keep the text its shape.
    let micros = if offset_minutes.is_some() { "000" } else { "" };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}{micros}{zone}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // 2023-04-05T16:34:56.123Z, from `date -u -d 2023-04-05T16:34:56Z +%s`.
    const T: i64 = 1_680_712_496_123;

    #[test]
    fn offsets_and_fractions_name_the_same_instant() {
        for text in [
            "2023-04-05T16:34:56.123Z",
            "2023-04-05T16:34:56.123+00:00",
            "2023-04-05T12:34:56.123456-0400",
            "2023-04-05T12:34:56.1239-04:00",
            "2023-04-05T21:34:56.123+05",
            "2023-04-05 16:34:56.123+0000",
            "2023-04-05T22:04:56.123+0530",
        ] {
            assert_eq!(parse_rfc3339(text), Ok(T), "{text}");
        }
        assert_eq!(parse_rfc3339("2023-04-05T16:34:56Z"), Ok(T - 123));
        assert_eq!(parse_rfc3339("2023-04-05T16:34:56.1Z"), Ok(T - 23));
    }

    #[test]
    fn malformed_times_are_refused() {
        for text in [
            "",
            "2023-04-05T16:34:56",
            "2023-04-05T16:34:56.123",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-04-05T24:00:00Z",
            "2023-04-05T16:34:56.Z",
            "2023-04-05T16:34:56+4",
            "2023-04-05T16:34:56+04:0",
            "2023/04/05T16:34:56Z",
            "yesterday at noon, roughly",
        ] {
            assert_eq!(parse_rfc3339(text), Err(BAD), "{text}");
        }
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000));
    }

    #[test]
    fn decimals_scale_without_float_rounding() {
        assert_eq!(parse_decimal("1591367999.305988", 3), Ok(1_591_367_999_305));
        // 1700000000.123 is 1700000000.12299990654 as an f64.
        assert_eq!(parse_decimal("1700000000.123", 3), Ok(1_700_000_000_123));
        assert_eq!(parse_decimal("1700000000", 3), Ok(1_700_000_000_000));
        assert_eq!(parse_decimal("1680712496123", 0), Ok(T));
        assert_eq!(parse_decimal("1680712496123.9", 0), Ok(T));
        for bad in [
            "",
            ".5",
            "1.",
            "1e9",
            "1.5e3",
            "+1",
            "9999999999999999999",
            "1.2.3",
        ] {
            assert_eq!(parse_decimal(bad, 3), Err(BAD), "{bad}");
        }
    }

    #[test]
    fn formatting_round_trips() {
        for ms in [1, T, 4_102_444_799_999, 951_782_400_000] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms, None)), Ok(ms));
            for offset in [-240, 0, 330, -720, 840] {
                let text = format_rfc3339(ms, Some(offset));
                assert_eq!(parse_rfc3339(&text), Ok(ms), "{text}");
            }
        }
        assert_eq!(format_rfc3339(T, None), "2023-04-05T16:34:56.123Z");
        assert_eq!(
            format_rfc3339(T, Some(-240)),
            "2023-04-05T12:34:56.123000-0400"
        );
    }
}

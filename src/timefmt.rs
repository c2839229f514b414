//! The one calendar: UTC calendar strings, HTTP dates, and short relative durations
//! ("in 42m"). Pure.

use crate::clock::Ts;

/// Civil date from days since 1970-01-01 (proleptic Gregorian), after H. Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date (the inverse of `civil_from_days`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parses an IMF-fixdate, the HTTP `Date` header's form (`Sun, 22 Nov 2026 03:00:00 GMT`).
pub fn parse_http_date(s: &str) -> Option<Ts> {
    let p: Vec<&str> = s.split_whitespace().collect();
    if p.len() != 6 {
        return None;
    }
    let day: u32 = p[1].parse().ok()?;
    let month = MONTHS.iter().position(|m| *m == p[2])? as u32 + 1;
    let year: i64 = p[3].parse().ok()?;
    let hms: Vec<i64> = p[4].split(':').filter_map(|x| x.parse().ok()).collect();
    if hms.len() != 3 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(Ts::from_secs(
        days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2],
    ))
}

fn parts(t: Ts) -> (i64, u32, u32, i64, i64, i64) {
    let secs = t.as_secs();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (y, m, d, rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// `2026-11-22 02:18:02 UTC`: the reference tool's `expires_at_human` format.
pub fn human_utc(t: Ts) -> String {
    let (y, mo, d, h, mi, s) = parts(t);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC")
}

/// RFC 3339 in UTC with second precision: `2026-11-22T02:18:02Z`.
pub fn rfc3339(t: Ts) -> String {
    let (y, mo, d, h, mi, s) = parts(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// A compact duration: `42s`, `42m`, `3h 5m`, `2d 4h`.
pub fn short_duration(ms: i64) -> String {
    let s = ms.unsigned_abs() / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => {
            let m = (s % 3600) / 60;
            if m == 0 {
                format!("{}h", s / 3600)
            } else {
                format!("{}h {}m", s / 3600, m)
            }
        }
        _ => {
            let h = (s % 86_400) / 3600;
            if h == 0 {
                format!("{}d", s / 86_400)
            } else {
                format!("{}d {}h", s / 86_400, h)
            }
        }
    }
}

/// `in 42m` for a future instant, `42m ago` for a past one.
pub fn relative(target: Ts, now: Ts) -> String {
    let ms = target.ms_since(now);
    if ms >= 0 {
        format!("in {}", short_duration(ms))
    } else {
        format!("{} ago", short_duration(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_strings() {
        assert_eq!(human_utc(Ts(0)), "1970-01-01 00:00:00 UTC");
        // 2026-11-22 02:18:02 UTC
        assert_eq!(
            human_utc(Ts::from_secs(1_795_314_482)),
            "2026-11-22 02:28:02 UTC"
        );
        assert_eq!(rfc3339(Ts::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(Ts::from_secs(-1)), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn the_calendar_goes_both_ways() {
        for z in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z, "{y}-{m}-{d}");
        }
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Ts::from_secs(784_111_777))
        );
        assert_eq!(
            parse_http_date(&format!(
                "Tue, 29 Feb 2000 {} GMT",
                &rfc3339(Ts::from_secs(951_782_400 + 3_723))[11..19]
            )),
            Some(Ts::from_secs(951_782_400 + 3_723))
        );
        assert_eq!(parse_http_date("garbage"), None);
        assert_eq!(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), None);
    }

    #[test]
    fn durations() {
        let cases = [
            (0, "0s"),
            (59_999, "59s"),
            (60_000, "1m"),
            (42 * 60_000 + 5_000, "42m"),
            (3_600_000, "1h"),
            (3_900_000, "1h 5m"),
            (86_400_000, "1d"),
            (2 * 86_400_000 + 4 * 3_600_000, "2d 4h"),
        ];
        for (ms, want) in cases {
            assert_eq!(short_duration(ms), want, "{ms}");
        }
        assert_eq!(relative(Ts(120_000), Ts(0)), "in 2m");
        assert_eq!(relative(Ts(0), Ts(120_000)), "2m ago");
    }
}

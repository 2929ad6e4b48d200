//! Go's time layouts: a layout is the reference time `Mon Jan 2 15:04:05 -0700 MST 2006` written the
//! way the result should look. Tokens are recognised exactly as Go's `nextStdChunk` does (e.g. `Jan`
//! only when not followed by a lowercase letter, `.000`/`.999` only when the run of digits ends there);
//! any other text passes through unchanged. Pure: the time to format is an argument.

/// A moment broken into the fields layouts print, in some zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moment {
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// 0 = Sunday.
    pub weekday: u32,
    /// 1 to 366.
    pub year_day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub nanosecond: u32,
    /// Abbreviation printed by `MST`; empty prints the numeric offset instead, as Go does.
    pub zone_name: String,
    /// Seconds east of UTC.
    pub offset_seconds: i32,
}

impl Moment {
    /// The moment `unix_seconds` + `nanosecond` after the epoch, in a zone `offset_seconds` east of UTC.
    pub fn from_unix(unix_seconds: i64, nanosecond: u32, offset_seconds: i32, zone_name: &str) -> Self {
        let local = unix_seconds + i64::from(offset_seconds);
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        let year_day = (days - days_from_civil(year, 1, 1)) as u32 + 1;
        Self {
            year,
            month,
            day,
            weekday: (days + 4).rem_euclid(7) as u32,
            year_day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
            nanosecond,
            zone_name: zone_name.to_owned(),
            offset_seconds,
        }
    }
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/// One element of a layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    Pm,
    LowerPm,
    Tz,
    /// Numeric offset: with `Z` for UTC (ISO 8601)?, colons?, minutes?, seconds?
    Offset {
        iso: bool,
        colons: bool,
        minutes: bool,
        seconds: bool,
    },
    /// Fractional seconds: separator, digits, trailing zeros trimmed?
    Fraction {
        separator: char,
        digits: usize,
        trim: bool,
    },
}

/// Go's `nextStdChunk`: (text before the token, the token, the rest), or `None` when only text is left.
fn next_chunk(layout: &str) -> Option<(&str, Std, &str)> {
    let bytes = layout.as_bytes();
    let at = |i: usize, token: &str| layout.get(i..).is_some_and(|rest| rest.starts_with(token));
    let lower_follows = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_lowercase);
    for i in 0..bytes.len() {
        let found = match bytes[i] {
            b'J' if at(i, "January") => Some((Std::LongMonth, 7)),
            b'J' if at(i, "Jan") && !lower_follows(i + 3) => Some((Std::Month, 3)),
            b'M' if at(i, "Monday") => Some((Std::LongWeekDay, 6)),
            b'M' if at(i, "Mon") && !lower_follows(i + 3) => Some((Std::WeekDay, 3)),
            b'M' if at(i, "MST") => Some((Std::Tz, 3)),
            b'0' => match bytes.get(i + 1) {
                Some(b'1') => Some((Std::ZeroMonth, 2)),
                Some(b'2') => Some((Std::ZeroDay, 2)),
                Some(b'3') => Some((Std::ZeroHour12, 2)),
                Some(b'4') => Some((Std::ZeroMinute, 2)),
                Some(b'5') => Some((Std::ZeroSecond, 2)),
                Some(b'6') => Some((Std::Year, 2)),
                Some(b'0') if bytes.get(i + 2) == Some(&b'2') => Some((Std::ZeroYearDay, 3)),
                _ => None,
            },
            b'1' if bytes.get(i + 1) == Some(&b'5') => Some((Std::Hour, 2)),
            b'1' => Some((Std::NumMonth, 1)),
            b'2' if at(i, "2006") => Some((Std::LongYear, 4)),
            b'2' => Some((Std::Day, 1)),
            // `_2006` is a literal underscore followed by the year.
            b'_' if at(i, "_2006") => return Some((&layout[..=i], Std::LongYear, &layout[i + 5..])),
            b'_' if at(i, "_2") => Some((Std::UnderDay, 2)),
            b'_' if at(i, "__2") => Some((Std::UnderYearDay, 3)),
            b'3' => Some((Std::Hour12, 1)),
            b'4' => Some((Std::Minute, 1)),
            b'5' => Some((Std::Second, 1)),
            b'P' if bytes.get(i + 1) == Some(&b'M') => Some((Std::Pm, 2)),
            b'p' if bytes.get(i + 1) == Some(&b'm') => Some((Std::LowerPm, 2)),
            b'-' | b'Z' => offset_token(&layout[i..]),
            b'.' | b',' => fraction_token(&layout[i..]),
            _ => None,
        };
        if let Some((std, len)) = found {
            return Some((&layout[..i], std, &layout[i + len..]));
        }
    }
    None
}

fn offset_token(rest: &str) -> Option<(Std, usize)> {
    let iso = rest.starts_with('Z');
    let body = &rest[1..];
    let offset = |colons, minutes, seconds| Std::Offset { iso, colons, minutes, seconds };
    // Longest first, as Go checks them.
    [
        ("070000", offset(false, true, true)),
        ("07:00:00", offset(true, true, true)),
        ("0700", offset(false, true, false)),
        ("07:00", offset(true, true, false)),
        ("07", offset(false, false, false)),
    ]
    .into_iter()
    .find(|(token, _)| body.starts_with(token))
    .map(|(token, std)| (std, token.len() + 1))
}

fn fraction_token(rest: &str) -> Option<(Std, usize)> {
    let bytes = rest.as_bytes();
    let digit = *bytes.get(1).filter(|d| **d == b'0' || **d == b'9')?;
    let digits = bytes[1..].iter().take_while(|b| **b == digit).count();
    // Only a fraction when the run of digits ends there.
    if bytes.get(1 + digits).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let separator = char::from(bytes[0]);
    Some((Std::Fraction { separator, digits, trim: digit == b'9' }, 1 + digits))
}

/// Formats `moment` the way Go's `Time.Format(layout)` does.
pub fn format(layout: &str, moment: &Moment) -> String {
    let mut out = String::with_capacity(layout.len() + 10);
    let mut rest = layout;
    while let Some((prefix, std, suffix)) = next_chunk(rest) {
        out.push_str(prefix);
        append(&mut out, std, moment);
        rest = suffix;
    }
    out.push_str(rest);
    out
}

fn append(out: &mut String, std: Std, m: &Moment) {
    use std::fmt::Write;
    let hour12 = if m.hour.is_multiple_of(12) { 12 } else { m.hour % 12 };
    let _ = match std {
        Std::LongMonth => write!(out, "{}", MONTHS[m.month as usize - 1]),
        Std::Month => write!(out, "{}", &MONTHS[m.month as usize - 1][..3]),
        Std::NumMonth => write!(out, "{}", m.month),
        Std::ZeroMonth => write!(out, "{:02}", m.month),
        Std::LongWeekDay => write!(out, "{}", WEEKDAYS[m.weekday as usize]),
        Std::WeekDay => write!(out, "{}", &WEEKDAYS[m.weekday as usize][..3]),
        Std::Day => write!(out, "{}", m.day),
        Std::UnderDay => write!(out, "{:>2}", m.day),
        Std::ZeroDay => write!(out, "{:02}", m.day),
        Std::UnderYearDay => write!(out, "{:>3}", m.year_day),
        Std::ZeroYearDay => write!(out, "{:03}", m.year_day),
        Std::Hour => write!(out, "{:02}", m.hour),
        Std::Hour12 => write!(out, "{hour12}"),
        Std::ZeroHour12 => write!(out, "{hour12:02}"),
        Std::Minute => write!(out, "{}", m.minute),
        Std::ZeroMinute => write!(out, "{:02}", m.minute),
        Std::Second => write!(out, "{}", m.second),
        Std::ZeroSecond => write!(out, "{:02}", m.second),
        Std::LongYear if m.year < 0 => write!(out, "-{:04}", -m.year),
        Std::LongYear => write!(out, "{:04}", m.year),
        Std::Year => write!(out, "{:02}", m.year.rem_euclid(100)),
        Std::Pm => write!(out, "{}", if m.hour >= 12 { "PM" } else { "AM" }),
        Std::LowerPm => write!(out, "{}", if m.hour >= 12 { "pm" } else { "am" }),
        Std::Tz if !m.zone_name.is_empty() => write!(out, "{}", m.zone_name),
        Std::Tz => {
            append_offset(out, m.offset_seconds, false, true, false);
            Ok(())
        }
        Std::Offset { iso: true, .. } if m.offset_seconds == 0 => write!(out, "Z"),
        Std::Offset { colons, minutes, seconds, .. } => {
            append_offset(out, m.offset_seconds, colons, minutes, seconds);
            Ok(())
        }
        Std::Fraction { separator, digits, trim } => {
            let all = format!("{:09}", m.nanosecond);
            let shown = &all[..digits.min(9)];
            let shown = if trim { shown.trim_end_matches('0') } else { shown };
            if !shown.is_empty() {
                out.push(separator);
                out.push_str(shown);
            }
            Ok(())
        }
    };
}

fn append_offset(out: &mut String, offset: i32, colons: bool, minutes: bool, seconds: bool) {
    out.push(if offset < 0 { '-' } else { '+' });
    let offset = offset.unsigned_abs();
    out.push_str(&format!("{:02}", offset / 3600));
    if minutes {
        if colons {
            out.push(':');
        }
        out.push_str(&format!("{:02}", offset / 60 % 60));
    }
    if seconds {
        if colons {
            out.push(':');
        }
        out.push_str(&format!("{:02}", offset % 60));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's format_test.go reference: Unix(0, 1233810057012345600) in PST.
    fn go_test_time() -> Moment {
        Moment::from_unix(1_233_810_057, 12_345_600, -8 * 3600, "PST")
    }

    /// Go's TestFormat table (time/format_test.go), layouts and expected results as Go has them.
    #[test]
    fn go_format_tests() {
        let cases = [
            ("ANSIC", "Mon Jan _2 15:04:05 2006", "Wed Feb  4 21:00:57 2009"),
            ("UnixDate", "Mon Jan _2 15:04:05 MST 2006", "Wed Feb  4 21:00:57 PST 2009"),
            ("RubyDate", "Mon Jan 02 15:04:05 -0700 2006", "Wed Feb 04 21:00:57 -0800 2009"),
            ("RFC822", "02 Jan 06 15:04 MST", "04 Feb 09 21:00 PST"),
            ("RFC850", "Monday, 02-Jan-06 15:04:05 MST", "Wednesday, 04-Feb-09 21:00:57 PST"),
            ("RFC1123", "Mon, 02 Jan 2006 15:04:05 MST", "Wed, 04 Feb 2009 21:00:57 PST"),
            ("RFC1123Z", "Mon, 02 Jan 2006 15:04:05 -0700", "Wed, 04 Feb 2009 21:00:57 -0800"),
            ("RFC3339", "2006-01-02T15:04:05Z07:00", "2009-02-04T21:00:57-08:00"),
            ("RFC3339Nano", "2006-01-02T15:04:05.999999999Z07:00", "2009-02-04T21:00:57.0123456-08:00"),
            ("Kitchen", "3:04PM", "9:00PM"),
            ("am/pm", "3pm", "9pm"),
            ("AM/PM", "3PM", "9PM"),
            ("two-digit year", "06 01 02", "09 02 04"),
            ("Janet", "Hi Janet, the Month is January", "Hi Janet, the Month is February"),
            ("Stamp", "Jan _2 15:04:05", "Feb  4 21:00:57"),
            ("StampMilli", "Jan _2 15:04:05.000", "Feb  4 21:00:57.012"),
            ("StampMicro", "Jan _2 15:04:05.000000", "Feb  4 21:00:57.012345"),
            ("StampNano", "Jan _2 15:04:05.000000000", "Feb  4 21:00:57.012345600"),
            ("DateTime", "2006-01-02 15:04:05", "2009-02-04 21:00:57"),
            ("DateOnly", "2006-01-02", "2009-02-04"),
            ("TimeOnly", "15:04:05", "21:00:57"),
            ("YearDay", "Jan  2 002 __2 2", "Feb  4 035  35 4"),
            ("Year", "2006 6 06 _6 __6 ___6", "2009 6 09 _6 __6 ___6"),
            ("Month", "Jan January 1 01 _1", "Feb February 2 02 _2"),
            ("DayOfMonth", "2 02 _2 __2", "4 04  4  35"),
            ("DayOfWeek", "Mon Monday", "Wed Wednesday"),
            ("Hour", "15 3 03 _3", "21 9 09 _9"),
            ("Minute", "4 04 _4", "0 00 _0"),
            ("Second", "5 05 _5", "57 57 _57"),
        ];
        let moment = go_test_time();
        for (name, layout, expected) in cases {
            assert_eq!(format(layout, &moment), expected, "{name}: {layout:?}");
        }
    }

    /// Go's ExampleTime_Format: "Wed Feb 25 11:06:39.1234 PST 2015".
    #[test]
    fn go_example_time_format() {
        // 2015-02-25 19:06:39.1234 UTC
        let moment = Moment::from_unix(1_424_891_199, 123_400_000, -8 * 3600, "PST");
        let cases = [
            ("Mon Jan 2 15:04:05 MST 2006", "Wed Feb 25 11:06:39 PST 2015"),
            ("2006/01/02", "2015/02/25"),
            ("3PM==3pm==15h", "11AM==11am==11h"),
            ("Mon Jan _2 15:04:05 MST 2006", "Wed Feb 25 11:06:39 PST 2015"),
            ("15:04:05.00000", "11:06:39.12340"),
            ("15:04:05.99999999", "11:06:39.1234"),
            ("15:04:05,000", "11:06:39,123"),
            ("2006-01-02 15:04:05.999999999 -0700 MST", "2015-02-25 11:06:39.1234 -0800 PST"),
        ];
        for (layout, expected) in cases {
            assert_eq!(format(layout, &moment), expected, "{layout:?}");
        }
    }

    #[test]
    fn offsets_zones_and_edges() {
        let utc = Moment::from_unix(1_233_810_057, 0, 0, "UTC");
        assert_eq!(format("2006-01-02T15:04:05Z07:00", &utc), "2009-02-05T05:00:57Z");
        assert_eq!(format("15:04:05.999 MST", &utc), "05:00:57 UTC", "all-zero .999 prints nothing");
        let india = Moment::from_unix(0, 0, 5 * 3600 + 1800, "");
        assert_eq!(
            format("MST|-07|-07:00|Z0700|-07:00:00|-070000", &india),
            "+0530|+05|+05:30|+0530|+05:30:00|+053000"
        );
        assert_eq!(format("15:04 Jan 2", &india), "05:30 Jan 1");
        let leap = Moment::from_unix(951_782_400, 0, 0, "UTC"); // 2000-02-29
        assert_eq!(format("Monday 2006-01-02 day 002", &leap), "Tuesday 2000-02-29 day 060");
        assert_eq!(format("3 PM 03", &Moment::from_unix(0, 0, 0, "UTC")), "12 AM 12");
        assert_eq!(format("no tokens here!", &utc), "no tokens here!");
        assert_eq!(format("", &utc), "");
        // Go's rules, literally: "Monday" wins over the lowercase check; "Jan" before a lowercase letter is
        // text; a run of 0s followed by a digit is no fraction, so "0123" reads as 01, 2, 3.
        assert_eq!(format("Mondays Janitor .0123", &utc), "Thursdays Janitor .0255");
    }
}

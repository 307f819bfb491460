//! A fan's birthday (`dim_fan_profile` v2, field `birthday`): month and day as the CRM holds
//! them, `"MM-DD"`, no year. `wxpulse dims load` refuses a value of any other form; every
//! consumer reads one that reached the topic anyway (another producer) as unknown, never
//! as an error: [`stored`] is what the mirror writes to `fan_profiles.birthday`.

use std::fmt;

/// Days of each month in a leap year: 02-29 is a birthday.
const DAYS: [u8; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// A birthday: a month and a day of it (02-29 included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Birthday {
    /// 1..=12.
    pub month: u8,
    /// 1..=the month's days (29 for February).
    pub day: u8,
}

/// Why a value is not a birthday.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a birthday \"MM-DD\" (month 01-12, a day of that month, 02-29 allowed; no year)"
)]
pub struct NotABirthday(pub String);

impl Birthday {
    /// A birthday of `month` and `day`, if the month has that day.
    pub fn new(month: u8, day: u8) -> Option<Birthday> {
        let days = *DAYS.get(usize::from(month).checked_sub(1)?)?;
        (1..=days).contains(&day).then_some(Birthday { month, day })
    }

    /// Parses `"MM-DD"` exactly: two digits, `-`, two digits (`"3-7"`, `"1990-03-07"`,
    /// `"03/07"` and `" 03-07"` are refused).
    pub fn parse(s: &str) -> Result<Birthday, NotABirthday> {
        let not = || NotABirthday(s.to_string());
        let b = s.as_bytes();
        if b.len() != 5 || b[2] != b'-' {
            return Err(not());
        }
        let two = |hi: u8, lo: u8| {
            (hi.is_ascii_digit() && lo.is_ascii_digit()).then(|| (hi - b'0') * 10 + (lo - b'0'))
        };
        let (Some(month), Some(day)) = (two(b[0], b[1]), two(b[3], b[4])) else {
            return Err(not());
        };
        Birthday::new(month, day).ok_or_else(not)
    }
}

impl fmt::Display for Birthday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}-{:02}", self.month, self.day)
    }
}

/// A record's `birthday` as stored: `"MM-DD"` when it is one, else `""` (unknown: null,
/// empty, or not of that form).
pub fn stored(value: Option<&str>) -> String {
    value
        .and_then(|v| Birthday::parse(v).ok())
        .map(|b| b.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_day_of_a_leap_year_parses_and_prints_back() {
        let mut n = 0;
        for month in 1..=12u8 {
            for day in 1..=31u8 {
                let text = format!("{month:02}-{day:02}");
                match Birthday::new(month, day) {
                    Some(b) => {
                        assert_eq!(Birthday::parse(&text), Ok(b));
                        assert_eq!(b.to_string(), text);
                        n += 1;
                    }
                    None => assert_eq!(Birthday::parse(&text), Err(NotABirthday(text))),
                }
            }
        }
        assert_eq!(n, 366);
    }

    #[test]
    fn anything_but_mm_dd_is_refused() {
        for bad in [
            "",
            "3-7",
            "03-7",
            "0307",
            "03/07",
            " 03-07",
            "03-07 ",
            "1990-03-07",
            "03-07-1990",
            "00-10",
            "13-01",
            "02-30",
            "04-31",
            "06-00",
            "+3-07",
            "0x-07",
            "０3-07",
        ] {
            assert_eq!(
                Birthday::parse(bad),
                Err(NotABirthday(bad.to_string())),
                "{bad:?}"
            );
        }
        assert!(Birthday::parse("12-3a")
            .expect_err("not a day")
            .to_string()
            .contains("\"MM-DD\""));
    }

    #[test]
    fn stored_keeps_a_birthday_and_makes_anything_else_unknown() {
        assert_eq!(stored(Some("02-29")), "02-29");
        assert_eq!(stored(Some("12-31")), "12-31");
        for unknown in [None, Some(""), Some("31-12"), Some("2-9"), Some("02-30")] {
            assert_eq!(stored(unknown), "", "{unknown:?}");
        }
    }
}

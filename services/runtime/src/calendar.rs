//! The one Asia/Shanghai calendar: UTC+8 all year, no daylight saving. The BI views bucket
//! days, months, weekdays and hours there (`DateTime64(3, 'Asia/Shanghai')`), so do the
//! services' per-month counts and the generator's ground truth; all take it from here.

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// Asia/Shanghai is UTC+8 all year: the BI views bucket days, months, weekdays and hours
/// there, and so does the ground truth.
pub const SHANGHAI_OFFSET_MS: i64 = 8 * 3_600_000;

/// A moment in Asia/Shanghai civil time, as ClickHouse shows `DateTime64(3, 'Asia/Shanghai')`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i64,
    /// Month, 1..=12.
    pub month: u32,
    /// Day of the month, 1..=31.
    pub day: u32,
    /// ISO weekday, 1 = Monday .. 7 = Sunday.
    pub weekday: u8,
    /// Hour, 0..=23.
    pub hour: u8,
}

impl Civil {
    /// `yyyymm`, as `toYYYYMM` gives.
    pub fn yyyymm(&self) -> u32 {
        (self.year * 100) as u32 + self.month
    }

    /// `yyyy-mm-dd`, as a ClickHouse `Date` prints.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// The Shanghai civil time of `ms` (proleptic Gregorian, H. Hinnant's civil_from_days).
pub fn shanghai(ms: i64) -> Civil {
    let local = ms + SHANGHAI_OFFSET_MS;
    let days = local.div_euclid(DAY_MS);
    let hour = (local.rem_euclid(DAY_MS) / 3_600_000) as u8;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    // 1970-01-01 was a Thursday (ISO 4).
    let weekday = ((days + 3).rem_euclid(7) + 1) as u8;
    Civil {
        year,
        month,
        day,
        weekday,
        hour,
    }
}

/// The first instant (ms) of month `yyyymm` in Shanghai (H. Hinnant's days_from_civil).
pub fn month_start_ms(yyyymm: u32) -> i64 {
    let (y, m) = (i64::from(yyyymm / 100), i64::from(yyyymm % 100));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * DAY_MS - SHANGHAI_OFFSET_MS
}

/// The month after `yyyymm`.
pub fn next_month(yyyymm: u32) -> u32 {
    if yyyymm % 100 == 12 {
        (yyyymm / 100 + 1) * 100 + 1
    } else {
        yyyymm + 1
    }
}

/// `yyyymm` of a time in ms, in Asia/Shanghai: what ClickHouse's `toYYYYMM` gives.
pub fn month_of(ms: i64) -> u32 {
    shanghai(ms).yyyymm()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_days_turn_at_shanghai_midnight() {
        // 2025-02-28T16:00:00Z is 2025-03-01 00:00 in Shanghai.
        let t = 1_740_758_400_000;
        assert_eq!(month_of(t - 1), 202_502);
        assert_eq!(month_of(t), 202_503);
        assert_eq!(month_start_ms(202_503), t);
        let c = shanghai(t);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.weekday),
            (2025, 3, 1, 0, 6)
        );
        assert_eq!(c.date(), "2025-03-01");
        assert_eq!(next_month(202_512), 202_601);
        for m in [199_912, 202_001, 202_402, 202_412] {
            assert_eq!(month_of(month_start_ms(m)), m);
            assert_eq!(
                month_of(month_start_ms(m) - 1),
                if m % 100 == 1 { m - 89 } else { m - 1 }
            );
        }
    }
}

//! Durations as operators write them: `90`, `90s`, `15m`, `2h`, `1d`,
//! `1w`, `1h30m` (seconds without a unit), for command-line flags and for
//! zone-file TTLs (BIND's units).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("{0:?} is not a duration: use e.g. 90s, 30m, 1h, 1d")]
    Invalid(String),
    #[error("{0:?} is not a duration: a number needs a unit (s, m, h, d, w)")]
    MissingUnit(String),
    #[error("{0:?} is too long a duration")]
    Overflow(String),
}

/// Seconds in `s`.
pub fn parse_duration(s: &str) -> Result<u64, DurationError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(DurationError::Empty);
    }
    if let Ok(n) = t.parse::<u64>() {
        return Ok(n);
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit: u64 = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(DurationError::Invalid(s.to_string())),
        };
        let n: u64 = num
            .parse()
            .map_err(|_| DurationError::Invalid(s.to_string()))?;
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(|| DurationError::Overflow(s.to_string()))?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(DurationError::MissingUnit(s.to_string()));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (s, want) in [
            ("0", 0),
            ("90", 90),
            ("90s", 90),
            ("15m", 900),
            ("1h", 3600),
            ("1H", 3600),
            ("2d", 172_800),
            ("1w", 604_800),
            ("1h30m", 5400),
        ] {
            assert_eq!(parse_duration(s), Ok(want), "{s}");
        }
        for bad in [
            "",
            "h",
            "1x",
            "1h30",
            "-1h",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

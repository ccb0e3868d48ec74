//! C library behaviours isospec must reproduce because its output or its
//! reading of settings depends on them: `atoi`, as isolationtester reads
//! PGISOLATIONTIMEOUT, pg_regress its numeric options and libpq an error's
//! position.

/// C's atoi: leading blanks, an optional sign, digits; anything else ends
/// the number (0 when there is none); saturates instead of overflowing.
pub(crate) fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let n: i64 = digits
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .fold(0i64, |acc, c| {
            acc.saturating_mul(10)
                .saturating_add(i64::from(c as u8 - b'0'))
        });
    if neg {
        -n
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::atoi;

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi("  42abc"), 42);
        assert_eq!(atoi("-7"), -7);
        assert_eq!(atoi("+3"), 3);
        assert_eq!(atoi("x1"), 0);
        assert_eq!(atoi(""), 0);
        assert_eq!(atoi("99999999999999999999999"), i64::MAX);
    }
}

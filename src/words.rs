//! Counting words: "1 permutation", "3 permutations", "1,234 interleavings".
//!
//! Why it exists: every output (terminal, HTML, Markdown, annotations,
//! `--write` comments) counts things, and each hand-written `{n} specs`
//! said "1 specs" somewhere.  One helper, used by all of them; a test runs
//! the commands on one-element inputs and finds no "1 …s".

/// `n` with the word for its number, grouped by thousands as every number
/// isospec prints is.
pub fn counted(n: impl Into<u128>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// 1234567 as "1,234,567".
pub fn thousands(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_and_many() {
        assert_eq!(counted(1u8, "class", "classes"), "1 class");
        assert_eq!(counted(0u8, "class", "classes"), "0 classes");
        assert_eq!(counted(1234usize as u64, "step", "steps"), "1,234 steps");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(63_063_000), "63,063,000");
    }
}

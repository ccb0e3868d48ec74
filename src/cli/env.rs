//! The one place isospec reads its process environment: a snapshot of
//! the variables it uses (`environment::is_used`), taken once when the
//! command line starts and handed to everything that needs one.  Flags
//! beat variables; the resolution of each (`flags`, `request`) says which
//! variable stands in for which flag.

use crate::environment::Environment;

/// The variables isospec uses, as they are now.
pub(crate) fn snapshot() -> Environment {
    Environment::from_pairs(std::env::vars_os())
}

/// A boolean variable as clap's BoolishValueParser reads one (y, yes, t,
/// true, on, 1; n, no, f, false, off, 0); an error names the variable.
pub(crate) fn boolish(env: &Environment, name: &str) -> Result<bool, String> {
    match env.get(name).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(false),
        Some("1" | "true" | "t" | "yes" | "on" | "y") => Ok(true),
        Some("0" | "false" | "f" | "no" | "off" | "n") => Ok(false),
        Some(v) => Err(format!("{name}: \"{v}\" is not a boolean (true or false)")),
    }
}

/// A number variable; an error names the variable.
pub(crate) fn number<T: std::str::FromStr>(
    env: &Environment,
    name: &str,
) -> Result<Option<T>, String> {
    env.get(name)
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| format!("{name}: \"{v}\" is not a number"))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_and_numbers_name_their_variable() {
        let e = Environment::from_pairs([
            ("ISOSPEC_NO_PIN", "Yes"),
            ("ISOSPEC_JOBS", "x"),
            ("ISOSPEC_GRACE", "3"),
        ]);
        assert_eq!(boolish(&e, "ISOSPEC_NO_PIN"), Ok(true));
        assert_eq!(boolish(&e, "ISOSPEC_OTHER"), Ok(false));
        assert_eq!(
            number::<usize>(&e, "ISOSPEC_JOBS"),
            Err("ISOSPEC_JOBS: \"x\" is not a number".into())
        );
        assert_eq!(number::<u64>(&e, "ISOSPEC_GRACE"), Ok(Some(3)));
        assert_eq!(
            boolish(&e.with("ISOSPEC_NO_PIN", "maybe"), "ISOSPEC_NO_PIN"),
            Err("ISOSPEC_NO_PIN: \"maybe\" is not a boolean (true or false)".into())
        );
    }
}

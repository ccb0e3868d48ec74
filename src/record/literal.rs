//! A bound parameter written back as SQL: a literal with an explicit cast
//! to the parameter's type, so that a recorded extended-protocol statement
//! becomes a step that runs by itself.  Text-format values are quoted as
//! they were sent; binary values are decoded for the common types and
//! refused (never guessed) for the rest.

use std::fmt::Write;

/// Why a parameter cannot be written as a literal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiteralError {
    #[error("parameter ${index} is in binary format with type {ty} (oid {oid}), which isospec cannot decode")]
    Undecodable { index: usize, oid: u32, ty: String },
    #[error("parameter ${index} has malformed binary data for type {ty}: {why}")]
    Malformed {
        index: usize,
        ty: String,
        why: &'static str,
    },
    #[error("parameter ${index} is in binary format and its type is unknown (the server could not describe the statement)")]
    UnknownBinary { index: usize },
    #[error("parameter ${index} is not valid UTF-8 text")]
    NotUtf8 { index: usize },
}

/// Oids of the types decoded from binary format.
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// What the server says about a type: its name as `format_type` writes it
/// and, for an array type, its element type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    pub name: String,
    pub elem: Option<u32>,
    /// An enum: its binary form is its label's text.
    pub is_enum: bool,
}

/// Looks types up by oid (the server's answers, asked once per recording).
pub trait Types {
    fn info(&self, oid: u32) -> Option<&TypeInfo>;
}

impl Types for std::collections::HashMap<u32, TypeInfo> {
    fn info(&self, oid: u32) -> Option<&TypeInfo> {
        self.get(&oid)
    }
}

/// A string constant a spec's `{ … }` block can hold: `'…'`, or `E'…'`
/// with `}` written `\x7d` (the spec lexer ends a block at the first `}`).
pub fn quote_string(s: &str) -> String {
    if !s.contains('}') {
        return format!("'{}'", s.replace('\'', "''"));
    }
    let mut out = String::from("E'");
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '}' => out.push_str("\\x7d"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Parameter `index` (1-based) as SQL: `value::type`, `NULL::type`, or
/// for a text value of unknown type an untyped literal (which the server
/// resolves as it resolved the untyped parameter).
pub fn literal(
    index: usize,
    value: Option<&[u8]>,
    binary: bool,
    oid: u32,
    types: &impl Types,
) -> Result<String, LiteralError> {
    let ty = types.info(oid);
    let cast = |s: String| match ty {
        Some(t) => format!("{s}::{}", t.name),
        None => s,
    };
    let Some(value) = value else {
        return Ok(cast("NULL".into()));
    };
    if !binary {
        let text = std::str::from_utf8(value).map_err(|_| LiteralError::NotUtf8 { index })?;
        return Ok(cast(quote_string(text)));
    }
    if oid == 0 {
        return Err(LiteralError::UnknownBinary { index });
    }
    let name = ty.map_or_else(|| format!("oid {oid}"), |t| t.name.clone());
    if let Some(elem) = ty.and_then(|t| t.elem) {
        return array(index, value, elem, &name, types);
    }
    if ty.is_some_and(|t| t.is_enum) {
        return decode(index, value, oid::TEXT, &name).map(cast);
    }
    let text = decode(index, value, oid, &name)?;
    Ok(cast(text))
}

fn malformed(index: usize, ty: &str, why: &'static str) -> LiteralError {
    LiteralError::Malformed {
        index,
        ty: ty.to_string(),
        why,
    }
}

/// One binary value of a scalar type as a quoted literal (without its cast).
fn decode(index: usize, v: &[u8], oid: u32, ty: &str) -> Result<String, LiteralError> {
    let bad = |why| malformed(index, ty, why);
    let fixed = |n: usize| -> Result<&[u8], LiteralError> {
        if v.len() == n {
            Ok(v)
        } else {
            Err(bad("wrong length"))
        }
    };
    let text = |v: &[u8]| -> Result<String, LiteralError> {
        std::str::from_utf8(v)
            .map(quote_string)
            .map_err(|_| LiteralError::NotUtf8 { index })
    };
    Ok(match oid {
        oid::BOOL => match fixed(1)?[0] {
            0 => "'false'".into(),
            _ => "'true'".into(),
        },
        oid::INT2 => format!("'{}'", i16::from_be_bytes(fixed(2)?.try_into().unwrap())),
        oid::INT4 => format!("'{}'", i32::from_be_bytes(fixed(4)?.try_into().unwrap())),
        oid::OID => format!("'{}'", u32::from_be_bytes(fixed(4)?.try_into().unwrap())),
        oid::INT8 => format!("'{}'", i64::from_be_bytes(fixed(8)?.try_into().unwrap())),
        oid::FLOAT4 => float(
            f32::from_be_bytes(fixed(4)?.try_into().unwrap()) as f64,
            true,
        ),
        oid::FLOAT8 => float(f64::from_be_bytes(fixed(8)?.try_into().unwrap()), false),
        oid::NUMERIC => format!("'{}'", numeric(v).ok_or_else(|| bad("bad numeric"))?),
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::JSON => text(v)?,
        oid::JSONB => match v.split_first() {
            Some((1, rest)) => text(rest)?,
            _ => return Err(bad("unknown jsonb version")),
        },
        oid::BYTEA => {
            let mut s = String::from("'\\x");
            for b in v {
                let _ = write!(s, "{b:02x}");
            }
            s.push('\'');
            s
        }
        oid::UUID => {
            let b = fixed(16)?;
            let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!(
                "'{}-{}-{}-{}-{}'",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            )
        }
        oid::DATE => {
            let d = i32::from_be_bytes(fixed(4)?.try_into().unwrap());
            match d {
                i32::MAX => "'infinity'".into(),
                i32::MIN => "'-infinity'".into(),
                d => format!("'{}'", date_text(d as i64 + POSTGRES_EPOCH_JDATE)),
            }
        }
        oid::TIMESTAMP | oid::TIMESTAMPTZ => {
            let us = i64::from_be_bytes(fixed(8)?.try_into().unwrap());
            match us {
                i64::MAX => "'infinity'".into(),
                i64::MIN => "'-infinity'".into(),
                us => {
                    let zone = if oid == oid::TIMESTAMPTZ { "+00" } else { "" };
                    format!("'{}{zone}'", timestamp_text(us))
                }
            }
        }
        _ => {
            return Err(LiteralError::Undecodable {
                index,
                oid,
                ty: ty.to_string(),
            })
        }
    })
}

/// A float as the shortest decimal that reads back as the same value.
fn float(x: f64, single: bool) -> String {
    if x.is_nan() {
        "'NaN'".into()
    } else if x.is_infinite() {
        if x > 0.0 { "'Infinity'" } else { "'-Infinity'" }.into()
    } else if single {
        format!("'{:e}'", x as f32)
    } else {
        format!("'{x:e}'")
    }
}

/// Binary numeric: ndigits, weight, sign, dscale, then base-10000 digits.
fn numeric(v: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<u16> { Some(u16::from_be_bytes([*v.get(i)?, *v.get(i + 1)?])) };
    let ndigits = word(0)? as usize;
    let weight = word(2)? as i16 as i64;
    let sign = word(4)?;
    let dscale = word(6)? as usize;
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        0x0000 | 0x4000 => {}
        _ => return None,
    }
    if v.len() != 8 + 2 * ndigits {
        return None;
    }
    let digits: Vec<u16> = (0..ndigits)
        .map(|i| word(8 + 2 * i))
        .collect::<Option<_>>()?;
    if digits.iter().any(|&d| d >= 10000) {
        return None;
    }
    let digit = |k: i64| -> u16 {
        // k: the position of a base-10000 digit (weight .. -inf).
        let i = weight - k;
        if i >= 0 && (i as usize) < digits.len() {
            digits[i as usize]
        } else {
            0
        }
    };
    let mut int = String::new();
    if weight < 0 {
        int.push('0');
    } else {
        for k in (0..=weight).rev() {
            let d = digit(k);
            if int.is_empty() {
                int = d.to_string();
            } else {
                let _ = write!(int, "{d:04}");
            }
        }
    }
    let mut frac = String::new();
    let mut k = -1;
    while frac.len() < dscale {
        let _ = write!(frac, "{:04}", digit(k));
        k -= 1;
    }
    frac.truncate(dscale);
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    s.push_str(&int);
    if dscale > 0 {
        s.push('.');
        s.push_str(&frac);
    }
    Some(s)
}

const POSTGRES_EPOCH_JDATE: i64 = 2_451_545;

/// PostgreSQL's j2date: a Julian day as year, month, day.
fn j2date(jd: i64) -> (i64, i64, i64) {
    let mut julian = jd + 32044;
    let mut quad = julian.div_euclid(146_097);
    let extra = (julian - quad * 146_097) * 4 + 3;
    julian += 60 + quad * 3 + extra.div_euclid(146_097);
    quad = julian.div_euclid(1461);
    julian -= quad * 1461;
    let mut y = julian * 4 / 1461;
    julian = if y != 0 {
        (julian + 305) % 365
    } else {
        (julian + 306) % 366
    } + 123;
    y += quad * 4;
    let year = y - 4800;
    quad = julian * 2141 / 65536;
    let day = julian - 7834 * quad / 256;
    let month = (quad + 10) % 12 + 1;
    (year, month, day)
}

fn date_text(jd: i64) -> String {
    let (y, m, d) = j2date(jd);
    if y <= 0 {
        format!("{:04}-{m:02}-{d:02} BC", 1 - y)
    } else {
        format!("{y:04}-{m:02}-{d:02}")
    }
}

fn timestamp_text(us: i64) -> String {
    let day_us = 86_400_000_000i64;
    let days = us.div_euclid(day_us);
    let rest = us.rem_euclid(day_us);
    let (y, m, d) = j2date(days + POSTGRES_EPOCH_JDATE);
    let secs = rest / 1_000_000;
    let micros = rest % 1_000_000;
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut s = if y <= 0 {
        format!("{:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}", 1 - y)
    } else {
        format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
    };
    if micros != 0 {
        let _ = write!(s, ".{micros:06}");
        while s.ends_with('0') {
            s.pop();
        }
    }
    if y <= 0 {
        s.push_str(" BC");
    }
    s
}

/// A binary array as `ARRAY[…]::type` (nested for more dimensions).
fn array(
    index: usize,
    v: &[u8],
    elem: u32,
    ty: &str,
    types: &impl Types,
) -> Result<String, LiteralError> {
    let bad = |why| malformed(index, ty, why);
    let int = |i: usize| -> Result<i32, LiteralError> {
        v.get(i..i + 4)
            .map(|b| i32::from_be_bytes(b.try_into().unwrap()))
            .ok_or_else(|| bad("truncated array"))
    };
    let ndim = int(0)?;
    if !(0..=6).contains(&ndim) {
        return Err(bad("bad dimension count"));
    }
    if int(8)? as u32 != elem {
        return Err(bad("element type differs from the parameter's"));
    }
    let mut dims = Vec::new();
    for k in 0..ndim as usize {
        let size = int(12 + 8 * k)?;
        let lower = int(16 + 8 * k)?;
        if lower != 1 {
            return Err(bad("an array whose lower bound is not 1"));
        }
        if size < 0 {
            return Err(bad("negative dimension"));
        }
        dims.push(size as usize);
    }
    let mut at = 12 + 8 * ndim as usize;
    // Each element takes at least its 4-byte length: a count the data
    // cannot hold is refused before anything is allocated for it.
    let room = (v.len() - at.min(v.len())) / 4;
    let total: usize = if dims.is_empty() {
        0
    } else {
        dims.iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&t| t <= room)
            .ok_or_else(|| bad("more elements than the data holds"))?
    };
    let mut items = Vec::with_capacity(total);
    for _ in 0..total {
        let len = int(at)?;
        at += 4;
        if len < 0 {
            items.push("NULL".to_string());
        } else {
            let end = at + len as usize;
            let bytes = v.get(at..end).ok_or_else(|| bad("truncated array"))?;
            at = end;
            let elem_name = types
                .info(elem)
                .map_or_else(|| format!("oid {elem}"), |t| t.name.clone());
            let as_oid = if types.info(elem).is_some_and(|t| t.is_enum) {
                oid::TEXT
            } else {
                elem
            };
            items.push(
                decode(index, bytes, as_oid, &elem_name).map_err(|e| match e {
                    LiteralError::Undecodable { .. } => LiteralError::Undecodable {
                        index,
                        oid: elem,
                        ty: ty.to_string(),
                    },
                    e => e,
                })?,
            );
        }
    }
    if at != v.len() {
        return Err(bad("trailing bytes"));
    }
    fn nest(items: &[String], dims: &[usize]) -> String {
        match dims.split_first() {
            None => String::new(),
            Some((_, [])) => format!("ARRAY[{}]", items.join(", ")),
            Some((&n, rest)) => {
                let per = items.len() / n.max(1);
                let parts: Vec<String> = (0..n)
                    .map(|i| nest(&items[i * per..(i + 1) * per], rest))
                    .collect();
                format!("ARRAY[{}]", parts.join(", "))
            }
        }
    }
    let body = if dims.is_empty() || total == 0 {
        "ARRAY[]".to_string()
    } else {
        nest(&items, &dims)
    };
    Ok(format!("{body}::{ty}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn types() -> HashMap<u32, TypeInfo> {
        let mut m = HashMap::new();
        for (oid, name) in [
            (16, "boolean"),
            (20, "bigint"),
            (21, "smallint"),
            (23, "integer"),
            (25, "text"),
            (700, "real"),
            (701, "double precision"),
            (1700, "numeric"),
            (1082, "date"),
            (1114, "timestamp without time zone"),
            (1184, "timestamp with time zone"),
            (2950, "uuid"),
            (3802, "jsonb"),
            (17, "bytea"),
            (600, "point"),
        ] {
            m.insert(
                oid,
                TypeInfo {
                    name: name.into(),
                    elem: None,
                    is_enum: false,
                },
            );
        }
        m.insert(
            1007,
            TypeInfo {
                name: "integer[]".into(),
                elem: Some(23),
                is_enum: false,
            },
        );
        m.insert(
            90001,
            TypeInfo {
                name: "mood".into(),
                elem: None,
                is_enum: true,
            },
        );
        m
    }

    fn bin(oid: u32, v: &[u8]) -> Result<String, LiteralError> {
        literal(1, Some(v), true, oid, &types())
    }

    #[test]
    fn text_values_are_quoted_and_cast() {
        let t = types();
        assert_eq!(
            literal(1, Some(b"it's"), false, 25, &t).unwrap(),
            "'it''s'::text"
        );
        assert_eq!(
            literal(1, Some(b"{1,2}"), false, 1007, &t).unwrap(),
            "E'{1,2\\x7d'::integer[]"
        );
        assert_eq!(literal(1, Some(b"x"), false, 0, &t).unwrap(), "'x'");
        assert_eq!(literal(2, None, false, 23, &t).unwrap(), "NULL::integer");
    }

    #[test]
    fn binary_scalars_decode() {
        assert_eq!(bin(16, &[1]).unwrap(), "'true'::boolean");
        assert_eq!(bin(21, &(-7i16).to_be_bytes()).unwrap(), "'-7'::smallint");
        assert_eq!(
            bin(20, &i64::MIN.to_be_bytes()).unwrap(),
            "'-9223372036854775808'::bigint"
        );
        assert_eq!(
            bin(701, &0.1f64.to_be_bytes()).unwrap(),
            "'1e-1'::double precision"
        );
        assert_eq!(bin(700, &1.5f32.to_be_bytes()).unwrap(), "'1.5e0'::real");
        assert_eq!(
            bin(701, &f64::NEG_INFINITY.to_be_bytes()).unwrap(),
            "'-Infinity'::double precision"
        );
        assert_eq!(bin(17, &[0xde, 0xad]).unwrap(), "'\\xdead'::bytea");
        assert_eq!(
            bin(3802, b"\x01{\"a\": 1}").unwrap(),
            "E'{\"a\": 1\\x7d'::jsonb"
        );
        let u = [
            0x12u8, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        assert_eq!(
            bin(2950, &u).unwrap(),
            "'12345678-9abc-def0-0102-030405060708'::uuid"
        );
    }

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(
            bin(1082, &0i32.to_be_bytes()).unwrap(),
            "'2000-01-01'::date"
        );
        assert_eq!(
            bin(1082, &(-1i32).to_be_bytes()).unwrap(),
            "'1999-12-31'::date"
        );
        assert_eq!(
            bin(1082, &9837i32.to_be_bytes()).unwrap(),
            "'2026-12-07'::date"
        );
        let us: i64 = (9837 * 86_400 + 4 * 3600 + 51 * 60 + 29) * 1_000_000 + 123_400;
        assert_eq!(
            bin(1184, &us.to_be_bytes()).unwrap(),
            "'2026-12-07 04:51:29.1234+00'::timestamp with time zone"
        );
        assert_eq!(
            bin(1114, &i64::MAX.to_be_bytes()).unwrap(),
            "'infinity'::timestamp without time zone"
        );
    }

    fn numeric_bytes(ndigits: &[u16], weight: i16, sign: u16, dscale: u16) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend((ndigits.len() as u16).to_be_bytes());
        v.extend(weight.to_be_bytes());
        v.extend(sign.to_be_bytes());
        v.extend(dscale.to_be_bytes());
        for d in ndigits {
            v.extend(d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics() {
        assert_eq!(
            bin(1700, &numeric_bytes(&[1, 2345], 1, 0, 2)).unwrap(),
            "'12345.00'::numeric"
        );
        assert_eq!(
            bin(1700, &numeric_bytes(&[12, 3400], -1, 0x4000, 6)).unwrap(),
            "'-0.001234'::numeric"
        );
        assert_eq!(
            bin(1700, &numeric_bytes(&[], 0, 0, 0)).unwrap(),
            "'0'::numeric"
        );
        assert_eq!(
            bin(1700, &numeric_bytes(&[], 0, 0xC000, 0)).unwrap(),
            "'NaN'::numeric"
        );
        assert_eq!(
            bin(1700, &numeric_bytes(&[5], 2, 0, 0)).unwrap(),
            "'500000000'::numeric"
        );
    }

    #[test]
    fn arrays_and_refusals() {
        let mut v = Vec::new();
        for x in [1i32, 0, 23, 2, 1] {
            v.extend(x.to_be_bytes());
        }
        v.extend(4i32.to_be_bytes());
        v.extend(7i32.to_be_bytes());
        v.extend((-1i32).to_be_bytes());
        assert_eq!(bin(1007, &v).unwrap(), "ARRAY['7', NULL]::integer[]");
        assert_eq!(bin(90001, b"red").unwrap(), "'red'::mood");
        let mut huge = Vec::new();
        for x in [1i32, 0, 23, i32::MAX, 1] {
            huge.extend(x.to_be_bytes());
        }
        assert!(matches!(
            bin(1007, &huge),
            Err(LiteralError::Malformed { .. })
        ));
        let err = bin(600, &[0; 16]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter $1 is in binary format with type point (oid 600), which isospec cannot decode"
        );
        assert!(matches!(
            literal(1, Some(b"\0"), true, 0, &types()),
            Err(LiteralError::UnknownBinary { .. })
        ));
    }
}

//! Byte sizes and rates as people type and read them: `--rate 60`, `1.5MiB`, `4Mbit`, and
//! `human_bytes` for output.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("empty size: give a number such as 64, 1.5MiB, 500KB or 4Mbit")]
    Empty,
    #[error("`{0}` is negative; sizes and rates must be positive")]
    Negative(String),
    #[error(
        "`{0}` is not a number followed by an optional unit (such as 64, 1.5MiB, 500KB, 4Mbit)"
    )]
    NotANumber(String),
    #[error(
        "unknown unit `{unit}` in `{input}`; use B, K/KiB, KB, M/MiB, MB, G/GiB, GB, T/TiB, TB, \
         Kbit, Mbit or Gbit"
    )]
    UnknownUnit { unit: String, input: String },
    #[error("`{0}` is zero bytes; give a positive size")]
    Zero(String),
    #[error("`{0}` is too large")]
    Overflow(String),
}

/// Bytes per unit as a fraction (bit units are decimal and divided by 8).
fn unit_factor(unit: &str) -> Option<(u128, u128)> {
    const KI: u128 = 1 << 10;
    let factor = match unit.to_ascii_lowercase().as_str() {
        "b" => (1, 1),
        "k" | "kib" => (KI, 1),
        "kb" => (1_000, 1),
        "m" | "mib" => (KI * KI, 1),
        "mb" => (1_000_000, 1),
        "g" | "gib" => (KI * KI * KI, 1),
        "gb" => (1_000_000_000, 1),
        "t" | "tib" => (KI * KI * KI * KI, 1),
        "tb" => (1_000_000_000_000, 1),
        "kbit" => (1_000, 8),
        "mbit" => (1_000_000, 8),
        "gbit" => (1_000_000_000, 8),
        _ => return None,
    };
    Some(factor)
}

/// Parses a size or rate. A bare number is multiplied by `bare_unit` (so `--rate 60` with a
/// bare unit of 1024 is 60 KiB/s); units are case-insensitive, may follow a space and may end
/// in `/s`. Fractions are exact decimal arithmetic, rounded to the nearest byte.
pub fn parse_byte_size(s: &str, bare_unit: u64) -> Result<u64, UnitError> {
    let input = s.trim();
    if input.is_empty() {
        return Err(UnitError::Empty);
    }
    if input.starts_with('-') {
        return Err(UnitError::Negative(input.to_string()));
    }
    let number_end = input
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(input.len());
    let (number, rest) = input.split_at(number_end);
    let unit = rest.trim();
    let unit = unit.strip_suffix("/s").unwrap_or(unit).trim_end();

    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    let not_a_number = || UnitError::NotANumber(input.to_string());
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return Err(not_a_number());
    }
    // Digits past 18 decimals cannot change the result by a byte at any supported unit.
    let frac_part = &frac_part[..frac_part.len().min(18)];
    let overflow = || UnitError::Overflow(input.to_string());
    let mut mantissa: u128 = 0;
    for c in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(c - b'0')))
            .ok_or_else(overflow)?;
    }
    let scale = 10u128.pow(frac_part.len() as u32);

    let (num, den) = if unit.is_empty() {
        (u128::from(bare_unit), 1)
    } else {
        unit_factor(unit).ok_or_else(|| UnitError::UnknownUnit {
            unit: unit.to_string(),
            input: input.to_string(),
        })?
    };
    let numerator = mantissa.checked_mul(num).ok_or_else(overflow)?;
    let denominator = scale * den;
    let bytes = (numerator + denominator / 2) / denominator;
    if bytes == 0 {
        return Err(UnitError::Zero(input.to_string()));
    }
    u64::try_from(bytes).map_err(|_| overflow())
}

/// `1536` -> `"1.5 KiB"`; below 1 KiB, exact bytes (`"512 B"`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut unit_size: u128 = 1024;
    for (i, unit) in UNITS.iter().enumerate() {
        let tenths = (u128::from(n) * 10 + unit_size / 2) / unit_size;
        // Move up when rounding would print "1024.0" of this unit.
        if tenths < 10 * 1024 || i == UNITS.len() - 1 {
            return format!("{}.{} {unit}", tenths / 10, tenths % 10);
        }
        unit_size *= 1024;
    }
    format!("{n} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_numbers_use_the_bare_unit() {
        assert_eq!(parse_byte_size("60", 1024), Ok(61_440));
        assert_eq!(parse_byte_size("60", 1), Ok(60));
        assert_eq!(parse_byte_size("1.5", 1024), Ok(1536));
    }

    #[test]
    fn binary_and_decimal_units() {
        assert_eq!(parse_byte_size("2MiB", 1024), Ok(2 * 1024 * 1024));
        assert_eq!(parse_byte_size("2M", 1), Ok(2 * 1024 * 1024));
        assert_eq!(parse_byte_size("2mb", 1), Ok(2_000_000));
        assert_eq!(parse_byte_size("500KB", 1024), Ok(500_000));
        assert_eq!(parse_byte_size("500k", 1), Ok(512_000));
        assert_eq!(parse_byte_size("1.5MiB", 1), Ok(1_572_864));
        assert_eq!(parse_byte_size("3GiB", 1), Ok(3 << 30));
        assert_eq!(parse_byte_size("1GB", 1), Ok(1_000_000_000));
        assert_eq!(parse_byte_size("100B", 1024), Ok(100));
        assert_eq!(parse_byte_size(" 64 KiB/s ", 1), Ok(65_536));
        assert_eq!(parse_byte_size(".5K", 1), Ok(512));
    }

    #[test]
    fn bit_units_are_decimal_over_eight() {
        assert_eq!(parse_byte_size("4Mbit", 1024), Ok(500_000));
        assert_eq!(parse_byte_size("8Kbit", 1), Ok(1000));
        assert_eq!(parse_byte_size("1gbit", 1), Ok(125_000_000));
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        assert_eq!(parse_byte_size("", 1), Err(UnitError::Empty));
        assert_eq!(parse_byte_size("  ", 1), Err(UnitError::Empty));
        assert!(matches!(
            parse_byte_size("-5", 1),
            Err(UnitError::Negative(_))
        ));
        assert!(matches!(
            parse_byte_size("0", 1024),
            Err(UnitError::Zero(_))
        ));
        assert!(matches!(
            parse_byte_size("0.0001", 1),
            Err(UnitError::Zero(_))
        ));
        assert!(matches!(
            parse_byte_size("abc", 1),
            Err(UnitError::NotANumber(_))
        ));
        assert!(matches!(
            parse_byte_size("1.2.3", 1),
            Err(UnitError::NotANumber(_))
        ));
        assert!(matches!(
            parse_byte_size(".", 1),
            Err(UnitError::NotANumber(_))
        ));
        assert!(matches!(
            parse_byte_size("5 parsecs", 1),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_byte_size("20000000000TiB", 1),
            Err(UnitError::Overflow(_))
        ));
        assert!(matches!(
            parse_byte_size("99999999999999999999999999999999999999999", 1),
            Err(UnitError::Overflow(_))
        ));
        let message = parse_byte_size("5 parsecs", 1).unwrap_err().to_string();
        assert!(
            message.contains("parsecs") && message.contains("MiB"),
            "{message}"
        );
    }

    #[test]
    fn human_bytes_picks_a_readable_unit() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1_572_864), "1.5 MiB");
        assert_eq!(human_bytes(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
    }
}

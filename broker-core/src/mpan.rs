//! MPAN core (13-digit meter point administration number) checks.

const WEIGHTS: [u32; 12] = [3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43];

/// Whether `s` is a 13-digit MPAN core whose last digit is the industry check digit:
/// the first twelve digits weighted by the primes 3…43, summed, modulo 11, modulo 10.
pub fn is_valid_mpan_core(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 13 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = b[..12].iter().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    u32::from(b[12] - b'0') == sum % 11 % 10
}

/// Appends the check digit to twelve digits (for tests, demo data and tools).
pub fn with_check_digit(twelve: &str) -> Option<String> {
    let b = twelve.as_bytes();
    if b.len() != 12 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = b.iter().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    Some(format!("{twelve}{}", sum % 11 % 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digit_round_trip() {
        let m = with_check_digit("123456789012").unwrap();
        assert!(is_valid_mpan_core(&m));
        let last = m.as_bytes()[12] - b'0';
        let bad = format!("{}{}", &m[..12], (last + 1) % 10);
        assert!(!is_valid_mpan_core(&bad));
        assert!(!is_valid_mpan_core("12345"));
        assert!(!is_valid_mpan_core("12345678901a3"));
    }

    #[test]
    fn known_value() {
        // 1..=12 weighted: 3+10+21+52+85+114+161+232+279+0+41+86 = 1084; 1084 % 11 = 6.
        assert_eq!(with_check_digit("123456789012").unwrap(), "1234567890126");
    }
}

//! The Leitweg-ID: the address of a German public body for XRechnung e-invoices
//! (KoSIT format: coarse part, optional fine part, check digits, joined by hyphens).

/// Checks form and check digits (ISO 7064 MOD 97-10 over the ID without hyphens, letters as
/// 10..35, as for IBANs). Returns the normalised ID (upper case, trimmed).
pub fn parse(input: &str) -> Option<String> {
    let id = input.trim().to_uppercase();
    let parts: Vec<&str> = id.split('-').collect();
    let (coarse, fine, check) = match parts.as_slice() {
        [coarse, check] => (*coarse, "", *check),
        [coarse, fine, check] => (*coarse, *fine, *check),
        _ => return None,
    };
    let coarse_ok = (2..=12).contains(&coarse.len()) && coarse.chars().all(|c| c.is_ascii_digit());
    let fine_ok = fine.len() <= 30 && fine.chars().all(|c| c.is_ascii_alphanumeric());
    let check_ok = check.len() == 2 && check.chars().all(|c| c.is_ascii_digit());
    if !(coarse_ok && fine_ok && check_ok) {
        return None;
    }
    (check_digits(&format!("{coarse}{fine}"))? == check).then_some(id)
}

/// The two check digits for a Leitweg-ID's coarse and fine parts.
pub fn check_digits(body: &str) -> Option<String> {
    let mut remainder: u32 = 0;
    for c in body.chars().chain("00".chars()) {
        let value = c.to_digit(36)?;
        for digit in value.to_string().chars() {
            remainder = (remainder * 10 + digit.to_digit(10)?) % 97;
        }
    }
    Some(format!("{:02}", 98 - remainder))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_pass_and_typos_fail() {
        let body = "991";
        let id = format!("{body}-{}", check_digits(body).unwrap_or_default());
        assert_eq!(parse(&id), Some(id.clone()));
        let with_fine = format!(
            "05315000-STADTAMT7-{}",
            check_digits("05315000STADTAMT7").unwrap_or_default()
        );
        assert_eq!(parse(&with_fine.to_lowercase()), Some(with_fine.clone()));
        // One digit changed: the check digits catch it.
        assert_eq!(parse(&with_fine.replace("05315000", "05315001")), None);
        for bad in [
            "",
            "12345",
            "1-00",
            "ABC-12",
            "123-1",
            "123-ABC-123",
            "1234567890123-00",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_published_example_id_validates() {
        // The test ID used in XRechnung examples.
        assert!(parse("04011000-1234512345-06").is_some());
    }
}

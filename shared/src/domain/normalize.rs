//! Normalisation of the values calls are matched on: phone numbers to E.164
//! (libphonenumber, in the tenant's default region), emails to lower case,
//! websites and email addresses to their domain.

use phonenumber::{Mode, country};

/// A phone number in E.164 (`+33612345678`), or `None` when the text is not a
/// valid number in `default_region` (ISO 3166 alpha-2) or internationally.
pub fn phone_e164(raw: &str, default_region: &str) -> Option<String> {
    let trimmed = raw.trim();
    // A sane bound: real numbers (with formatting and an extension) are far shorter.
    if trimmed.is_empty()
        || trimmed.len() > 40
        || trimmed.chars().filter(char::is_ascii_digit).count() < 4
    {
        return None;
    }
    // A number written with its country code is parsed without a region: the
    // phonenumber crate otherwise applies the region's national prefix rules to it
    // (with region US, "+33 1 42…" loses its "1").
    let region = if trimmed.starts_with('+') {
        None
    } else {
        default_region
            .trim()
            .to_ascii_uppercase()
            .parse::<country::Id>()
            .ok()
    };
    let number = phonenumber::parse(region, trimmed).ok()?;
    phonenumber::is_valid(&number).then(|| number.format().mode(Mode::E164).to_string())
}

/// The forms a Salesforce user may have typed a number in, as digit strings, for a
/// SOSL phone search: national (`0612345678`) and international (`33612345678`).
pub fn phone_search_variants(e164: &str) -> Vec<String> {
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let mut variants = vec![digits(e164)];
    if let Ok(number) = phonenumber::parse(None, e164) {
        let national = digits(&number.format().mode(Mode::National).to_string());
        if !national.is_empty() && !variants.contains(&national) {
            variants.insert(0, national);
        }
    }
    variants
}

/// Lower-cased, trimmed email, if it looks like one (`local@domain.tld`).
pub fn email(raw: &str) -> Option<String> {
    let e = raw.trim().to_lowercase();
    let (local, domain) = e.rsplit_once('@')?;
    let ok = !local.is_empty()
        && e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.');
    ok.then_some(e)
}

/// Free mail providers: their domain says nothing about a company.
const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.fr",
    "hotmail.com",
    "hotmail.fr",
    "outlook.com",
    "outlook.fr",
    "live.com",
    "live.fr",
    "msn.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "gmx.com",
    "gmx.fr",
    "orange.fr",
    "wanadoo.fr",
    "free.fr",
    "sfr.fr",
    "laposte.net",
    "bbox.fr",
    "yandex.com",
    "mail.com",
    "zoho.com",
];

/// The company domain of an email address, unless it is a free mail provider.
pub fn email_domain(email_address: &str) -> Option<String> {
    let normalised = email(email_address)?;
    let (_, domain) = normalised.rsplit_once('@')?;
    let domain = domain.trim_start_matches("www.");
    (!FREE_MAIL.contains(&domain)).then(|| domain.to_string())
}

/// The domain of a website as typed in Salesforce (`https://www.Acme.com/fr`, `acme.com`).
pub fn website_domain(raw: &str) -> Option<String> {
    let lower = raw.trim().to_lowercase();
    let without_scheme = lower
        .split_once("://")
        .map_or(lower.as_str(), |(_, rest)| rest);
    let host = without_scheme
        .split(['/', '?', '#'])
        .next()?
        .rsplit('@')
        .next()?
        .split(':')
        .next()?
        .trim_start_matches("www.")
        .trim_end_matches('.');
    let valid = host.contains('.')
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'));
    (valid && !FREE_MAIL.contains(&host)).then(|| host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_to_e164() {
        let cases = [
            ("06 12 34 56 78", "FR", Some("+33612345678")),
            ("+33 6 12 34 56 78", "FR", Some("+33612345678")),
            ("0033612345678", "FR", Some("+33612345678")),
            ("01.42.68.53.00", "FR", Some("+33142685300")),
            ("+33 1 42 68 53 00", "US", Some("+33142685300")),
            ("(415) 555-0132", "US", Some("+14155550132")),
            ("+1 415-555-0199", "FR", Some("+14155550199")),
            ("415-555-0132", "fr", None),
            ("not a phone", "FR", None),
            ("", "FR", None),
            ("12", "FR", None),
            ("' OR 1=1 --", "FR", None),
        ];
        for (raw, region, expected) in cases {
            assert_eq!(
                phone_e164(raw, region).as_deref(),
                expected,
                "{raw} in {region}"
            );
        }
        assert_eq!(phone_e164(&"1".repeat(500), "FR"), None);
        // An unknown region still accepts international numbers.
        assert_eq!(
            phone_e164("+33612345678", "ZZ").as_deref(),
            Some("+33612345678")
        );
    }

    #[test]
    fn search_variants() {
        assert_eq!(
            phone_search_variants("+33612345678"),
            ["0612345678", "33612345678"]
        );
        assert_eq!(
            phone_search_variants("+14155550132"),
            ["4155550132", "14155550132"]
        );
    }

    #[test]
    fn emails_and_domains() {
        assert_eq!(
            email("  Jane.Doe@ACME.com ").as_deref(),
            Some("jane.doe@acme.com")
        );
        assert_eq!(email("not an email"), None);
        assert_eq!(email("a@b"), None);
        assert_eq!(email("a b@c.com"), None);
        assert_eq!(email_domain("cto@Acme.com").as_deref(), Some("acme.com"));
        assert_eq!(email_domain("someone@gmail.com"), None);
        assert_eq!(
            website_domain("https://www.Acme.com/fr?x=1").as_deref(),
            Some("acme.com")
        );
        assert_eq!(website_domain("acme.fr").as_deref(), Some("acme.fr"));
        assert_eq!(
            website_domain("http://user@shop.acme.co.uk:8080/").as_deref(),
            Some("shop.acme.co.uk")
        );
        assert_eq!(website_domain("n/a"), None);
        assert_eq!(website_domain(""), None);
        assert_eq!(website_domain("gmail.com"), None);
    }
}

//! The one SOSL builder and escaper (phone lookups).

use std::fmt::Write;

use super::soql::SoqlError;

/// Characters SOSL reserves inside `FIND {…}`; each is escaped with a backslash.
const RESERVED: &[char] = &[
    '?', '&', '|', '!', '{', '}', '[', ']', '(', ')', '^', '~', '*', ':', '\\', '"', '\'', '+', '-',
];

/// Escapes the reserved characters of one search term. Words such as `OR` stay
/// operators: free text must be searched as a quoted phrase, and phone numbers are
/// reduced to their digits by [`PhoneSearch`].
pub fn escape_term(term: &str) -> String {
    let mut out = String::with_capacity(term.len() + 4);
    for c in term.chars() {
        if c.is_control() {
            continue;
        }
        if RESERVED.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `FIND {email} IN EMAIL FIELDS RETURNING Contact(Id), Lead(Id)`: the Contacts
/// and Leads that hold an address, in one request (erasure's check).
pub fn email_holders(email: &str) -> String {
    format!(
        "FIND {{{}}} IN EMAIL FIELDS RETURNING Contact(Id), Lead(Id)",
        escape_term(email)
    )
}

/// `FIND {a OR b} IN PHONE FIELDS RETURNING Contact(…), Lead(…)`: one request for
/// every variant of every number.
#[derive(Debug, Clone, PartialEq)]
pub struct PhoneSearch {
    terms: Vec<String>,
    returning: Vec<(&'static str, Vec<&'static str>)>,
}

/// Fewer digits than this cannot identify a phone number.
const MIN_DIGITS: usize = 4;
/// Salesforce drops logical operators from a search query longer than 4,000
/// characters (and returns nothing beyond 10,000): searches are cut below it.
pub const MAX_SEARCH_QUERY: usize = 4_000;

impl PhoneSearch {
    /// `numbers` are matched as alternatives (OR), each reduced to its digits:
    /// nothing else of the input reaches the query. Numbers with fewer than four
    /// digits are dropped.
    pub fn new(numbers: impl IntoIterator<Item = String>) -> Self {
        let mut unique: Vec<String> = Vec::new();
        for n in numbers {
            let digits: String = n.chars().filter(char::is_ascii_digit).collect();
            if digits.len() >= MIN_DIGITS && digits.len() <= 20 && !unique.contains(&digits) {
                unique.push(digits);
            }
        }
        Self {
            terms: unique,
            returning: Vec::new(),
        }
    }

    pub fn returning(mut self, object: &'static str, fields: &[&'static str]) -> Self {
        self.returning.push((object, fields.to_vec()));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// One statement for every number, or `None` when there is nothing to search.
    pub fn render(&self) -> Option<String> {
        self.render_terms(&self.terms)
    }

    /// Searches that together cover every number, each with a search query of at
    /// most [`MAX_SEARCH_QUERY`] characters and accepted by `fits` (the caller's
    /// request budget). Empty when there is nothing to search.
    pub fn render_within(&self, fits: impl Fn(&str) -> bool) -> Result<Vec<String>, SoqlError> {
        let mut out = Vec::new();
        if self.returning.is_empty() {
            return Ok(out);
        }
        let mut rest = &self.terms[..];
        while !rest.is_empty() {
            let fitting = |n: usize| {
                self.render_terms(&rest[..n])
                    .filter(|s| find_clause_len(&rest[..n]) <= MAX_SEARCH_QUERY && fits(s))
            };
            // The longest prefix of the remaining terms that fits.
            let (mut lo, mut hi, mut best) = (1, rest.len(), None);
            while lo <= hi {
                let mid = lo + (hi - lo) / 2;
                match fitting(mid) {
                    Some(s) => {
                        best = Some((mid, s));
                        lo = mid + 1;
                    }
                    None => hi = mid - 1,
                }
            }
            let Some((n, statement)) = best else {
                let alone = self.render_terms(&rest[..1]).map_or(0, |s| s.len());
                return Err(SoqlError::DoesNotFit(alone));
            };
            out.push(statement);
            rest = &rest[n..];
        }
        Ok(out)
    }

    fn render_terms(&self, terms: &[String]) -> Option<String> {
        if terms.is_empty() || self.returning.is_empty() {
            return None;
        }
        let alternatives: Vec<String> = terms.iter().map(|t| escape_term(t)).collect();
        let mut out = format!(
            "FIND {{{}}} IN PHONE FIELDS RETURNING ",
            alternatives.join(" OR ")
        );
        for (i, (object, fields)) in self.returning.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{object}({})", fields.join(", "));
        }
        Some(out)
    }
}

/// Length of the search query between the braces.
fn find_clause_len(terms: &[String]) -> usize {
    terms.iter().map(|t| escape_term(t).len()).sum::<usize>() + 4 * terms.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_reserved_characters() {
        assert_eq!(escape_term("+33 6 12"), r"\+33 6 12");
        assert_eq!(escape_term(r"a\b"), r"a\\b");
        assert_eq!(escape_term("x} OR {y"), r"x\} OR \{y");
        assert_eq!(escape_term("(415) 555-0132"), r"\(415\) 555\-0132");
        assert_eq!(escape_term("a\nb"), "ab");
    }

    #[test]
    fn renders_one_search_for_all_variants() {
        let q = PhoneSearch::new([
            "0612345678".to_string(),
            "+33 6 12 34 56 78".into(),
            "06.12.34.56.78".into(),
            "123".into(),
            "x OR y".into(),
        ])
        .returning("Contact", &["Id", "Phone"])
        .returning("Lead", &["Id", "IsConverted"])
        .render()
        .unwrap();
        assert_eq!(
            q,
            "FIND {0612345678 OR 33612345678} IN PHONE FIELDS RETURNING Contact(Id, Phone), Lead(Id, IsConverted)"
        );
        assert!(
            PhoneSearch::new(Vec::<String>::new())
                .returning("Contact", &["Id"])
                .render()
                .is_none()
        );
    }

    #[test]
    fn long_searches_are_cut_below_salesforces_query_length() {
        let numbers: Vec<String> = (0..600).map(|i| format!("+33 6 12 {i:06}")).collect();
        let search = PhoneSearch::new(numbers.clone()).returning("Contact", &["Id"]);
        let parts = search.render_within(|_| true).unwrap();
        assert!(
            parts.len() >= 2,
            "600 numbers of 12 digits: over 4,000 characters"
        );
        let find = |p: &str| p[p.find('{').unwrap() + 1..p.find('}').unwrap()].to_string();
        assert!(parts.iter().all(|p| find(p).len() <= MAX_SEARCH_QUERY));
        // Every number searched once.
        let searched: Vec<String> = parts
            .iter()
            .flat_map(|p| {
                find(p)
                    .split(" OR ")
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        let expected: Vec<String> = numbers
            .iter()
            .map(|n| n.chars().filter(char::is_ascii_digit).collect())
            .collect();
        assert_eq!(searched, expected);
        // And within the caller's request budget.
        let parts = search.render_within(|s| s.len() <= 500).unwrap();
        assert!(parts.iter().all(|p| p.len() <= 500));
        assert!(matches!(
            search.render_within(|s| s.len() <= 10),
            Err(SoqlError::DoesNotFit(_))
        ));
        assert!(
            PhoneSearch::new(Vec::<String>::new())
                .returning("Contact", &["Id"])
                .render_within(|_| true)
                .unwrap()
                .is_empty()
        );
    }

    proptest! {
        /// After escaping, no reserved character appears unescaped, so a term cannot
        /// close the braces or add operators.
        #[test]
        fn escaped_terms_have_no_bare_reserved_characters(s in any::<String>()) {
            let e = escape_term(&s);
            let mut chars = e.chars();
            while let Some(c) = chars.next() {
                prop_assert!(!c.is_control());
                if c == '\\' {
                    let next = chars.next();
                    prop_assert!(next.is_some_and(|n| RESERVED.contains(&n)), "dangling escape in {:?}", e);
                } else {
                    prop_assert!(!RESERVED.contains(&c), "bare {:?} in {:?}", c, e);
                }
            }
        }
    }
}

//! Salesforce record ids come in two forms: 15 characters (case-sensitive) and
//! 18 (the 15 plus a 3-character suffix that encodes their case). REST answers
//! with 18; other sources may not. Ids are compared in their 18-character form.

/// The suffix alphabet: a 5-bit number per character.
const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// `id` in its 18-character form. A 15-character id gains its suffix: bit `i`
/// of the suffix's character `k` is set when character `5k + i` is an uppercase
/// letter. Anything that is not a 15-character alphanumeric id is returned as is.
pub fn id18(id: &str) -> String {
    if id.len() != 15 || !is_record_id(id) {
        return id.to_string();
    }
    let mut out = String::with_capacity(18);
    out.push_str(id);
    for chunk in id.as_bytes().chunks(5) {
        let bits = chunk
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_ascii_uppercase())
            .fold(0usize, |n, (i, _)| n | 1 << i);
        out.push(char::from(SUFFIX[bits]));
    }
    out
}

/// Whether two ids name the same record, in either form: their first 15
/// characters (the case-sensitive id) are equal.
pub fn same_id(a: &str, b: &str) -> bool {
    a.get(..15) == b.get(..15)
}

/// The 15-character form of an id (anything shorter as is).
pub fn id15(id: &str) -> &str {
    id.get(..15).unwrap_or(id)
}

/// True for a record id in either form; false for anything else, such as the
/// `006*` wildcard a change event carries for a change to every record.
pub fn is_record_id(id: &str) -> bool {
    matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_15_character_id_gains_its_case_suffix() {
        assert_eq!(id18("001000000000001"), "001000000000001AAA");
        assert_eq!(id18("003D000000QV9n2"), "003D000000QV9n2IAD");
        // Every character uppercase: each chunk's suffix is 0b11111 = '5'.
        assert_eq!(id18("ABCDEFGHIJKLMNO"), "ABCDEFGHIJKLMNO555");
    }

    #[test]
    fn ids_differing_only_in_case_get_different_suffixes() {
        assert_ne!(id18("006a000000abcde"), id18("006A000000abcde"));
    }

    #[test]
    fn both_forms_name_the_same_record() {
        assert!(same_id("003D000000QV9n2", "003D000000QV9n2IAD"));
        assert!(!same_id("003D000000QV9n2IAD", "003d000000QV9n2IAD"));
        assert_eq!(id15("003D000000QV9n2IAD"), "003D000000QV9n2");
        assert_eq!(id15("short"), "short");
    }

    #[test]
    fn record_ids_are_told_from_wildcards() {
        assert!(is_record_id("003D000000QV9n2"));
        assert!(is_record_id("003D000000QV9n2IAD"));
        assert!(!is_record_id("006*"));
        assert!(!is_record_id("003D000000QV9n2IA'"));
        assert!(!is_record_id(""));
    }

    #[test]
    fn other_forms_are_left_alone() {
        assert_eq!(id18("003D000000QV9n2IAD"), "003D000000QV9n2IAD");
        assert_eq!(id18(""), "");
        assert_eq!(id18("003D000000QV9n'"), "003D000000QV9n'");
    }
}

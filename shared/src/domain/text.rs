//! Text lengths as Salesforce enforces them: in UTF-16 code units (an emoji or any
//! character outside the Basic Multilingual Plane counts twice). The one place the
//! product measures or cuts text written to Salesforce.

/// `Task.Subject`'s limit.
pub const SUBJECT_LIMIT: usize = 255;

/// Length as Salesforce counts it.
pub fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// The longest prefix of `text` of at most `max_units` UTF-16 units, cut between
/// characters (never inside a surrogate pair).
pub fn cut_utf16(text: &str, max_units: usize) -> &str {
    let mut used = 0;
    for (i, c) in text.char_indices() {
        used += c.len_utf16();
        if used > max_units {
            return &text[..i];
        }
    }
    text
}

/// `text` when it fits in `max_units`, else its longest prefix that fits with an
/// ellipsis (`…`, one unit) after it.
pub fn shorten(text: &str, max_units: usize) -> String {
    if utf16_len(text) <= max_units {
        return text.to_string();
    }
    let Some(room) = max_units.checked_sub(1) else {
        return String::new();
    };
    format!("{}…", cut_utf16(text, room))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_utf16_units() {
        assert_eq!(utf16_len("abc"), 3);
        assert_eq!(utf16_len("été"), 3, "accented letters are one unit");
        assert_eq!(utf16_len("名前"), 2);
        assert_eq!(utf16_len("😀"), 2, "outside the BMP: a surrogate pair");
        assert_eq!(utf16_len(""), 0);
    }

    #[test]
    fn cuts_between_characters() {
        assert_eq!(cut_utf16("abc", 2), "ab");
        assert_eq!(cut_utf16("a😀b", 2), "a", "never half a surrogate pair");
        assert_eq!(cut_utf16("a😀b", 3), "a😀");
        assert_eq!(cut_utf16("abc", 10), "abc");
        assert_eq!(cut_utf16("abc", 0), "");
    }

    #[test]
    fn shortens_with_an_ellipsis() {
        assert_eq!(shorten("abcdef", 6), "abcdef");
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("😀😀😀", 4), "😀…");
        assert_eq!(shorten("😀😀😀", 0), "");
        let subject = shorten(&"😀".repeat(200), SUBJECT_LIMIT);
        assert_eq!(utf16_len(&subject), 255, "127 emoji and the ellipsis");
    }

    proptest! {
        #[test]
        fn shortened_text_fits_and_keeps_a_prefix(s in any::<String>(), max in 0usize..300) {
            let out = shorten(&s, max);
            prop_assert!(utf16_len(&out) <= max);
            let kept = out.strip_suffix('…').filter(|_| out != s).unwrap_or(&out);
            prop_assert!(s.starts_with(kept));
        }
    }
}

//! Notes' rules (`ContentNote`, `ContentDocumentLink`), as Salesforce documents
//! them (sources in the repository's `docs/notes.md`):
//! - `ContentNote.Content` is base64 in the API; decoded, it is HTML in which
//!   plain text must be escaped. Salesforce refuses a note whose content has
//!   "HTML tags or unescaped characters that are not allowed in a Note"
//!   (Knowledge Article 000232870). Named entities other than the XML ones are
//!   refused too (`&apos;` included); numeric references are accepted.
//! - `ContentNote.Title` is required and must not be blank.
//! - A document is linked to a record once: a second `ContentDocumentLink`
//!   between the same document and record is refused (`DUPLICATE_VALUE`).
//! - Deleting the note deletes its links (the schema's cascade).
//!
//! Error codes are the emulator's best knowledge (unconfirmed); what matters is
//! that whatever Salesforce refuses is refused.

use base64::Engine;

use crate::org::RecError;
use crate::schema::ObjectDef;
use crate::store::Value;

/// The tags a Note's content may hold (without attributes but `<a href>`).
const TAGS: &[&str] = &[
    "p", "br", "b", "i", "u", "s", "strong", "em", "ul", "ol", "li", "a",
];
/// The entities a Note's content may hold.
const ENTITIES: &[&str] = &["amp", "lt", "gt", "quot"];

fn idx(obj: &ObjectDef, name: &str) -> Option<usize> {
    obj.by_name.get(&name.to_ascii_lowercase()).copied()
}

fn refused(code: &'static str, message: &str, field: &str) -> RecError {
    RecError::new(code, message.to_string(), vec![field.to_string()])
}

/// Refuses a ContentNote Salesforce would refuse (`vals`: the note as it would be).
pub fn check_note(obj: &ObjectDef, vals: &[Value]) -> Result<(), RecError> {
    if let Some(Value::Text(title)) = idx(obj, "Title").map(|i| &vals[i])
        && title.trim().is_empty()
    {
        return Err(refused(
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [Title]",
            "Title",
        ));
    }
    let Some(Value::Text(content)) = idx(obj, "Content").map(|i| &vals[i]) else {
        return Ok(());
    };
    let html = base64::engine::general_purpose::STANDARD
        .decode(content.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            refused(
                "INVALID_FIELD",
                "Content: value not of required type: not valid base64-encoded UTF-8",
                "Content",
            )
        })?;
    if !allowed_html(&html) {
        return Err(refused(
            "FIELD_INTEGRITY_EXCEPTION",
            "Note can't be saved because it contains HTML tags or unescaped characters that are not allowed in a Note.",
            "Content",
        ));
    }
    Ok(())
}

/// Whether `html` has only allowed tags, allowed entities, and no bare `<`,
/// `>`, `&`, `"` or `'` in its text.
pub fn allowed_html(html: &str) -> bool {
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let Some(end) = rest.find('>') else {
                    return false;
                };
                if !allowed_tag(&rest[1..end]) {
                    return false;
                }
                rest = &rest[end + 1..];
            }
            '&' => {
                let Some(end) = rest.find(';') else {
                    return false;
                };
                let name = &rest[1..end];
                let numeric = name.strip_prefix('#').is_some_and(|n| {
                    !n.is_empty() && n.len() <= 7 && n.bytes().all(|b| b.is_ascii_digit())
                });
                if !numeric && !ENTITIES.contains(&name) {
                    return false;
                }
                rest = &rest[end + 1..];
            }
            '>' | '"' | '\'' => return false,
            c => rest = &rest[c.len_utf8()..],
        }
    }
    true
}

/// `p`, `/p`, `br`, `br/`, `a href="…"`.
fn allowed_tag(inner: &str) -> bool {
    let inner = inner.trim_end_matches('/').trim();
    let inner = inner.strip_prefix('/').unwrap_or(inner);
    let (name, attrs) = inner.split_once(' ').unwrap_or((inner, ""));
    let name = name.to_ascii_lowercase();
    if !TAGS.contains(&name.as_str()) {
        return false;
    }
    let attrs = attrs.trim();
    attrs.is_empty()
        || (name == "a"
            && attrs
                .strip_prefix("href=\"")
                .and_then(|a| a.strip_suffix('"'))
                .is_some_and(|url| {
                    !url.contains('"')
                        && (url.starts_with("https://") || url.starts_with("http://"))
                }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_text_in_paragraphs_is_allowed() {
        assert!(allowed_html(
            "<p>a &amp; b &lt;script&gt; &quot;x&quot; l&#39;eau</p><p>é<br></p>"
        ));
    }

    #[test]
    fn bare_characters_and_unknown_tags_or_entities_are_refused() {
        for bad in [
            "<p>a & b</p>",
            "<p>a < b</p>",
            "<p>it's</p>",
            "<script>x</script>",
            "<p onclick=\"x\">y</p>",
            "<p>l&apos;eau</p>",
            "<p>&eacute;</p>",
            "<p>a &amp b</p>",
        ] {
            assert!(!allowed_html(bad), "{bad}");
        }
    }
}

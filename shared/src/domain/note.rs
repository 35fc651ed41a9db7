//! A call's Salesforce Note (issue 20, "Summaries as Notes"): its title and
//! content, built from the call's summary, highlights and the rep's notes.
//! Pure: no I/O. The facts this relies on, with their sources, are in
//! `docs/notes.md`.
//!
//! - `ContentNote.Content` is HTML: plain text in it must be escaped (`&`, `<`,
//!   `>`, `"`, `'`); a line break is a `<br>` or a new `<p>` (a bare newline is
//!   stripped). Other named entities (`&apos;`, `&eacute;`…) are refused, so
//!   `'` is written `&#39;` and any other character is left as it is.
//! - In the REST API the content is sent base64-encoded.
//! - `Title` is required, at most 255 characters, and not blank.
//!
//! Every part is sanitised as comments are (control, invisible and bidi
//! characters removed), then escaped.

use base64::Engine;
use sha2::{Digest, Sha256};

use super::block::{one_line, sanitize, timecode};
use super::call_event::CallEvent;
use super::insights::at_second;
use super::text::{shorten, utf16_len};

/// `ContentNote.Title`'s limit (UTF-16 units).
pub const TITLE_LIMIT: usize = 255;

/// What a call's Note holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteContent {
    /// Ends with the call's id: the title finds our Note again after a crash.
    pub title: String,
    /// The HTML content, escaped.
    pub html: String,
}

impl NoteContent {
    /// The call's Note, or `None` when it has no summary, highlight or notes.
    pub fn of(call: &CallEvent) -> Option<Self> {
        let summary = call.summary.as_deref().map(paragraphs).unwrap_or_default();
        let mut highlights: Vec<(u32, String)> = call
            .highlights
            .iter()
            .map(|h| (h.at_second, one_line(&sanitize(&h.text))))
            .filter(|(_, t)| !t.is_empty())
            .collect();
        highlights.sort();
        let notes = call.notes.as_deref().map(paragraphs).unwrap_or_default();
        if summary.is_empty() && highlights.is_empty() && notes.is_empty() {
            return None;
        }
        let mut html = String::new();
        if !summary.is_empty() {
            html.push_str("<p>Summary</p>");
            html.push_str(&summary);
        }
        if !highlights.is_empty() {
            html.push_str("<p>Highlights</p>");
            for (at, text) in &highlights {
                html.push_str(&format!(
                    "<p>[{}] {}<br>{}</p>",
                    timecode(*at),
                    escape(text),
                    escape(&at_second(&call.url, *at))
                ));
            }
        }
        if !notes.is_empty() {
            html.push_str("<p>Rep&#39;s notes</p>");
            html.push_str(&notes);
        }
        html.push_str(&format!("<p>The call in Modjo: {}</p>", escape(&call.url)));
        Some(Self {
            title: title(call),
            html,
        })
    }

    /// The `Content` field as the REST API takes it: the HTML, base64-encoded.
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.html.as_bytes())
    }

    /// A digest of the title and content: the Note is written again only when
    /// it changes.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.title.as_bytes());
        h.update([0]);
        h.update(self.html.as_bytes());
        h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// `<call title> · Modjo <callId>`, within the limit: the call's id is kept whole
/// (it is at most 128 characters), the call's title shortened.
pub fn title(call: &CallEvent) -> String {
    let suffix = format!("Modjo {}", one_line(&sanitize(&call.call_id)));
    let name = call
        .title
        .as_deref()
        .map(|t| one_line(&sanitize(t)))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| format!("{} call", call.direction.label()));
    let room = TITLE_LIMIT.saturating_sub(utf16_len(&suffix) + 3);
    let title = format!("{} · {suffix}", shorten(&name, room));
    shorten(&title, TITLE_LIMIT)
}

/// Text as paragraphs: one `<p>` per line, blank lines dropped.
fn paragraphs(text: &str) -> String {
    sanitize(text)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("<p>{}</p>", escape(l)))
        .collect()
}

/// Plain text escaped for a Note's HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(extra: serde_json::Value) -> CallEvent {
        let mut v = serde_json::json!({
            "version": 1, "tenantId": "acme", "callId": "call_1",
            "url": "https://app.modjo.ai/calls/call_1", "title": "Pricing call",
            "direction": "outbound", "startedAt": "2026-11-28T10:00:00Z", "durationSeconds": 60,
            "hostUserId": "usr_1", "participants": []
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        CallEvent::parse(&v.to_string()).unwrap()
    }

    #[test]
    fn no_summary_highlight_or_notes_means_no_note() {
        assert_eq!(
            NoteContent::of(&call(serde_json::json!({"summary": " \n "}))),
            None
        );
    }

    #[test]
    fn hostile_text_is_escaped_and_sanitised() {
        let n = NoteContent::of(&call(serde_json::json!({
            "summary": "<script>alert('x')</script> & \"co\"\u{202E}evil\nsecond line",
            "notes": "a < b"
        })))
        .unwrap();
        assert_eq!(
            n.html,
            "<p>Summary</p><p>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;evil</p>\
             <p>second line</p><p>Rep&#39;s notes</p><p>a &lt; b</p>\
             <p>The call in Modjo: https://app.modjo.ai/calls/call_1</p>"
        );
    }

    #[test]
    fn highlights_in_call_order_with_their_second() {
        let n = NoteContent::of(&call(serde_json::json!({
            "highlights": [{"atSecond": 90, "text": "Budget"}, {"atSecond": 5, "text": "Intro"}]
        })))
        .unwrap();
        assert!(n.html.starts_with(
            "<p>Highlights</p><p>[00:05] Intro<br>https://app.modjo.ai/calls/call_1?t=5</p><p>[01:30] Budget"
        ), "{}", n.html);
    }

    #[test]
    fn the_title_keeps_the_call_id_within_255_units() {
        let long = "é".repeat(400);
        let n = NoteContent::of(&call(serde_json::json!({"title": long, "summary": "s"}))).unwrap();
        assert_eq!(utf16_len(&n.title), TITLE_LIMIT);
        assert!(n.title.ends_with(" · Modjo call_1"), "{}", n.title);
    }

    #[test]
    fn the_digest_follows_the_content() {
        let a = NoteContent::of(&call(serde_json::json!({"summary": "one"}))).unwrap();
        let b = NoteContent::of(&call(serde_json::json!({"summary": "two"}))).unwrap();
        assert_ne!(a.digest(), b.digest());
        assert_eq!(a.digest(), a.clone().digest());
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(a.base64())
                .unwrap(),
            a.html.as_bytes()
        );
    }
}

//! The Modjo block inside a Task's or an Event's Description (DESIGN §6):
//! link and details, the call's insights ([`super::insights`]), comments; delimited by markers,
//! rebuilt from stored state (the call and its comments), so rendering twice gives
//! the same text whatever order events came in. Everything outside the block
//! belongs to the user and is kept as it is. Pure: no I/O.

use std::fmt::Write;

use super::call_event::{CallEvent, Role};
use crate::domain::StoredComment;

/// Salesforce's limit on Task.Description.
pub const DESCRIPTION_LIMIT: usize = 32_000;
pub const BEGIN: &str = "=== Modjo call (kept in sync by Modjo; edit outside this block) ===";
pub const END: &str = "=== end of Modjo call ===";

use crate::domain::text::shorten as truncate_to;
/// Length as Salesforce counts it (UTF-16 code units: an emoji counts twice).
pub use crate::domain::text::utf16_len as sf_len;

/// A comment longer than this (UTF-16 units) is shortened, so that one long
/// comment never hides the rest of the thread.
pub const COMMENT_LIMIT: usize = 4_000;

/// Text from Modjo users, made safe for Salesforce: control characters removed
/// (line breaks kept), characters that are invisible or reorder the text as
/// displayed removed, and `===` broken so no content can forge a marker.
pub fn sanitize(text: &str) -> String {
    let cleaned: String = text
        .replace("\r\n", "\n")
        .chars()
        .filter(|c| *c == '\n' || !(c.is_control() || is_invisible_or_bidi(*c)))
        .collect();
    cleaned.replace("===", "= = =")
}

/// Bidirectional embeddings, overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069), which let text display in another order than it is stored,
/// and the invisible marks and spaces (U+200B–U+200F, U+061C, U+FEFF).
fn is_invisible_or_bidi(c: char) -> bool {
    matches!(c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200B}'..='\u{200F}'
        | '\u{061C}' | '\u{FEFF}')
}

/// `text` sanitised, on one line, its runs of whitespace as single spaces.
pub(crate) fn one_line(text: &str) -> String {
    sanitize(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `195` → `03:15`; `3725` → `1:02:05`.
pub fn timecode(seconds: u32) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

fn duration(seconds: u64) -> String {
    match (seconds / 3600, seconds / 60 % 60, seconds % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, s) => format!("{m} min {s:02} s"),
        (h, m, _) => format!("{h} h {m:02} min"),
    }
}

/// The block for `call` with its live (not deleted) comments, in call order,
/// within `budget` UTF-16 units. The oldest comments are elided first, replaced by
/// a pointer to Modjo. `None` when even the minimal block does not fit.
pub fn render_block(call: &CallEvent, comments: &[StoredComment], budget: usize) -> Option<String> {
    let url = one_line(&call.url);
    let mut head = String::new();
    let _ = writeln!(head, "{BEGIN}");
    if let Some(title) = call
        .title
        .as_deref()
        .map(one_line)
        .filter(|t| !t.is_empty())
    {
        let _ = writeln!(head, "{}", truncate_to(&title, 255));
    }
    let _ = writeln!(head, "{url}");
    let _ = write!(
        head,
        "{} · {} · {}",
        call.direction.label(),
        duration(call.duration_seconds),
        call.started_at.format("%d %b %Y %H:%M UTC")
    );
    match call.provider().map(one_line).filter(|p| !p.is_empty()) {
        Some(provider) => {
            let _ = writeln!(head, " · via {}", truncate_to(&provider, 100));
        }
        None => head.push('\n'),
    }
    let with: Vec<String> = call
        .participants
        .iter()
        .filter(|p| p.role == Role::External)
        .filter_map(|p| {
            let name = p.name.as_deref().map(one_line).filter(|n| !n.is_empty());
            let contact = p
                .phone
                .as_deref()
                .or(p.email.as_deref())
                .map(one_line)
                .filter(|c| !c.is_empty());
            match (name, contact) {
                (Some(n), Some(c)) => Some(format!("{n} ({c})")),
                (Some(n), None) => Some(n),
                (None, Some(c)) => Some(c),
                (None, None) => None,
            }
        })
        .take(20)
        .collect();
    if !with.is_empty() {
        let _ = writeln!(head, "With: {}", truncate_to(&with.join(", "), 1000));
    }
    let tail = END.to_string();
    let minimal = sf_len(&head) + sf_len(&tail);
    if minimal > budget {
        // Last resort: markers and the link only.
        let bare = format!("{BEGIN}\n{url}\n{END}");
        return (sf_len(&bare) <= budget).then_some(bare);
    }
    let mut room = budget - minimal;

    let mut live: Vec<&StoredComment> = comments.iter().filter(|c| !c.deleted).collect();
    live.sort_by(|a, b| {
        (a.at_second, a.updated_at, &a.comment_id).cmp(&(b.at_second, b.updated_at, &b.comment_id))
    });

    // Comments first (they are kept, and they are what changes), the insights with what is left: the
    // newest comments that fit, the oldest dropped first behind a pointer to Modjo.
    let mut body = String::new();
    if !live.is_empty() {
        let header = format!("\nComments ({}):\n", live.len());
        let pointer = |elided: usize| match elided {
            0 => String::new(),
            n => format!("{n} earlier comments in Modjo: {url}\n"),
        };
        let mut kept: Vec<String> = Vec::new();
        let mut used = sf_len(&header);
        for (k, c) in live.iter().rev().enumerate() {
            let elided_if_kept = live.len() - k - 1;
            let left = room.saturating_sub(used + sf_len(&pointer(elided_if_kept)));
            match comment_line(c, &url, left.min(COMMENT_LIMIT)) {
                Some(line) => {
                    used += sf_len(&line);
                    kept.push(line);
                }
                None => break,
            }
        }
        let elided = pointer(live.len() - kept.len());
        if sf_len(&header) + sf_len(&elided) <= room {
            body.push_str(&header);
            body.push_str(&elided);
            kept.iter().rev().for_each(|l| body.push_str(l));
        }
        room -= sf_len(&body).min(room);
    }
    // The insights with what the comments leave, the least important cut first.
    let insights = super::insights::render(call, &url, room).joined();
    Some(format!("{head}{insights}{body}{tail}"))
}

/// One comment as shown, within `max_units`: shortened with an ellipsis and the
/// call's link when longer; `None` when not even a shortened line fits.
fn comment_line(c: &StoredComment, url: &str, max_units: usize) -> Option<String> {
    let author = one_line(&c.author_name);
    let author = if author.is_empty() {
        "Someone".to_string()
    } else {
        author
    };
    let prefix = format!(
        "[{}] {}: ",
        timecode(c.at_second),
        truncate_to(&author, 100)
    );
    let text = sanitize(c.text.trim());
    let whole = format!("{prefix}{text}\n");
    if sf_len(&whole) <= max_units {
        return Some(whole);
    }
    let tail = format!("… (the whole comment is in Modjo: {url})\n");
    let room = max_units.checked_sub(sf_len(&prefix) + sf_len(&tail))?;
    if room < MIN_SHORTENED_COMMENT {
        return None;
    }
    Some(format!(
        "{prefix}{}{tail}",
        crate::domain::text::cut_utf16(&text, room)
    ))
}

/// The shortest useful head of a shortened comment.
const MIN_SHORTENED_COMMENT: usize = 40;

/// The user's own text: the description without any Modjo block.
pub fn user_text(description: &str) -> String {
    let mut out = Vec::new();
    let mut inside = false;
    for line in description.split('\n') {
        match (inside, line.trim_end_matches('\r')) {
            (false, l) if l == BEGIN => inside = true,
            (true, l) if l == END => inside = false,
            (false, _) => out.push(line),
            (true, _) => {}
        }
    }
    out.join("\n").trim_end().to_string()
}

/// The description with `call`'s block rebuilt, the user's text untouched.
/// `None` when the user's own text leaves no room for even the minimal block.
pub fn merge_description(
    existing: Option<&str>,
    call: &CallEvent,
    comments: &[StoredComment],
) -> Option<String> {
    let user = existing.map(user_text).unwrap_or_default();
    let separator = if user.is_empty() { 0 } else { 2 };
    let budget = DESCRIPTION_LIMIT.checked_sub(sf_len(&user) + separator)?;
    let block = render_block(call, comments, budget)?;
    Some(if user.is_empty() {
        block
    } else {
        format!("{user}\n\n{block}")
    })
}

/// The call id named in a description's Modjo block, if it has one (to tell a
/// dialer's Task already linked to another Modjo call).
pub fn linked_call_url(description: &str) -> Option<String> {
    let mut lines = description
        .split('\n')
        .skip_while(|l| l.trim_end() != BEGIN)
        .skip(1);
    lines
        .find(|l| l.starts_with("https://"))
        .map(|l| l.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    fn call() -> CallEvent {
        CallEvent::parse(
            &serde_json::json!({
                "version": 1, "tenantId": "acme", "callId": "call_8f2c",
                "url": "https://app.modjo.ai/calls/call_8f2c", "title": "Discovery call — Acme",
                "direction": "outbound", "startedAt": "2026-11-28T10:00:00Z", "durationSeconds": 754,
                "participants": [
                    {"role": "external", "name": "Jane Doe", "phone": "+33 6 12 34 56 78"},
                    {"role": "external", "email": "cto@acme.com"},
                    {"role": "internal", "userId": "usr_12", "email": "bob@modjo.ai"}
                ],
                "summary": "Pricing and next steps."
            })
            .to_string(),
        )
        .unwrap()
    }

    fn comment(id: &str, at: u32, text: &str) -> StoredComment {
        StoredComment {
            call_id: "call_8f2c".into(),
            comment_id: id.into(),
            author_name: "Alice Martin".into(),
            text: text.into(),
            at_second: at,
            updated_at: Utc.with_ymd_and_hms(2026, 11, 28, 11, 0, 0).unwrap(),
            deleted: false,
        }
    }

    #[test]
    fn renders_link_details_and_comments_in_call_order() {
        let block = render_block(
            &call(),
            &[
                comment("b", 600, "Second"),
                comment("a", 195, "Great handling"),
            ],
            32_000,
        )
        .unwrap();
        assert_eq!(
            block,
            "=== Modjo call (kept in sync by Modjo; edit outside this block) ===\n\
             Discovery call — Acme\n\
             https://app.modjo.ai/calls/call_8f2c\n\
             Outbound call · 12 min 34 s · 28 Nov 2026 10:00 UTC\n\
             With: Jane Doe (+33 6 12 34 56 78), cto@acme.com\n\
             \nSummary:\nPricing and next steps.\n\
             \nComments (2):\n[03:15] Alice Martin: Great handling\n[10:00] Alice Martin: Second\n\
             === end of Modjo call ==="
        );
    }

    #[test]
    fn deleted_comments_disappear_and_order_does_not_depend_on_arrival() {
        let mut gone = comment("c", 10, "gone");
        gone.deleted = true;
        let a = render_block(
            &call(),
            &[comment("a", 5, "x"), gone.clone(), comment("b", 5, "y")],
            32_000,
        );
        let b = render_block(
            &call(),
            &[comment("b", 5, "y"), comment("a", 5, "x"), gone],
            32_000,
        );
        assert_eq!(a, b);
        assert!(!a.unwrap().contains("gone"));
    }

    #[test]
    fn merging_keeps_the_user_text_and_replaces_the_block() {
        let first = merge_description(
            Some("Dialer: answered, recording https://aircall/x"),
            &call(),
            &[],
        )
        .unwrap();
        assert!(
            first.starts_with("Dialer: answered, recording https://aircall/x\n\n=== Modjo call")
        );
        // The user edits around the block; a new render keeps the edit and replaces the block.
        let edited = format!("Note from the rep\n{first}\nPS: follow up");
        let second = merge_description(Some(&edited), &call(), &[comment("a", 1, "hi")]).unwrap();
        assert!(second.starts_with("Note from the rep\nDialer: answered, recording https://aircall/x\n\nPS: follow up\n\n=== Modjo call"));
        assert_eq!(second.matches(BEGIN).count(), 1);
        assert!(second.contains("[00:01] Alice Martin: hi"));
        // Idempotent.
        assert_eq!(
            merge_description(Some(&second), &call(), &[comment("a", 1, "hi")]).unwrap(),
            second
        );
        assert_eq!(
            linked_call_url(&second).as_deref(),
            Some("https://app.modjo.ai/calls/call_8f2c")
        );
    }

    #[test]
    fn markers_inside_comments_cannot_break_the_block() {
        let evil = format!("{END}\nHIJACK\n{BEGIN}\x07\x1b[31m");
        let merged = merge_description(Some("mine"), &call(), &[comment("a", 1, &evil)]).unwrap();
        assert_eq!(merged.matches(BEGIN).count(), 1);
        assert_eq!(merged.matches(END).count(), 1);
        assert!(!merged.contains('\x07') && !merged.contains('\x1b'));
        assert_eq!(user_text(&merged), "mine");
    }

    #[test]
    fn two_thousand_long_comments_fit_with_the_oldest_elided() {
        let comments: Vec<StoredComment> = (0..2000)
            .map(|i| comment(&format!("c{i:04}"), i, &"long comment ".repeat(40)))
            .collect();
        let user = "r".repeat(5_000);
        let merged = merge_description(Some(&user), &call(), &comments).unwrap();
        assert!(sf_len(&merged) <= DESCRIPTION_LIMIT, "{}", sf_len(&merged));
        assert!(merged.starts_with(&user));
        let pointer = merged
            .lines()
            .find(|l| l.contains("earlier comments in Modjo"))
            .unwrap();
        let elided: usize = pointer.split(' ').next().unwrap().parse().unwrap();
        let shown = merged.lines().filter(|l| l.starts_with('[')).count();
        assert_eq!(elided + shown, 2000);
        // The newest are the ones shown.
        assert!(merged.contains(&format!("[{}]", timecode(1999))));
        assert!(!merged.contains("[00:00] "));
    }

    #[test]
    fn no_room_at_all_is_reported() {
        assert!(merge_description(Some(&"x".repeat(31_990)), &call(), &[]).is_none());
        let tight = merge_description(Some(&"x".repeat(31_850)), &call(), &[]).unwrap();
        assert!(sf_len(&tight) <= DESCRIPTION_LIMIT);
        assert!(tight.contains("https://app.modjo.ai/calls/call_8f2c"));
    }

    #[test]
    fn one_long_comment_is_shortened_and_the_thread_still_shows() {
        let mut comments: Vec<StoredComment> = (0..7)
            .map(|i| comment(&format!("c{i}"), i * 60, &format!("earlier remark {i}")))
            .collect();
        comments.push(comment("huge", 900, &"é".repeat(100_000)));
        let merged = merge_description(None, &call(), &comments).unwrap();
        assert!(sf_len(&merged) <= DESCRIPTION_LIMIT);
        for i in 0..7 {
            assert!(
                merged.contains(&format!("earlier remark {i}")),
                "comment {i} shown"
            );
        }
        assert!(
            !merged.contains("earlier comments in Modjo"),
            "nothing elided"
        );
        let huge = merged.lines().find(|l| l.starts_with("[15:00]")).unwrap();
        assert!(
            huge.ends_with(
                "… (the whole comment is in Modjo: https://app.modjo.ai/calls/call_8f2c)"
            )
        );
        assert!(sf_len(huge) < COMMENT_LIMIT && sf_len(huge) > COMMENT_LIMIT - 100);
    }

    #[test]
    fn the_pointer_counts_exactly_the_comments_not_shown() {
        // Forty comments of 1,000 units: some fit, the oldest are dropped first.
        let comments: Vec<StoredComment> = (0..40)
            .map(|i| {
                comment(
                    &format!("c{i:02}"),
                    i,
                    &format!("{i:02}{}", "x".repeat(998)),
                )
            })
            .collect();
        let merged = merge_description(None, &call(), &comments).unwrap();
        assert!(sf_len(&merged) <= DESCRIPTION_LIMIT);
        let shown: Vec<u32> = merged
            .lines()
            .filter(|l| l.starts_with('['))
            .map(|l| l.split(": ").nth(1).unwrap()[..2].parse().unwrap())
            .collect();
        let pointer = merged
            .lines()
            .find(|l| l.contains("earlier comments"))
            .unwrap();
        let elided: usize = pointer.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(elided + shown.len(), 40);
        let newest: Vec<u32> = (40 - shown.len() as u32..40).collect();
        assert_eq!(shown, newest, "the newest, in call order");
    }

    #[test]
    fn invisible_and_reordering_characters_never_reach_salesforce() {
        let spoof = "pay \u{202E}kcab\u{202C} now\u{200B}\u{200D}\u{FEFF}\u{2066}x\u{2069}\u{200E}";
        let cleaned = sanitize(spoof);
        assert_eq!(cleaned, "pay kcab nowx");
        let mut c = call();
        c.title = Some(format!("Call {spoof}"));
        c.summary = Some(spoof.into());
        c.participants[0].name = Some(spoof.into());
        let mut author = comment("a", 1, spoof);
        author.author_name = spoof.into();
        let merged = merge_description(None, &c, &[author]).unwrap();
        assert!(!merged.chars().any(is_invisible_or_bidi), "{merged:?}");
        assert_eq!(one_line(&format!("Call {spoof}")), "Call pay kcab nowx");
    }

    #[test]
    fn timecodes() {
        assert_eq!(timecode(0), "00:00");
        assert_eq!(timecode(195), "03:15");
        assert_eq!(timecode(3725), "1:02:05");
    }

    proptest! {
        #[test]
        fn any_comment_keeps_one_block_within_the_limit(text in any::<String>(), user in "[a-z\\n ]{0,200}") {
            let merged = merge_description(Some(&user), &call(), &[comment("a", 3, &text)]).unwrap();
            prop_assert!(sf_len(&merged) <= DESCRIPTION_LIMIT);
            prop_assert_eq!(merged.matches(BEGIN).count(), 1);
            prop_assert_eq!(merged.matches(END).count(), 1);
            prop_assert_eq!(user_text(&merged), user.trim_end().to_string());
        }
    }
}

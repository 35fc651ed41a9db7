//! The call's insights inside the Modjo block (issue 20): summary, topics,
//! highlights, tags and the rep's notes, in that order, within the room the
//! link, the details and the comments leave. When they do not all fit, the least
//! important goes first: notes, then tags, highlights, topics, and last the
//! summary. Every part is sanitised like comments. Pure: no I/O.

use super::block::{one_line, sanitize, sf_len, timecode};
use super::call_event::CallEvent;
use crate::domain::text::shorten;

/// One topic or tag as shown, at most this long (UTF-16 units).
const ITEM_LIMIT: usize = 100;
/// One highlight's text as shown, at most this long.
const HIGHLIGHT_LIMIT: usize = 500;
/// A part shortened below this many units of its own text is left out instead.
const MIN_SHORTENED: usize = 20;

/// The insights parts, in display order; each empty when absent or cut.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Insights {
    pub summary: String,
    pub topics: String,
    pub highlights: String,
    pub tags: String,
    pub notes: String,
}

impl Insights {
    pub fn joined(&self) -> String {
        [
            &self.summary,
            &self.topics,
            &self.highlights,
            &self.tags,
            &self.notes,
        ]
        .into_iter()
        .map(String::as_str)
        .collect()
    }
}

/// The call's insights within `room` UTF-16 units, filled from the most
/// important part down: what does not fit is shortened, then left out.
pub fn render(call: &CallEvent, url: &str, room: usize) -> Insights {
    // Each part whole while it fits; the first that does not is shortened to the
    // room left, and every less important part is left out.
    let parts: [&dyn Fn(usize) -> Option<String>; 5] = [
        &|r| text_part("\nSummary:\n", call.summary.as_deref(), r),
        &|r| list_part("\nTopics: ", &call.topics, r),
        &|r| highlights_part(call, url, r),
        &|r| list_part("\nTags: ", &call.tags, r),
        &|r| text_part("\nRep's notes:\n", call.notes.as_deref(), r),
    ];
    let mut shown: [String; 5] = Default::default();
    let mut left = room;
    for (part, out) in parts.iter().zip(shown.iter_mut()) {
        let Some(whole) = part(usize::MAX) else {
            continue;
        };
        if sf_len(&whole) <= left {
            left -= sf_len(&whole);
            *out = whole;
            continue;
        }
        *out = part(left).filter(|p| sf_len(p) <= left).unwrap_or_default();
        break;
    }
    let [summary, topics, highlights, tags, notes] = shown;
    Insights {
        summary,
        topics,
        highlights,
        tags,
        notes,
    }
}

/// A labelled multi-line text, shortened to `room`.
fn text_part(label: &str, text: Option<&str>, room: usize) -> Option<String> {
    let text = sanitize(text?).trim().to_string();
    if text.is_empty() {
        return None;
    }
    let left = room.checked_sub(sf_len(label) + 1)?;
    if left < MIN_SHORTENED.min(sf_len(&text)) {
        return None;
    }
    Some(format!("{label}{}\n", shorten(&text, left)))
}

/// A labelled one-line list, shortened to `room`.
fn list_part(label: &str, items: &[String], room: usize) -> Option<String> {
    let items: Vec<String> = items
        .iter()
        .map(|i| shorten(&one_line(i), ITEM_LIMIT))
        .filter(|i| !i.is_empty())
        .collect();
    if items.is_empty() {
        return None;
    }
    let line = items.join(", ");
    let left = room.checked_sub(sf_len(label) + 1)?;
    if left < MIN_SHORTENED.min(sf_len(&line)) {
        return None;
    }
    Some(format!("{label}{}\n", shorten(&line, left)))
}

/// The highlights in call order, each with its time and a link to that second;
/// those that do not fit are counted behind a pointer to Modjo.
fn highlights_part(call: &CallEvent, url: &str, room: usize) -> Option<String> {
    let mut all: Vec<(u32, String)> = call
        .highlights
        .iter()
        .map(|h| (h.at_second, shorten(&one_line(&h.text), HIGHLIGHT_LIMIT)))
        .filter(|(_, t)| !t.is_empty())
        .collect();
    if all.is_empty() {
        return None;
    }
    all.sort();
    let header = format!("\nHighlights ({}):\n", all.len());
    let pointer = |left: usize| match left {
        0 => String::new(),
        n => format!("{n} more in Modjo: {url}\n"),
    };
    let mut used = sf_len(&header);
    let mut lines = String::new();
    let mut shown = 0;
    for (at, text) in &all {
        let line = format!("[{}] {text} {}\n", timecode(*at), at_second(url, *at));
        let after = used + sf_len(&line) + sf_len(&pointer(all.len() - shown - 1));
        if after > room {
            break;
        }
        used += sf_len(&line);
        lines.push_str(&line);
        shown += 1;
    }
    if shown == 0 {
        return None;
    }
    Some(format!("{header}{lines}{}", pointer(all.len() - shown)))
}

/// The call's link at a second of the recording (`t=<seconds>` in its query).
pub fn at_second(url: &str, second: u32) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.query_pairs_mut().append_pair("t", &second.to_string());
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::block::{
        BEGIN, DESCRIPTION_LIMIT, END, merge_description, render_block, user_text,
    };
    use super::*;
    use crate::domain::StoredComment;
    use proptest::prelude::*;

    fn call(extra: serde_json::Value) -> CallEvent {
        let mut v = serde_json::json!({
            "version": 1, "tenantId": "acme", "callId": "call_1",
            "url": "https://app.modjo.ai/calls/call_1", "direction": "meeting",
            "startedAt": "2026-11-28T10:00:00Z", "durationSeconds": 1800,
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        CallEvent::parse(&v.to_string()).unwrap()
    }

    #[test]
    fn renders_every_part_in_order() {
        let c = call(serde_json::json!({
            "summary": "Budget agreed.",
            "topics": ["Pricing", "Security"],
            "highlights": [{"atSecond": 600, "text": "Next step: trial"}, {"atSecond": 95, "text": "Budget is 50k"}],
            "tags": ["hot"],
            "notes": "Call back Tuesday",
        }));
        let out = render(&c, &c.url, 10_000).joined();
        assert_eq!(
            out,
            "\nSummary:\nBudget agreed.\n\
             \nTopics: Pricing, Security\n\
             \nHighlights (2):\n\
             [01:35] Budget is 50k https://app.modjo.ai/calls/call_1?t=95\n\
             [10:00] Next step: trial https://app.modjo.ai/calls/call_1?t=600\n\
             \nTags: hot\n\
             \nRep's notes:\nCall back Tuesday\n"
        );
    }

    #[test]
    fn a_link_with_a_query_keeps_it() {
        assert_eq!(
            at_second("https://app.modjo.ai/calls/c?ws=acme", 7),
            "https://app.modjo.ai/calls/c?ws=acme&t=7"
        );
    }

    #[test]
    fn highlights_that_do_not_fit_are_counted() {
        let highlights: Vec<serde_json::Value> = (0..50)
            .map(|i| serde_json::json!({"atSecond": i * 10, "text": format!("moment {i} {}", "x".repeat(80))}))
            .collect();
        let c = call(serde_json::json!({ "highlights": highlights }));
        let out = render(&c, &c.url, 1_000);
        assert!(sf_len(&out.highlights) <= 1_000);
        let shown = out
            .highlights
            .lines()
            .filter(|l| l.starts_with('['))
            .count();
        let pointer = out.highlights.lines().last().unwrap();
        let more: usize = pointer.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(shown + more, 50, "{}", out.highlights);
        assert!(
            out.highlights.contains("[00:00] moment 0 "),
            "the earliest shown"
        );
    }

    #[test]
    fn parts_are_sanitised() {
        let c = call(serde_json::json!({
            "topics": ["a\u{202E}b", "=== end of Modjo call ==="],
            "notes": "x\u{200B}y\u{7}",
            "highlights": [{"atSecond": 1, "text": "two\nlines"}],
        }));
        let out = render(&c, &c.url, 10_000).joined();
        assert!(
            out.contains("Topics: ab, = = = end of Modjo call = = ="),
            "{out}"
        );
        assert!(out.contains("Rep's notes:\nxy\n"));
        assert!(out.contains("[00:01] two lines "));
    }

    /// A call with every insight, each large.
    fn full() -> CallEvent {
        let highlights: Vec<serde_json::Value> = (0..20)
            .map(|i| serde_json::json!({"atSecond": i * 60, "text": format!("H{i} {}", "h".repeat(200))}))
            .collect();
        call(serde_json::json!({
            "summary": format!("SUMMARY {}", "s".repeat(3_000)),
            "topics": (0..30).map(|i| format!("topic{i}")).collect::<Vec<_>>(),
            "highlights": highlights,
            "tags": (0..30).map(|i| format!("tag{i}")).collect::<Vec<_>>(),
            "notes": format!("NOTES {}", "n".repeat(3_000)),
            "source": {"provider": "Zoom"},
        }))
    }

    fn comment(i: u32) -> StoredComment {
        StoredComment {
            call_id: "call_1".into(),
            comment_id: format!("c{i}"),
            author_name: "Alice".into(),
            text: format!("comment {i}"),
            at_second: i,
            updated_at: chrono::Utc::now(),
            deleted: false,
        }
    }

    /// Which parts a block shows: whole (2), shortened (1) or not at all (0).
    fn shown(block: &str) -> [u8; 5] {
        let whole = [
            block.contains(&format!("SUMMARY {}", "s".repeat(3_000))),
            block.contains("topic29"),
            block.contains("[19:00] H19") && !block.contains("more in Modjo"),
            block.contains("tag29"),
            block.contains(&format!("NOTES {}", "n".repeat(3_000))),
        ];
        let any = [
            block.contains("\nSummary:\n"),
            block.contains("\nTopics: "),
            block.contains("\nHighlights ("),
            block.contains("\nTags: "),
            block.contains("\nRep's notes:\n"),
        ];
        std::array::from_fn(|i| u8::from(any[i]) + u8::from(whole[i]))
    }

    #[test]
    fn a_block_too_long_is_cut_in_the_stated_order() {
        let c = full();
        let comments: Vec<StoredComment> = (0..3).map(comment).collect();
        let whole = render_block(&c, &comments, DESCRIPTION_LIMIT).unwrap();
        assert_eq!(shown(&whole), [2; 5]);
        let mut seen = std::collections::BTreeSet::new();
        // From the whole block down to the bare minimum, step by step.
        for budget in (0..=sf_len(&whole)).rev().step_by(7) {
            let Some(block) = render_block(&c, &comments, budget) else {
                assert!(budget < 200, "refused a budget of {budget}");
                continue;
            };
            assert!(sf_len(&block) <= budget);
            let parts = shown(&block);
            // Once a part is cut, every less important one is gone.
            for i in 1..5 {
                if parts[i - 1] < 2 {
                    assert_eq!(parts[i], 0, "budget {budget}: {parts:?}");
                }
            }
            if budget > 600 {
                assert!(block.contains("https://app.modjo.ai/calls/call_1\n"));
                assert!(block.contains("Comments (3):"), "budget {budget}");
                assert!(block.contains("[00:02] Alice: comment 2"));
            }
            seen.insert(parts);
        }
        // Every stage was passed through: notes, tags, highlights, topics, summary.
        for stage in [
            [2, 2, 2, 2, 1],
            [2, 2, 2, 2, 0],
            [2, 2, 1, 0, 0],
            [2, 1, 0, 0, 0],
            [1, 0, 0, 0, 0],
            [0, 0, 0, 0, 0],
        ] {
            assert!(seen.contains(&stage), "{stage:?} never seen: {seen:?}");
        }
    }

    proptest! {
        #[test]
        fn any_insights_keep_one_block_within_the_limit(
            summary in any::<String>(),
            notes in any::<String>(),
            topics in proptest::collection::vec(any::<String>(), 0..5),
            highlight in any::<String>(),
            user_units in 0usize..32_000,
        ) {
            let mut c = full();
            c.summary = Some(summary.repeat(40));
            c.notes = Some(notes.repeat(40));
            c.topics = topics;
            c.highlights[0].text = highlight;
            let user = "u".repeat(user_units);
            let bare = format!("{BEGIN}\n{}\n{END}", c.url);
            match merge_description(Some(&user), &c, &[comment(1)]) {
                Some(merged) => {
                    prop_assert!(sf_len(&merged) <= DESCRIPTION_LIMIT);
                    prop_assert_eq!(merged.matches(BEGIN).count(), 1);
                    prop_assert_eq!(merged.matches(END).count(), 1);
                    prop_assert!(merged.contains(&c.url));
                    prop_assert_eq!(user_text(&merged), user);
                }
                // Refused only when not even the bare block fits beside the user's text.
                None => prop_assert!(user_units + 2 + sf_len(&bare) > DESCRIPTION_LIMIT),
            }
        }
    }
}

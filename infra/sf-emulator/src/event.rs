//! The Event object's rules, as its object reference documents them:
//! - `IsAllDayEvent` false: a value must be supplied for `DurationInMinutes` or
//!   `EndDateTime`; both are allowed when they add up to the same time.
//! - `IsAllDayEvent` true: either; both null is one day.
//! - An Event lasts at most 14 days.
//! - `ActivityDateTime` and `ActivityDate` follow `StartDateTime` (read-only here).
//!
//! Error codes and messages are the emulator's best knowledge (unconfirmed);
//! what matters is that whatever Salesforce refuses is refused.

use crate::org::RecError;
use crate::schema::ObjectDef;
use crate::store::Value;

const MINUTE_MS: i64 = 60_000;
const DAY_MINUTES: i64 = 24 * 60;
/// The longest Event.
pub const MAX_MINUTES: i64 = 14 * DAY_MINUTES;

fn idx(obj: &ObjectDef, name: &str) -> Option<usize> {
    obj.by_name.get(&name.to_ascii_lowercase()).copied()
}

fn datetime(vals: &[Value], i: Option<usize>) -> Option<i64> {
    match i.map(|i| &vals[i]) {
        Some(Value::DateTime(ms)) => Some(*ms),
        _ => None,
    }
}

fn int(vals: &[Value], i: Option<usize>) -> Option<i64> {
    match i.map(|i| &vals[i]) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    }
}

fn refused(code: &'static str, message: &str, fields: &[&str]) -> RecError {
    RecError::new(
        code,
        message.to_string(),
        fields.iter().map(|f| f.to_string()).collect(),
    )
}

/// Refuses an Event Salesforce would refuse (`vals`: the record as it would be).
pub fn check(obj: &ObjectDef, vals: &[Value]) -> Result<(), RecError> {
    let all_day = matches!(
        idx(obj, "IsAllDayEvent").map(|i| &vals[i]),
        Some(Value::Bool(true))
    );
    let Some(start) = datetime(vals, idx(obj, "StartDateTime")) else {
        return Err(refused(
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [StartDateTime]",
            &["StartDateTime"],
        ));
    };
    let end = datetime(vals, idx(obj, "EndDateTime"));
    let duration = int(vals, idx(obj, "DurationInMinutes"));
    if !all_day && end.is_none() && duration.is_none() {
        return Err(refused(
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [DurationInMinutes]",
            &["DurationInMinutes"],
        ));
    }
    if let Some(end) = end {
        if end < start {
            return Err(refused(
                "FIELD_INTEGRITY_EXCEPTION",
                "End Date/Time: the end must not be before the start",
                &["EndDateTime"],
            ));
        }
        if let Some(d) = duration {
            if d * MINUTE_MS != end - start {
                return Err(refused(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Duration: DurationInMinutes and EndDateTime do not add up to the same time",
                    &["DurationInMinutes", "EndDateTime"],
                ));
            }
        }
    }
    let minutes = duration
        .or(end.map(|e| (e - start) / MINUTE_MS))
        .unwrap_or(DAY_MINUTES);
    if !(0..=MAX_MINUTES).contains(&minutes) {
        return Err(refused(
            "FIELD_INTEGRITY_EXCEPTION",
            "Event duration cannot exceed 14 days",
            &["DurationInMinutes", "EndDateTime"],
        ));
    }
    Ok(())
}

/// Fills what Salesforce computes: the end or the duration from the other,
/// and the activity date and time from the start.
pub fn derive(obj: &ObjectDef, vals: &mut [Value]) {
    let Some(start) = datetime(vals, idx(obj, "StartDateTime")) else {
        return;
    };
    let (end_i, dur_i) = (idx(obj, "EndDateTime"), idx(obj, "DurationInMinutes"));
    let end = datetime(vals, end_i);
    let duration = int(vals, dur_i);
    let (end, duration) = match (end, duration) {
        (Some(e), Some(d)) => (e, d),
        (Some(e), None) => (e, (e - start) / MINUTE_MS),
        (None, Some(d)) => (start + d * MINUTE_MS, d),
        (None, None) => (start + DAY_MINUTES * MINUTE_MS, DAY_MINUTES),
    };
    if let (Some(e), Some(d)) = (end_i, dur_i) {
        vals[e] = Value::DateTime(end);
        vals[d] = Value::Int(duration);
    }
    if let Some(i) = idx(obj, "ActivityDateTime") {
        vals[i] = Value::DateTime(start);
    }
    if let Some(i) = idx(obj, "ActivityDate") {
        vals[i] = Value::Date(start.div_euclid(DAY_MINUTES * MINUTE_MS) as i32);
    }
}

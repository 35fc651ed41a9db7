//! Keyset-ordered reads: `ORDER BY SystemModstamp, Id`, resumable after any record.
//!
//! Salesforce query locators (`nextRecordsUrl`) belong to the session that opened
//! them and expire; a keyset query does not depend on them surviving: when one
//! dies (`INVALID_QUERY_LOCATOR`, e.g. after a token refresh), the query is issued
//! again from just after the last record already returned, so nothing is lost or
//! repeated. The same position is what the sync stores as its cursor.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::soql::{Cond, Order, Select, SoqlError};

pub const MODSTAMP: &str = "SystemModstamp";

/// A position in `(SystemModstamp, Id)` order: rows strictly after it come next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub system_modstamp: DateTime<Utc>,
    pub id: String,
}

impl Position {
    /// The position of a record returned by a keyset query.
    pub fn of(record: &Map<String, Value>) -> Option<Position> {
        let id = record.get("Id")?.as_str()?.to_string();
        let system_modstamp = parse_datetime(record.get(MODSTAMP)?.as_str()?)?;
        Some(Position {
            system_modstamp,
            id,
        })
    }
}

/// Parses Salesforce's datetime format (`2011-07-07T00:37:00.000+0000`), and RFC 3339.
pub fn parse_datetime(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(raw))
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
}

/// `SELECT <fields> FROM <object> [WHERE <filter> AND <after position>]
/// ORDER BY SystemModstamp, Id`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeysetQuery {
    pub object: &'static str,
    pub fields: Vec<&'static str>,
    pub filter: Option<Cond>,
    /// `queryAll`: deleted rows too (`IsDeleted = true`).
    pub include_deleted: bool,
}

impl KeysetQuery {
    pub fn new(object: &'static str, fields: &[&'static str]) -> Self {
        let mut all = fields.to_vec();
        for required in ["Id", MODSTAMP] {
            if !all.contains(&required) {
                all.push(required);
            }
        }
        Self {
            object,
            fields: all,
            filter: None,
            include_deleted: false,
        }
    }

    pub fn filter(mut self, cond: Cond) -> Self {
        self.filter = Some(cond);
        self
    }

    pub fn include_deleted(mut self, yes: bool) -> Self {
        self.include_deleted = yes;
        self
    }

    /// The statement reading the rows after `after` (from the start when `None`).
    pub fn render(&self, after: Option<&Position>) -> Result<String, SoqlError> {
        let position = after.map(|p| Cond::after_cursor(MODSTAMP, p.system_modstamp, &p.id));
        let filter = match (&self.filter, position) {
            (Some(f), Some(p)) => Some(Cond::and([f.clone(), p])),
            (Some(f), None) => Some(f.clone()),
            (None, p) => p,
        };
        let mut select = Select::new(self.object, &self.fields);
        if let Some(f) = filter {
            select = select.filter(f);
        }
        select
            .order_by(MODSTAMP, Order::Asc)
            .order_by("Id", Order::Asc)
            .render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn parses_salesforce_datetimes() {
        let expected = Utc.with_ymd_and_hms(2011, 7, 7, 0, 37, 0).unwrap();
        assert_eq!(
            parse_datetime("2011-07-07T00:37:00.000+0000"),
            Some(expected)
        );
        assert_eq!(
            parse_datetime("2011-07-07T02:37:00.000+0200"),
            Some(expected)
        );
        assert_eq!(parse_datetime("2011-07-07T00:37:00Z"), Some(expected));
        assert_eq!(parse_datetime("2011-07-07T00:37:00"), Some(expected));
        assert_eq!(parse_datetime("yesterday"), None);
    }

    #[test]
    fn renders_with_and_without_position() {
        let q = KeysetQuery::new("Contact", &["Email"])
            .filter(Cond::eq("IsDeleted", false))
            .include_deleted(true);
        assert_eq!(
            q.render(None).unwrap(),
            "SELECT Email, Id, SystemModstamp FROM Contact WHERE IsDeleted = false ORDER BY SystemModstamp ASC, Id ASC"
        );
        let at = Position {
            system_modstamp: Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap(),
            id: "003000000000001AAA".into(),
        };
        assert_eq!(
            q.render(Some(&at)).unwrap(),
            "SELECT Email, Id, SystemModstamp FROM Contact WHERE IsDeleted = false AND \
             (SystemModstamp > 2026-01-31T12:00:00Z OR (SystemModstamp = 2026-01-31T12:00:00Z AND Id > '003000000000001AAA')) \
             ORDER BY SystemModstamp ASC, Id ASC"
        );
        let record =
            json!({"Id": "003000000000001AAA", "SystemModstamp": "2026-01-31T12:00:00.000+0000"});
        assert_eq!(Position::of(record.as_object().unwrap()), Some(at));
    }
}

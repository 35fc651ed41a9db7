//! Change Data Capture events: Avro payloads decoded with the schema the Pub/Sub
//! API serves, and the field bitmaps of the `ChangeEventHeader` turned into field
//! names. Pure: no I/O.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::RecordSchema;
use apache_avro::types::Value as Avro;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::{Map, Value};

use super::id::id18;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Create,
    Update,
    Delete,
    Undelete,
    GapCreate,
    GapUpdate,
    GapDelete,
    GapUndelete,
    GapOverflow,
}

impl ChangeType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "CREATE" => ChangeType::Create,
            "UPDATE" => ChangeType::Update,
            "DELETE" => ChangeType::Delete,
            "UNDELETE" => ChangeType::Undelete,
            "GAP_CREATE" => ChangeType::GapCreate,
            "GAP_UPDATE" => ChangeType::GapUpdate,
            "GAP_DELETE" => ChangeType::GapDelete,
            "GAP_UNDELETE" => ChangeType::GapUndelete,
            "GAP_OVERFLOW" => ChangeType::GapOverflow,
            _ => return None,
        })
    }

    /// The record must be read again (an undelete, or a gap in the feed).
    pub fn needs_reread(self) -> bool {
        matches!(
            self,
            ChangeType::Undelete
                | ChangeType::GapCreate
                | ChangeType::GapUpdate
                | ChangeType::GapDelete
                | ChangeType::GapUndelete
        )
    }
}

/// One decoded change event.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub entity: String,
    /// In their 18-character form, as REST returns them.
    pub record_ids: Vec<String>,
    pub change_type: ChangeType,
    pub change_origin: String,
    pub commit_timestamp: DateTime<Utc>,
    /// Fields the change set (UPDATE) or carries (CREATE), by API name.
    pub changed: Vec<String>,
    /// Fields the change set to null.
    pub nulled: Vec<String>,
    /// The values carried, in REST form (dates `2026-01-31`, datetimes
    /// `2026-01-31T12:00:00.000+0000`); absent fields are not present.
    pub values: Map<String, Value>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CdcError {
    #[error("invalid Avro schema: {0}")]
    Schema(String),
    #[error("undecodable event payload: {0}")]
    Payload(String),
}

/// A change event schema, parsed once and cached by schema id.
pub struct EventSchema {
    schema: Schema,
    /// Top-level field names by position (position 0 is `ChangeEventHeader`).
    top: Vec<String>,
    /// Members of compound (record) fields, by the compound's position.
    nested: HashMap<usize, Vec<String>>,
    /// How each field's long values are to be read.
    kinds: HashMap<String, FieldKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    Date,
    DateTime,
    Other,
}

impl EventSchema {
    pub fn parse(schema_json: &str) -> Result<Self, CdcError> {
        let schema = Schema::parse_str(schema_json).map_err(|e| CdcError::Schema(e.to_string()))?;
        let raw: Value =
            serde_json::from_str(schema_json).map_err(|e| CdcError::Schema(e.to_string()))?;
        let fields = raw
            .get("fields")
            .and_then(Value::as_array)
            .ok_or_else(|| CdcError::Schema("no fields".into()))?;
        let mut top = Vec::new();
        let mut nested = HashMap::new();
        let mut kinds = HashMap::new();
        for (i, f) in fields.iter().enumerate() {
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let doc = f.get("doc").and_then(Value::as_str).unwrap_or_default();
            let kind = match doc {
                "Data:DateOnly" => FieldKind::Date,
                "Data:DateTime" => FieldKind::DateTime,
                _ => FieldKind::Other,
            };
            kinds.insert(name.clone(), kind);
            if let Some(members) = record_members(f.get("type")) {
                nested.insert(i, members);
            }
            top.push(name);
        }
        if !matches!(schema, Schema::Record(RecordSchema { .. })) {
            return Err(CdcError::Schema("not a record schema".into()));
        }
        Ok(Self {
            schema,
            top,
            nested,
            kinds,
        })
    }

    /// Field names named by bitmap strings (`0x…` over top-level positions,
    /// `N-0x…` over the members of compound field N, named `Parent.Member`).
    pub fn bitmap_fields(&self, bitmaps: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for b in bitmaps {
            match b.split_once('-') {
                Some((parent, hex)) => {
                    let Ok(p) = parent.parse::<usize>() else {
                        continue;
                    };
                    let (Some(parent_name), Some(members)) = (self.top.get(p), self.nested.get(&p))
                    else {
                        continue;
                    };
                    for pos in bitmap_positions(hex).unwrap_or_default() {
                        if let Some(m) = members.get(pos) {
                            out.push(format!("{parent_name}.{m}"));
                        }
                    }
                }
                None => {
                    for pos in bitmap_positions(b).unwrap_or_default() {
                        if let Some(name) = self.top.get(pos).filter(|_| pos > 0) {
                            out.push(name.clone());
                        }
                    }
                }
            }
        }
        out
    }

    /// Decodes one Avro binary datum (no container header).
    pub fn decode(&self, payload: &[u8]) -> Result<ChangeEvent, CdcError> {
        let mut reader = payload;
        let value = apache_avro::from_avro_datum(&self.schema, &mut reader, None)
            .map_err(|e| CdcError::Payload(e.to_string()))?;
        let Avro::Record(fields) = value else {
            return Err(CdcError::Payload("not a record".into()));
        };
        let mut header = None;
        let mut values = Map::new();
        for (name, v) in fields {
            if name == "ChangeEventHeader" {
                header = Some(v);
                continue;
            }
            let kind = self.kinds.get(&name).copied().unwrap_or(FieldKind::Other);
            match unwrap_union(v) {
                Avro::Null => {}
                Avro::Record(members) => {
                    for (m, mv) in members {
                        if let Some(j) = to_json(unwrap_union(mv), FieldKind::Other) {
                            values.insert(format!("{name}.{m}"), j);
                        }
                    }
                }
                other => {
                    if let Some(j) = to_json(other, kind) {
                        values.insert(name, j);
                    }
                }
            }
        }
        let Some(Avro::Record(h)) = header.map(unwrap_union) else {
            return Err(CdcError::Payload("no ChangeEventHeader".into()));
        };
        let get = |key: &str| {
            h.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| unwrap_union(v.clone()))
        };
        let strings = |key: &str| match get(key) {
            Some(Avro::Array(items)) => items
                .into_iter()
                .filter_map(|i| match unwrap_union(i) {
                    Avro::String(s) => Some(s),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let text = |key: &str| match get(key) {
            Some(Avro::String(s)) => s,
            Some(Avro::Enum(_, s)) => s,
            _ => String::new(),
        };
        let change_type = ChangeType::parse(&text("changeType"))
            .ok_or_else(|| CdcError::Payload(format!("change type {:?}", text("changeType"))))?;
        let commit_ms = match get("commitTimestamp") {
            Some(Avro::Long(ms)) => ms,
            Some(Avro::TimestampMillis(ms)) => ms,
            _ => 0,
        };
        Ok(ChangeEvent {
            entity: text("entityName"),
            record_ids: strings("recordIds").iter().map(|id| id18(id)).collect(),
            change_type,
            change_origin: text("changeOrigin"),
            commit_timestamp: Utc
                .timestamp_millis_opt(commit_ms)
                .single()
                .unwrap_or_default(),
            changed: self.bitmap_fields(&strings("changedFields")),
            nulled: self.bitmap_fields(&strings("nulledFields")),
            values,
        })
    }
}

fn record_members(ty: Option<&Value>) -> Option<Vec<String>> {
    let ty = ty?;
    let candidates: Vec<&Value> = match ty {
        Value::Array(union) => union.iter().collect(),
        other => vec![other],
    };
    candidates.into_iter().find_map(|t| {
        (t.get("type").and_then(Value::as_str) == Some("record")).then(|| {
            t.get("fields")
                .and_then(Value::as_array)
                .map(|fs| {
                    fs.iter()
                        .filter_map(|f| f.get("name")?.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        })
    })
}

fn unwrap_union(v: Avro) -> Avro {
    match v {
        Avro::Union(_, inner) => unwrap_union(*inner),
        other => other,
    }
}

/// Avro values in the form a REST query returns them.
fn to_json(v: Avro, kind: FieldKind) -> Option<Value> {
    Some(match (v, kind) {
        (Avro::Null, _) => return None,
        (Avro::Long(n) | Avro::TimestampMillis(n), FieldKind::DateTime) => Value::String(
            Utc.timestamp_millis_opt(n)
                .single()?
                .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
                .to_string(),
        ),
        (Avro::Long(n), FieldKind::Date) => Value::String(date_from_days(n)?),
        (Avro::Int(n) | Avro::Date(n), FieldKind::Date) => {
            Value::String(date_from_days(i64::from(n))?)
        }
        (Avro::Boolean(b), _) => Value::Bool(b),
        (Avro::Int(n), _) => Value::from(n),
        (Avro::Long(n), _) => Value::from(n),
        (Avro::Float(f), _) => serde_json::Number::from_f64(f64::from(f)).map(Value::Number)?,
        (Avro::Double(f), _) => serde_json::Number::from_f64(f).map(Value::Number)?,
        (Avro::String(s), _) | (Avro::Enum(_, s), _) => Value::String(s),
        (Avro::Array(items), _) => Value::Array(
            items
                .into_iter()
                .filter_map(|i| to_json(unwrap_union(i), FieldKind::Other))
                .collect(),
        ),
        _ => return None,
    })
}

fn date_from_days(days: i64) -> Option<String> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some(
        epoch
            .checked_add_signed(chrono::Duration::days(days))?
            .format("%Y-%m-%d")
            .to_string(),
    )
}

/// Positions set in a `0x…` bitmap: the hex is a big-endian number whose bit i
/// is field position i (Salesforce's `BitSet.valueOf` over the reversed bytes).
pub fn bitmap_positions(hex: &str) -> Option<Vec<usize>> {
    let digits = hex.strip_prefix("0x").or_else(|| hex.strip_prefix("0X"))?;
    let mut out = Vec::new();
    for (i, c) in digits.chars().rev().enumerate() {
        let v = c.to_digit(16)? as usize;
        for b in 0..4 {
            if v & (1 << b) != 0 {
                out.push(i * 4 + b);
            }
        }
    }
    out.sort_unstable();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Record;

    const SCHEMA: &str = r#"{
      "type": "record", "name": "OpportunityChangeEvent", "namespace": "com.sforce.eventbus",
      "fields": [
        {"name": "ChangeEventHeader", "type": {"type": "record", "name": "ChangeEventHeader", "fields": [
          {"name": "entityName", "type": "string"},
          {"name": "recordIds", "type": {"type": "array", "items": "string"}},
          {"name": "changeType", "type": {"type": "enum", "name": "ChangeType", "symbols": ["CREATE","UPDATE","DELETE","UNDELETE","GAP_CREATE","GAP_UPDATE","GAP_DELETE","GAP_UNDELETE","GAP_OVERFLOW"]}},
          {"name": "changeOrigin", "type": "string"},
          {"name": "transactionKey", "type": "string"},
          {"name": "sequenceNumber", "type": "int"},
          {"name": "commitTimestamp", "type": "long"},
          {"name": "commitNumber", "type": "long"},
          {"name": "commitUser", "type": "string"},
          {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
          {"name": "diffFields", "type": {"type": "array", "items": "string"}},
          {"name": "changedFields", "type": {"type": "array", "items": "string"}}]}},
        {"name": "Name", "type": ["null", "string"], "doc": "Data:String", "default": null},
        {"name": "Amount", "type": ["null", "double"], "doc": "Data:Currency", "default": null},
        {"name": "CloseDate", "type": ["null", "long"], "doc": "Data:DateOnly", "default": null},
        {"name": "Address", "type": ["null", {"type": "record", "name": "Address", "fields": [
          {"name": "City", "type": ["null", "string"], "default": null},
          {"name": "Country", "type": ["null", "string"], "default": null}]}], "doc": "Data:ComplexValueType", "default": null},
        {"name": "LastModifiedDate", "type": ["null", "long"], "doc": "Data:DateTime", "default": null}
      ]}"#;

    #[test]
    fn bitmaps_name_top_level_and_nested_fields() {
        let s = EventSchema::parse(SCHEMA).unwrap();
        // Positions 1 (Name) and 3 (CloseDate): 0b1010 = 0x0A.
        assert_eq!(s.bitmap_fields(&["0x0A".into()]), ["Name", "CloseDate"]);
        // Position 5 (LastModifiedDate) and, inside Address (4), member 1 (Country).
        assert_eq!(
            s.bitmap_fields(&["0x20".into(), "4-0x02".into()]),
            ["LastModifiedDate", "Address.Country"]
        );
        assert_eq!(
            bitmap_positions("0x650004E0").unwrap(),
            [5, 6, 7, 10, 24, 26, 29, 30]
        );
        assert_eq!(bitmap_positions("0x0100").unwrap(), [8]);
        assert!(bitmap_positions("nope").is_none());
    }

    #[test]
    fn decodes_an_update_into_rest_shaped_values() {
        let s = EventSchema::parse(SCHEMA).unwrap();
        let Schema::Record(RecordSchema { fields, .. }) = &s.schema else {
            unreachable!()
        };
        let header_schema = &fields[0].schema;
        let mut header = Record::new(header_schema).unwrap();
        header.put("entityName", "Opportunity");
        header.put(
            "recordIds",
            Avro::Array(vec![
                Avro::String("0065g0000000001AAA".into()),
                Avro::String("0065g0000000002AAA".into()),
            ]),
        );
        header.put("changeType", Avro::Enum(1, "UPDATE".into()));
        header.put("changeOrigin", "com/salesforce/api/rest/62.0;client=other");
        header.put("transactionKey", "tx");
        header.put("sequenceNumber", 1);
        header.put("commitTimestamp", Avro::Long(1_795_860_000_123));
        header.put("commitNumber", Avro::Long(1));
        header.put("commitUser", "0055g0000000001AAA");
        header.put(
            "nulledFields",
            Avro::Array(vec![Avro::String("0x04".into())]),
        );
        header.put("diffFields", Avro::Array(vec![]));
        header.put(
            "changedFields",
            Avro::Array(vec![Avro::String("0x2E".into())]),
        );
        let mut event = Record::new(&s.schema).unwrap();
        event.put("ChangeEventHeader", Avro::from(header));
        event.put(
            "Name",
            Avro::Union(1, Box::new(Avro::String("Renewal".into()))),
        );
        event.put("Amount", Avro::Union(0, Box::new(Avro::Null)));
        event.put("CloseDate", Avro::Union(1, Box::new(Avro::Long(20_000))));
        event.put("Address", Avro::Union(0, Box::new(Avro::Null)));
        event.put(
            "LastModifiedDate",
            Avro::Union(1, Box::new(Avro::Long(1_795_860_000_000))),
        );
        let bytes = apache_avro::to_avro_datum(&s.schema, Avro::from(event)).unwrap();

        let e = s.decode(&bytes).unwrap();
        assert_eq!(e.change_type, ChangeType::Update);
        assert_eq!(e.record_ids.len(), 2);
        assert_eq!(
            e.changed,
            ["Name", "Amount", "CloseDate", "LastModifiedDate"]
        );
        assert_eq!(e.nulled, ["Amount"]);
        assert_eq!(e.values["Name"], "Renewal");
        assert_eq!(e.values["CloseDate"], "2024-10-04");
        assert!(
            e.values["LastModifiedDate"]
                .as_str()
                .unwrap()
                .ends_with(".000+0000")
        );
        assert!(!e.values.contains_key("Amount"));
        assert_eq!(e.commit_timestamp.timestamp_millis(), 1_795_860_000_123);
        assert!(s.decode(b"\x00\x01garbage").is_err());
    }
}

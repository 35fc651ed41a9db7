//! Compact column storage: one typed vector per field, rows addressed by the
//! sequence number of their id (row = seq - 1), so an id maps to its row with no
//! hash lookup and a record costs a few bytes per field.

use crate::schema::{ObjectDef, Storage};
use std::collections::HashMap;

/// A record id inside one org: object index and sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(u64);

const SEQ_BITS: u32 = 48;

impl RecordId {
    /// Builds an id from object index and sequence number (≥ 1).
    pub fn new(obj: usize, seq: u64) -> RecordId {
        RecordId(((obj as u64) << SEQ_BITS) | (seq & ((1 << SEQ_BITS) - 1)))
    }
    /// Object index.
    pub fn obj(self) -> usize {
        (self.0 >> SEQ_BITS) as usize
    }
    /// Sequence number.
    pub fn seq(self) -> u64 {
        self.0 & ((1 << SEQ_BITS) - 1)
    }
    /// Row index in the object's table.
    pub fn row(self) -> usize {
        (self.seq().saturating_sub(1)) as usize
    }
    fn raw(self) -> u64 {
        self.0
    }
    fn from_raw(v: u64) -> Option<RecordId> {
        if v == 0 { None } else { Some(RecordId(v)) }
    }
}

/// An owned field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// null
    Null,
    /// text
    Text(Box<str>),
    /// boolean
    Bool(bool),
    /// integer
    Int(i64),
    /// double
    Float(f64),
    /// days since epoch
    Date(i32),
    /// ms since epoch
    DateTime(i64),
    /// record id
    Ref(RecordId),
}

impl Value {
    /// Borrowed view.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Text(s) => ValueRef::Text(s),
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Int(i) => ValueRef::Int(*i),
            Value::Float(f) => ValueRef::Float(*f),
            Value::Date(d) => ValueRef::Date(*d),
            Value::DateTime(t) => ValueRef::DateTime(*t),
            Value::Ref(r) => ValueRef::Ref(*r),
        }
    }
    /// True for null.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// A borrowed field value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// null
    Null,
    /// text
    Text(&'a str),
    /// boolean
    Bool(bool),
    /// integer
    Int(i64),
    /// double
    Float(f64),
    /// days since epoch
    Date(i32),
    /// ms since epoch
    DateTime(i64),
    /// record id
    Ref(RecordId),
}

impl ValueRef<'_> {
    /// Owned copy.
    pub fn to_owned(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Text(s) => Value::Text(s.into()),
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Date(d) => Value::Date(d),
            ValueRef::DateTime(t) => Value::DateTime(t),
            ValueRef::Ref(r) => Value::Ref(r),
        }
    }
    /// True for null.
    pub fn is_null(self) -> bool {
        matches!(self, ValueRef::Null)
    }
}

const NULL_I64: i64 = i64::MIN;
const NULL_I32: i32 = i32::MIN;

/// One typed column.
#[derive(Debug, Clone)]
pub enum Column {
    /// Text values.
    Text(Vec<Option<Box<str>>>),
    /// 0 false, 1 true.
    Bool(Vec<u8>),
    /// i64::MIN is null.
    Int(Vec<i64>),
    /// NaN is null.
    Float(Vec<f64>),
    /// i32::MIN is null.
    Date(Vec<i32>),
    /// i64::MIN is null.
    DateTime(Vec<i64>),
    /// 0 is null.
    Ref(Vec<u64>),
}

impl Column {
    fn new(storage: Storage) -> Column {
        match storage {
            Storage::Text => Column::Text(Vec::new()),
            Storage::Bool => Column::Bool(Vec::new()),
            Storage::Int => Column::Int(Vec::new()),
            Storage::Float => Column::Float(Vec::new()),
            Storage::Date => Column::Date(Vec::new()),
            Storage::DateTime => Column::DateTime(Vec::new()),
            Storage::Ref => Column::Ref(Vec::new()),
        }
    }

    fn push_null(&mut self) {
        match self {
            Column::Text(v) => v.push(None),
            // Salesforce booleans are never null: they default to false.
            Column::Bool(v) => v.push(0),
            Column::Int(v) => v.push(NULL_I64),
            Column::Float(v) => v.push(f64::NAN),
            Column::Date(v) => v.push(NULL_I32),
            Column::DateTime(v) => v.push(NULL_I64),
            Column::Ref(v) => v.push(0),
        }
    }

    fn truncate(&mut self, len: usize) {
        match self {
            Column::Text(v) => v.truncate(len),
            Column::Bool(v) => v.truncate(len),
            Column::Int(v) => v.truncate(len),
            Column::Float(v) => v.truncate(len),
            Column::Date(v) => v.truncate(len),
            Column::DateTime(v) => v.truncate(len),
            Column::Ref(v) => v.truncate(len),
        }
    }

    /// Value at a row.
    pub fn get(&self, row: usize) -> ValueRef<'_> {
        match self {
            Column::Text(v) => match v.get(row) {
                Some(Some(s)) => ValueRef::Text(s),
                _ => ValueRef::Null,
            },
            Column::Bool(v) => match v.get(row) {
                Some(0) => ValueRef::Bool(false),
                Some(1) => ValueRef::Bool(true),
                _ => ValueRef::Null,
            },
            Column::Int(v) => match v.get(row) {
                Some(x) if *x != NULL_I64 => ValueRef::Int(*x),
                _ => ValueRef::Null,
            },
            Column::Float(v) => match v.get(row) {
                Some(x) if !x.is_nan() => ValueRef::Float(*x),
                _ => ValueRef::Null,
            },
            Column::Date(v) => match v.get(row) {
                Some(x) if *x != NULL_I32 => ValueRef::Date(*x),
                _ => ValueRef::Null,
            },
            Column::DateTime(v) => match v.get(row) {
                Some(x) if *x != NULL_I64 => ValueRef::DateTime(*x),
                _ => ValueRef::Null,
            },
            Column::Ref(v) => match v.get(row).and_then(|x| RecordId::from_raw(*x)) {
                Some(r) => ValueRef::Ref(r),
                None => ValueRef::Null,
            },
        }
    }

    /// Sets a value; a value of the wrong storage type is stored as null (callers
    /// convert and validate beforehand).
    pub fn set(&mut self, row: usize, value: Value) {
        match self {
            Column::Text(v) => {
                if let Some(slot) = v.get_mut(row) {
                    *slot = match value {
                        Value::Text(s) => Some(s),
                        _ => None,
                    };
                }
            }
            Column::Bool(v) => {
                if let Some(slot) = v.get_mut(row) {
                    // Salesforce checkboxes are never null.
                    *slot = u8::from(value == Value::Bool(true));
                }
            }
            Column::Int(v) => {
                if let Some(slot) = v.get_mut(row) {
                    *slot = match value {
                        Value::Int(i) => i,
                        _ => NULL_I64,
                    };
                }
            }
            Column::Float(v) => {
                if let Some(slot) = v.get_mut(row) {
                    *slot = match value {
                        Value::Float(f) => f,
                        Value::Int(i) => i as f64,
                        _ => f64::NAN,
                    };
                }
            }
            Column::Date(v) => {
                if let Some(slot) = v.get_mut(row) {
                    *slot = match value {
                        Value::Date(d) => d,
                        _ => NULL_I32,
                    };
                }
            }
            Column::DateTime(v) => {
                if let Some(slot) = v.get_mut(row) {
                    *slot = match value {
                        Value::DateTime(t) => t,
                        _ => NULL_I64,
                    };
                }
            }
            Column::Ref(v) => {
                if let Some(slot) = v.get_mut(row) {
                    *slot = match value {
                        Value::Ref(r) => r.raw(),
                        _ => 0,
                    };
                }
            }
        }
    }
}

/// All records of one object in one org.
#[derive(Debug, Clone)]
pub struct Table {
    /// Object index.
    pub obj: usize,
    /// Columns in schema column order.
    pub columns: Vec<Column>,
    len: usize,
    /// Row → deletion time, for rows in the recycle bin.
    pub deleted_at: HashMap<usize, i64>,
}

impl Table {
    /// Empty table for an object.
    pub fn new(def: &ObjectDef) -> Table {
        let mut columns = Vec::with_capacity(def.columns);
        for f in &def.fields {
            if f.column.is_some() {
                columns.push(Column::new(f.ftype.storage()));
            }
        }
        Table {
            obj: def.index,
            columns,
            len: 0,
            deleted_at: HashMap::new(),
        }
    }

    /// Number of rows (including deleted ones).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends an all-null row and returns its id.
    pub fn push_row(&mut self) -> RecordId {
        for c in &mut self.columns {
            c.push_null();
        }
        self.len += 1;
        RecordId::new(self.obj, self.len as u64)
    }

    /// Drops rows past `len` (used by transaction rollback).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            for c in &mut self.columns {
                c.truncate(len);
            }
            self.deleted_at.retain(|row, _| *row < len);
            self.len = len;
        }
    }

    /// Value of a column at a row.
    pub fn get(&self, col: usize, row: usize) -> ValueRef<'_> {
        match self.columns.get(col) {
            Some(c) => c.get(row),
            None => ValueRef::Null,
        }
    }

    /// Sets a column at a row.
    pub fn set(&mut self, col: usize, row: usize, value: Value) {
        if let Some(c) = self.columns.get_mut(col) {
            c.set(row, value);
        }
    }

    /// True when the row exists.
    pub fn has_row(&self, row: usize) -> bool {
        row < self.len
    }

    /// True when the row is in the recycle bin.
    pub fn is_deleted(&self, row: usize) -> bool {
        self.deleted_at.contains_key(&row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    #[test]
    fn columns_roundtrip() {
        let def = Schema::get().object("Task").unwrap();
        let mut t = Table::new(def);
        let id = t.push_row();
        assert_eq!(id.row(), 0);
        assert_eq!(id.obj(), def.index);
        let subj = def.col("Subject").unwrap();
        let dur = def.col("CallDurationInSeconds").unwrap();
        let closed = def.col("IsClosed").unwrap();
        let who = def.col("WhoId").unwrap();
        assert_eq!(t.get(subj, 0), ValueRef::Null);
        assert_eq!(t.get(closed, 0), ValueRef::Bool(false));
        t.set(subj, 0, Value::Text("Call".into()));
        t.set(dur, 0, Value::Int(42));
        let r = RecordId::new(2, 7);
        t.set(who, 0, Value::Ref(r));
        assert_eq!(t.get(subj, 0), ValueRef::Text("Call"));
        assert_eq!(t.get(dur, 0), ValueRef::Int(42));
        assert_eq!(t.get(who, 0), ValueRef::Ref(r));
        t.set(who, 0, Value::Null);
        assert_eq!(t.get(who, 0), ValueRef::Null);
        t.truncate(0);
        assert!(t.is_empty());
    }
}

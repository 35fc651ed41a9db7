//! Compact column storage: one typed vector per field, rows addressed by the
//! sequence number of their id (row = seq - 1), so an id maps to its row with no
//! hash lookup and a record costs a few bytes per field.

use crate::schema::{ObjectDef, Storage};
use std::collections::HashMap;

/// A record id inside one org: object index and sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(u64);

const SEQ_BITS: u32 = 48;
/// Sequence bits of a reference stored in 32 bits (134 million rows per object).
const NARROW_SEQ_BITS: u32 = 27;

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
    /// 32-bit form (object in the top 5 bits, sequence below), when it fits.
    fn narrow(self) -> Option<u32> {
        let (obj, seq) = (self.obj() as u64, self.seq());
        (obj < (1 << (32 - NARROW_SEQ_BITS)) && seq < (1 << NARROW_SEQ_BITS))
            .then_some(((obj << NARROW_SEQ_BITS) | seq) as u32)
    }
    fn from_narrow(v: u32) -> Option<RecordId> {
        (v != 0).then(|| {
            RecordId::new(
                (v >> NARROW_SEQ_BITS) as usize,
                u64::from(v & ((1 << NARROW_SEQ_BITS) - 1)),
            )
        })
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

/// A cell of a [`TextColumn`] is the offset of the value in the column's
/// buffer, where the value is preceded by its length (6 bits per byte, bit 6
/// set on every byte but the last: ASCII, so the buffer stays a `String`).
const NULL_TEXT: u32 = u32::MAX;
/// The value is in `big` (the buffer would pass 4 GB).
const BIG_TEXT: u32 = u32::MAX - 1;
/// Values up to this many bytes are shared between rows (picklists, repeated
/// titles, …), up to `INTERN_CAP` distinct values per column.
const INTERN_MAX_LEN: usize = 40;
const INTERN_CAP: usize = 256;

/// Text values of one column, packed: 4 bytes per cell plus the bytes of the
/// values (and a length byte or two) in one buffer: no allocation per value,
/// nothing but the cell for a null. An overwritten value leaves garbage in the
/// buffer, reclaimed by compaction.
#[derive(Debug, Clone, Default)]
pub struct TextColumn {
    cells: Vec<u32>,
    data: String,
    /// Values past the 4 GB buffer, by row.
    big: HashMap<usize, Box<str>>,
    /// Short values already in `data` → their cell.
    interned: HashMap<Box<str>, u32>,
    /// Bytes of `data` no longer referenced.
    garbage: usize,
}

impl TextColumn {
    /// Start and length of the value whose header is at `off`.
    fn span(&self, off: usize) -> Option<(usize, usize)> {
        let bytes = self.data.as_bytes();
        let mut len = 0usize;
        let mut i = off;
        for shift in (0..48).step_by(6) {
            let b = *bytes.get(i)?;
            i += 1;
            len |= usize::from(b & 0x3F) << shift;
            if b & 0x40 == 0 {
                return Some((i, len));
            }
        }
        None
    }

    /// Value at a row (None: null or no such row).
    pub fn get(&self, row: usize) -> Option<&str> {
        match *self.cells.get(row)? {
            NULL_TEXT => None,
            BIG_TEXT => self.big.get(&row).map(|s| &**s),
            c => {
                let (start, len) = self.span(c as usize)?;
                self.data.get(start..start + len)
            }
        }
    }

    /// Stores a value in the buffer and returns its cell (`BIG_TEXT`: the
    /// caller keeps it in `big`).
    fn store(&mut self, s: &str) -> u32 {
        let short = s.len() <= INTERN_MAX_LEN;
        if short && let Some(c) = self.interned.get(s) {
            return *c;
        }
        let Some(cell) = u32::try_from(self.data.len())
            .ok()
            .filter(|_| self.data.len() + s.len() + 8 < BIG_TEXT as usize)
        else {
            return BIG_TEXT;
        };
        let mut n = s.len();
        loop {
            let low = (n & 0x3F) as u8;
            n >>= 6;
            self.data
                .push(char::from(if n == 0 { low } else { low | 0x40 }));
            if n == 0 {
                break;
            }
        }
        self.data.push_str(s);
        if short && self.interned.len() < INTERN_CAP {
            self.interned.insert(s.into(), cell);
        }
        cell
    }

    /// Forgets the value at a row (its bytes become garbage unless shared).
    fn release(&mut self, row: usize) {
        let Some(&c) = self.cells.get(row) else {
            return;
        };
        match c {
            NULL_TEXT => {}
            BIG_TEXT => {
                self.big.remove(&row);
            }
            c => {
                let Some((start, len)) = self.span(c as usize) else {
                    return;
                };
                let shared = len <= INTERN_MAX_LEN
                    && self
                        .data
                        .get(start..start + len)
                        .is_some_and(|s| self.interned.get(s) == Some(&c));
                if !shared {
                    self.garbage += start + len - c as usize;
                }
            }
        }
    }

    fn push_null(&mut self) {
        self.cells.push(NULL_TEXT);
    }

    fn set(&mut self, row: usize, value: Option<&str>) {
        if row >= self.cells.len() {
            return;
        }
        self.release(row);
        self.cells[row] = match value {
            None => NULL_TEXT,
            Some(s) => {
                let c = self.store(s);
                if c == BIG_TEXT {
                    self.big.insert(row, s.into());
                }
                c
            }
        };
        if self.garbage > (1 << 20) && self.garbage > self.data.len() / 2 {
            self.compact();
        }
    }

    fn truncate(&mut self, len: usize) {
        for row in len..self.cells.len() {
            self.release(row);
        }
        self.cells.truncate(len);
    }

    /// Rewrites the buffer without garbage.
    fn compact(&mut self) {
        let old = std::mem::take(self);
        self.cells = old.cells;
        self.big = old.big;
        self.data
            .reserve(old.data.len().saturating_sub(old.garbage));
        let stale = TextColumn {
            data: old.data,
            ..TextColumn::default()
        };
        for row in 0..self.cells.len() {
            let c = self.cells[row];
            if c == NULL_TEXT || c == BIG_TEXT {
                continue;
            }
            if let Some(s) = stale
                .span(c as usize)
                .and_then(|(start, len)| stale.data.get(start..start + len))
            {
                self.cells[row] = self.store(s);
                if self.cells[row] == BIG_TEXT {
                    self.big.insert(row, s.into());
                }
            }
        }
    }

    /// Releases spare capacity (and garbage).
    fn shrink_to_fit(&mut self) {
        if self.garbage > self.data.len() / 8 {
            self.compact();
        }
        self.cells.shrink_to_fit();
        self.data.shrink_to_fit();
        self.big.shrink_to_fit();
    }

    /// Heap bytes held.
    fn heap_bytes(&self) -> usize {
        self.cells.capacity() * 4
            + self.data.capacity()
            + self.big.values().map(|s| s.len() + 32).sum::<usize>()
            + self.interned.keys().map(|k| k.len() + 40).sum::<usize>()
    }
}

/// One typed column.
#[derive(Debug, Clone)]
pub enum Column {
    /// Text values.
    Text(TextColumn),
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
    /// References in 32 bits (see `RecordId::narrow`); 0 is null.
    Ref(Vec<u32>),
    /// References in 64 bits, once one does not fit in 32; 0 is null.
    RefWide(Vec<u64>),
}

impl Column {
    fn new(storage: Storage) -> Column {
        match storage {
            Storage::Text => Column::Text(TextColumn::default()),
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
            Column::Text(v) => v.push_null(),
            // Salesforce booleans are never null: they default to false.
            Column::Bool(v) => v.push(0),
            Column::Int(v) => v.push(NULL_I64),
            Column::Float(v) => v.push(f64::NAN),
            Column::Date(v) => v.push(NULL_I32),
            Column::DateTime(v) => v.push(NULL_I64),
            Column::Ref(v) => v.push(0),
            Column::RefWide(v) => v.push(0),
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
            Column::RefWide(v) => v.truncate(len),
        }
    }

    /// Releases spare capacity.
    fn shrink_to_fit(&mut self) {
        match self {
            Column::Text(v) => v.shrink_to_fit(),
            Column::Bool(v) => v.shrink_to_fit(),
            Column::Int(v) => v.shrink_to_fit(),
            Column::Float(v) => v.shrink_to_fit(),
            Column::Date(v) => v.shrink_to_fit(),
            Column::DateTime(v) => v.shrink_to_fit(),
            Column::Ref(v) => v.shrink_to_fit(),
            Column::RefWide(v) => v.shrink_to_fit(),
        }
    }

    /// Heap bytes held.
    fn heap_bytes(&self) -> usize {
        match self {
            Column::Text(v) => v.heap_bytes(),
            Column::Bool(v) => v.capacity(),
            Column::Int(v) => v.capacity() * 8,
            Column::Float(v) => v.capacity() * 8,
            Column::Date(v) => v.capacity() * 4,
            Column::DateTime(v) => v.capacity() * 8,
            Column::Ref(v) => v.capacity() * 4,
            Column::RefWide(v) => v.capacity() * 8,
        }
    }

    /// Value at a row.
    pub fn get(&self, row: usize) -> ValueRef<'_> {
        match self {
            Column::Text(v) => match v.get(row) {
                Some(s) => ValueRef::Text(s),
                None => ValueRef::Null,
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
            Column::Ref(v) => match v.get(row).and_then(|x| RecordId::from_narrow(*x)) {
                Some(r) => ValueRef::Ref(r),
                None => ValueRef::Null,
            },
            Column::RefWide(v) => match v.get(row).and_then(|x| RecordId::from_raw(*x)) {
                Some(r) => ValueRef::Ref(r),
                None => ValueRef::Null,
            },
        }
    }

    /// Sets a value; a value of the wrong storage type is stored as null (callers
    /// convert and validate beforehand).
    pub fn set(&mut self, row: usize, value: Value) {
        match self {
            Column::Text(v) => v.set(
                row,
                match &value {
                    Value::Text(s) => Some(&**s),
                    _ => None,
                },
            ),
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
                let raw = match value {
                    Value::Ref(r) => r.narrow().ok_or(r),
                    _ => Ok(0),
                };
                match raw {
                    Ok(x) => {
                        if let Some(slot) = v.get_mut(row) {
                            *slot = x;
                        }
                    }
                    Err(r) => {
                        // Does not fit in 32 bits: widen the column.
                        let wide = v
                            .iter()
                            .map(|x| RecordId::from_narrow(*x).map_or(0, RecordId::raw))
                            .collect();
                        *self = Column::RefWide(wide);
                        self.set(row, Value::Ref(r));
                    }
                }
            }
            Column::RefWide(v) => {
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

    /// Releases the spare capacity of every column (after a bulk load).
    pub fn shrink_to_fit(&mut self) {
        for c in &mut self.columns {
            c.shrink_to_fit();
        }
        self.deleted_at.shrink_to_fit();
    }

    /// Heap bytes held by the rows (capacity included).
    pub fn heap_bytes(&self) -> usize {
        self.columns.iter().map(Column::heap_bytes).sum::<usize>() + self.deleted_at.capacity() * 24
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
        // References are 32 bits until one does not fit.
        let owner = def.col("OwnerId").unwrap();
        let small = RecordId::new(0, 5);
        let large = RecordId::new(0, 1 << NARROW_SEQ_BITS);
        t.push_row();
        t.set(owner, 0, Value::Ref(small));
        assert!(matches!(t.columns[owner], Column::Ref(_)));
        t.set(owner, 1, Value::Ref(large));
        assert!(matches!(t.columns[owner], Column::RefWide(_)));
        assert_eq!(t.get(owner, 0), ValueRef::Ref(small));
        assert_eq!(t.get(owner, 1), ValueRef::Ref(large));
        t.truncate(1);
        t.truncate(0);
        assert!(t.is_empty());
    }

    #[test]
    fn text_cells_are_packed_shared_and_compacted() {
        let mut c = TextColumn::default();
        for _ in 0..5 {
            c.push_null();
        }
        assert_eq!(c.get(0), None);
        assert_eq!(c.get(9), None);
        c.set(0, Some(""));
        c.set(4, Some(""));
        assert_eq!((c.get(0), c.get(4)), (Some(""), Some("")));
        assert_eq!(
            c.data.len(),
            1,
            "the empty value is one length byte, shared"
        );
        // Short repeated values are stored once.
        c.set(1, Some("Completed"));
        c.set(2, Some("Completed"));
        assert_eq!(c.get(2), Some("Completed"));
        assert_eq!(c.data.len(), 1 + 1 + "Completed".len());
        // Overwriting a shared value leaves the other row alone.
        c.set(1, Some("Open"));
        assert_eq!((c.get(1), c.get(2)), (Some("Open"), Some("Completed")));
        assert_eq!(c.garbage, 0);
        c.set(2, None);
        assert_eq!(c.get(2), None);
        // Unique long values become garbage when overwritten, then compacted.
        let long = "x".repeat(300);
        c.set(3, Some(&long));
        assert_eq!(c.get(3), Some(long.as_str()));
        c.set(3, Some("é accentué"));
        assert_eq!(c.garbage, 2 + long.len(), "two length bytes for 300");
        assert_eq!(c.get(3), Some("é accentué"));
        c.shrink_to_fit();
        assert_eq!(c.garbage, 0);
        assert_eq!(
            (c.get(0), c.get(1), c.get(2), c.get(3), c.get(4)),
            (Some(""), Some("Open"), None, Some("é accentué"), Some(""))
        );
        assert_eq!(c.data.len(), 1 + 1 + "Open".len() + 1 + "é accentué".len());
        // Lengths of every size round-trip.
        for n in [0, 1, 63, 64, 4095, 4096, 262_144, 1 << 20] {
            let v = "z".repeat(n);
            c.set(1, Some(&v));
            assert_eq!(c.get(1).map(str::len), Some(n));
        }
        c.truncate(2);
        assert_eq!(c.get(2), None);
        assert_eq!(c.get(0), Some(""));
    }

    #[test]
    fn many_overwrites_stay_bounded() {
        let mut c = TextColumn::default();
        c.push_null();
        c.push_null();
        c.set(1, Some("kept value that is longer than the intern limit!!"));
        for i in 0..200_000 {
            c.set(0, Some(&format!("{i:064}")));
        }
        assert!(c.data.len() < 4 << 20, "{}", c.data.len());
        assert_eq!(c.get(0), Some(format!("{:064}", 199_999).as_str()));
        assert_eq!(
            c.get(1),
            Some("kept value that is longer than the intern limit!!")
        );
    }

    proptest::proptest! {
        #[test]
        fn text_column_behaves_like_a_vec(ops in proptest::collection::vec(
            (0usize..4, 0usize..12, proptest::option::of("[a-c]{0,3}|\\PC{0,80}")),
            1..200,
        )) {
            let mut c = TextColumn::default();
            let mut model: Vec<Option<String>> = Vec::new();
            for (op, row, value) in ops {
                match op {
                    0 => {
                        c.push_null();
                        model.push(None);
                    }
                    1 => {
                        let len = row.min(model.len());
                        c.truncate(len);
                        model.truncate(len);
                    }
                    2 => c.shrink_to_fit(),
                    _ => {
                        c.set(row, value.as_deref());
                        if let Some(slot) = model.get_mut(row) {
                            *slot = value;
                        }
                    }
                }
                for (r, v) in model.iter().enumerate() {
                    proptest::prop_assert_eq!(c.get(r), v.as_deref());
                }
                proptest::prop_assert_eq!(c.get(model.len()), None);
            }
            c.compact();
            for (r, v) in model.iter().enumerate() {
                proptest::prop_assert_eq!(c.get(r), v.as_deref());
            }
            proptest::prop_assert_eq!(c.garbage, 0);
        }
    }
}

//! Resolves a parsed query against the schema (field names, types, literals) and
//! evaluates it over the column store.

use super::lexer::{CmpOp, PatChar};
use super::parser::{Cond, FieldPath, Lit, Literal, Query};
use super::{MAX_WHERE_STRING, SoqlError};
use crate::ids;
use crate::json::Json;
use crate::schema::{Computed, FieldDef, FieldType, ObjectDef, Schema};
use crate::store::{RecordId, Table, ValueRef};
use crate::time::{fmt_date, fmt_datetime};
use std::cmp::Ordering;

/// Read access to one org's records.
#[derive(Clone, Copy)]
pub struct DataView<'a> {
    /// Tables in schema object order.
    pub tables: &'a [Table],
    /// The org's pod characters (for formatting ids).
    pub pod: &'a str,
}

impl<'a> DataView<'a> {
    /// 18-character id of a record.
    pub fn id18(&self, r: RecordId) -> String {
        ids::make_id(Schema::get().at(r.obj()).key_prefix, self.pod, r.seq())
    }

    /// 15-character id bytes of a record (for exact comparisons).
    pub fn id15(&self, r: RecordId) -> [u8; 15] {
        let mut out = [b'0'; 15];
        let prefix = Schema::get().at(r.obj()).key_prefix.as_bytes();
        out[..3].copy_from_slice(prefix);
        out[3..5].copy_from_slice(&self.pod.as_bytes()[..2]);
        out[5] = b'0';
        let seq = ids::base62(r.seq(), ids::SEQ_WIDTH);
        out[6..].copy_from_slice(seq.as_bytes());
        out
    }

    /// True when the record exists (deleted or not).
    pub fn exists(&self, r: RecordId) -> bool {
        self.tables.get(r.obj()).is_some_and(|t| t.has_row(r.row()))
    }

    /// True when the record exists and is not deleted.
    pub fn live(&self, r: RecordId) -> bool {
        self.tables
            .get(r.obj())
            .is_some_and(|t| t.has_row(r.row()) && !t.is_deleted(r.row()))
    }

    fn table(&self, obj: usize) -> Option<&'a Table> {
        self.tables.get(obj)
    }

    /// Reads a value.
    pub fn get(&self, acc: &Accessor, r: RecordId) -> Got<'a> {
        let Some(t) = self.table(r.obj()) else {
            return Got::Val(ValueRef::Null);
        };
        let row = r.row();
        match acc {
            Accessor::Id => Got::Val(ValueRef::Ref(r)),
            Accessor::Col { col, .. } => Got::Val(t.get(*col, row)),
            Accessor::FullName { first, last } => {
                let f = t.get(*first, row);
                let l = t.get(*last, row);
                match (f, l) {
                    (ValueRef::Text(f), ValueRef::Text(l)) => Got::Owned(format!("{f} {l}")),
                    (ValueRef::Text(f), _) => Got::Owned(f.to_string()),
                    (_, ValueRef::Text(l)) => Got::Owned(l.to_string()),
                    _ => Got::Val(ValueRef::Null),
                }
            }
            Accessor::Rel { lookup, target, .. } => {
                let ValueRef::Ref(parent) = t.get(*lookup, row) else {
                    return Got::Val(ValueRef::Null);
                };
                if !self.live(parent) {
                    return Got::Val(ValueRef::Null);
                }
                match target {
                    RelTarget::Id => Got::Val(ValueRef::Ref(parent)),
                    RelTarget::Type => {
                        Got::Val(ValueRef::Text(Schema::get().at(parent.obj()).name))
                    }
                    RelTarget::Field { per_obj, .. } => {
                        match per_obj.iter().find(|(o, _)| *o == parent.obj()) {
                            Some((_, inner)) => self.get(inner, parent),
                            None => Got::Val(ValueRef::Null),
                        }
                    }
                }
            }
        }
    }
}

/// A value read from the store, or computed.
#[derive(Debug, Clone)]
pub enum Got<'a> {
    /// Stored.
    Val(ValueRef<'a>),
    /// Computed text.
    Owned(String),
}

impl Got<'_> {
    /// Borrowed view.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Got::Val(v) => *v,
            Got::Owned(s) => ValueRef::Text(s),
        }
    }
}

/// How to read one field of a record.
#[derive(Debug, Clone)]
pub enum Accessor {
    /// The record id.
    Id,
    /// A stored column.
    Col {
        /// Column index.
        col: usize,
        /// Field type.
        ftype: FieldType,
    },
    /// FirstName + LastName.
    FullName {
        /// FirstName column.
        first: usize,
        /// LastName column.
        last: usize,
    },
    /// A field of the record a lookup points to.
    Rel {
        /// The lookup column.
        lookup: usize,
        /// What to read on the parent.
        target: RelTarget,
        /// Type of the value.
        ftype: FieldType,
    },
}

impl Accessor {
    /// Type of the value read.
    pub fn ftype(&self) -> FieldType {
        match self {
            Accessor::Id => FieldType::Id,
            Accessor::Col { ftype, .. } | Accessor::Rel { ftype, .. } => *ftype,
            Accessor::FullName { .. } => FieldType::String,
        }
    }
}

/// The parent field read through a relationship.
#[derive(Debug, Clone)]
pub enum RelTarget {
    /// Parent id.
    Id,
    /// Parent object name (`Who.Type`).
    Type,
    /// A field, resolved per possible parent object.
    Field {
        /// Canonical field name.
        name: &'static str,
        /// (object index, accessor on that object).
        per_obj: Vec<(usize, Accessor)>,
    },
}

/// One entry of the output record.
#[derive(Debug, Clone)]
pub enum OutItem {
    /// A field of the record.
    Field {
        /// Canonical name.
        name: &'static str,
        /// How to read it.
        acc: Accessor,
    },
    /// A nested parent record.
    Rel {
        /// Relationship name (`Account`, `Who`).
        name: &'static str,
        /// Lookup column.
        lookup: usize,
        /// Nested records have type `Name`.
        polymorphic: bool,
        /// Parent fields (canonical name, accessor on the child).
        fields: Vec<(&'static str, Accessor)>,
    },
}

/// A compiled literal.
#[derive(Debug, Clone)]
pub enum CLit {
    /// null
    Null,
    /// boolean
    Bool(bool),
    /// number
    Num(f64),
    /// text (compared case-insensitively)
    Text(String),
    /// 15-character id (compared exactly)
    Id(String),
    /// date
    Date(i32),
    /// datetime
    DateTime(i64),
}

/// A compiled WHERE condition.
#[derive(Debug, Clone)]
pub enum Filter {
    /// All.
    And(Vec<Filter>),
    /// Any.
    Or(Vec<Filter>),
    /// Not.
    Not(Box<Filter>),
    /// Comparison.
    Cmp {
        /// Field.
        acc: Accessor,
        /// Operator.
        op: CmpOp,
        /// Literal.
        lit: CLit,
    },
    /// IN / NOT IN.
    In {
        /// Field.
        acc: Accessor,
        /// NOT IN.
        negated: bool,
        /// Literals.
        lits: Vec<CLit>,
    },
    /// LIKE.
    Like {
        /// Field.
        acc: Accessor,
        /// Lower-cased pattern.
        pat: Vec<PatChar>,
    },
}

/// ORDER BY key.
#[derive(Debug, Clone)]
pub struct OrderKey {
    /// Field.
    pub acc: Accessor,
    /// Descending.
    pub desc: bool,
    /// Nulls last.
    pub nulls_last: bool,
}

/// A query resolved against the schema.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Object index.
    pub obj: usize,
    /// Output shape.
    pub out: Vec<OutItem>,
    /// WHERE.
    pub filter: Option<Filter>,
    /// ORDER BY.
    pub order: Vec<OrderKey>,
    /// LIMIT.
    pub limit: Option<usize>,
}

fn invalid_field(src: &str, pos: usize, name: &str, obj: &str) -> SoqlError {
    SoqlError::at(
        "INVALID_FIELD",
        src,
        pos,
        &format!(
            "No such column '{name}' on entity '{obj}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
        ),
    )
}

fn field_accessor(obj: &ObjectDef, f: &FieldDef) -> Accessor {
    match (f.computed, f.column) {
        (Some(Computed::FullName), _) => Accessor::FullName {
            first: obj.col("FirstName").unwrap_or(usize::MAX),
            last: obj.col("LastName").unwrap_or(usize::MAX),
        },
        (None, Some(col)) => Accessor::Col {
            col,
            ftype: f.ftype,
        },
        (None, None) => Accessor::Id,
    }
}

/// A resolved field path.
struct Resolved {
    /// Canonical path for the duplicate check and output.
    rel: Option<(&'static str, usize, bool)>,
    name: &'static str,
    acc: Accessor,
}

fn resolve(src: &str, obj: &ObjectDef, path: &FieldPath) -> Result<Resolved, SoqlError> {
    let schema = Schema::get();
    let mut parts: Vec<&str> = path.parts.iter().map(String::as_str).collect();
    // `Contact.Email` in a query on Contact: the object name may qualify a field.
    if parts.len() == 2
        && parts[0].eq_ignore_ascii_case(obj.name)
        && obj.relationship(parts[0]).is_none()
    {
        parts.remove(0);
    }
    match parts.as_slice() {
        [name] => {
            let f = obj
                .field(name)
                .ok_or_else(|| invalid_field(src, path.pos, name, obj.name))?;
            Ok(Resolved {
                rel: None,
                name: f.name,
                acc: field_accessor(obj, f),
            })
        }
        [rel, name] => {
            let lookup = obj.relationship(rel).ok_or_else(|| {
                SoqlError::at(
                    "INVALID_FIELD",
                    src,
                    path.pos,
                    &format!(
                        "Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."
                    ),
                )
            })?;
            let lookup_col = lookup.column.unwrap_or(usize::MAX);
            let rel_name = lookup.rel_name.unwrap_or("");
            let (fname, target, ftype) = if lookup.polymorphic {
                let lname = name.to_ascii_lowercase();
                match lname.as_str() {
                    "id" => ("Id", RelTarget::Id, FieldType::Id),
                    "type" => ("Type", RelTarget::Type, FieldType::Picklist),
                    "name" => {
                        let mut per_obj = Vec::new();
                        for t in lookup.refs {
                            if let Some(tobj) = schema.object(t)
                                && let Some(f) = tobj.field("Name")
                            {
                                per_obj.push((tobj.index, field_accessor(tobj, f)));
                            }
                        }
                        (
                            "Name",
                            RelTarget::Field {
                                name: "Name",
                                per_obj,
                            },
                            FieldType::String,
                        )
                    }
                    _ => {
                        return Err(invalid_field(src, path.pos, name, "Name"));
                    }
                }
            } else {
                let tobj = lookup
                    .refs
                    .first()
                    .and_then(|t| schema.object(t))
                    .ok_or_else(|| invalid_field(src, path.pos, name, obj.name))?;
                let f = tobj
                    .field(name)
                    .ok_or_else(|| invalid_field(src, path.pos, name, tobj.name))?;
                let target = if f.ftype == FieldType::Id {
                    RelTarget::Id
                } else {
                    RelTarget::Field {
                        name: f.name,
                        per_obj: vec![(tobj.index, field_accessor(tobj, f))],
                    }
                };
                (f.name, target, f.ftype)
            };
            Ok(Resolved {
                rel: Some((rel_name, lookup_col, lookup.polymorphic)),
                name: fname,
                acc: Accessor::Rel {
                    lookup: lookup_col,
                    target,
                    ftype,
                },
            })
        }
        _ => Err(SoqlError::malformed(
            src,
            path.pos,
            &format!(
                "'{}': only one level of relationship is supported by the emulator",
                path.text()
            ),
        )),
    }
}

fn type_error(src: &str, lit: &Lit, field: &str, ftype: FieldType) -> SoqlError {
    let quoted = if ftype.is_text() || matches!(ftype, FieldType::Id | FieldType::Reference) {
        "should be enclosed in quotes"
    } else {
        "should not be enclosed in quotes"
    };
    SoqlError::at(
        "INVALID_QUERY_FILTER_OPERATOR",
        src,
        lit.pos,
        &format!(
            "value of filter criterion for field '{field}' must be of type {} and {quoted}",
            ftype.soql_name()
        ),
    )
}

fn compile_lit(src: &str, lit: &Lit, field: &str, ftype: FieldType) -> Result<CLit, SoqlError> {
    if let Literal::Str(s) = &lit.value {
        if s.chars > MAX_WHERE_STRING {
            return Err(SoqlError::at(
                "MALFORMED_QUERY",
                src,
                lit.pos,
                &format!(
                    "String literal too long: strings in a WHERE clause are limited to {MAX_WHERE_STRING} characters"
                ),
            ));
        }
        if s.like_escapes {
            return Err(SoqlError::malformed(
                src,
                lit.pos,
                "the escapes \\% and \\_ are only valid in a LIKE pattern",
            ));
        }
    }
    if matches!(lit.value, Literal::Null) {
        return Ok(CLit::Null);
    }
    match ftype {
        FieldType::Id | FieldType::Reference => match &lit.value {
            Literal::Str(s) => match ids::normalize15(&s.value) {
                Some(id) => Ok(CLit::Id(id)),
                None => Err(SoqlError::at(
                    "INVALID_QUERY_FILTER_OPERATOR",
                    src,
                    lit.pos,
                    &format!("invalid ID field: {}", s.value),
                )),
            },
            _ => Err(type_error(src, lit, field, ftype)),
        },
        t if t.is_text() => match &lit.value {
            Literal::Str(s) => Ok(CLit::Text(s.value.clone())),
            _ => Err(type_error(src, lit, field, ftype)),
        },
        FieldType::Boolean => match &lit.value {
            Literal::Bool(b) => Ok(CLit::Bool(*b)),
            _ => Err(type_error(src, lit, field, ftype)),
        },
        FieldType::Int | FieldType::Double | FieldType::Currency | FieldType::Percent => {
            match &lit.value {
                Literal::Num(n) => n
                    .parse::<f64>()
                    .map(CLit::Num)
                    .map_err(|_| type_error(src, lit, field, ftype)),
                _ => Err(type_error(src, lit, field, ftype)),
            }
        }
        FieldType::Date => match &lit.value {
            Literal::Date(d) => Ok(CLit::Date(*d)),
            _ => Err(type_error(src, lit, field, ftype)),
        },
        FieldType::DateTime => match &lit.value {
            Literal::DateTime(t) => Ok(CLit::DateTime(*t)),
            _ => Err(type_error(src, lit, field, ftype)),
        },
        _ => Err(type_error(src, lit, field, ftype)),
    }
}

fn compile_cond(src: &str, obj: &ObjectDef, c: &Cond) -> Result<Filter, SoqlError> {
    Ok(match c {
        Cond::And(v) => Filter::And(
            v.iter()
                .map(|c| compile_cond(src, obj, c))
                .collect::<Result<_, _>>()?,
        ),
        Cond::Or(v) => Filter::Or(
            v.iter()
                .map(|c| compile_cond(src, obj, c))
                .collect::<Result<_, _>>()?,
        ),
        Cond::Not(inner) => Filter::Not(Box::new(compile_cond(src, obj, inner)?)),
        Cond::Cmp { field, op, value } => {
            let r = resolve(src, obj, field)?;
            let ftype = r.acc.ftype();
            let relational = !matches!(op, CmpOp::Eq | CmpOp::Ne);
            if relational && matches!(value.value, Literal::Null) {
                return Err(SoqlError::at(
                    "INVALID_QUERY_FILTER_OPERATOR",
                    src,
                    value.pos,
                    "null can only be compared with = or !=",
                ));
            }
            if relational && ftype == FieldType::Boolean {
                return Err(SoqlError::at(
                    "INVALID_QUERY_FILTER_OPERATOR",
                    src,
                    field.pos,
                    &format!("invalid operator on boolean field '{}'", r.name),
                ));
            }
            let lit = compile_lit(src, value, r.name, ftype)?;
            Filter::Cmp {
                acc: r.acc,
                op: *op,
                lit,
            }
        }
        Cond::In {
            field,
            negated,
            values,
        } => {
            let r = resolve(src, obj, field)?;
            let ftype = r.acc.ftype();
            let lits = values
                .iter()
                .map(|v| compile_lit(src, v, r.name, ftype))
                .collect::<Result<_, _>>()?;
            Filter::In {
                acc: r.acc,
                negated: *negated,
                lits,
            }
        }
        Cond::Like { field, pattern } => {
            let r = resolve(src, obj, field)?;
            let ftype = r.acc.ftype();
            if !ftype.is_text() {
                return Err(SoqlError::at(
                    "INVALID_QUERY_FILTER_OPERATOR",
                    src,
                    field.pos,
                    &format!(
                        "invalid operator on {} field '{}': LIKE applies to text fields",
                        ftype.soql_name(),
                        r.name
                    ),
                ));
            }
            let Literal::Str(s) = &pattern.value else {
                return Err(SoqlError::malformed(
                    src,
                    pattern.pos,
                    "LIKE needs a string",
                ));
            };
            if s.chars > MAX_WHERE_STRING {
                return Err(SoqlError::at(
                    "MALFORMED_QUERY",
                    src,
                    pattern.pos,
                    &format!(
                        "String literal too long: strings in a WHERE clause are limited to {MAX_WHERE_STRING} characters"
                    ),
                ));
            }
            let pat = s
                .pattern
                .iter()
                .map(|p| match p {
                    PatChar::Lit(c) => PatChar::Lit(lower_char(*c)),
                    other => *other,
                })
                .collect();
            Filter::Like { acc: r.acc, pat }
        }
    })
}

fn lower_char(c: char) -> char {
    let mut l = c.to_lowercase();
    match (l.next(), l.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

/// True when the WHERE clause filters ContentDocumentLink by id, as Salesforce requires.
fn filters_link_by_id(f: &Filter, obj: &ObjectDef) -> bool {
    let keys = [obj.col("ContentDocumentId"), obj.col("LinkedEntityId")];
    let is_key =
        |acc: &Accessor| matches!(acc, Accessor::Col { col, .. } if keys.contains(&Some(*col)));
    match f {
        Filter::Cmp {
            acc,
            op: CmpOp::Eq,
            lit: CLit::Id(_),
        } => is_key(acc),
        Filter::In {
            acc,
            negated: false,
            ..
        } => is_key(acc),
        Filter::And(v) => v.iter().any(|f| filters_link_by_id(f, obj)),
        _ => false,
    }
}

/// Resolves a parsed query.
pub fn compile(src: &str, q: &Query) -> Result<Plan, SoqlError> {
    let schema = Schema::get();
    let obj = schema.object(&q.from).ok_or_else(|| {
        SoqlError::at(
            "INVALID_TYPE",
            src,
            q.from_pos,
            &format!(
                "sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.",
                q.from
            ),
        )
    })?;
    let mut out: Vec<OutItem> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for path in &q.select {
        let r = resolve(src, obj, path)?;
        let key = match r.rel {
            Some((rel, _, _)) => format!("{rel}.{}", r.name).to_ascii_lowercase(),
            None => r.name.to_ascii_lowercase(),
        };
        if seen.contains(&key) {
            return Err(SoqlError::malformed(
                src,
                path.pos,
                &format!("duplicate field selected: {}", path.text()),
            ));
        }
        seen.push(key);
        match r.rel {
            None => out.push(OutItem::Field {
                name: r.name,
                acc: r.acc,
            }),
            Some((rel, lookup, polymorphic)) => {
                let existing = out.iter_mut().find_map(|o| match o {
                    OutItem::Rel { name, fields, .. } if *name == rel => Some(fields),
                    _ => None,
                });
                match existing {
                    Some(fields) => fields.push((r.name, r.acc)),
                    None => out.push(OutItem::Rel {
                        name: rel,
                        lookup,
                        polymorphic,
                        fields: vec![(r.name, r.acc)],
                    }),
                }
            }
        }
    }
    let filter = match &q.where_ {
        Some(c) => Some(compile_cond(src, obj, c)?),
        None => None,
    };
    if obj.name == "ContentDocumentLink"
        && !filter.as_ref().is_some_and(|f| filters_link_by_id(f, obj))
    {
        return Err(SoqlError::plain(
            "MALFORMED_QUERY",
            "Implementation restriction: ContentDocumentLink requires a filter by a single Id on ContentDocumentId or LinkedEntityId using the equals operator or multiple Id's using the IN operator.",
        ));
    }
    let mut order = Vec::new();
    for item in &q.order_by {
        let r = resolve(src, obj, &item.field)?;
        order.push(OrderKey {
            acc: r.acc,
            desc: item.desc,
            nulls_last: item.nulls_last,
        });
    }
    Ok(Plan {
        obj: obj.index,
        out,
        filter,
        order,
        limit: q.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
    })
}

/// Case-insensitive text ordering (Unicode lower-case, ASCII fast path).
pub fn cmp_ci(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        let (ab, bb) = (a.as_bytes(), b.as_bytes());
        for (x, y) in ab.iter().zip(bb.iter()) {
            let o = x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase());
            if o != Ordering::Equal {
                return o;
            }
        }
        return ab.len().cmp(&bb.len());
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .cmp(b.chars().flat_map(char::to_lowercase))
}

fn cmp_lit(view: &DataView, v: ValueRef, lit: &CLit) -> Option<Ordering> {
    match (v, lit) {
        (ValueRef::Null, _) | (_, CLit::Null) => None,
        (ValueRef::Text(s), CLit::Text(t)) => Some(cmp_ci(s, t)),
        (ValueRef::Bool(b), CLit::Bool(c)) => Some(b.cmp(c)),
        (ValueRef::Int(i), CLit::Num(n)) => (i as f64).partial_cmp(n),
        (ValueRef::Float(f), CLit::Num(n)) => f.partial_cmp(n),
        (ValueRef::Date(d), CLit::Date(e)) => Some(d.cmp(e)),
        (ValueRef::DateTime(t), CLit::DateTime(u)) => Some(t.cmp(u)),
        (ValueRef::Ref(r), CLit::Id(id)) => Some(view.id15(r).as_slice().cmp(id.as_bytes())),
        _ => None,
    }
}

fn like(text: &str, pat: &[PatChar]) -> bool {
    let chars: Vec<char> = text.chars().map(lower_char).collect();
    // Iterative wildcard matching with backtracking on the last `%`.
    let (mut t, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < chars.len() {
        match pat.get(p) {
            Some(PatChar::Many) => {
                star = Some((p, t));
                p += 1;
            }
            Some(PatChar::One) => {
                t += 1;
                p += 1;
            }
            Some(PatChar::Lit(c)) if *c == chars[t] => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|c| *c == PatChar::Many)
}

fn eval(view: &DataView, f: &Filter, r: RecordId) -> bool {
    match f {
        Filter::And(v) => v.iter().all(|f| eval(view, f, r)),
        Filter::Or(v) => v.iter().any(|f| eval(view, f, r)),
        Filter::Not(inner) => !eval(view, inner, r),
        Filter::Cmp { acc, op, lit } => {
            let got = view.get(acc, r);
            let v = got.as_ref();
            if matches!(lit, CLit::Null) {
                return match op {
                    CmpOp::Eq => v.is_null(),
                    _ => !v.is_null(),
                };
            }
            let ord = cmp_lit(view, v, lit);
            match op {
                CmpOp::Eq => ord == Some(Ordering::Equal),
                CmpOp::Ne => ord != Some(Ordering::Equal),
                CmpOp::Lt => ord == Some(Ordering::Less),
                CmpOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                CmpOp::Gt => ord == Some(Ordering::Greater),
                CmpOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
            }
        }
        Filter::In { acc, negated, lits } => {
            let got = view.get(acc, r);
            let v = got.as_ref();
            let found = lits.iter().any(|l| match l {
                CLit::Null => v.is_null(),
                _ => cmp_lit(view, v, l) == Some(Ordering::Equal),
            });
            found != *negated
        }
        Filter::Like { acc, pat } => match view.get(acc, r).as_ref() {
            ValueRef::Text(s) => like(s, pat),
            _ => false,
        },
    }
}

/// A precomputed sort key.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum SortKey {
    Null,
    I(i64),
    F(f64),
    S(String),
    B([u8; 15]),
}

fn sort_key(view: &DataView, acc: &Accessor, r: RecordId) -> SortKey {
    match view.get(acc, r).as_ref() {
        ValueRef::Null => SortKey::Null,
        ValueRef::Text(s) => SortKey::S(s.chars().flat_map(char::to_lowercase).collect()),
        ValueRef::Bool(b) => SortKey::I(i64::from(b)),
        ValueRef::Int(i) => SortKey::I(i),
        ValueRef::Float(f) => SortKey::F(f),
        ValueRef::Date(d) => SortKey::I(i64::from(d)),
        ValueRef::DateTime(t) => SortKey::I(t),
        ValueRef::Ref(x) => SortKey::B(view.id15(x)),
    }
}

/// Runs a plan: the ids of the matching records, ordered and limited.
pub fn execute(plan: &Plan, view: &DataView, include_deleted: bool) -> Vec<RecordId> {
    let Some(table) = view.tables.get(plan.obj) else {
        return Vec::new();
    };
    let mut ids: Vec<RecordId> = (0..table.len())
        .filter(|row| include_deleted || !table.is_deleted(*row))
        .map(|row| RecordId::new(plan.obj, row as u64 + 1))
        .filter(|r| plan.filter.as_ref().is_none_or(|f| eval(view, f, *r)))
        .collect();
    if !plan.order.is_empty() {
        let keys: Vec<Vec<SortKey>> = ids
            .iter()
            .map(|r| {
                plan.order
                    .iter()
                    .map(|k| sort_key(view, &k.acc, *r))
                    .collect()
            })
            .collect();
        let mut idx: Vec<usize> = (0..ids.len()).collect();
        idx.sort_by(|a, b| {
            for (i, k) in plan.order.iter().enumerate() {
                let (x, y) = (&keys[*a][i], &keys[*b][i]);
                let o = match (x, y) {
                    (SortKey::Null, SortKey::Null) => Ordering::Equal,
                    (SortKey::Null, _) => {
                        if k.nulls_last {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    (_, SortKey::Null) => {
                        if k.nulls_last {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    _ => {
                        let o = x.partial_cmp(y).unwrap_or(Ordering::Equal);
                        if k.desc { o.reverse() } else { o }
                    }
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
        ids = idx.into_iter().map(|i| ids[i]).collect();
    }
    if let Some(l) = plan.limit {
        ids.truncate(l);
    }
    ids
}

/// JSON of a stored value.
pub fn value_json(view: &DataView, v: ValueRef) -> Json {
    match v {
        ValueRef::Null => Json::Null,
        ValueRef::Text(s) => Json::Str(s.to_string()),
        ValueRef::Bool(b) => Json::Bool(b),
        ValueRef::Int(i) => Json::Int(i),
        ValueRef::Float(f) => Json::Float(f),
        ValueRef::Date(d) => Json::Str(fmt_date(d)),
        ValueRef::DateTime(t) => Json::Str(fmt_datetime(t)),
        ValueRef::Ref(r) => Json::Str(view.id18(r)),
    }
}

/// `{"type":…,"url":…}`.
pub fn attributes(view: &DataView, version: &str, r: RecordId, type_name: &str) -> Json {
    let obj = Schema::get().at(r.obj()).name;
    Json::obj().with("type", type_name).with(
        "url",
        format!("/services/data/v{version}/sobjects/{obj}/{}", view.id18(r)),
    )
}

/// Renders one record as a query result row.
pub fn render(plan: &Plan, view: &DataView, version: &str, r: RecordId) -> Json {
    let schema = Schema::get();
    let mut rec = Json::obj().with(
        "attributes",
        attributes(view, version, r, schema.at(r.obj()).name),
    );
    let table = view.tables.get(r.obj());
    for item in &plan.out {
        match item {
            OutItem::Field { name, acc } => {
                let got = view.get(acc, r);
                rec.push(name, value_json(view, got.as_ref()));
            }
            OutItem::Rel {
                name,
                lookup,
                polymorphic,
                fields,
            } => {
                let parent = table.map(|t| t.get(*lookup, r.row()));
                let nested = match parent {
                    Some(ValueRef::Ref(p)) if view.live(p) => {
                        let type_name = if *polymorphic {
                            "Name"
                        } else {
                            schema.at(p.obj()).name
                        };
                        let mut n =
                            Json::obj().with("attributes", attributes(view, version, p, type_name));
                        for (fname, acc) in fields {
                            let got = view.get(acc, r);
                            n.push(fname, value_json(view, got.as_ref()));
                        }
                        n
                    }
                    _ => Json::Null,
                };
                rec.push(name, nested);
            }
        }
    }
    rec
}

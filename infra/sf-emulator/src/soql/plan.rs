//! Resolves a parsed query against the schema (field names, types, literals) and
//! evaluates it over the column store.

use super::lexer::{CmpOp, PatChar};
use super::parser::{Cond, FieldPath, Lit, Literal, Query, SelectItem};
use super::{MAX_WHERE_STRING, SoqlError};
use crate::ids;
use crate::schema::{Computed, FieldDef, FieldType, ObjectDef, Schema};
use crate::store::{RecordId, Table, ValueRef};
use crate::time::{fmt_date, fmt_datetime};
use serde_json::{Map, Value, json};
use std::cmp::Ordering;
use std::collections::HashMap;

const DAY_MS: i64 = 86_400_000;

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
    /// A parent-to-child subquery: `{"totalSize","done","records"}` or null.
    Children(Box<ChildPlan>),
}

/// A parent-to-child subquery, resolved.
#[derive(Debug, Clone)]
pub struct ChildPlan {
    /// Child relationship name (`OpportunityContactRoles`).
    pub name: &'static str,
    /// Column of the child's lookup to the parent.
    pub lookup: usize,
    /// The inner query, over the child object.
    pub plan: Plan,
}

/// What a query returns.
#[derive(Debug, Clone)]
pub enum Shape {
    /// Records.
    Records,
    /// `COUNT()`: `totalSize` only, no records.
    Count,
    /// Aggregates: one `AggregateResult` row; (name, counted field or None).
    Aggregate(Vec<(String, Option<Accessor>)>),
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
    /// A date literal's range `[start, end)`, in the field's unit (days for
    /// dates, ms for datetimes).
    Range(i64, i64),
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
    /// Records, COUNT() or aggregates.
    pub shape: Shape,
}

impl Plan {
    /// The subqueries, in select order.
    pub fn children(&self) -> impl Iterator<Item = &ChildPlan> {
        self.out.iter().filter_map(|o| match o {
            OutItem::Children(c) => Some(&**c),
            _ => None,
        })
    }

    /// True when the query selects a parent field or a subquery.
    pub fn has_relationships(&self) -> bool {
        self.out
            .iter()
            .any(|o| matches!(o, OutItem::Rel { .. } | OutItem::Children(_)))
    }

    /// True when the query selects a long text field (over 255 characters).
    pub fn has_long_text(&self) -> bool {
        let obj = Schema::get().at(self.obj);
        self.out.iter().any(|o| match o {
            OutItem::Field { name, .. } => obj
                .field(name)
                .is_some_and(|f| f.ftype == FieldType::TextArea && f.length > 255),
            OutItem::Children(c) => c.plan.has_long_text(),
            _ => false,
        })
    }
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

fn compile_lit(
    src: &str,
    lit: &Lit,
    field: &str,
    ftype: FieldType,
    now: i64,
) -> Result<CLit, SoqlError> {
    if let Literal::Relative(d) = &lit.value {
        let (start, end) = d.days(i32::try_from(now.div_euclid(DAY_MS)).unwrap_or(0));
        return match ftype {
            FieldType::Date => Ok(CLit::Range(i64::from(start), i64::from(end))),
            FieldType::DateTime => Ok(CLit::Range(
                i64::from(start) * DAY_MS,
                i64::from(end) * DAY_MS,
            )),
            _ => Err(type_error(src, lit, field, ftype)),
        };
    }
    if let Literal::Str(s) = &lit.value {
        if s.units > MAX_WHERE_STRING {
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

fn compile_cond(src: &str, obj: &ObjectDef, c: &Cond, now: i64) -> Result<Filter, SoqlError> {
    Ok(match c {
        Cond::And(v) => Filter::And(
            v.iter()
                .map(|c| compile_cond(src, obj, c, now))
                .collect::<Result<_, _>>()?,
        ),
        Cond::Or(v) => Filter::Or(
            v.iter()
                .map(|c| compile_cond(src, obj, c, now))
                .collect::<Result<_, _>>()?,
        ),
        Cond::Not(inner) => Filter::Not(Box::new(compile_cond(src, obj, inner, now)?)),
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
            let lit = compile_lit(src, value, r.name, ftype, now)?;
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
                .map(|v| compile_lit(src, v, r.name, ftype, now))
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
            if s.units > MAX_WHERE_STRING {
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

/// Resolves a parsed query; date literals are resolved against `now` (ms).
pub fn compile(src: &str, q: &Query, now: i64) -> Result<Plan, SoqlError> {
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
    compile_on(src, q, obj, now, false)
}

/// The select list of an aggregate query may only hold aggregates.
fn aggregate_shape(src: &str, q: &Query, obj: &ObjectDef) -> Result<Shape, SoqlError> {
    let count_all = q.select.iter().find_map(|i| match i {
        SelectItem::CountAll { pos } => Some(*pos),
        _ => None,
    });
    let aggregates = q
        .select
        .iter()
        .any(|i| matches!(i, SelectItem::CountAll { .. } | SelectItem::Count { .. }));
    if !aggregates {
        return Ok(Shape::Records);
    }
    if let Some(pos) = count_all
        && q.select.len() > 1
    {
        return Err(SoqlError::malformed(
            src,
            pos,
            "COUNT() must be the only element in the SELECT list",
        ));
    }
    if let Some(o) = q.order_by.first() {
        return Err(SoqlError::malformed(
            src,
            o.field.pos,
            &format!(
                "Ordered field must be grouped or aggregated: {}",
                o.field.text()
            ),
        ));
    }
    if count_all.is_some() {
        return Ok(Shape::Count);
    }
    let mut out: Vec<(String, Option<Accessor>)> = Vec::new();
    let mut unnamed = 0;
    for item in &q.select {
        match item {
            SelectItem::Count { field, alias, pos } => {
                let r = resolve(src, obj, field)?;
                let name = match alias {
                    Some(a) => a.clone(),
                    None => {
                        unnamed += 1;
                        format!("expr{}", unnamed - 1)
                    }
                };
                if out.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                    return Err(SoqlError::malformed(
                        src,
                        *pos,
                        &format!("duplicate alias: {name}"),
                    ));
                }
                out.push((name, Some(r.acc)));
            }
            SelectItem::Field(f) => {
                return Err(SoqlError::malformed(
                    src,
                    f.pos,
                    &format!("Field must be grouped or aggregated: {}", f.text()),
                ));
            }
            SelectItem::Subquery { pos, .. } => {
                return Err(SoqlError::malformed(
                    src,
                    *pos,
                    "a subquery cannot be selected with aggregate functions",
                ));
            }
            SelectItem::CountAll { .. } => {}
        }
    }
    Ok(Shape::Aggregate(out))
}

/// Resolves a query on `obj`; `subquery` when it is a parent-to-child
/// subquery (its rows are already restricted to one parent).
fn compile_on(
    src: &str,
    q: &Query,
    obj: &ObjectDef,
    now: i64,
    subquery: bool,
) -> Result<Plan, SoqlError> {
    let shape = aggregate_shape(src, q, obj)?;
    let mut out: Vec<OutItem> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for item in &q.select {
        let path = match item {
            SelectItem::Field(path) => path,
            SelectItem::Subquery { query, pos } => {
                let child = compile_child(src, obj, query, now)?;
                let key = child.name.to_ascii_lowercase();
                if seen.contains(&key) {
                    return Err(SoqlError::malformed(
                        src,
                        *pos,
                        &format!("duplicate subquery on relationship {}", child.name),
                    ));
                }
                seen.push(key);
                out.push(OutItem::Children(Box::new(child)));
                continue;
            }
            SelectItem::CountAll { .. } | SelectItem::Count { .. } => continue,
        };
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
        Some(c) => Some(compile_cond(src, obj, c, now)?),
        None => None,
    };
    if obj.name == "ContentDocumentLink"
        && !subquery
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
        shape,
    })
}

/// Resolves `(SELECT … FROM <child relationship> …)` on `parent`.
fn compile_child(
    src: &str,
    parent: &ObjectDef,
    q: &Query,
    now: i64,
) -> Result<ChildPlan, SoqlError> {
    let schema = Schema::get();
    let rel = parent.child_relationship(&q.from).ok_or_else(|| {
        SoqlError::at(
            "INVALID_TYPE",
            src,
            q.from_pos,
            &format!(
                "Didn't understand relationship '{}' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.",
                q.from
            ),
        )
    })?;
    let child = schema.at(rel.child);
    let lookup = child.fields[rel.field].column.unwrap_or(usize::MAX);
    // The ContentDocumentLink restriction is met by the parent id.
    Ok(ChildPlan {
        name: rel.name,
        lookup,
        plan: compile_on(src, q, child, now, true)?,
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

/// A date (days) or datetime (ms) value, for date literal ranges.
fn day_or_ms(v: ValueRef) -> Option<i64> {
    match v {
        ValueRef::Date(d) => Some(i64::from(d)),
        ValueRef::DateTime(t) => Some(t),
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
            if let CLit::Range(start, end) = lit {
                let Some(x) = day_or_ms(v) else {
                    // As with other literals, `!=` keeps rows whose field is null.
                    return *op == CmpOp::Ne;
                };
                return match op {
                    CmpOp::Eq => *start <= x && x < *end,
                    CmpOp::Ne => !(*start <= x && x < *end),
                    CmpOp::Lt => x < *start,
                    CmpOp::Le => x < *end,
                    CmpOp::Gt => x >= *end,
                    CmpOp::Ge => x >= *start,
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
                CLit::Range(start, end) => day_or_ms(v).is_some_and(|x| *start <= x && x < *end),
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
    let ids: Vec<RecordId> = (0..table.len())
        .filter(|row| include_deleted || !table.is_deleted(*row))
        .map(|row| RecordId::new(plan.obj, row as u64 + 1))
        .filter(|r| plan.filter.as_ref().is_none_or(|f| eval(view, f, *r)))
        .collect();
    order_and_limit(plan, view, ids)
}

fn order_and_limit(plan: &Plan, view: &DataView, mut ids: Vec<RecordId>) -> Vec<RecordId> {
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

/// The rows of each subquery of a plan (in select order) for some parents:
/// parent → its matching children, filtered, ordered and limited.
pub type Kids = Vec<HashMap<RecordId, Vec<RecordId>>>;

/// Child rows of `parents` for every subquery of `plan` (one scan of each
/// child table).
pub fn children_of(
    plan: &Plan,
    view: &DataView,
    parents: &[RecordId],
    include_deleted: bool,
) -> Kids {
    plan.children()
        .map(|c| {
            let mut map: HashMap<RecordId, Vec<RecordId>> = HashMap::new();
            let Some(table) = view.tables.get(c.plan.obj) else {
                return map;
            };
            if parents.is_empty() {
                return map;
            }
            let wanted: std::collections::HashSet<RecordId> = parents.iter().copied().collect();
            for row in 0..table.len() {
                if !include_deleted && table.is_deleted(row) {
                    continue;
                }
                if let ValueRef::Ref(p) = table.get(c.lookup, row)
                    && wanted.contains(&p)
                {
                    let r = RecordId::new(c.plan.obj, row as u64 + 1);
                    if c.plan.filter.as_ref().is_none_or(|f| eval(view, f, r)) {
                        map.entry(p).or_default().push(r);
                    }
                }
            }
            map.into_iter()
                .map(|(p, kids)| (p, order_and_limit(&c.plan, view, kids)))
                .collect()
        })
        .collect()
}

/// One page of results from `offset`: at most `cap` rows, where "child
/// objects count toward the number of records for the batch size" (each
/// parent counts 1 plus its subquery rows), and always at least one parent.
/// Returns the offset after the page and its records.
pub fn page(
    plan: &Plan,
    view: &DataView,
    version: &str,
    ids: &[RecordId],
    offset: usize,
    cap: usize,
    include_deleted: bool,
) -> (usize, Vec<Value>) {
    let start = offset.min(ids.len());
    let candidates = &ids[start..start.saturating_add(cap.max(1)).min(ids.len())];
    let kids = children_of(plan, view, candidates, include_deleted);
    let mut used = 0usize;
    let mut taken = 0usize;
    for p in candidates {
        let weight = 1 + kids
            .iter()
            .map(|m| m.get(p).map_or(0, Vec::len))
            .sum::<usize>();
        if taken > 0 && used + weight > cap {
            break;
        }
        used += weight;
        taken += 1;
    }
    let records = candidates[..taken]
        .iter()
        .map(|r| render_with(plan, view, version, *r, &kids))
        .collect();
    (start + taken, records)
}

/// The single `AggregateResult` row of an aggregate query over `ids`.
pub fn aggregate_row(plan: &Plan, view: &DataView, ids: &[RecordId]) -> Value {
    let mut row = Map::new();
    row.insert("attributes".into(), json!({ "type": "AggregateResult" }));
    if let Shape::Aggregate(items) = &plan.shape {
        for (name, acc) in items {
            let n = match acc {
                None => ids.len(),
                Some(acc) => ids
                    .iter()
                    .filter(|r| !view.get(acc, **r).as_ref().is_null())
                    .count(),
            };
            row.insert(name.clone(), n.into());
        }
    }
    Value::Object(row)
}

/// JSON of a stored value: an integer field renders as an integer (`50`), a
/// double, currency or percent keeps its fraction (`12000.0`).
pub fn value_json(view: &DataView, v: ValueRef) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Text(s) => Value::String(s.to_string()),
        ValueRef::Bool(b) => Value::Bool(b),
        ValueRef::Int(i) => Value::from(i),
        ValueRef::Float(f) => Value::from(f),
        ValueRef::Date(d) => Value::String(fmt_date(d)),
        ValueRef::DateTime(t) => Value::String(fmt_datetime(t)),
        ValueRef::Ref(r) => Value::String(view.id18(r)),
    }
}

/// `{"type":…,"url":…}`.
pub fn attributes(view: &DataView, version: &str, r: RecordId, type_name: &str) -> Value {
    let obj = Schema::get().at(r.obj()).name;
    json!({
        "type": type_name,
        "url": format!("/services/data/v{version}/sobjects/{obj}/{}", view.id18(r)),
    })
}

/// A record's object, `attributes` first (the fields follow in insertion order).
pub fn record_map(attributes: Value, fields: usize) -> Map<String, Value> {
    let mut rec = Map::with_capacity(fields + 1);
    rec.insert("attributes".into(), attributes);
    rec
}

/// Renders one record as a query result row (subqueries render as null: use
/// [`page`] for queries that have some).
pub fn render(plan: &Plan, view: &DataView, version: &str, r: RecordId) -> Value {
    render_with(plan, view, version, r, &Vec::new())
}

/// Renders one record, its subqueries' rows taken from `kids`: `attributes`,
/// then the fields in SELECT order.
pub fn render_with(plan: &Plan, view: &DataView, version: &str, r: RecordId, kids: &Kids) -> Value {
    let schema = Schema::get();
    let mut child_index = 0usize;
    let mut rec = record_map(
        attributes(view, version, r, schema.at(r.obj()).name),
        plan.out.len(),
    );
    let table = view.tables.get(r.obj());
    for item in &plan.out {
        match item {
            OutItem::Field { name, acc } => {
                let got = view.get(acc, r);
                rec.insert((*name).into(), value_json(view, got.as_ref()));
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
                            record_map(attributes(view, version, p, type_name), fields.len());
                        for (fname, acc) in fields {
                            let got = view.get(acc, r);
                            n.insert((*fname).into(), value_json(view, got.as_ref()));
                        }
                        Value::Object(n)
                    }
                    _ => Value::Null,
                };
                rec.insert((*name).into(), nested);
            }
            OutItem::Children(c) => {
                let rows = kids.get(child_index).and_then(|m| m.get(&r));
                child_index += 1;
                let nested = match rows {
                    Some(rows) if !rows.is_empty() => {
                        let records: Vec<Value> = rows
                            .iter()
                            .map(|k| render(&c.plan, view, version, *k))
                            .collect();
                        Value::from_iter([
                            ("totalSize", Value::from(rows.len())),
                            ("done", Value::Bool(true)),
                            ("records", Value::Array(records)),
                        ])
                    }
                    _ => Value::Null,
                };
                rec.insert(c.name.into(), nested);
            }
        }
    }
    Value::Object(rec)
}

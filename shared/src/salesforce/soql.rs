//! The one SOQL builder and escaper. Every query the product sends is built here:
//! object and field names are identifiers written in code (checked), and every
//! value is an escaped literal. No other module concatenates SOQL.

use std::fmt::Write;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// Salesforce refuses a string literal longer than this in a WHERE clause.
pub const MAX_STRING_LITERAL: usize = 4_000;
/// Salesforce refuses a statement longer than this.
pub const MAX_STATEMENT: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoqlError {
    #[error("{0:?} is not a valid SOQL identifier")]
    InvalidIdentifier(String),
    #[error("string literal of {0} characters exceeds Salesforce's limit of 4000")]
    LiteralTooLong(usize),
    #[error("statement of {0} characters exceeds Salesforce's limit of 100000")]
    StatementTooLong(usize),
    #[error("IN list is empty")]
    EmptyIn,
    #[error(
        "statement cannot be cut to fit one request: {0} characters with every IN list at one value"
    )]
    DoesNotFit(usize),
    #[error("a statement with LIMIT or ORDER BY cannot be cut into several: {0}")]
    CannotSplit(String),
}

/// Quotes `value` as a SOQL string literal: `'…'` with `\` `'` `"` and control
/// characters escaped, so that any input stays one literal.
pub fn quote(value: &str) -> Result<String, SoqlError> {
    quote_with(value, false)
}

/// Quotes `value` for use inside a LIKE pattern: as [`quote`], and `%` `_` escaped
/// so they match themselves. Wrap with [`Like`] to add wildcards.
fn quote_with(value: &str, like: bool) -> Result<String, SoqlError> {
    let chars = value.chars().count();
    if chars > MAX_STRING_LITERAL {
        return Err(SoqlError::LiteralTooLong(chars));
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    push_escaped(&mut out, value, like);
    out.push('\'');
    Ok(out)
}

fn push_escaped(out: &mut String, value: &str, like: bool) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '%' if like => out.push_str("\\%"),
            '_' if like => out.push_str("\\_"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// A datetime literal (unquoted, UTC, whole seconds): `2026-01-31T12:00:00Z`.
/// Salesforce's audit timestamps have whole-second precision.
pub fn datetime(value: DateTime<Utc>) -> String {
    value.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A date literal: `2026-01-31`.
pub fn date(value: NaiveDate) -> String {
    value.format("%Y-%m-%d").to_string()
}

/// A checked identifier: object, field, or one-level relationship field (`Account.Name`).
fn identifier(name: &str) -> Result<&str, SoqlError> {
    let part_ok = |p: &str| {
        let mut chars = p.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !p.ends_with('_')
            && !p.contains("___")
    };
    let parts: Vec<&str> = name.split('.').collect();
    if (1..=2).contains(&parts.len()) && parts.iter().all(|p| part_ok(p)) {
        Ok(name)
    } else {
        Err(SoqlError::InvalidIdentifier(name.to_string()))
    }
}

/// A value on the right of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    DateTime(DateTime<Utc>),
    Date(NaiveDate),
    Bool(bool),
    Int(i64),
    Null,
}

impl Literal {
    fn render(&self) -> Result<String, SoqlError> {
        Ok(match self {
            Literal::Str(s) => quote(s)?,
            Literal::DateTime(d) => datetime(*d),
            Literal::Date(d) => date(*d),
            Literal::Bool(b) => b.to_string(),
            Literal::Int(i) => i.to_string(),
            Literal::Null => "null".to_string(),
        })
    }
}

impl From<&str> for Literal {
    fn from(v: &str) -> Self {
        Literal::Str(v.to_string())
    }
}
impl From<String> for Literal {
    fn from(v: String) -> Self {
        Literal::Str(v)
    }
}
impl From<&String> for Literal {
    fn from(v: &String) -> Self {
        Literal::Str(v.clone())
    }
}
impl From<DateTime<Utc>> for Literal {
    fn from(v: DateTime<Utc>) -> Self {
        Literal::DateTime(v)
    }
}
impl From<NaiveDate> for Literal {
    fn from(v: NaiveDate) -> Self {
        Literal::Date(v)
    }
}
impl From<bool> for Literal {
    fn from(v: bool) -> Self {
        Literal::Bool(v)
    }
}
impl From<i64> for Literal {
    fn from(v: i64) -> Self {
        Literal::Int(v)
    }
}

/// A LIKE pattern: user text matched literally, with wildcards only where the code
/// puts them.
#[derive(Debug, Clone, PartialEq)]
pub enum Like {
    Exact(String),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
}

impl Like {
    fn render(&self) -> Result<String, SoqlError> {
        let (prefix, text, suffix) = match self {
            Like::Exact(t) => ("", t, ""),
            Like::StartsWith(t) => ("", t, "%"),
            Like::EndsWith(t) => ("%", t, ""),
            Like::Contains(t) => ("%", t, "%"),
        };
        let quoted = quote_with(text, true)?;
        // Insert the wildcards inside the quotes.
        let inner = &quoted[1..quoted.len() - 1];
        Ok(format!("'{prefix}{inner}{suffix}'"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// A WHERE condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Cmp(&'static str, Op, Literal),
    In(&'static str, Vec<Literal>),
    NotIn(&'static str, Vec<Literal>),
    Like(&'static str, Like),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

impl Cond {
    pub fn eq(field: &'static str, v: impl Into<Literal>) -> Self {
        Cond::Cmp(field, Op::Eq, v.into())
    }
    pub fn ne(field: &'static str, v: impl Into<Literal>) -> Self {
        Cond::Cmp(field, Op::Ne, v.into())
    }
    pub fn gt(field: &'static str, v: impl Into<Literal>) -> Self {
        Cond::Cmp(field, Op::Gt, v.into())
    }
    pub fn ge(field: &'static str, v: impl Into<Literal>) -> Self {
        Cond::Cmp(field, Op::Ge, v.into())
    }
    pub fn lt(field: &'static str, v: impl Into<Literal>) -> Self {
        Cond::Cmp(field, Op::Lt, v.into())
    }
    pub fn le(field: &'static str, v: impl Into<Literal>) -> Self {
        Cond::Cmp(field, Op::Le, v.into())
    }
    pub fn is_in<L: Into<Literal>>(
        field: &'static str,
        values: impl IntoIterator<Item = L>,
    ) -> Self {
        Cond::In(field, values.into_iter().map(Into::into).collect())
    }
    pub fn like(field: &'static str, pattern: Like) -> Self {
        Cond::Like(field, pattern)
    }
    pub fn and(conds: impl IntoIterator<Item = Cond>) -> Self {
        Cond::And(conds.into_iter().collect())
    }
    pub fn or(conds: impl IntoIterator<Item = Cond>) -> Self {
        Cond::Or(conds.into_iter().collect())
    }
    #[allow(clippy::should_implement_trait)]
    pub fn not(cond: Cond) -> Self {
        Cond::Not(Box::new(cond))
    }

    /// The keyset condition of a `(SystemModstamp, Id)` cursor: rows strictly after
    /// it; with no id, every row from `at` on.
    pub fn after_cursor(modstamp_field: &'static str, at: DateTime<Utc>, last_id: &str) -> Self {
        if last_id.is_empty() {
            return Cond::Cmp(modstamp_field, Op::Ge, at.into());
        }
        Cond::or([
            Cond::gt(modstamp_field, at),
            Cond::and([Cond::eq(modstamp_field, at), Cond::gt("Id", last_id)]),
        ])
    }

    /// The `IN` lists that may be cut (not under NOT), with their paths.
    fn in_lists(&self, path: &mut Vec<usize>, out: &mut Vec<(Vec<usize>, Vec<Literal>)>) {
        match self {
            Cond::In(_, values) => out.push((path.clone(), values.clone())),
            Cond::And(conds) | Cond::Or(conds) => {
                for (i, c) in conds.iter().enumerate() {
                    path.push(i);
                    c.in_lists(path, out);
                    path.pop();
                }
            }
            Cond::Cmp(..) | Cond::NotIn(..) | Cond::Like(..) | Cond::Not(_) => {}
        }
    }

    /// Replaces the values of the `IN` list at `path` (from [`Self::in_lists`]).
    fn set_in_list(&mut self, path: &[usize], values: Vec<Literal>) {
        match (self, path) {
            (Cond::In(_, v), []) => *v = values,
            (Cond::And(conds) | Cond::Or(conds), [i, rest @ ..]) => {
                if let Some(c) = conds.get_mut(*i) {
                    c.set_in_list(rest, values);
                }
            }
            _ => {}
        }
    }

    fn render(&self, out: &mut String) -> Result<(), SoqlError> {
        match self {
            Cond::Cmp(f, op, v) => {
                let _ = write!(out, "{} {} {}", identifier(f)?, op.as_str(), v.render()?);
            }
            Cond::In(f, values) | Cond::NotIn(f, values) => {
                if values.is_empty() {
                    return Err(SoqlError::EmptyIn);
                }
                let keyword = if matches!(self, Cond::In(..)) {
                    "IN"
                } else {
                    "NOT IN"
                };
                let _ = write!(out, "{} {keyword} (", identifier(f)?);
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&v.render()?);
                }
                out.push(')');
            }
            Cond::Like(f, pattern) => {
                let _ = write!(out, "{} LIKE {}", identifier(f)?, pattern.render()?);
            }
            Cond::And(conds) | Cond::Or(conds) => {
                let joiner = if matches!(self, Cond::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                match conds.as_slice() {
                    [] => return Err(SoqlError::EmptyIn),
                    [single] => single.render(out)?,
                    many => {
                        for (i, c) in many.iter().enumerate() {
                            if i > 0 {
                                out.push_str(joiner);
                            }
                            let nested = matches!(c, Cond::And(_) | Cond::Or(_));
                            if nested {
                                out.push('(');
                            }
                            c.render(out)?;
                            if nested {
                                out.push(')');
                            }
                        }
                    }
                }
            }
            Cond::Not(c) => {
                out.push_str("NOT (");
                c.render(out)?;
                out.push(')');
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// `SELECT <fields> FROM <object> [WHERE …] [ORDER BY …] [LIMIT n]`
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    fields: Vec<&'static str>,
    object: &'static str,
    filter: Option<Cond>,
    order: Vec<(&'static str, Order)>,
    limit: Option<u32>,
}

impl Select {
    pub fn new(object: &'static str, fields: &[&'static str]) -> Self {
        Self {
            fields: fields.to_vec(),
            object,
            filter: None,
            order: Vec::new(),
            limit: None,
        }
    }

    pub fn filter(mut self, cond: Cond) -> Self {
        self.filter = Some(cond);
        self
    }

    pub fn order_by(mut self, field: &'static str, order: Order) -> Self {
        self.order.push((field, order));
        self
    }

    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// Statements that together return exactly this one's rows, each accepted by
    /// `fits` (the caller's budget: the request URI Salesforce accepts). One
    /// statement when it fits. Otherwise its `IN (…)` lists are cut into
    /// consecutive parts, the longest list first, each part as long as still fits;
    /// the rows of the parts are the rows of the whole, some possibly in several
    /// parts (a row matching another branch of an OR): the caller merges by Id.
    ///
    /// Only lists under AND and OR are cut (`x IN (a, b)` is `x IN (a) OR x IN (b)`
    /// there; under NOT it is not). LIMIT and ORDER BY refuse cutting, since the
    /// rows of the parts would not be the rows of the whole.
    pub fn render_within(&self, fits: impl Fn(&str) -> bool) -> Result<Vec<String>, SoqlError> {
        let mut out = Vec::new();
        self.split_into(&fits, &mut out)?;
        Ok(out)
    }

    fn split_into(
        &self,
        fits: &dyn Fn(&str) -> bool,
        out: &mut Vec<String>,
    ) -> Result<(), SoqlError> {
        let whole = match self.render() {
            Ok(s) if fits(&s) => {
                out.push(s);
                return Ok(());
            }
            Ok(s) => s.len(),
            Err(SoqlError::StatementTooLong(n)) => n,
            Err(e) => return Err(e),
        };
        if self.limit.is_some() || !self.order.is_empty() {
            return Err(SoqlError::CannotSplit(format!("{whole} characters")));
        }
        // The longest list that can still be cut.
        let mut lists = Vec::new();
        if let Some(filter) = &self.filter {
            filter.in_lists(&mut Vec::new(), &mut lists);
        }
        let Some((path, values)) =
            lists
                .into_iter()
                .filter(|(_, v)| v.len() > 1)
                .max_by_key(|(_, v)| {
                    v.iter()
                        .map(|l| l.render().map_or(0, |r| r.len()))
                        .sum::<usize>()
                })
        else {
            return Err(SoqlError::DoesNotFit(whole));
        };
        let with = |part: &[Literal]| {
            let mut s = self.clone();
            if let Some(filter) = s.filter.as_mut() {
                filter.set_in_list(&path, part.to_vec());
            }
            s
        };
        let fitting =
            |part: &[Literal]| -> Option<String> { with(part).render().ok().filter(|s| fits(s)) };
        let mut rest = &values[..];
        while !rest.is_empty() {
            // The longest prefix that fits (fitting is monotonic in its length).
            let (mut lo, mut hi, mut best) = (1, rest.len(), None);
            while lo <= hi {
                let mid = lo + (hi - lo) / 2;
                match fitting(&rest[..mid]) {
                    Some(s) => {
                        best = Some((mid, s));
                        lo = mid + 1;
                    }
                    None => hi = mid - 1,
                }
            }
            match best {
                Some((n, statement)) => {
                    out.push(statement);
                    rest = &rest[n..];
                }
                None => {
                    // Not even one value fits beside the other lists whole: halve this
                    // list and let each half cut the others.
                    let half = rest.len().div_ceil(2);
                    for part in [&rest[..half], &rest[half..]] {
                        if !part.is_empty() {
                            with(part).split_into(fits, out)?;
                        }
                    }
                    rest = &[];
                }
            }
        }
        Ok(())
    }

    /// The statement text, checked against Salesforce's limits.
    pub fn render(&self) -> Result<String, SoqlError> {
        let mut out = String::from("SELECT ");
        if self.fields.is_empty() {
            return Err(SoqlError::InvalidIdentifier(String::new()));
        }
        for (i, f) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(identifier(f)?);
        }
        let _ = write!(out, " FROM {}", identifier(self.object)?);
        if let Some(filter) = &self.filter {
            out.push_str(" WHERE ");
            filter.render(&mut out)?;
        }
        for (i, (f, o)) in self.order.iter().enumerate() {
            out.push_str(if i == 0 { " ORDER BY " } else { ", " });
            out.push_str(identifier(f)?);
            out.push_str(if *o == Order::Asc { " ASC" } else { " DESC" });
        }
        if let Some(n) = self.limit {
            let _ = write!(out, " LIMIT {n}");
        }
        if out.len() > MAX_STATEMENT {
            return Err(SoqlError::StatementTooLong(out.len()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    /// A reference lexer for one SOQL string literal at the start of `s`: returns
    /// the decoded value and the rest. Independent from the escaper above.
    fn lex_literal(s: &str) -> Option<(String, &str)> {
        let mut chars = s.char_indices();
        if chars.next()?.1 != '\'' {
            return None;
        }
        let mut value = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '\'' => return Some((value, &s[i + 1..])),
                '\\' => {
                    let (_, e) = chars.next()?;
                    match e {
                        '\\' => value.push('\\'),
                        '\'' => value.push('\''),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        'r' => value.push('\r'),
                        't' => value.push('\t'),
                        'b' => value.push('\u{8}'),
                        'f' => value.push('\u{c}'),
                        '%' => value.push_str("\\%"),
                        '_' => value.push_str("\\_"),
                        'u' => {
                            let hex: String = (0..4)
                                .filter_map(|_| chars.next().map(|(_, h)| h))
                                .collect();
                            value.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                        }
                        _ => return None,
                    }
                }
                c => value.push(c),
            }
        }
        None
    }

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(quote("O'Brien").unwrap(), r"'O\'Brien'");
        assert_eq!(quote(r"a\b").unwrap(), r"'a\\b'");
        assert_eq!(quote("a\nb\rc\td").unwrap(), r"'a\nb\rc\td'");
        assert_eq!(quote("say \"hi\"").unwrap(), r#"'say \"hi\"'"#);
        assert_eq!(quote("\u{8}\u{c}\u{1}").unwrap(), r"'\b\f\u0001'");
        assert_eq!(quote("100%_ok").unwrap(), "'100%_ok'");
        assert_eq!(quote("été ☎").unwrap(), "'été ☎'");
        assert_eq!(quote(&"x".repeat(4000)).unwrap().len(), 4002);
        assert_eq!(
            quote(&"x".repeat(4001)),
            Err(SoqlError::LiteralTooLong(4001))
        );
    }

    #[test]
    fn like_patterns_escape_wildcards_in_user_text() {
        assert_eq!(
            Like::Contains("50%_off".into()).render().unwrap(),
            r"'%50\%\_off%'"
        );
        assert_eq!(Like::StartsWith("O'B".into()).render().unwrap(), r"'O\'B%'");
        assert_eq!(Like::Exact("a_b".into()).render().unwrap(), r"'a\_b'");
        assert_eq!(Like::EndsWith("x".into()).render().unwrap(), "'%x'");
    }

    #[test]
    fn literals() {
        let at = Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap();
        assert_eq!(datetime(at), "2026-01-31T12:00:00Z");
        assert_eq!(
            datetime(at + chrono::Duration::milliseconds(999)),
            "2026-01-31T12:00:00Z"
        );
        assert_eq!(date(at.date_naive()), "2026-01-31");
        assert_eq!(Literal::Null.render().unwrap(), "null");
        assert_eq!(Literal::Bool(true).render().unwrap(), "true");
        assert_eq!(Literal::Int(-3).render().unwrap(), "-3");
    }

    #[test]
    fn builds_a_cursor_query() {
        let at = Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap();
        let q = Select::new(
            "Contact",
            &["Id", "Email", "Account.Name", "SystemModstamp"],
        )
        .filter(Cond::after_cursor(
            "SystemModstamp",
            at,
            "003000000000001AAA",
        ))
        .order_by("SystemModstamp", Order::Asc)
        .order_by("Id", Order::Asc)
        .limit(2000)
        .render()
        .unwrap();
        assert_eq!(
            q,
            "SELECT Id, Email, Account.Name, SystemModstamp FROM Contact WHERE SystemModstamp > 2026-01-31T12:00:00Z \
             OR (SystemModstamp = 2026-01-31T12:00:00Z AND Id > '003000000000001AAA') \
             ORDER BY SystemModstamp ASC, Id ASC LIMIT 2000"
        );
    }

    #[test]
    fn builds_in_not_and_nesting() {
        let q = Select::new("Task", &["Id"])
            .filter(Cond::and([
                Cond::eq("TaskSubtype", "Call"),
                Cond::is_in("CallObject", ["modjo:a", "modjo:'b"]),
                Cond::not(Cond::eq("IsDeleted", true)),
                Cond::or([
                    Cond::eq("WhoId", Literal::Null),
                    Cond::like("Subject", Like::StartsWith("Call".into())),
                ]),
            ]))
            .render()
            .unwrap();
        assert_eq!(
            q,
            "SELECT Id FROM Task WHERE TaskSubtype = 'Call' AND CallObject IN ('modjo:a', 'modjo:\\'b') \
             AND NOT (IsDeleted = true) AND (WhoId = null OR Subject LIKE 'Call%')"
        );
    }

    #[test]
    fn refuses_bad_identifiers_and_empty_lists() {
        assert!(Select::new("Contact", &[]).render().is_err());
        for bad in [
            "",
            "Id;",
            "Id, Name",
            "a.b.c",
            "1Id",
            "Name__",
            "Id FROM User",
            "x'",
        ] {
            assert!(Select::new("Contact", &[bad]).render().is_err(), "{bad}");
            assert!(Select::new(bad, &["Id"]).render().is_err(), "{bad}");
        }
        assert!(
            Select::new("Contact", &["Custom__c", "Account.Name"])
                .render()
                .is_ok()
        );
        let empty: Vec<String> = vec![];
        assert_eq!(
            Select::new("Contact", &["Id"])
                .filter(Cond::is_in("Id", empty))
                .render(),
            Err(SoqlError::EmptyIn)
        );
    }

    #[test]
    fn statement_length_is_bounded() {
        let values: Vec<String> = (0..40)
            .map(|i| format!("{i}{}", "x".repeat(3000)))
            .collect();
        let q = Select::new("Contact", &["Id"])
            .filter(Cond::is_in("Email", values))
            .render();
        assert!(matches!(q, Err(SoqlError::StatementTooLong(_))));
    }

    /// The Task lookup's shape: our call ids, or a dialer's Task of the batch's people.
    fn lookup(call_objects: &[String]) -> Select {
        Select::new("Task", &["Id", "CallObject"]).filter(Cond::or([
            Cond::is_in("CallObject", call_objects.iter().cloned()),
            Cond::and([
                Cond::eq("TaskSubtype", "Call"),
                Cond::is_in("WhoId", ["003000000000001AAA", "003000000000002AAA"]),
            ]),
        ]))
    }

    fn ids(n: usize, len: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("modjo:{i:03}{}", "名".repeat(len)))
            .collect()
    }

    #[test]
    fn a_statement_that_fits_is_one_part() {
        let select = lookup(&ids(5, 3));
        assert_eq!(
            select.render_within(|_| true).unwrap(),
            [select.render().unwrap()]
        );
    }

    #[test]
    fn a_long_in_list_is_cut_into_consecutive_parts_that_each_fit() {
        let values = ids(100, 128);
        let select = lookup(&values);
        let whole = select.render().unwrap();
        let budget = 10_000;
        assert!(whole.len() > 3 * budget);
        let parts = select.render_within(|s| s.len() <= budget).unwrap();
        assert!(parts.len() >= 4, "{} parts", parts.len());
        assert!(parts.iter().all(|p| p.len() <= budget));
        // Each value in exactly one part, in order; the other branch in every part.
        let mut next = 0;
        for part in &parts {
            assert!(part.contains("WhoId IN ('003000000000001AAA', '003000000000002AAA')"));
            while next < values.len() && part.contains(&format!("'{}'", values[next])) {
                next += 1;
            }
        }
        assert_eq!(next, values.len());
        let total: usize = values
            .iter()
            .map(|v| {
                parts
                    .iter()
                    .filter(|p| p.contains(&format!("'{v}'")))
                    .count()
            })
            .sum();
        assert_eq!(total, values.len(), "no value twice");
        // Parts are as full as the budget allows: one more value would not fit.
        let first_count = values
            .iter()
            .filter(|v| parts[0].contains(&format!("'{v}'")))
            .count();
        let one_more = lookup(&values[..first_count + 1]).render().unwrap();
        assert!(one_more.len() > budget);
    }

    #[test]
    fn two_long_lists_are_both_cut_when_one_is_not_enough() {
        let a: Vec<String> = (0..40)
            .map(|i| format!("a{i:02}{}", "x".repeat(50)))
            .collect();
        let b: Vec<String> = (0..40)
            .map(|i| format!("b{i:02}{}", "y".repeat(50)))
            .collect();
        let select = Select::new("Task", &["Id"]).filter(Cond::and([
            Cond::is_in("CallObject", a.clone()),
            Cond::is_in("Subject", b.clone()),
        ]));
        let budget = 1_200;
        let parts = select.render_within(|s| s.len() <= budget).unwrap();
        assert!(parts.iter().all(|p| p.len() <= budget));
        // AND of two lists: every pair (x from a, y from b) is in some part.
        for x in &a {
            for y in &b {
                assert!(
                    parts
                        .iter()
                        .any(|p| p.contains(&format!("'{x}'")) && p.contains(&format!("'{y}'"))),
                    "{x} with {y}"
                );
            }
        }
    }

    #[test]
    fn cutting_refuses_what_would_change_the_rows() {
        let values = ids(50, 20);
        let limited = lookup(&values).limit(10);
        assert!(matches!(
            limited.render_within(|s| s.len() < 500),
            Err(SoqlError::CannotSplit(_))
        ));
        let ordered = lookup(&values).order_by("Id", Order::Asc);
        assert!(matches!(
            ordered.render_within(|s| s.len() < 500),
            Err(SoqlError::CannotSplit(_))
        ));
        // NOT IN is never cut: its parts would not add up to the whole.
        let not_in = Select::new("Task", &["Id"]).filter(Cond::NotIn(
            "CallObject",
            values.iter().map(Literal::from).collect(),
        ));
        assert!(matches!(
            not_in.render_within(|s| s.len() < 500),
            Err(SoqlError::DoesNotFit(_))
        ));
        // One value alone does not fit: said, not looped on.
        let huge = lookup(&["x".repeat(3_000)]);
        assert!(matches!(
            huge.render_within(|s| s.len() < 1_000),
            Err(SoqlError::DoesNotFit(_))
        ));
    }

    #[test]
    fn a_statement_over_salesforces_length_is_cut_too() {
        let values: Vec<String> = (0..40)
            .map(|i| format!("{i}{}", "x".repeat(3000)))
            .collect();
        let select = Select::new("Contact", &["Id"]).filter(Cond::is_in("Email", values));
        assert!(matches!(
            select.render(),
            Err(SoqlError::StatementTooLong(_))
        ));
        let parts = select.render_within(|_| true).unwrap();
        assert!(parts.len() >= 2);
        assert!(parts.iter().all(|p| p.len() <= MAX_STATEMENT));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any string, quoted, lexes back as exactly one literal holding exactly
        /// that string, with nothing left over.
        #[test]
        fn any_string_stays_one_literal(s in any::<String>().prop_filter("limit", |s| s.chars().count() <= MAX_STRING_LITERAL)) {
            let quoted = quote(&s).unwrap();
            let (value, rest) = lex_literal(&quoted).expect("lexes");
            prop_assert_eq!(value, s);
            prop_assert_eq!(rest, "");
        }

        /// Hostile strings cannot change a query's structure: after the literal the
        /// statement continues exactly as the builder wrote it.
        #[test]
        fn hostile_input_cannot_escape(s in "(['\\\\\"\\n%_]|[a-z ]|OR|AND|\\)|\\(|--|;){0,40}") {
            let q = Select::new("Contact", &["Id"])
                .filter(Cond::and([Cond::eq("Email", s.as_str()), Cond::eq("IsDeleted", false)]))
                .render()
                .unwrap();
            let prefix = "SELECT Id FROM Contact WHERE Email = ";
            prop_assert!(q.starts_with(prefix));
            let (value, rest) = lex_literal(&q[prefix.len()..]).expect("one literal");
            prop_assert_eq!(value, s);
            prop_assert_eq!(rest, " AND IsDeleted = false");
        }

        #[test]
        fn like_text_keeps_wildcards_literal(s in "[a-z%_\\\\']{0,30}") {
            let rendered = Like::Contains(s.clone()).render().unwrap();
            let (value, rest) = lex_literal(&rendered).expect("lexes");
            prop_assert_eq!(rest, "");
            // Decoded pattern = % + text with % and _ still escaped + %.
            let inner = &value[1..value.len() - 1];
            let unescaped = inner.replace("\\%", "%").replace("\\_", "_");
            prop_assert_eq!(unescaped, s);
        }
    }
}

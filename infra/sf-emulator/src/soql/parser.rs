//! Recursive-descent SOQL parser producing an AST (no schema knowledge here).

use super::SoqlError;
use super::lexer::{CmpOp, StrLit, Tok, Token, tokenize};

/// A field reference: `Name` or `Account.Name`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath {
    /// Dotted parts as written.
    pub parts: Vec<String>,
    /// Byte offset in the statement.
    pub pos: usize,
}

impl FieldPath {
    /// As written.
    pub fn text(&self) -> String {
        self.parts.join(".")
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// null
    Null,
    /// true / false
    Bool(bool),
    /// number as written
    Num(String),
    /// quoted string
    Str(StrLit),
    /// date
    Date(i32),
    /// datetime (ms)
    DateTime(i64),
    /// A date literal: `TODAY`, `LAST_N_DAYS:7`, … (a range, resolved when
    /// the query runs).
    Relative(super::dates::DateLiteral),
}

/// A literal and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Lit {
    /// Value.
    pub value: Literal,
    /// Byte offset.
    pub pos: usize,
}

/// A WHERE condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// All must hold.
    And(Vec<Cond>),
    /// One must hold.
    Or(Vec<Cond>),
    /// Negation.
    Not(Box<Cond>),
    /// `field op literal`
    Cmp {
        /// Field.
        field: FieldPath,
        /// Operator.
        op: CmpOp,
        /// Literal.
        value: Lit,
    },
    /// `field [NOT] IN (literals)`
    In {
        /// Field.
        field: FieldPath,
        /// NOT IN.
        negated: bool,
        /// Literals.
        values: Vec<Lit>,
    },
    /// `field LIKE 'pattern'`
    Like {
        /// Field.
        field: FieldPath,
        /// Pattern literal.
        pattern: Lit,
    },
}

/// ORDER BY item.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    /// Field.
    pub field: FieldPath,
    /// DESC.
    pub desc: bool,
    /// NULLS LAST (default: NULLS FIRST for ASC, NULLS LAST for DESC).
    pub nulls_last: bool,
}

/// One entry of the SELECT list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// A field or parent field.
    Field(FieldPath),
    /// `COUNT()`: the number of matching rows, no records.
    CountAll {
        /// Byte offset.
        pos: usize,
    },
    /// `COUNT(field) [alias]`: an aggregate result row.
    Count {
        /// Counted field (its non-null values are counted).
        field: FieldPath,
        /// Alias (default `exprN`).
        alias: Option<String>,
        /// Byte offset.
        pos: usize,
    },
    /// A parent-to-child subquery `(SELECT … FROM Relationship …)`.
    Subquery {
        /// The inner statement; `from` is the child relationship name.
        query: Box<Query>,
        /// Byte offset.
        pos: usize,
    },
}

/// A parsed SELECT statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Selected items, in order.
    pub select: Vec<SelectItem>,
    /// FROM object (or, in a subquery, child relationship) as written.
    pub from: String,
    /// Offset of the FROM object.
    pub from_pos: usize,
    /// WHERE.
    pub where_: Option<Cond>,
    /// ORDER BY.
    pub order_by: Vec<OrderItem>,
    /// LIMIT.
    pub limit: Option<u64>,
}

const RESERVED: &[&str] = &[
    "select",
    "from",
    "where",
    "and",
    "or",
    "not",
    "in",
    "like",
    "order",
    "by",
    "asc",
    "desc",
    "nulls",
    "first",
    "last",
    "limit",
    "null",
    "true",
    "false",
    "group",
    "having",
    "offset",
    "for",
    "with",
    "using",
    "typeof",
    "includes",
    "excludes",
    "rollup",
    "cube",
    "update",
    "view",
    "reference",
    "scope",
    "data",
    "category",
    "tracking",
    "viewstat",
    "end",
    "then",
    "when",
    "else",
    "above",
    "below",
    "at",
    "above_or_below",
    "security_enforced",
    "format",
];

fn unsupported_clause(word: &str) -> Option<&'static str> {
    match word.to_ascii_lowercase().as_str() {
        "group" => Some("GROUP BY is not supported by the emulator"),
        "having" => Some("HAVING is not supported by the emulator"),
        "offset" => Some("OFFSET is not supported by the emulator (use a WHERE cursor)"),
        "for" => Some("FOR VIEW / FOR REFERENCE / FOR UPDATE are not supported by the emulator"),
        "with" => Some("WITH clauses are not supported by the emulator"),
        "using" => Some("USING SCOPE is not supported by the emulator"),
        "typeof" => Some("TYPEOF is not supported by the emulator"),
        "includes" | "excludes" => {
            Some("INCLUDES / EXCLUDES (multi-select picklists) are not supported by the emulator")
        }
        _ => None,
    }
}

/// Parses a statement.
pub fn parse(src: &str) -> Result<Query, SoqlError> {
    let tokens = tokenize(src)?;
    let mut p = Parser { src, tokens, at: 0 };
    let q = p.statement(false)?;
    if !matches!(p.peek().tok, Tok::Eof) {
        return Err(p.unexpected());
    }
    Ok(q)
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        let last = self.tokens.len() - 1;
        &self.tokens[self.at.min(last)]
    }
    fn peek_at(&self, n: usize) -> &Token {
        let last = self.tokens.len() - 1;
        &self.tokens[(self.at + n).min(last)]
    }
    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        t
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(w) if w.eq_ignore_ascii_case(kw))
    }
    fn is_kw_at(&self, n: usize, kw: &str) -> bool {
        matches!(&self.peek_at(n).tok, Tok::Ident(w) if w.eq_ignore_ascii_case(kw))
    }
    fn err_here(&self, msg: &str) -> SoqlError {
        SoqlError::malformed(self.src, self.peek().pos, msg)
    }
    fn unexpected(&self) -> SoqlError {
        let t = self.peek();
        if let Tok::Ident(w) = &t.tok
            && let Some(msg) = unsupported_clause(w)
        {
            return SoqlError::malformed(self.src, t.pos, msg);
        }
        let shown = match &t.tok {
            Tok::Eof => "<EOF>".to_string(),
            Tok::Ident(w) => w.clone(),
            Tok::Num(n) => n.clone(),
            Tok::Str(s) => format!("'{}'", s.value),
            Tok::Comma => ",".into(),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::Colon => ":".into(),
            Tok::Op(_) | Tok::Date(_) | Tok::DateTime(_) => self.src[t.pos..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string(),
        };
        SoqlError::malformed(self.src, t.pos, &format!("unexpected token: '{shown}'"))
    }
    fn expect_kw(&mut self, kw: &str) -> Result<(), SoqlError> {
        if self.is_kw(kw) {
            self.bump();
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    /// `SELECT … FROM … [WHERE …] [ORDER BY …] [LIMIT n]`; `nested` for a
    /// parent-to-child subquery (whose FROM names a child relationship).
    fn statement(&mut self, nested: bool) -> Result<Query, SoqlError> {
        self.expect_kw("select")?;
        let mut select = Vec::new();
        loop {
            select.push(self.select_item(nested)?);
            if matches!(self.peek().tok, Tok::Comma) {
                self.bump();
                continue;
            }
            break;
        }
        self.expect_kw("from")?;
        let from_tok = self.peek().clone();
        let from = match from_tok.tok {
            Tok::Ident(w) if !w.contains('.') && !is_reserved(&w) => w,
            _ => return Err(self.unexpected()),
        };
        self.bump();
        let from_pos = from_tok.pos;
        // An alias (`FROM Contact c`) is not supported.
        if let Tok::Ident(w) = &self.peek().tok
            && !is_reserved(w)
        {
            return Err(self.err_here(&format!(
                "object aliases are not supported by the emulator: '{w}'"
            )));
        }
        if matches!(self.peek().tok, Tok::Comma) {
            return Err(self.err_here(
                "only one object may follow FROM (semi-joins and aliases are not supported)",
            ));
        }
        let where_ = if self.is_kw("where") {
            self.bump();
            Some(self.condition()?)
        } else {
            None
        };
        let mut order_by = Vec::new();
        if self.is_kw("order") {
            self.bump();
            self.expect_kw("by")?;
            loop {
                order_by.push(self.order_item()?);
                if matches!(self.peek().tok, Tok::Comma) {
                    self.bump();
                    continue;
                }
                break;
            }
        }
        let mut limit = None;
        if self.is_kw("limit") {
            self.bump();
            let t = self.peek().clone();
            match t.tok {
                Tok::Num(n) if n.bytes().all(|b| b.is_ascii_digit()) => {
                    self.bump();
                    limit = Some(n.parse::<u64>().map_err(|_| {
                        SoqlError::malformed(self.src, t.pos, "LIMIT value is too large")
                    })?);
                }
                _ => {
                    return Err(self.err_here("LIMIT must be followed by a non-negative integer"));
                }
            }
        }
        Ok(Query {
            select,
            from,
            from_pos,
            where_,
            order_by,
            limit,
        })
    }

    fn select_item(&mut self, nested: bool) -> Result<SelectItem, SoqlError> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::LParen if nested => Err(SoqlError::malformed(
                self.src,
                t.pos,
                "unexpected token: '(': a subquery cannot contain another subquery",
            )),
            Tok::LParen => {
                self.bump();
                if !self.is_kw("select") {
                    return Err(self.unexpected());
                }
                let query = self.statement(true)?;
                if !matches!(self.peek().tok, Tok::RParen) {
                    return Err(self.unexpected());
                }
                self.bump();
                Ok(SelectItem::Subquery {
                    query: Box::new(query),
                    pos: t.pos,
                })
            }
            Tok::Ident(w) if matches!(self.peek_at(1).tok, Tok::LParen) => {
                if w.eq_ignore_ascii_case("count") && !nested {
                    return self.count(t.pos);
                }
                let msg = if w.eq_ignore_ascii_case("fields") {
                    "FIELDS() is not supported by the emulator: name the fields explicitly"
                        .to_string()
                } else if w.eq_ignore_ascii_case("count") {
                    "aggregate functions are not allowed in a subquery".to_string()
                } else {
                    format!(
                        "only COUNT() and COUNT(field) are supported by the emulator, not '{w}(…)'"
                    )
                };
                Err(SoqlError::malformed(self.src, t.pos, &msg))
            }
            Tok::Ident(w) if w.eq_ignore_ascii_case("typeof") => Err(self.unexpected()),
            Tok::Ident(w) if is_reserved(w) => Err(self.unexpected()),
            Tok::Ident(_) => {
                let path = self.field_path()?;
                // A field alias is only allowed with aggregates in SOQL.
                if let Tok::Ident(w) = &self.peek().tok
                    && !is_reserved(w)
                {
                    return Err(self.unexpected());
                }
                Ok(SelectItem::Field(path))
            }
            _ => Err(self.unexpected()),
        }
    }

    /// `COUNT()` or `COUNT(field) [alias]`, at the `COUNT` token.
    fn count(&mut self, pos: usize) -> Result<SelectItem, SoqlError> {
        self.bump();
        self.bump();
        if matches!(self.peek().tok, Tok::RParen) {
            self.bump();
            return Ok(SelectItem::CountAll { pos });
        }
        let field = self.field_path()?;
        if !matches!(self.peek().tok, Tok::RParen) {
            return Err(self.unexpected());
        }
        self.bump();
        let alias = match &self.peek().tok {
            Tok::Ident(w) if !is_reserved(w) && !w.contains('.') => {
                let a = w.clone();
                self.bump();
                Some(a)
            }
            _ => None,
        };
        Ok(SelectItem::Count { field, alias, pos })
    }

    fn field_path(&mut self) -> Result<FieldPath, SoqlError> {
        let t = self.peek().clone();
        let Tok::Ident(w) = t.tok else {
            return Err(self.unexpected());
        };
        if is_reserved(&w) {
            return Err(self.unexpected());
        }
        self.bump();
        let parts: Vec<String> = w.split('.').map(str::to_string).collect();
        if parts.iter().any(String::is_empty) {
            return Err(SoqlError::malformed(
                self.src,
                t.pos,
                &format!("unexpected token: '{w}'"),
            ));
        }
        Ok(FieldPath { parts, pos: t.pos })
    }

    fn order_item(&mut self) -> Result<OrderItem, SoqlError> {
        if let Tok::Ident(w) = &self.peek().tok
            && matches!(self.peek_at(1).tok, Tok::LParen)
        {
            return Err(self.err_here(&format!(
                "functions in ORDER BY are not supported by the emulator: '{w}(…)'"
            )));
        }
        let field = self.field_path()?;
        let mut desc = false;
        if self.is_kw("asc") {
            self.bump();
        } else if self.is_kw("desc") {
            self.bump();
            desc = true;
        }
        let mut nulls_last = desc;
        if self.is_kw("nulls") {
            self.bump();
            if self.is_kw("first") {
                nulls_last = false;
            } else if self.is_kw("last") {
                nulls_last = true;
            } else {
                return Err(self.unexpected());
            }
            self.bump();
        }
        Ok(OrderItem {
            field,
            desc,
            nulls_last,
        })
    }

    /// condition := unary ( (AND unary)* | (OR unary)* )
    /// SOQL refuses AND and OR mixed at one level without parentheses.
    fn condition(&mut self) -> Result<Cond, SoqlError> {
        let first = self.unary()?;
        let mut items = vec![first];
        let mut joiner: Option<bool> = None; // Some(true) = AND, Some(false) = OR
        loop {
            let is_and = if self.is_kw("and") {
                true
            } else if self.is_kw("or") {
                false
            } else {
                break;
            };
            if let Some(j) = joiner
                && j != is_and
            {
                return Err(self.err_here(
                    "unexpected token: mixing AND and OR at the same level requires parentheses",
                ));
            }
            joiner = Some(is_and);
            self.bump();
            items.push(self.unary()?);
        }
        Ok(match joiner {
            None => items.pop().unwrap_or(Cond::And(Vec::new())),
            Some(true) => Cond::And(items),
            Some(false) => Cond::Or(items),
        })
    }

    fn unary(&mut self) -> Result<Cond, SoqlError> {
        if self.is_kw("not") {
            self.bump();
            let inner = self.unary()?;
            return Ok(Cond::Not(Box::new(inner)));
        }
        if matches!(self.peek().tok, Tok::LParen) {
            self.bump();
            if self.is_kw("select") {
                return Err(self.err_here("subqueries are not supported by the emulator"));
            }
            let c = self.condition()?;
            if !matches!(self.peek().tok, Tok::RParen) {
                return Err(self.unexpected());
            }
            self.bump();
            return Ok(c);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Cond, SoqlError> {
        if let Tok::Ident(w) = &self.peek().tok
            && matches!(self.peek_at(1).tok, Tok::LParen)
        {
            return Err(self.err_here(&format!(
                "functions in WHERE are not supported by the emulator: '{w}(…)'"
            )));
        }
        let field = self.field_path()?;
        let t = self.peek().clone();
        match &t.tok {
            Tok::Op(op) => {
                let op = *op;
                self.bump();
                let value = self.literal()?;
                Ok(Cond::Cmp { field, op, value })
            }
            Tok::Ident(w) if w.eq_ignore_ascii_case("like") => {
                self.bump();
                let pattern = self.literal()?;
                if !matches!(pattern.value, Literal::Str(_)) {
                    return Err(SoqlError::malformed(
                        self.src,
                        pattern.pos,
                        "LIKE must be followed by a quoted string",
                    ));
                }
                Ok(Cond::Like { field, pattern })
            }
            Tok::Ident(w) if w.eq_ignore_ascii_case("in") => {
                self.bump();
                let values = self.in_list()?;
                Ok(Cond::In {
                    field,
                    negated: false,
                    values,
                })
            }
            Tok::Ident(w) if w.eq_ignore_ascii_case("not") && self.is_kw_at(1, "in") => {
                self.bump();
                self.bump();
                let values = self.in_list()?;
                Ok(Cond::In {
                    field,
                    negated: true,
                    values,
                })
            }
            _ => Err(self.unexpected()),
        }
    }

    fn in_list(&mut self) -> Result<Vec<Lit>, SoqlError> {
        if matches!(self.peek().tok, Tok::Colon) {
            return Err(self.err_here("bind variables are not supported by the emulator"));
        }
        if !matches!(self.peek().tok, Tok::LParen) {
            return Err(self.unexpected());
        }
        self.bump();
        if self.is_kw("select") {
            return Err(self.err_here("semi-join subqueries are not supported by the emulator"));
        }
        let mut values = Vec::new();
        loop {
            values.push(self.literal()?);
            match self.peek().tok {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RParen => {
                    self.bump();
                    break;
                }
                _ => return Err(self.unexpected()),
            }
        }
        Ok(values)
    }

    fn literal(&mut self) -> Result<Lit, SoqlError> {
        if matches!(
            self.peek().tok,
            Tok::Eof | Tok::Comma | Tok::LParen | Tok::RParen | Tok::Op(_)
        ) {
            return Err(self.unexpected());
        }
        let t = self.bump();
        let value = match t.tok {
            Tok::Str(s) => Literal::Str(s),
            Tok::Num(n) => Literal::Num(n),
            Tok::Date(d) => Literal::Date(d),
            Tok::DateTime(ms) => Literal::DateTime(ms),
            Tok::Ident(w) if w.eq_ignore_ascii_case("null") => Literal::Null,
            Tok::Ident(w) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Tok::Ident(w) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Tok::Ident(w) => return self.date_literal(&w, t.pos),
            Tok::Colon => {
                return Err(SoqlError::malformed(
                    self.src,
                    t.pos,
                    "bind variables are not supported by the emulator",
                ));
            }
            Tok::Eof | Tok::Comma | Tok::LParen | Tok::RParen | Tok::Op(_) => {
                return Err(SoqlError::malformed(self.src, t.pos, "unexpected token"));
            }
        };
        Ok(Lit { value, pos: t.pos })
    }
}

impl Parser<'_> {
    /// A date literal at `pos` (its name already consumed): `TODAY`,
    /// `LAST_N_DAYS:7`, … Names are case-insensitive.
    fn date_literal(&mut self, word: &str, pos: usize) -> Result<Lit, SoqlError> {
        use super::dates::{DateLiteral, Takes};
        let Some((name, takes)) = DateLiteral::lookup(word) else {
            let msg = if word.to_ascii_uppercase().contains("FISCAL") {
                format!(
                    "fiscal date literals such as {word} are not supported by the emulator (the org has no fiscal year settings)"
                )
            } else {
                format!("unexpected token: '{word}'")
            };
            return Err(SoqlError::malformed(self.src, pos, &msg));
        };
        let has_colon = matches!(self.peek().tok, Tok::Colon);
        let n = match (takes, has_colon) {
            (Takes::Nothing, false) => None,
            (Takes::Nothing, true) => {
                return Err(
                    self.err_here(&format!("unexpected token: ':' ({name} takes no number)"))
                );
            }
            (Takes::Number, false) => {
                return Err(SoqlError::malformed(
                    self.src,
                    pos,
                    &format!("date literal {name} needs a number: {name}:n"),
                ));
            }
            (Takes::Number, true) => {
                self.bump();
                let t = self.peek().clone();
                match t.tok {
                    Tok::Num(n) if n.bytes().all(|b| b.is_ascii_digit()) => {
                        self.bump();
                        Some(n.parse::<u32>().map_err(|_| {
                            SoqlError::malformed(
                                self.src,
                                t.pos,
                                "date literal number is too large",
                            )
                        })?)
                    }
                    _ => {
                        return Err(self.err_here(&format!(
                            "{name}: must be followed by a non-negative integer"
                        )));
                    }
                }
            }
        };
        Ok(Lit {
            value: Literal::Relative(DateLiteral { name, n }),
            pos,
        })
    }
}

fn is_reserved(w: &str) -> bool {
    let l = w.to_ascii_lowercase();
    RESERVED.contains(&l.as_str())
}

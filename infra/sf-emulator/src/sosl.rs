//! SOSL: `FIND {term} [IN ALL|NAME|EMAIL|PHONE FIELDS] [RETURNING Obj(fields [LIMIT n]), …] [LIMIT n]`.
//!
//! The search expression is parsed into a tree ([`Expr`]) of operands (bare
//! words, or `"phrases"`) joined by `OR`, `AND`, `AND NOT` and grouped with
//! parentheses, with SOSL's backslash escapes; an unescaped reserved character
//! is refused (`MALFORMED_SEARCH`), so callers must escape. Mixing `OR` with
//! `AND` at one level without parentheses is refused (precedence undocumented).
//! Each operand is matched per record: IN PHONE FIELDS compares digits
//! strictly (the digits of the operand must equal all the digits of a stored
//! phone).

use crate::http::Resp;
use crate::rest::ApiCtx;
use crate::schema::{FieldType, ObjectDef, Schema};
use crate::soql;
use crate::store::{RecordId, ValueRef};
use crate::world::World;
use serde_json::Value;

/// Characters that must be escaped with a backslash in a SOSL term.
pub const RESERVED: &[char] = &[
    '?', '&', '|', '!', '{', '}', '[', ']', '(', ')', '^', '~', '*', ':', '\\', '"', '\'', '+', '-',
];

/// Which fields a search looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every text field.
    All,
    /// Name fields.
    Name,
    /// E-mail fields.
    Email,
    /// Phone fields.
    Phone,
}

/// One RETURNING entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Returning {
    /// Object as written.
    pub object: String,
    /// Fields as written (empty: Id only).
    pub fields: Vec<String>,
    /// Per-object LIMIT.
    pub limit: Option<usize>,
}

/// One operand of a search expression: bare words (all of them must match, in
/// any order) or a quoted phrase (the words in sequence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The unescaped text (bare words joined by single spaces).
    pub text: String,
    /// Written in double quotes.
    pub phrase: bool,
}

/// The search expression of the FIND clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A word group or a phrase.
    Term(Term),
    /// `a OR b OR …`: at least one matches.
    Or(Vec<Expr>),
    /// `a AND b AND NOT c …` (AND also implicit between a phrase or a group and
    /// the next operand): every `all` matches and no `none` matches.
    And {
        /// Operands that must match.
        all: Vec<Expr>,
        /// Operands after AND NOT.
        none: Vec<Expr>,
    },
}

impl Expr {
    /// Evaluates the expression with a term matcher.
    pub fn eval(&self, m: &mut impl FnMut(&Term) -> bool) -> bool {
        match self {
            Expr::Term(t) => m(t),
            Expr::Or(v) => v.iter().any(|e| e.eval(m)),
            Expr::And { all, none } => {
                all.iter().all(|e| e.eval(m)) && !none.iter().any(|e| e.eval(m))
            }
        }
    }
}

/// A parsed search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// The search expression.
    pub query: Expr,
    /// Scope.
    pub scope: Scope,
    /// RETURNING (empty: every searchable object).
    pub returning: Vec<Returning>,
    /// Overall LIMIT.
    pub limit: Option<usize>,
}

/// An error: code and message.
type SearchError = (&'static str, String);

fn malformed(msg: impl Into<String>) -> SearchError {
    ("MALFORMED_SEARCH", msg.into())
}

/// A token of the search expression, with its column (1-based) in the statement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Phrase(String),
    Open,
    Close,
    And,
    Or,
    Not,
}

/// Splits the text after `FIND {` into tokens; returns them with the byte
/// offset of the closing brace.
fn lex_term(body: &str, base: usize) -> Result<(Vec<(Tok, usize)>, usize), SearchError> {
    let mut toks: Vec<(Tok, usize)> = Vec::new();
    let mut word = String::new();
    let mut word_at = 0;
    let flush = |word: &mut String, at: usize, toks: &mut Vec<(Tok, usize)>| {
        if word.is_empty() {
            return;
        }
        let w = std::mem::take(word);
        let tok = match w.to_ascii_lowercase().as_str() {
            "and" => Tok::And,
            "or" => Tok::Or,
            "not" => Tok::Not,
            _ => Tok::Word(w),
        };
        toks.push((tok, at));
    };
    let reserved_err = |c: char, i: usize| {
        malformed(format!(
            "line 1:{} mismatched character '{c}': reserved characters in a search term must be escaped with a backslash",
            base + i + 1
        ))
    };
    let escape = |chars: &mut std::str::CharIndices<'_>| match chars.next() {
        Some((_, e)) if RESERVED.contains(&e) => Ok(e),
        Some((_, e)) => Err(malformed(format!(
            "Invalid escape sequence '\\{e}' in search term"
        ))),
        None => Err(malformed("Unterminated search term: missing '}'")),
    };
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if word.is_empty() {
                    word_at = base + i + 1;
                }
                word.push(escape(&mut chars)?);
            }
            '}' => {
                flush(&mut word, word_at, &mut toks);
                return Ok((toks, i));
            }
            '(' | ')' => {
                flush(&mut word, word_at, &mut toks);
                toks.push((if c == '(' { Tok::Open } else { Tok::Close }, base + i + 1));
            }
            '"' => {
                flush(&mut word, word_at, &mut toks);
                let mut phrase = String::new();
                let mut closed = false;
                while let Some((j, c)) = chars.next() {
                    match c {
                        '\\' => phrase.push(escape(&mut chars)?),
                        '"' => {
                            closed = true;
                            break;
                        }
                        '}' => break,
                        c if RESERVED.contains(&c) => return Err(reserved_err(c, j)),
                        c => phrase.push(c),
                    }
                }
                if !closed {
                    return Err(malformed(format!(
                        "line 1:{} unterminated phrase: a quoted phrase needs a closing '\"'",
                        base + i + 1
                    )));
                }
                toks.push((Tok::Phrase(phrase), base + i + 1));
            }
            c if c.is_whitespace() => flush(&mut word, word_at, &mut toks),
            c if RESERVED.contains(&c) => return Err(reserved_err(c, i)),
            c => {
                if word.is_empty() {
                    word_at = base + i + 1;
                }
                word.push(c);
            }
        }
    }
    Err(malformed("Unterminated search term: missing '}'"))
}

/// How an operand joins the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    Or,
    And,
    AndNot,
    /// Juxtaposition (a phrase or group next to another operand): AND.
    Implicit,
}

struct TermParser {
    toks: Vec<(Tok, usize)>,
    p: usize,
    /// Column just after the search expression (for messages at its end).
    end_col: usize,
}

impl TermParser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.p).map(|(t, _)| t)
    }

    fn col(&self) -> usize {
        self.toks.get(self.p).map_or(self.end_col, |(_, c)| *c)
    }

    fn shown(&self) -> String {
        match self.peek() {
            None => "}".into(),
            Some(Tok::Word(w)) => w.clone(),
            Some(Tok::Phrase(p)) => format!("\"{p}\""),
            Some(Tok::Open) => "(".into(),
            Some(Tok::Close) => ")".into(),
            Some(Tok::And) => "AND".into(),
            Some(Tok::Or) => "OR".into(),
            Some(Tok::Not) => "NOT".into(),
        }
    }

    fn err(&self, what: &str) -> SearchError {
        malformed(format!(
            "line 1:{} unexpected token '{}' in search expression: {what}",
            self.col(),
            self.shown()
        ))
    }

    /// expr := operand ((OR | AND | AND NOT | juxtaposition) operand)*
    fn expr(&mut self, depth: usize) -> Result<Expr, SearchError> {
        let (first, mut several_words) = self.operand()?;
        let mut operands = vec![(Conn::And, first)];
        loop {
            let conn = match self.peek() {
                None if depth > 0 => return Err(self.err("missing ')'")),
                None => break,
                Some(Tok::Close) if depth == 0 => {
                    return Err(self.err("')' without a matching '('"));
                }
                Some(Tok::Close) => {
                    self.p += 1;
                    break;
                }
                Some(Tok::Or) => {
                    self.p += 1;
                    Conn::Or
                }
                Some(Tok::And) => {
                    self.p += 1;
                    if self.peek() == Some(&Tok::Not) {
                        self.p += 1;
                        Conn::AndNot
                    } else {
                        Conn::And
                    }
                }
                Some(Tok::Not) => {
                    return Err(self.err(
                        "NOT is only valid as AND NOT (quote \"not\" to search for the word)",
                    ));
                }
                Some(_) => Conn::Implicit,
            };
            let (e, words) = self.operand()?;
            several_words |= words;
            operands.push((conn, e));
        }
        let has_or = operands[1..].iter().any(|(c, _)| *c == Conn::Or);
        if operands.len() == 1 {
            let (_, e) = operands.remove(0);
            return Ok(e);
        }
        if has_or {
            let conjunctive = operands[1..].iter().any(|(c, _)| *c != Conn::Or);
            if conjunctive || several_words {
                return Err(malformed(
                    "OR combined with AND, AND NOT or several words at one level is ambiguous: group the operands with parentheses (the emulator refuses it)",
                ));
            }
            return Ok(Expr::Or(operands.into_iter().map(|(_, e)| e).collect()));
        }
        let mut all = Vec::new();
        let mut none = Vec::new();
        for (c, e) in operands {
            if c == Conn::AndNot {
                none.push(e);
            } else {
                all.push(e);
            }
        }
        Ok(Expr::And { all, none })
    }

    /// operand := word+ | "phrase" | ( expr ); also tells whether it is a
    /// group of several bare words (an implicit AND).
    fn operand(&mut self) -> Result<(Expr, bool), SearchError> {
        let col = self.col();
        let term = match self.peek() {
            Some(Tok::Open) => {
                self.p += 1;
                return Ok((self.expr(1)?, false));
            }
            Some(Tok::Phrase(p)) => {
                let t = Term {
                    text: p.split_whitespace().collect::<Vec<_>>().join(" "),
                    phrase: true,
                };
                self.p += 1;
                t
            }
            Some(Tok::Word(_)) => {
                let mut words = Vec::new();
                while let Some(Tok::Word(w)) = self.peek() {
                    words.push(w.clone());
                    self.p += 1;
                }
                Term {
                    text: words.join(" "),
                    phrase: false,
                }
            }
            _ => return Err(self.err("expected a search term")),
        };
        if term.text.chars().count() < 2 {
            return Err(malformed(format!(
                "line 1:{col} search term must be longer than one character"
            )));
        }
        let several = !term.phrase && term.text.contains(' ');
        Ok((Expr::Term(term), several))
    }
}

/// Parses the search expression after `FIND {`; returns it and the byte offset
/// of the closing brace in `body`. `base` is the offset of `body` in the
/// statement (for column numbers).
pub fn parse_term(body: &str, base: usize) -> Result<(Expr, usize), SearchError> {
    let (toks, end) = lex_term(body, base)?;
    if toks.is_empty() {
        return Err(malformed("search term must be longer than one character"));
    }
    let mut p = TermParser {
        toks,
        p: 0,
        end_col: base + end + 1,
    };
    let e = p.expr(0)?;
    Ok((e, end))
}

/// Parses a SOSL statement.
pub fn parse(q: &str) -> Result<Search, SearchError> {
    let trimmed = q.trim_start();
    let Some(after_find) = trimmed
        .get(..4)
        .filter(|w| w.eq_ignore_ascii_case("find"))
        .map(|_| &trimmed[4..])
    else {
        return Err(malformed(
            "No search term found. The search term must be enclosed in braces: FIND {term}",
        ));
    };
    let rest = after_find.trim_start();
    let Some(body) = rest.strip_prefix('{') else {
        return Err(malformed(
            "No search term found. The search term must be enclosed in braces: FIND {term}",
        ));
    };
    let (query, end) = parse_term(body, q.len() - body.len())?;
    let tail = &body[end + 1..];
    let toks = tokenize(tail)?;
    let mut p = 0;
    let word = |p: usize| toks.get(p).map(|t| t.to_ascii_lowercase());
    let mut scope = Scope::All;
    if word(p).as_deref() == Some("in") {
        scope = match word(p + 1).as_deref() {
            Some("all") => Scope::All,
            Some("name") => Scope::Name,
            Some("email") => Scope::Email,
            Some("phone") => Scope::Phone,
            Some("sidebar") => {
                return Err(malformed(
                    "IN SIDEBAR FIELDS is not supported by the emulator",
                ));
            }
            _ => return Err(malformed("expected ALL, NAME, EMAIL or PHONE after IN")),
        };
        if word(p + 2).as_deref() != Some("fields") {
            return Err(malformed("expected FIELDS"));
        }
        p += 3;
    }
    let mut returning = Vec::new();
    if word(p).as_deref() == Some("returning") {
        p += 1;
        loop {
            let Some(obj) = toks.get(p).cloned() else {
                return Err(malformed("expected an object after RETURNING"));
            };
            if !obj.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(malformed(format!("unexpected token: '{obj}'")));
            }
            p += 1;
            let mut r = Returning {
                object: obj,
                fields: Vec::new(),
                limit: None,
            };
            if toks.get(p).map(String::as_str) == Some("(") {
                p += 1;
                loop {
                    let Some(t) = toks.get(p).cloned() else {
                        return Err(malformed("unterminated field list"));
                    };
                    let lower = t.to_ascii_lowercase();
                    if matches!(
                        lower.as_str(),
                        "where" | "order" | "offset" | "using" | "with"
                    ) {
                        return Err(malformed(format!(
                            "{} inside RETURNING is not supported by the emulator",
                            t.to_ascii_uppercase()
                        )));
                    }
                    if lower == "limit" {
                        let n = toks
                            .get(p + 1)
                            .and_then(|x| x.parse::<usize>().ok())
                            .ok_or_else(|| malformed("LIMIT needs a number"))?;
                        r.limit = Some(n);
                        p += 2;
                        if toks.get(p).map(String::as_str) != Some(")") {
                            return Err(malformed("expected ')' after LIMIT"));
                        }
                        p += 1;
                        break;
                    }
                    if t == "," || t == "(" || t == ")" {
                        return Err(malformed(format!("unexpected token: '{t}'")));
                    }
                    r.fields.push(t);
                    p += 1;
                    match toks.get(p).map(String::as_str) {
                        Some(",") => p += 1,
                        Some(")") => {
                            p += 1;
                            break;
                        }
                        Some(x) if x.eq_ignore_ascii_case("limit") => {}
                        other => {
                            return Err(malformed(format!(
                                "unexpected token: '{}'",
                                other.unwrap_or("<EOF>")
                            )));
                        }
                    }
                }
            }
            returning.push(r);
            if toks.get(p).map(String::as_str) == Some(",") {
                p += 1;
                continue;
            }
            break;
        }
    }
    let mut limit = None;
    if word(p).as_deref() == Some("limit") {
        limit = Some(
            toks.get(p + 1)
                .and_then(|x| x.parse::<usize>().ok())
                .ok_or_else(|| malformed("LIMIT needs a number"))?,
        );
        p += 2;
    }
    if let Some(t) = toks.get(p) {
        return Err(malformed(format!(
            "unexpected token: '{t}' (only IN … FIELDS, RETURNING and LIMIT are supported by the emulator)"
        )));
    }
    Ok(Search {
        query,
        scope,
        returning,
        limit,
    })
}

fn tokenize(s: &str) -> Result<Vec<String>, SearchError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            '(' | ')' | ',' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                out.push(c.to_string());
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' => cur.push(c),
            other => return Err(malformed(format!("unexpected character: '{other}'"))),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric() && c != '@' && c != '.')
        .filter(|t| !t.is_empty())
        .flat_map(|t| {
            let l = t.to_lowercase();
            // An e-mail is also searchable by its parts.
            let mut v = vec![l.clone()];
            v.extend(
                l.split(['@', '.'])
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
            );
            v
        })
        .collect()
}

fn name_field(name: &str) -> bool {
    matches!(
        name,
        "Name" | "FirstName" | "LastName" | "Company" | "Subject" | "Title"
    )
}

/// Lower-case alphanumeric runs ("words" of a phrase).
fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The searchable text of one record, for one scope.
struct RecordText {
    /// Digits of each phone field (PHONE, ALL).
    phones: Vec<String>,
    /// Each e-mail address, lower case (EMAIL).
    emails: Vec<String>,
    /// Tokens of the searched text fields (NAME, ALL).
    hay: Vec<String>,
    /// Words of each searched text field, in order (phrases; NAME, ALL).
    fields: Vec<Vec<String>>,
}

impl RecordText {
    fn new(scope: Scope, obj: &ObjectDef, view: &soql::plan::DataView, r: RecordId) -> RecordText {
        let t = &view.tables[obj.index];
        let row = r.row();
        let text_of = |f: &crate::schema::FieldDef| match f.column.map(|c| t.get(c, row)) {
            Some(ValueRef::Text(s)) => Some(s),
            _ => None,
        };
        let mut rt = RecordText {
            phones: Vec::new(),
            emails: Vec::new(),
            hay: Vec::new(),
            fields: Vec::new(),
        };
        let full_name = || {
            let part = |n: &str| match obj.col(n).map(|c| t.get(c, row)) {
                Some(ValueRef::Text(s)) => Some(s),
                _ => None,
            };
            match (part("FirstName"), part("LastName")) {
                (Some(f), Some(l)) => Some(format!("{f} {l}")),
                (f, l) => f.or(l).map(str::to_string),
            }
        };
        for f in &obj.fields {
            let computed;
            let s = match f.computed {
                // Name = FirstName LastName (one field, for phrases).
                Some(crate::schema::Computed::FullName) => {
                    computed = full_name();
                    computed.as_deref()
                }
                None => text_of(f),
            };
            let Some(s) = s else { continue };
            if f.ftype == FieldType::Phone && matches!(scope, Scope::Phone | Scope::All) {
                rt.phones.push(digits(s));
            }
            if f.ftype == FieldType::Email && scope == Scope::Email {
                rt.emails.push(s.to_lowercase());
            }
            let in_scope = match scope {
                Scope::All => f.ftype.is_text(),
                Scope::Name => f.ftype.is_text() && name_field(f.name),
                _ => false,
            };
            if in_scope {
                rt.hay.extend(tokens(s));
                rt.fields.push(words(s));
            }
        }
        rt
    }

    /// Whether one term matches the record.
    fn term(&self, scope: Scope, term: &Term) -> bool {
        match scope {
            // Strict: the term's digits equal all the digits of a stored phone.
            Scope::Phone => {
                let want = digits(&term.text);
                !want.is_empty() && self.phones.contains(&want)
            }
            Scope::Email => {
                let want = term.text.trim().to_lowercase();
                self.emails
                    .iter()
                    .any(|e| *e == want || tokens(e).contains(&want))
            }
            Scope::Name | Scope::All => {
                if scope == Scope::All {
                    // Phones are also found by their digits in ALL FIELDS.
                    let want = digits(&term.text);
                    let phone_like = want.len() >= 5
                        && term
                            .text
                            .chars()
                            .all(|c| c.is_ascii_digit() || " ().-+".contains(c));
                    if phone_like && self.phones.contains(&want) {
                        return true;
                    }
                }
                if term.phrase {
                    let want = words(&term.text);
                    !want.is_empty()
                        && self
                            .fields
                            .iter()
                            .any(|f| f.windows(want.len()).any(|w| w == want.as_slice()))
                } else {
                    // Every word (or, for a word with punctuation, each of its
                    // parts) is in the record.
                    let mut ws = term.text.split_whitespace().peekable();
                    ws.peek().is_some()
                        && ws.all(|w| {
                            let w = w.to_lowercase();
                            self.hay.contains(&w) || {
                                let parts = words(&w);
                                !parts.is_empty() && parts.iter().all(|p| self.hay.contains(p))
                            }
                        })
                }
            }
        }
    }
}

fn matches(search: &Search, obj: &ObjectDef, view: &soql::plan::DataView, r: RecordId) -> bool {
    let text = RecordText::new(search.scope, obj, view, r);
    search.query.eval(&mut |t| text.term(search.scope, t))
}

/// GET search?q=.
pub fn search(world: &mut World, ctx: &ApiCtx, q: Option<&str>) -> Resp {
    let Some(q) = q else {
        return Resp::error(
            400,
            "MALFORMED_SEARCH",
            "A search string has to be specified",
        );
    };
    if q.encode_utf16().count() > crate::soql::MAX_STATEMENT {
        return Resp::error(400, "MALFORMED_SEARCH", "SOSL statement too long");
    }
    let s = match parse(q) {
        Ok(s) => s,
        Err((code, msg)) => return Resp::error(400, code, &msg),
    };
    let schema = Schema::get();
    // Resolve RETURNING through the SOQL planner (field names, relationships).
    let mut targets: Vec<(soql::Plan, Option<usize>)> = Vec::new();
    let specs: Vec<Returning> = if s.returning.is_empty() {
        schema
            .objects
            .iter()
            .filter(|o| o.searchable)
            .map(|o| Returning {
                object: o.name.to_string(),
                fields: Vec::new(),
                limit: None,
            })
            .collect()
    } else {
        s.returning.clone()
    };
    for r in &specs {
        let Some(obj) = schema.object(&r.object) else {
            return Resp::error(
                400,
                "INVALID_TYPE",
                &format!("sObject type '{}' is not supported.", r.object),
            );
        };
        if !obj.searchable {
            return Resp::error(
                400,
                "INVALID_TYPE",
                &format!("entity type {} does not support search", obj.name),
            );
        }
        let fields = if r.fields.is_empty() {
            "Id".to_string()
        } else {
            r.fields.join(", ")
        };
        let soql_text = format!("SELECT {fields} FROM {}", obj.name);
        let compiled = soql::parse(&soql_text).and_then(|p| {
            // RETURNING takes fields only: no COUNT(), no subquery.
            if p.select
                .iter()
                .any(|i| !matches!(i, soql::SelectItem::Field(_)))
            {
                return Err(soql::SoqlError::plain(
                    "MALFORMED_SEARCH",
                    format!("RETURNING {}: only fields may be listed", obj.name),
                ));
            }
            soql::compile(&soql_text, &p, world.now())
        });
        let plan = match compiled {
            Ok(p) => p,
            Err(e) => {
                let code = if e.code == "MALFORMED_QUERY" {
                    "MALFORMED_SEARCH"
                } else {
                    e.code
                };
                return Resp::error(400, code, &e.message);
            }
        };
        targets.push((plan, r.limit));
    }
    let now = world.now();
    let o = &world.orgs[ctx.org];
    let view = o.view();
    let overall = s.limit.unwrap_or(2000).min(2000);
    let mut out = Vec::new();
    'objects: for (plan, per_limit) in &targets {
        let obj = schema.at(plan.obj);
        let t = &o.tables[obj.index];
        let stamp = obj.col("SystemModstamp");
        let mut n = 0;
        for row in 0..t.len() {
            if t.is_deleted(row) {
                continue;
            }
            if o.search_lag_ms > 0
                && let Some(c) = stamp
                && let ValueRef::DateTime(ts) = t.get(c, row)
                && ts > now - o.search_lag_ms
            {
                continue;
            }
            let r = RecordId::new(obj.index, row as u64 + 1);
            if !matches(&s, obj, &view, r) {
                continue;
            }
            if per_limit.is_some_and(|l| n >= l) {
                break;
            }
            if out.len() >= overall {
                break 'objects;
            }
            out.push(soql::plan::render(plan, &view, &ctx.version, r));
            n += 1;
        }
    }
    // Versions up to 35.0 answered a bare array (REST API guide, Spring '16,
    // "Search for a String", v35.0 example); later ones wrap it in
    // `searchRecords` (the v68.0 example). The switch at 36.0 is unconfirmed.
    let major: u32 = ctx
        .version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(crate::versions::MAX_VERSION);
    if major <= 35 {
        return Resp::json(200, Value::Array(out));
    }
    Resp::json(
        200,
        Value::from_iter([("searchRecords", Value::Array(out))]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(t: &str) -> Expr {
        Expr::Term(Term {
            text: t.into(),
            phrase: false,
        })
    }

    fn phrase(t: &str) -> Expr {
        Expr::Term(Term {
            text: t.into(),
            phrase: true,
        })
    }

    fn query(q: &str) -> Expr {
        parse(q).unwrap().query
    }

    #[test]
    fn parses_phone_search() {
        let s = parse("FIND {\\+33612345678} IN PHONE FIELDS RETURNING Contact(Id,Phone,MobilePhone,AccountId),Lead(Id,Phone,MobilePhone,IsConverted)").unwrap();
        assert_eq!(s.query, word("+33612345678"));
        assert_eq!(s.scope, Scope::Phone);
        assert_eq!(s.returning.len(), 2);
        assert_eq!(
            s.returning[0].fields,
            vec!["Id", "Phone", "MobilePhone", "AccountId"]
        );
        assert_eq!(s.returning[1].object, "Lead");
    }

    #[test]
    fn refuses_unescaped_reserved() {
        for bad in [
            "FIND {+33612345678}",
            "FIND {a*}",
            "FIND {06-12}",
            "FIND {x}",
            "FIND {ab",
            "FIND ab",
            "FIND {}",
            "FIND {   }",
            "FIND {0612345678 OR +33612345678}",
            "FIND {\"06 12 + 34\"}",
            "FIND {a\\b}",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.0, "MALFORMED_SEARCH", "{bad}");
        }
        assert!(parse("FIND {a\\-b} RETURNING Contact WHERE").is_err());
        assert!(parse("FIND {ab} RETURNING Contact(Id WHERE Name = 'x')").is_err());
        let ok =
            parse("find {O\\'Brien} in name fields returning Contact(Id, Name LIMIT 5) limit 10")
                .unwrap();
        assert_eq!(ok.query, word("O'Brien"));
        assert_eq!(ok.returning[0].limit, Some(5));
        assert_eq!(ok.limit, Some(10));
    }

    #[test]
    fn term_or_operator() {
        assert_eq!(
            query(
                "FIND {0612345678 OR 33612345678} IN PHONE FIELDS RETURNING Contact(Id, LastName), Lead(Id, LastName)"
            ),
            Expr::Or(vec![word("0612345678"), word("33612345678")])
        );
        // Keywords are case-insensitive; several ORs make one list.
        assert_eq!(
            query("FIND {aa or bb Or cc}"),
            Expr::Or(vec![word("aa"), word("bb"), word("cc")])
        );
    }

    #[test]
    fn term_and_and_not_operators() {
        assert_eq!(
            query("FIND {john AND smith}"),
            Expr::And {
                all: vec![word("john"), word("smith")],
                none: vec![]
            }
        );
        assert_eq!(
            query("FIND {john and not smith AND jr}"),
            Expr::And {
                all: vec![word("john"), word("jr")],
                none: vec![word("smith")]
            }
        );
        // Bare words form one group (every word must match); a phrase next to
        // another operand is an implicit AND.
        assert_eq!(query("FIND {john smith}"), word("john smith"));
        assert_eq!(
            query("FIND {\"john smith\" acme}"),
            Expr::And {
                all: vec![phrase("john smith"), word("acme")],
                none: vec![]
            }
        );
        // Quoted keywords are search words.
        assert_eq!(
            query("FIND {\"and\" OR \"or\"}"),
            Expr::Or(vec![phrase("and"), phrase("or")])
        );
    }

    #[test]
    fn term_parentheses() {
        assert_eq!(
            query("FIND {(bob AND jones) OR (sally AND smith)}"),
            Expr::Or(vec![
                Expr::And {
                    all: vec![word("bob"), word("jones")],
                    none: vec![]
                },
                Expr::And {
                    all: vec![word("sally"), word("smith")],
                    none: vec![]
                },
            ])
        );
        assert_eq!(
            query("FIND {acme AND NOT (test OR demo)}"),
            Expr::And {
                all: vec![word("acme")],
                none: vec![Expr::Or(vec![word("test"), word("demo")])]
            }
        );
        assert_eq!(query("FIND {((acme))}"), word("acme"));
        assert_eq!(
            query("FIND {(06 12 34 56 78) OR (33 6 12 34 56 78)} IN PHONE FIELDS"),
            Expr::Or(vec![word("06 12 34 56 78"), word("33 6 12 34 56 78")])
        );
    }

    #[test]
    fn term_escapes_inside_operators() {
        assert_eq!(
            query("FIND {\\+33612345678 OR 0612345678 OR \\(415\\)555\\-0132} IN PHONE FIELDS"),
            Expr::Or(vec![
                word("+33612345678"),
                word("0612345678"),
                word("(415)555-0132")
            ])
        );
        assert_eq!(
            query("FIND {(\\+33 6 12 34 56 78) OR \"\\+1 415\\-555\\-0199\"}"),
            Expr::Or(vec![word("+33 6 12 34 56 78"), phrase("+1 415-555-0199")])
        );
        // Escaped quotes and parentheses are literal characters, not syntax.
        assert_eq!(query("FIND {\\\"and\\\"}"), word("\"and\""));
        assert_eq!(query("FIND {\\(ab\\)}"), word("(ab)"));
    }

    #[test]
    fn refuses_malformed_operator_sequences() {
        for bad in [
            "FIND {a OR}",
            "FIND {ab OR}",
            "FIND {OR ab}",
            "FIND {ab OR OR cd}",
            "FIND {ab AND}",
            "FIND {ab AND NOT}",
            "FIND {ab AND OR cd}",
            "FIND {NOT ab}",
            "FIND {ab NOT cd}",
            "FIND {ab OR cd AND ef}",
            "FIND {ab AND cd OR ef}",
            "FIND {ab cd OR ef}",
            "FIND {(ab OR cd}",
            "FIND {ab OR cd)}",
            "FIND {()}",
            "FIND {ab OR ()}",
            "FIND {ab OR c}",
            "FIND {\"ab cd}",
            "FIND {\"a\"}",
            "FIND {\"ab\" OR \"\"}",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.0, "MALFORMED_SEARCH", "{bad}");
        }
        // Mixing OR with AND is fine with parentheses.
        assert!(parse("FIND {ab OR (cd AND ef)}").is_ok());
        assert!(parse("FIND {(ab cd) OR ef}").is_ok());
    }

    #[test]
    fn evaluates_expressions() {
        let has = |words: &[&str]| {
            let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            move |t: &Term| t.text.split(' ').all(|w| words.iter().any(|x| x == w))
        };
        let e = query("FIND {(aa OR bb) AND NOT cc}");
        assert!(e.eval(&mut has(&["aa"])));
        assert!(e.eval(&mut has(&["bb", "dd"])));
        assert!(!e.eval(&mut has(&["aa", "cc"])));
        assert!(!e.eval(&mut has(&["dd"])));
        let e = query("FIND {aa AND bb}");
        assert!(e.eval(&mut has(&["aa", "bb"])));
        assert!(!e.eval(&mut has(&["aa"])));
    }
}

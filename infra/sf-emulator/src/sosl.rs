//! SOSL: `FIND {term} [IN ALL|NAME|EMAIL|PHONE FIELDS] [RETURNING Obj(fields [LIMIT n]), …] [LIMIT n]`.
//!
//! The term is parsed with SOSL's backslash escapes; an unescaped reserved
//! character is refused (`MALFORMED_SEARCH`), so callers must escape. IN PHONE
//! FIELDS compares digits strictly: the digits of the term must equal all the
//! digits of a stored phone.

use crate::http::Resp;
use crate::json::Json;
use crate::rest::ApiCtx;
use crate::schema::{FieldType, ObjectDef, Schema};
use crate::soql;
use crate::store::{RecordId, ValueRef};
use crate::world::World;

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

/// A parsed search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// The unescaped term.
    pub term: String,
    /// Scope.
    pub scope: Scope,
    /// RETURNING (empty: every searchable object).
    pub returning: Vec<Returning>,
    /// Overall LIMIT.
    pub limit: Option<usize>,
}

fn malformed(msg: impl Into<String>) -> (&'static str, String) {
    ("MALFORMED_SEARCH", msg.into())
}

/// Parses a SOSL statement.
pub fn parse(q: &str) -> Result<Search, (&'static str, String)> {
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
    // The term, with escapes.
    let mut term = String::new();
    let mut chars = body.char_indices();
    let mut end = None;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e)) if RESERVED.contains(&e) => term.push(e),
                Some((_, e)) => {
                    return Err(malformed(format!(
                        "Invalid escape sequence '\\{e}' in search term"
                    )));
                }
                None => return Err(malformed("Unterminated search term")),
            },
            '}' => {
                end = Some(i);
                break;
            }
            c if RESERVED.contains(&c) => {
                return Err(malformed(format!(
                    "line 1:{} mismatched character '{c}': reserved characters in a search term must be escaped with a backslash",
                    i + 1
                )));
            }
            c => term.push(c),
        }
    }
    let Some(end) = end else {
        return Err(malformed("Unterminated search term: missing '}'"));
    };
    if term.trim().chars().count() < 2 {
        return Err(malformed("search term must be longer than one character"));
    }
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
        term,
        scope,
        returning,
        limit,
    })
}

fn tokenize(s: &str) -> Result<Vec<String>, (&'static str, String)> {
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

fn matches(search: &Search, obj: &ObjectDef, view: &soql::plan::DataView, r: RecordId) -> bool {
    let t = &view.tables[obj.index];
    let row = r.row();
    let text_of = |f: &crate::schema::FieldDef| match f.column.map(|c| t.get(c, row)) {
        Some(ValueRef::Text(s)) => Some(s),
        _ => None,
    };
    match search.scope {
        Scope::Phone => {
            let want = digits(&search.term);
            !want.is_empty()
                && obj
                    .fields
                    .iter()
                    .filter(|f| f.ftype == FieldType::Phone)
                    .filter_map(text_of)
                    .any(|p| digits(p) == want)
        }
        Scope::Email => {
            let want = search.term.trim().to_lowercase();
            obj.fields
                .iter()
                .filter(|f| f.ftype == FieldType::Email)
                .filter_map(text_of)
                .any(|e| e.to_lowercase() == want || tokens(e).contains(&want))
        }
        Scope::Name | Scope::All => {
            let words: Vec<String> = search
                .term
                .split_whitespace()
                .map(str::to_lowercase)
                .collect();
            let mut hay: Vec<String> = Vec::new();
            for f in &obj.fields {
                if !f.ftype.is_text() || (search.scope == Scope::Name && !name_field(f.name)) {
                    continue;
                }
                if let Some(s) = text_of(f) {
                    hay.extend(tokens(s));
                }
            }
            if search.scope == Scope::All {
                // Phones are also found by their digits in ALL FIELDS.
                let want = digits(&search.term);
                let phone_like = want.len() >= 5
                    && search
                        .term
                        .chars()
                        .all(|c| c.is_ascii_digit() || " ().-+".contains(c));
                if phone_like
                    && obj
                        .fields
                        .iter()
                        .filter(|f| f.ftype == FieldType::Phone)
                        .filter_map(text_of)
                        .any(|p| digits(p) == want)
                {
                    return true;
                }
            }
            !words.is_empty() && words.iter().all(|w| hay.contains(w))
        }
    }
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
    if q.chars().count() > crate::soql::MAX_STATEMENT {
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
        let plan = match soql::parse(&soql_text).and_then(|p| soql::compile(&soql_text, &p)) {
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
    Resp::json(200, Json::obj().with("searchRecords", Json::Arr(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_phone_search() {
        let s = parse("FIND {\\+33612345678} IN PHONE FIELDS RETURNING Contact(Id,Phone,MobilePhone,AccountId),Lead(Id,Phone,MobilePhone,IsConverted)").unwrap();
        assert_eq!(s.term, "+33612345678");
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
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.0, "MALFORMED_SEARCH", "{bad}");
        }
        assert!(parse("FIND {a\\-b} RETURNING Contact WHERE").is_err());
        assert!(parse("FIND {ab} RETURNING Contact(Id WHERE Name = 'x')").is_err());
        let ok =
            parse("find {O\\'Brien} in name fields returning Contact(Id, Name LIMIT 5) limit 10")
                .unwrap();
        assert_eq!(ok.term, "O'Brien");
        assert_eq!(ok.returning[0].limit, Some(5));
        assert_eq!(ok.limit, Some(10));
    }
}

//! SOQL tokenizer.

use super::SoqlError;
use crate::time::{parse_date, parse_soql_datetime};

/// One character of a string literal as seen by LIKE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatChar {
    /// A literal character (including an escaped `%` or `_`).
    Lit(char),
    /// `_`: exactly one character.
    One,
    /// `%`: any run of characters.
    Many,
}

/// A decoded string literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrLit {
    /// The value, with `\%` and `\_` decoded to `%` and `_`.
    pub value: String,
    /// The value as a LIKE pattern.
    pub pattern: Vec<PatChar>,
    /// The literal used a LIKE-only escape (`\%` or `\_`).
    pub like_escapes: bool,
    /// Length of the value in UTF-16 code units (how Salesforce, a Java
    /// platform, measures text).
    pub units: usize,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// Token kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// Identifier or keyword (may contain dots: `Account.Name`).
    Ident(String),
    /// Quoted string.
    Str(StrLit),
    /// Number (text as written).
    Num(String),
    /// Date literal (days since epoch).
    Date(i32),
    /// Datetime literal (ms since epoch).
    DateTime(i64),
    /// `,`
    Comma,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// Comparison operator.
    Op(CmpOp),
    /// `:` (bind variables, date literal parameters)
    Colon,
    /// End of input.
    Eof,
}

/// A token and its byte offset in the statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// Kind.
    pub tok: Tok,
    /// Byte offset.
    pub pos: usize,
}

/// Splits a statement into tokens.
pub fn tokenize(src: &str) -> Result<Vec<Token>, SoqlError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            b',' => {
                i += 1;
                Tok::Comma
            }
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b':' => {
                i += 1;
                Tok::Colon
            }
            b'=' => {
                i += 1;
                Tok::Op(CmpOp::Eq)
            }
            b'!' => {
                if bytes.get(i + 1) == Some(&b'=') {
                    i += 2;
                    Tok::Op(CmpOp::Ne)
                } else {
                    return Err(SoqlError::malformed(src, start, "unexpected token: '!'"));
                }
            }
            b'<' => match bytes.get(i + 1) {
                Some(b'=') => {
                    i += 2;
                    Tok::Op(CmpOp::Le)
                }
                Some(b'>') => {
                    i += 2;
                    Tok::Op(CmpOp::Ne)
                }
                _ => {
                    i += 1;
                    Tok::Op(CmpOp::Lt)
                }
            },
            b'>' => {
                if bytes.get(i + 1) == Some(&b'=') {
                    i += 2;
                    Tok::Op(CmpOp::Ge)
                } else {
                    i += 1;
                    Tok::Op(CmpOp::Gt)
                }
            }
            b'\'' => {
                let (lit, next) = lex_string(src, i)?;
                i = next;
                Tok::Str(lit)
            }
            b'"' => {
                return Err(SoqlError::malformed(
                    src,
                    start,
                    "unexpected token: '\"' (string literals use single quotes)",
                ));
            }
            b'0'..=b'9' | b'-' | b'+' | b'.' => {
                let (tok, next) = lex_number_or_date(src, i)?;
                i = next;
                tok
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.')
                {
                    i += 1;
                }
                Tok::Ident(src[start..i].to_string())
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(SoqlError::malformed(
                    src,
                    start,
                    &format!("unexpected token: '{ch}'"),
                ));
            }
        };
        out.push(Token { tok, pos: start });
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: src.len(),
    });
    Ok(out)
}

fn lex_string(src: &str, open: usize) -> Result<(StrLit, usize), SoqlError> {
    let mut value = String::new();
    let mut pattern = Vec::new();
    let mut like_escapes = false;
    let mut chars = src[open + 1..].char_indices();
    loop {
        let Some((off, c)) = chars.next() else {
            return Err(SoqlError::malformed(
                src,
                open,
                "unterminated string literal",
            ));
        };
        let here = open + 1 + off;
        match c {
            '\'' => {
                let n = value.encode_utf16().count();
                return Ok((
                    StrLit {
                        value,
                        pattern,
                        like_escapes,
                        units: n,
                    },
                    here + 1,
                ));
            }
            '\\' => {
                let Some((_, e)) = chars.next() else {
                    return Err(SoqlError::malformed(
                        src,
                        open,
                        "unterminated string literal",
                    ));
                };
                let decoded = match e {
                    '\\' => '\\',
                    '\'' => '\'',
                    '"' => '"',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    '%' | '_' => {
                        like_escapes = true;
                        e
                    }
                    'u' => {
                        let mut hex = String::new();
                        for _ in 0..4 {
                            match chars.next() {
                                Some((_, h)) if h.is_ascii_hexdigit() => hex.push(h),
                                _ => {
                                    return Err(SoqlError::malformed(
                                        src,
                                        here,
                                        "Invalid string literal: \\u must be followed by four hexadecimal digits",
                                    ));
                                }
                            }
                        }
                        let code = u32::from_str_radix(&hex, 16).unwrap_or(0xFFFD);
                        match char::from_u32(code) {
                            Some(ch) => ch,
                            None => {
                                return Err(SoqlError::malformed(
                                    src,
                                    here,
                                    &format!("Invalid string literal: \\u{hex} is not a character"),
                                ));
                            }
                        }
                    }
                    other => {
                        return Err(SoqlError::malformed(
                            src,
                            here,
                            &format!(
                                "Invalid string literal '\\{other}'. Illegal character sequence '\\{other}' in string literal."
                            ),
                        ));
                    }
                };
                value.push(decoded);
                pattern.push(PatChar::Lit(decoded));
            }
            '%' => {
                value.push('%');
                pattern.push(PatChar::Many);
            }
            '_' => {
                value.push('_');
                pattern.push(PatChar::One);
            }
            other => {
                value.push(other);
                pattern.push(PatChar::Lit(other));
            }
        }
    }
}

fn lex_number_or_date(src: &str, start: usize) -> Result<(Tok, usize), SoqlError> {
    let bytes = src.as_bytes();
    let mut i = start;
    // Date / datetime: YYYY-MM-DD[THH:MM:SS(Z|±hh:mm)]
    let is_date = bytes.len() >= start + 10
        && bytes[start..start + 4].iter().all(u8::is_ascii_digit)
        && bytes[start + 4] == b'-'
        && bytes[start + 5..start + 7].iter().all(u8::is_ascii_digit)
        && bytes[start + 7] == b'-'
        && bytes[start + 8..start + 10].iter().all(u8::is_ascii_digit);
    if is_date {
        i = start + 10;
        if bytes.get(i) == Some(&b'T') || bytes.get(i) == Some(&b't') {
            while i < bytes.len()
                && !bytes[i].is_ascii_whitespace()
                && bytes[i] != b')'
                && bytes[i] != b','
            {
                i += 1;
            }
            let text = &src[start..i];
            return match parse_soql_datetime(text) {
                Some(ms) => Ok((Tok::DateTime(ms), i)),
                None => Err(SoqlError::malformed(
                    src,
                    start,
                    &format!(
                        "line 1:{start} no viable alternative at character: invalid datetime literal '{text}' (expected YYYY-MM-DDThh:mm:ssZ or YYYY-MM-DDThh:mm:ss±hh:mm, no fractional seconds)"
                    ),
                )),
            };
        }
        let text = &src[start..i];
        return match parse_date(text) {
            Some(d) => Ok((Tok::Date(d), i)),
            None => Err(SoqlError::malformed(
                src,
                start,
                &format!("invalid date literal '{text}'"),
            )),
        };
    }
    if bytes[i] == b'-' || bytes[i] == b'+' {
        i += 1;
    }
    let digits_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
    }
    let text = &src[start..i];
    let body = &src[digits_start..i];
    if body.is_empty() || body == "." || !body.bytes().any(|b| b.is_ascii_digit()) {
        return Err(SoqlError::malformed(
            src,
            start,
            &format!(
                "unexpected token: '{}'",
                &src[start..(start + 1).min(src.len())]
            ),
        ));
    }
    if i < bytes.len() && (bytes[i].is_ascii_alphabetic() || bytes[i] == b'_') {
        return Err(SoqlError::malformed(
            src,
            start,
            &format!(
                "unexpected token: '{}'",
                &src[start..]
                    .split(|c: char| c.is_whitespace() || c == ')' || c == ',')
                    .next()
                    .unwrap_or(text)
            ),
        ));
    }
    Ok((Tok::Num(text.to_string()), i))
}

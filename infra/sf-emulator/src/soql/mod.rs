//! SOQL: tokenizer, recursive-descent parser to an AST, a planner that resolves the
//! AST against the schema, and an evaluator over the column store.

pub mod dates;
pub mod lexer;
pub mod parser;
pub mod plan;

#[cfg(test)]
mod tests;

pub use parser::{Query, SelectItem, parse};
pub use plan::{Accessor, OutItem, Plan, Shape, compile, execute};

/// Maximum statement length (UTF-16 code units).
pub const MAX_STATEMENT: usize = 100_000;
/// Maximum length of one string literal in WHERE (UTF-16 code units).
pub const MAX_WHERE_STRING: usize = 4_000;

/// A SOQL error as Salesforce reports it (`errorCode` + message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoqlError {
    /// `MALFORMED_QUERY`, `INVALID_FIELD`, `INVALID_TYPE`, `INVALID_QUERY_FILTER_OPERATOR`.
    pub code: &'static str,
    /// Message, with Salesforce's position banner where it has one.
    pub message: String,
}

impl SoqlError {
    /// An error pointing at a byte offset of the statement.
    pub fn at(code: &'static str, src: &str, pos: usize, msg: &str) -> SoqlError {
        let pos = pos.min(src.len());
        let before = &src[..pos];
        let row = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line_end = src[pos..].find('\n').map(|i| pos + i).unwrap_or(src.len());
        let col = src[line_start..pos].chars().count() + 1;
        let line = &src[line_start..line_end];
        let caret = " ".repeat(col - 1);
        SoqlError {
            code,
            message: format!("\n{line}\n{caret}^\nERROR at Row:{row}:Column:{col}\n{msg}"),
        }
    }

    /// MALFORMED_QUERY at a position.
    pub fn malformed(src: &str, pos: usize, msg: &str) -> SoqlError {
        SoqlError::at("MALFORMED_QUERY", src, pos, msg)
    }

    /// An error without a position banner.
    pub fn plain(code: &'static str, msg: impl Into<String>) -> SoqlError {
        SoqlError {
            code,
            message: msg.into(),
        }
    }
}

/// Parses and checks the statement-level limits.
pub fn parse_checked(src: &str) -> Result<Query, SoqlError> {
    if src.encode_utf16().count() > MAX_STATEMENT {
        return Err(SoqlError::plain(
            "MALFORMED_QUERY",
            format!(
                "SOQL statements cannot be longer than {MAX_STATEMENT} characters (the emulator refuses longer statements)"
            ),
        ));
    }
    if src.trim().is_empty() {
        return Err(SoqlError::plain(
            "MALFORMED_QUERY",
            "A query string has to be specified",
        ));
    }
    parse(src)
}

//! The product's SOQL builder checked against an independent parser: the
//! emulator's. Any string, once escaped, parses back as exactly one literal
//! holding exactly that string, and the query keeps the structure the builder wrote.

use proptest::prelude::*;
use sf_emulator::soql::parser::{Cond as ECond, Literal as ELiteral, parse};
use shared::salesforce::soql::{Cond, Like, MAX_STRING_LITERAL, Select, SoqlError};

fn literal_of(cond: &ECond) -> Option<&ELiteral> {
    match cond {
        ECond::Cmp { value, .. } => Some(&value.value),
        _ => None,
    }
}

fn strings() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "(['\\\\\"\\n\\r\\t%_]|[a-z ]|OR|AND|NOT|\\)|\\(|--|;|\u{0}|\u{1f}){0,40}",
    ]
    .prop_filter("SOQL literal limit", |s| {
        s.chars().count() <= MAX_STRING_LITERAL
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn escaped_strings_parse_back_exactly(s in strings()) {
        let soql = Select::new("Contact", &["Id"])
            .filter(Cond::and([Cond::eq("LastName", s.as_str()), Cond::eq("IsDeleted", false)]))
            .render()
            .unwrap();
        let query = parse(&soql).unwrap_or_else(|e| panic!("{soql:?}: {e:?}"));
        let Some(ECond::And(parts)) = &query.where_ else { panic!("structure changed: {:?}", query.where_) };
        prop_assert_eq!(parts.len(), 2);
        match literal_of(&parts[0]) {
            Some(ELiteral::Str(lit)) => prop_assert_eq!(&lit.value, &s),
            other => prop_assert!(false, "not one string literal: {:?}", other),
        }
        prop_assert_eq!(literal_of(&parts[1]), Some(&ELiteral::Bool(false)));
        prop_assert!(query.limit.is_none() && query.order_by.is_empty());
    }

    #[test]
    fn in_lists_keep_one_literal_per_value(values in proptest::collection::vec(strings(), 1..6)) {
        let soql = Select::new("Task", &["Id"]).filter(Cond::is_in("CallObject", values.clone())).render().unwrap();
        let query = parse(&soql).unwrap_or_else(|e| panic!("{soql:?}: {e:?}"));
        let Some(ECond::In { values: parsed, negated: false, .. }) = &query.where_ else { panic!("{:?}", query.where_) };
        let decoded: Vec<String> = parsed.iter().map(|l| match &l.value { ELiteral::Str(s) => s.value.clone(), other => panic!("{other:?}") }).collect();
        prop_assert_eq!(decoded, values);
    }

    #[test]
    fn like_patterns_stay_one_pattern(s in strings()) {
        let soql = Select::new("Contact", &["Id"]).filter(Cond::like("LastName", Like::Contains(s.clone()))).render();
        match soql {
            Ok(soql) => {
                let query = parse(&soql).unwrap_or_else(|e| panic!("{soql:?}: {e:?}"));
                prop_assert!(matches!(query.where_, Some(ECond::Like { .. })), "{:?}", query.where_);
            }
            // Wildcard escapes add characters: near the limit the builder may
            // refuse, and only for the literal's length, never emit a longer one.
            Err(e) => prop_assert!(
                matches!(e, SoqlError::LiteralTooLong(n) if n > MAX_STRING_LITERAL),
                "{s:?} refused: {e}"
            ),
        }
    }
}

/// The refusal the property above allows, reached on purpose: a pattern's text
/// over the literal limit is refused for its length, not emitted.
#[test]
fn a_pattern_over_the_limit_is_refused_for_its_length() {
    let pattern = Like::Contains("%".repeat(MAX_STRING_LITERAL + 1));
    let err = Select::new("Contact", &["Id"])
        .filter(Cond::like("LastName", pattern))
        .render()
        .unwrap_err();
    assert!(
        matches!(err, SoqlError::LiteralTooLong(n) if n > MAX_STRING_LITERAL),
        "{err}"
    );
}

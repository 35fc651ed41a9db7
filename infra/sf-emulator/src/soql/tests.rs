//! SOQL parser and evaluator tests.

use super::lexer::{CmpOp, PatChar};
use super::parser::{Cond, Literal, parse};
use super::plan::{Plan, render};
use super::{SoqlError, compile, execute, parse_checked};
use crate::world::{OrgSpec, SeedRecord, UserSpec, World};
use proptest::prelude::*;

/// The emulated clock of [`world`]: 2026-05-28T20:26:40Z, a Thursday.
const NOW: i64 = 1_780_000_000_000;

fn err(q: &str) -> SoqlError {
    match parse_checked(q).and_then(|p| compile(q, &p, NOW)) {
        Ok(_) => panic!("expected an error for {q}"),
        Err(e) => e,
    }
}

fn plan(q: &str) -> Plan {
    match parse_checked(q).and_then(|p| compile(q, &p, NOW)) {
        Ok(p) => p,
        Err(e) => panic!("{q}: {} {}", e.code, e.message),
    }
}

fn rec(object: &str, reference: &str, fields: serde_json::Value) -> SeedRecord {
    SeedRecord {
        object: object.into(),
        reference: Some(reference.into()),
        fields: fields.as_object().cloned().unwrap_or_default(),
    }
}

/// An org with a few accounts, contacts, leads and tasks.
fn world() -> World {
    let mut w = World::new("http://emu".into(), 1000);
    w.clock.set(NOW);
    w.clock.freeze();
    w.create_org(&OrgSpec {
        key: Some("t".into()),
        ..Default::default()
    })
    .unwrap();
    w.create_user(
        0,
        &UserSpec {
            reference: Some("admin".into()),
            username: "admin@t.test".into(),
            email: "admin@t.test".into(),
            last_name: "Admin".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let records = vec![
        rec(
            "Account",
            "acme",
            serde_json::json!({"Name": "Acme", "Website": "acme.com"}),
        ),
        rec(
            "Account",
            "globex",
            serde_json::json!({"Name": "Globex 50% off_now", "NumberOfEmployees": 50}),
        ),
        rec(
            "Contact",
            "jane",
            serde_json::json!({"FirstName": "Jane", "LastName": "Doe", "Email": "Jane@Acme.com", "AccountId": "@acme", "Phone": "06 12 34 56 78", "LastModifiedDate": "2026-05-01T10:00:00Z"}),
        ),
        rec(
            "Contact",
            "john",
            serde_json::json!({"FirstName": "John", "LastName": "O'Brien", "AccountId": "@globex", "LastModifiedDate": "2026-05-01T10:00:00Z"}),
        ),
        rec(
            "Contact",
            "zed",
            serde_json::json!({"LastName": "Zed", "LastModifiedDate": "2026-05-02T10:00:00Z"}),
        ),
        rec(
            "Lead",
            "lead",
            serde_json::json!({"LastName": "Lee", "Company": "Initech"}),
        ),
        rec(
            "Task",
            "call",
            serde_json::json!({"Subject": "Call", "TaskSubtype": "Call", "WhoId": "@jane", "Status": "Completed", "ActivityDate": "2026-05-01"}),
        ),
    ];
    w.seed_records(0, &records).unwrap();
    w
}

fn run(w: &World, q: &str, all: bool) -> Vec<serde_json::Value> {
    let p = plan(q);
    let view = w.orgs[0].view();
    execute(&p, &view, all)
        .into_iter()
        .map(|r| render(&p, &view, "62.0", r))
        .collect()
}

fn names(rows: &[serde_json::Value], field: &str) -> Vec<String> {
    rows.iter()
        .map(|r| r[field].as_str().unwrap_or("null").to_string())
        .collect()
}

#[test]
fn parses_full_statement() {
    let q = parse(
        "select Id, Name, Account.Name FROM Contact WHERE (Email != null AND NOT LastName LIKE 'x%') OR Id IN ('003000000000001', '003000000000002') ORDER BY LastName DESC NULLS LAST, Id ASC LIMIT 10",
    )
    .unwrap();
    assert_eq!(q.select.len(), 3);
    match &q.select[2] {
        super::parser::SelectItem::Field(f) => assert_eq!(f.parts, vec!["Account", "Name"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(q.from, "Contact");
    assert_eq!(q.limit, Some(10));
    assert_eq!(q.order_by.len(), 2);
    assert!(q.order_by[0].desc && q.order_by[0].nulls_last);
    assert!(!q.order_by[1].desc && !q.order_by[1].nulls_last);
    match q.where_.unwrap() {
        Cond::Or(v) => {
            assert_eq!(v.len(), 2);
            assert!(matches!(&v[0], Cond::And(a) if a.len() == 2 && matches!(a[1], Cond::Not(_))));
            assert!(matches!(&v[1], Cond::In { negated: false, values, .. } if values.len() == 2));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn parses_every_operator_and_literal() {
    let q = parse(
        "SELECT Id FROM Opportunity WHERE Amount >= 10 AND Amount <= 20.5 AND Amount > -1 AND Amount < 1e AND Name <> 'a'",
    );
    assert!(q.is_err(), "1e is not a number");
    let q = parse(
        "SELECT Id FROM Opportunity WHERE Amount >= 10 AND Amount <= 20.5 AND Amount > -1 AND Amount < 100 AND Name <> 'a' AND Name != 'b' AND IsWon = true AND IsClosed = FALSE AND CloseDate = 2026-01-31 AND CreatedDate > 2026-01-31T12:00:00Z AND CreatedDate < 2026-01-31T12:00:00+01:00 AND LastModifiedDate >= 2026-01-31T12:00:00-05:00 AND AccountId = null AND StageName NOT IN ('Closed Won')",
    )
    .unwrap();
    let Some(Cond::And(items)) = q.where_ else {
        panic!()
    };
    let ops: Vec<CmpOp> = items
        .iter()
        .filter_map(|c| match c {
            Cond::Cmp { op, .. } => Some(*op),
            _ => None,
        })
        .collect();
    assert_eq!(
        &ops[..6],
        &[
            CmpOp::Ge,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Lt,
            CmpOp::Ne,
            CmpOp::Ne
        ]
    );
    let lits: Vec<&Literal> = items
        .iter()
        .filter_map(|c| match c {
            Cond::Cmp { value, .. } => Some(&value.value),
            _ => None,
        })
        .collect();
    assert!(matches!(lits[6], Literal::Bool(true)));
    assert!(matches!(lits[7], Literal::Bool(false)));
    assert!(matches!(lits[8], Literal::Date(_)));
    let (Literal::DateTime(a), Literal::DateTime(b), Literal::DateTime(c)) =
        (lits[9], lits[10], lits[11])
    else {
        panic!()
    };
    assert_eq!(a - b, 3_600_000);
    assert_eq!(c - a, 5 * 3_600_000);
    assert!(matches!(lits[12], Literal::Null));
    assert!(matches!(items.last(), Some(Cond::In { negated: true, .. })));
    plan(
        "SELECT Id FROM Opportunity WHERE Amount >= 10 AND CloseDate = 2026-01-31 AND CreatedDate > 2026-01-31T12:00:00Z AND IsWon = true",
    );
}

#[test]
fn string_escapes() {
    let q = parse(r#"SELECT Id FROM Contact WHERE LastName = 'a\\b\'c\"d\ne\rf\tg\bh\fi\u00e9j'"#)
        .unwrap();
    let Some(Cond::Cmp { value, .. }) = q.where_ else {
        panic!()
    };
    let Literal::Str(s) = value.value else {
        panic!()
    };
    assert_eq!(s.value, "a\\b'c\"d\ne\rf\tg\u{8}h\u{c}iéj");
    for bad in [r"'\q'", r"'\u12'", r"'\x41'", "'unterminated"] {
        let e = err(&format!("SELECT Id FROM Contact WHERE LastName = {bad}"));
        assert_eq!(e.code, "MALFORMED_QUERY", "{bad}");
    }
    let like = parse(r"SELECT Id FROM Account WHERE Name LIKE '50\% off\_%'").unwrap();
    let Some(Cond::Like { pattern, .. }) = like.where_ else {
        panic!()
    };
    let Literal::Str(s) = pattern.value else {
        panic!()
    };
    assert_eq!(s.pattern[2], PatChar::Lit('%'));
    assert_eq!(s.pattern[7], PatChar::Lit('_'));
    assert_eq!(s.pattern[8], PatChar::Many);
    // LIKE-only escapes are refused elsewhere.
    assert_eq!(
        err(r"SELECT Id FROM Account WHERE Name = '50\%'").code,
        "MALFORMED_QUERY"
    );
}

#[test]
fn rejects_unsupported_constructs() {
    for q in [
        "SELECT SUM(Amount) FROM Opportunity",
        "SELECT Id, COUNT() FROM Contact",
        "SELECT LastName, COUNT(Id) FROM Contact",
        "SELECT COUNT() FROM Contact ORDER BY LastName",
        "SELECT COUNT(Id) c, COUNT(Email) c FROM Contact",
        "SELECT LastName FROM Contact GROUP BY LastName",
        "SELECT Id FROM Contact LIMIT 10 OFFSET 5",
        "SELECT Id FROM Contact WHERE CreatedDate = THIS_FISCAL_YEAR",
        "SELECT Id FROM Contact WHERE CreatedDate = LAST_N_DAYS",
        "SELECT Id FROM Contact WHERE CreatedDate = TODAY:3",
        "SELECT Id FROM Contact WHERE CreatedDate = LAST_N_DAYS:x",
        "SELECT Id FROM Contact FOR UPDATE",
        "SELECT Id, (SELECT Id, (SELECT Id FROM Tasks) FROM Contacts) FROM Account",
        "SELECT Id, (SELECT COUNT() FROM Tasks) FROM Contact",
        "SELECT Id, (SELECT Id FROM Tasks), (SELECT Subject FROM Tasks) FROM Contact",
        "SELECT Id, (SELECT Id FROM Tasks FROM Contact",
        "SELECT Id FROM Contact WHERE AccountId IN (SELECT Id FROM Account)",
        "SELECT Id FROM Contact WHERE LastName = :name",
        "SELECT Id FROM Contact WHERE LastName = 'a' AND Email = 'b' OR Phone = 'c'",
        "SELECT Id FROM Contact c",
        "SELECT Id FROM Contact, Account",
        "SELECT FIELDS(ALL) FROM Contact LIMIT 200",
        "SELECT Id FROM Contact WITH SECURITY_ENFORCED",
        "SELECT Id FROM Contact WHERE LastName = \"x\"",
        "SELECT Id FROM Contact WHERE CreatedDate > 2026-01-31T12:00:00.000Z",
        "SELECT Id FROM Contact WHERE CreatedDate > 2026-01-31T12:00:00",
        "SELECT Id, Id FROM Contact",
        "SELECT Account.Owner.Name FROM Contact",
        "SELECT Id FROM Contact ORDER BY",
        "SELECT Id FROM Contact LIMIT -1",
        "SELECT Id FROM Contact WHERE",
        "SELECT FROM Contact",
        "SELECT Id Contact",
        "",
        "DELETE FROM Contact",
        "SELECT Id FROM ContentDocumentLink",
        "SELECT Id FROM Contact WHERE Name INCLUDES ('a')",
        "SELECT Id FROM Contact ORDER BY MAX(Name)",
    ] {
        let e = err(q);
        assert_eq!(e.code, "MALFORMED_QUERY", "{q}: {}", e.message);
        assert!(!e.message.is_empty());
    }
    // The message says where and what.
    let e = err("SELECT Id FROM Contact GROUP BY LastName");
    assert!(e.message.contains("GROUP BY"), "{}", e.message);
    assert!(e.message.contains("Row:1:Column:24"), "{}", e.message);
}

#[test]
fn schema_errors() {
    let e = err("SELECT Id FROM Foo");
    assert_eq!(e.code, "INVALID_TYPE");
    assert!(e.message.contains("sObject type 'Foo' is not supported"));
    let e = err("SELECT Id, Foo FROM Contact");
    assert_eq!(e.code, "INVALID_FIELD");
    assert!(
        e.message
            .contains("No such column 'Foo' on entity 'Contact'")
    );
    let e = err("SELECT Foo.Name FROM Contact");
    assert_eq!(e.code, "INVALID_FIELD");
    assert!(e.message.contains("Didn't understand relationship 'Foo'"));
    assert_eq!(
        err("SELECT Account.Nope FROM Contact").code,
        "INVALID_FIELD"
    );
    assert_eq!(err("SELECT Who.Email FROM Task").code, "INVALID_FIELD");
    assert_eq!(
        err("SELECT Id FROM Contact WHERE Nope = 'x'").code,
        "INVALID_FIELD"
    );
    assert_eq!(
        err("SELECT Id FROM Contact ORDER BY Nope").code,
        "INVALID_FIELD"
    );
}

#[test]
fn type_errors() {
    for q in [
        "SELECT Id FROM Contact WHERE LastName = 1",
        "SELECT Id FROM Contact WHERE IsDeleted = 'true'",
        "SELECT Id FROM Contact WHERE IsDeleted > false",
        "SELECT Id FROM Contact WHERE CreatedDate > 2026-01-01",
        "SELECT Id FROM Opportunity WHERE CloseDate > 2026-01-01T00:00:00Z",
        "SELECT Id FROM Opportunity WHERE Amount = '5'",
        "SELECT Id FROM Contact WHERE Id = 'not-an-id'",
        "SELECT Id FROM Contact WHERE AccountId > null",
        "SELECT Id FROM Contact WHERE IsDeleted LIKE 'x'",
        "SELECT Id FROM Contact WHERE Id LIKE '003%'",
    ] {
        let e = err(q);
        assert_eq!(
            e.code, "INVALID_QUERY_FILTER_OPERATOR",
            "{q}: {}",
            e.message
        );
    }
    let e = err("SELECT Id FROM Contact WHERE Id = 'abc'");
    assert!(e.message.contains("invalid ID field: abc"));
    let e = err("SELECT Id FROM Contact WHERE LastName = 1");
    assert!(
        e.message
            .contains("must be of type string and should be enclosed in quotes")
    );
}

#[test]
fn length_limits() {
    let long = "a".repeat(4001);
    let e = err(&format!("SELECT Id FROM Contact WHERE LastName = '{long}'"));
    assert_eq!(e.code, "MALFORMED_QUERY");
    plan(&format!(
        "SELECT Id FROM Contact WHERE LastName = '{}'",
        "a".repeat(4000)
    ));
    let many: Vec<String> = (0..10_000).map(|i| format!("'n{i:07}'")).collect();
    let q = format!(
        "SELECT Id FROM Contact WHERE LastName IN ({})",
        many.join(",")
    );
    assert!(q.len() > 100_000);
    assert_eq!(err(&q).code, "MALFORMED_QUERY");
}

#[test]
fn evaluates_filters_case_insensitively() {
    let w = world();
    let rows = run(
        &w,
        "SELECT Id, Email FROM Contact WHERE Email = 'jane@acme.COM'",
        false,
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["Email"], "Jane@Acme.com");
    let rows = run(
        &w,
        "select id from contact where lastname like 'o\\'b%'",
        false,
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(
        run(
            &w,
            "SELECT Id FROM Contact WHERE LastName LIKE '_ed'",
            false
        )
        .len(),
        1
    );
    assert_eq!(
        run(&w, "SELECT Id FROM Contact WHERE LastName LIKE '_e'", false).len(),
        0
    );
    assert_eq!(
        run(
            &w,
            "SELECT Id FROM Account WHERE Name LIKE '%50\\% off\\_%'",
            false
        )
        .len(),
        1
    );
    assert_eq!(
        run(
            &w,
            "SELECT Id FROM Account WHERE Name LIKE '%50\\% off\\_x%'",
            false
        )
        .len(),
        0
    );
    assert_eq!(
        run(&w, "SELECT Id FROM Contact WHERE Email != null", false).len(),
        1
    );
    assert_eq!(
        run(&w, "SELECT Id FROM Contact WHERE Email = null", false).len(),
        2
    );
    // != keeps nulls (Salesforce semantics).
    assert_eq!(
        run(
            &w,
            "SELECT Id FROM Contact WHERE Email != 'jane@acme.com'",
            false
        )
        .len(),
        2
    );
    assert_eq!(
        run(
            &w,
            "SELECT Id FROM Contact WHERE LastName IN ('doe', 'ZED')",
            false
        )
        .len(),
        2
    );
    assert_eq!(
        run(
            &w,
            "SELECT Id FROM Contact WHERE LastName NOT IN ('doe', 'ZED')",
            false
        )
        .len(),
        1
    );
    assert_eq!(
        run(
            &w,
            "SELECT Id FROM Contact WHERE NOT (LastName = 'Doe' OR LastName = 'Zed')",
            false
        )
        .len(),
        1
    );
    assert_eq!(
        run(
            &w,
            "SELECT Id FROM Contact WHERE Account.Name = 'ACME'",
            false
        )
        .len(),
        1
    );
    assert_eq!(
        run(&w, "SELECT Id FROM Contact WHERE Name = 'jane doe'", false).len(),
        1
    );
    assert_eq!(
        run(
            &w,
            "SELECT Id FROM Account WHERE NumberOfEmployees >= 50",
            false
        )
        .len(),
        1
    );
    assert_eq!(
        run(
            &w,
            "SELECT Id FROM Task WHERE ActivityDate = 2026-05-01 AND IsClosed = true",
            false
        )
        .len(),
        1
    );
}

#[test]
fn relationship_fields_render_nested() {
    let w = world();
    let rows = run(
        &w,
        "SELECT Name, Account.Name, Account.Website, Email FROM Contact ORDER BY LastName",
        false,
    );
    assert_eq!(
        names(&rows, "Name"),
        vec!["Jane Doe", "John O'Brien", "Zed"]
    );
    let first = &rows[0];
    let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    assert!(keys.contains(&&"attributes".to_string()));
    assert_eq!(first["Account"]["Name"], "Acme");
    assert_eq!(first["Account"]["Website"], "acme.com");
    assert_eq!(first["Account"]["attributes"]["type"], "Account");
    assert!(rows[2]["Account"].is_null());
    let task = run(&w, "SELECT Who.Name, Who.Type, What.Name FROM Task", false);
    assert_eq!(task[0]["Who"]["attributes"]["type"], "Name");
    assert!(
        task[0]["Who"]["attributes"]["url"]
            .as_str()
            .unwrap()
            .contains("/sobjects/Contact/003")
    );
    assert_eq!(task[0]["Who"]["Name"], "Jane Doe");
    assert_eq!(task[0]["Who"]["Type"], "Contact");
    assert!(task[0]["What"].is_null());
}

#[test]
fn output_order_and_json_order() {
    let w = world();
    let p = plan("SELECT Email, Id, LastName FROM Contact WHERE LastName = 'Doe'");
    let view = w.orgs[0].view();
    let ids = execute(&p, &view, false);
    let text = render(&p, &view, "62.0", ids[0]).to_string();
    let a = text.find("\"attributes\"").unwrap();
    let e = text.find("\"Email\"").unwrap();
    let i = text.find("\"Id\"").unwrap();
    let l = text.find("\"LastName\"").unwrap();
    assert!(a < e && e < i && i < l, "{text}");
    assert!(text.contains("\"url\":\"/services/data/v62.0/sobjects/Contact/003"));
}

#[test]
fn numbers_render_as_their_field_type() {
    let mut w = world();
    let deal = rec(
        "Opportunity",
        "deal",
        serde_json::json!({"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-06-30", "Amount": 12000, "AccountId": "@globex"}),
    );
    w.seed_records(0, &[deal]).unwrap();
    let p = plan("SELECT Amount, Account.NumberOfEmployees FROM Opportunity");
    let view = w.orgs[0].view();
    let ids = execute(&p, &view, false);
    let text = render(&p, &view, "62.0", ids[0]).to_string();
    // A currency sent as 12000 is a double: it keeps its fraction. An integer
    // field stays an integer.
    assert!(text.contains("\"Amount\":12000.0,"), "{text}");
    assert!(text.ends_with("\"NumberOfEmployees\":50}}"), "{text}");
}

#[test]
fn order_by_nulls_and_cursor() {
    let w = world();
    let rows = run(
        &w,
        "SELECT Id, Email FROM Contact ORDER BY Email NULLS LAST, Id",
        false,
    );
    assert_eq!(rows[0]["Email"], "Jane@Acme.com");
    let rows = run(
        &w,
        "SELECT Id, Email FROM Contact ORDER BY Email ASC, Id DESC",
        false,
    );
    assert!(rows[0]["Email"].is_null());
    assert!(rows[0]["Id"].as_str() > rows[1]["Id"].as_str());
    // The (SystemModstamp, Id) cursor neither loses nor repeats ties.
    let all = run(
        &w,
        "SELECT Id, SystemModstamp FROM Contact ORDER BY SystemModstamp, Id",
        false,
    );
    assert_eq!(all.len(), 3);
    let first = &all[0];
    let stamp = first["SystemModstamp"].as_str().unwrap();
    let lit = format!("{}Z", &stamp[..19]);
    let q = format!(
        "SELECT Id FROM Contact WHERE SystemModstamp > {lit} OR (SystemModstamp = {lit} AND Id > '{}') ORDER BY SystemModstamp, Id",
        first["Id"].as_str().unwrap()
    );
    let rest = run(&w, &q, false);
    assert_eq!(names(&rest, "Id"), names(&all[1..], "Id"));
    // 15-character ids compare like their 18-character form.
    let id15 = &first["Id"].as_str().unwrap()[..15];
    assert_eq!(
        run(
            &w,
            &format!("SELECT Id FROM Contact WHERE Id = '{id15}'"),
            false
        )
        .len(),
        1
    );
    assert_eq!(run(&w, "SELECT Id FROM Contact LIMIT 2", false).len(), 2);
}

#[test]
fn query_all_sees_deleted() {
    let mut w = world();
    let id = w.orgs[0]
        .parse_id(&w.orgs[0].seed_refs["zed"].clone())
        .unwrap();
    let ctx = crate::org::WriteCtx {
        user: w.orgs[0].first_user().unwrap(),
        client: None,
        version: Some("62.0".into()),
        now: w.now(),
        seed: false,
    };
    w.orgs[0]
        .mutate(crate::org::Mutation::Delete { id }, &ctx)
        .unwrap();
    assert_eq!(run(&w, "SELECT Id FROM Contact", false).len(), 2);
    let all = run(
        &w,
        "SELECT Id, IsDeleted FROM Contact WHERE IsDeleted = true",
        true,
    );
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["IsDeleted"], true);
    assert!(run(&w, "SELECT Id FROM Contact WHERE IsDeleted = true", false).is_empty());
}

#[test]
fn content_document_link_needs_an_id_filter() {
    plan("SELECT Id FROM ContentDocumentLink WHERE LinkedEntityId = '001000000000001'");
    plan(
        "SELECT Id FROM ContentDocumentLink WHERE ContentDocumentId IN ('069000000000001') AND ShareType = 'V'",
    );
    assert_eq!(
        err("SELECT Id FROM ContentDocumentLink WHERE ShareType = 'V'").code,
        "MALFORMED_QUERY"
    );
}

/// Escapes text for a SOQL string literal (the rules the product must follow).
fn escape(s: &str, like: bool) -> String {
    let mut out = String::new();
    for c in s.chars() {
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
            c => out.push(c),
        }
    }
    out
}

proptest! {
    #[test]
    fn escaped_strings_round_trip(s in "\\PC{0,40}|[\\\\'\"\\n\\r\\t%_a\u{8}\u{c}]{0,20}") {
        let q = format!("SELECT Id FROM Contact WHERE LastName = '{}'", escape(&s, false));
        let parsed = parse(&q).unwrap();
        let Some(Cond::Cmp { value, .. }) = parsed.where_ else { panic!() };
        let Literal::Str(lit) = value.value else { panic!() };
        prop_assert_eq!(&lit.value, &s);

        let q = format!("SELECT Id FROM Contact WHERE LastName LIKE '{}'", escape(&s, true));
        let parsed = parse(&q).unwrap();
        let Some(Cond::Like { pattern, .. }) = parsed.where_ else { panic!() };
        let Literal::Str(lit) = pattern.value else { panic!() };
        let expected: Vec<PatChar> = s.chars().map(PatChar::Lit).collect();
        prop_assert_eq!(lit.pattern, expected);
    }
}

fn page_rows(w: &World, q: &str) -> Vec<serde_json::Value> {
    let p = plan(q);
    let view = w.orgs[0].view();
    let ids = execute(&p, &view, false);
    let (end, rows) = super::plan::page(&p, &view, "62.0", &ids, 0, 2000, false);
    assert_eq!(end, ids.len());
    rows
}

#[test]
fn date_literals_select_ranges_of_days() {
    // NOW is Thursday 2026-05-28; contacts were modified on May 1 and 2, created today.
    let w = world();
    let last = |q: &str| names(&run(&w, q, false), "LastName");
    assert_eq!(
        last(
            "SELECT LastName FROM Contact WHERE LastModifiedDate = LAST_N_DAYS:27 ORDER BY LastName"
        ),
        vec!["Doe", "O'Brien", "Zed"]
    );
    assert_eq!(
        last("SELECT LastName FROM Contact WHERE LastModifiedDate = last_n_days:26"),
        vec!["Zed"]
    );
    assert_eq!(
        last("SELECT LastName FROM Contact WHERE LastModifiedDate < N_DAYS_AGO:26"),
        vec!["Doe", "O'Brien"]
    );
    assert_eq!(
        last(
            "SELECT LastName FROM Contact WHERE LastModifiedDate <= N_DAYS_AGO:26 AND LastModifiedDate >= N_DAYS_AGO:26"
        ),
        vec!["Zed"]
    );
    assert!(last("SELECT LastName FROM Contact WHERE LastModifiedDate < THIS_MONTH").is_empty());
    assert_eq!(
        last(
            "SELECT LastName FROM Contact WHERE LastModifiedDate = THIS_MONTH AND LastModifiedDate != THIS_WEEK ORDER BY LastName"
        ),
        vec!["Doe", "O'Brien", "Zed"]
    );
    assert!(last("SELECT LastName FROM Contact WHERE CreatedDate > TODAY").is_empty());
    assert_eq!(
        last("SELECT LastName FROM Contact WHERE LastModifiedDate IN (YESTERDAY, N_DAYS_AGO:26)"),
        vec!["Zed"]
    );
    let subjects = |q: &str| names(&run(&w, q, false), "Subject");
    // A date field: ActivityDate is 2026-05-01.
    assert_eq!(
        subjects("SELECT Subject FROM Task WHERE ActivityDate = N_DAYS_AGO:27"),
        vec!["Call"]
    );
    assert_eq!(
        subjects(
            "SELECT Subject FROM Task WHERE ActivityDate < TODAY AND ActivityDate = THIS_QUARTER"
        ),
        vec!["Call"]
    );
    assert!(subjects("SELECT Subject FROM Task WHERE ActivityDate = LAST_MONTH").is_empty());
    assert!(subjects("SELECT Subject FROM Task WHERE ActivityDate > NEXT_N_DAYS:3").is_empty());
    let e = err("SELECT Id FROM Contact WHERE LastName = TODAY");
    assert_eq!(e.code, "INVALID_QUERY_FILTER_OPERATOR", "{}", e.message);
}

#[test]
fn count_and_aggregates() {
    let w = world();
    let view = w.orgs[0].view();
    let p = plan("SELECT COUNT() FROM Contact WHERE Email != null");
    assert!(matches!(p.shape, super::Shape::Count));
    assert_eq!(execute(&p, &view, false).len(), 1);
    let p = plan("SELECT count() FROM Contact LIMIT 2");
    assert_eq!(execute(&p, &view, false).len(), 2, "LIMIT caps COUNT()");
    let p = plan("SELECT COUNT(Id), COUNT(Email) withEmail, COUNT(Account.Name) FROM Contact");
    let ids = execute(&p, &view, false);
    assert_eq!(
        super::plan::aggregate_row(&p, &view, &ids).to_string(),
        r#"{"attributes":{"type":"AggregateResult"},"expr0":3,"withEmail":1,"expr1":2}"#
    );
    let e = err("SELECT LastName, COUNT(Id) FROM Contact");
    assert!(
        e.message
            .contains("Field must be grouped or aggregated: LastName"),
        "{}",
        e.message
    );
}

#[test]
fn subqueries_render_child_records_or_null() {
    let w = world();
    let rows = page_rows(
        &w,
        "SELECT Name, (SELECT LastName, Account.Name FROM Contacts ORDER BY LastName) FROM Account ORDER BY Name",
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["Name"], "Acme");
    let kids = &rows[0]["Contacts"];
    assert_eq!(kids["totalSize"], 1);
    assert_eq!(kids["done"], true);
    assert_eq!(kids["records"][0]["attributes"]["type"], "Contact");
    assert_eq!(kids["records"][0]["LastName"], "Doe");
    assert_eq!(kids["records"][0]["Account"]["Name"], "Acme");
    let rows = page_rows(
        &w,
        "SELECT LastName, (SELECT Subject FROM Tasks WHERE Status = 'Completed') FROM Contact ORDER BY LastName",
    );
    assert_eq!(rows[0]["Tasks"]["records"][0]["Subject"], "Call");
    assert_eq!(rows[1]["Tasks"], serde_json::Value::Null, "no child: null");
    assert_eq!(rows[2]["Tasks"], serde_json::Value::Null);
    let rows = page_rows(
        &w,
        "SELECT LastName, (SELECT Subject FROM Tasks WHERE Status = 'Not Started') FROM Contact ORDER BY LastName",
    );
    assert_eq!(
        rows[0]["Tasks"],
        serde_json::Value::Null,
        "filtered out: null"
    );
    let e = err("SELECT Id, (SELECT Id FROM Widgets) FROM Account");
    assert_eq!(e.code, "INVALID_TYPE", "{}", e.message);
    assert!(
        e.message
            .contains("Didn't understand relationship 'Widgets'"),
        "{}",
        e.message
    );
}

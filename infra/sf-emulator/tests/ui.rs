//! Record pages of the user interface (`/lightning/r/<Object>/<id>/view`), as a
//! link from another product opens them: only for a logged-in user of the
//! record's org, through the login page otherwise.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;
use sf_emulator::SeedRecord;

fn task(subject: &str) -> SeedRecord {
    SeedRecord {
        object: "Task".into(),
        reference: None,
        fields: json!({"Subject": subject, "Status": "Completed", "TaskSubtype": "Call"})
            .as_object()
            .unwrap()
            .clone(),
    }
}

fn sid(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.strip_prefix("sid=")
                .map(|v| v.split(';').next().unwrap().to_string())
        })
}

#[tokio::test]
async fn a_record_page_needs_a_login_and_then_shows_the_record() {
    let env = env().await;
    let id = env.emu.seed("acme", &[task("Call with Jane <b>")]).unwrap()[0].clone();
    let path = format!("/lightning/r/Task/{id}/view");

    // No session: to the login page, which will come back here.
    let r = env.http.get(env.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let login = r.headers()["location"].to_str().unwrap().to_string();
    assert!(login.starts_with("/?startURL="), "{login}");
    let page = env.http.get(env.url(&login)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains(&format!("value=\"{path}\""))
    );

    // A wrong password: no session.
    let r = env
        .http
        .post(env.url("/"))
        .form(&[
            ("username", ADMIN),
            ("password", "nope"),
            ("startURL", &path),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(sid(&r), None);

    // The login sets the session and goes back to the record.
    let r = env
        .http
        .post(env.url("/"))
        .form(&[
            ("username", ADMIN),
            ("password", "pw-Ada"),
            ("startURL", &path),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], path.as_str());
    let cookie = format!("sid={}", sid(&r).expect("a session cookie"));
    let shown = env
        .http
        .get(env.url(&path))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status(), 200);
    let html = shown.text().await.unwrap();
    assert!(
        html.contains("<h1 id=\"record-title\">Call with Jane &lt;b&gt;</h1>"),
        "{html}"
    );

    // The same id under another object, an unknown id: not found.
    for other in [
        format!("/lightning/r/Contact/{id}/view"),
        "/lightning/r/Task/00T000000000001AAA/view".to_string(),
    ] {
        let r = env
            .http
            .get(env.url(&other))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{other}");
    }
}

#[tokio::test]
async fn the_login_never_redirects_off_the_host() {
    let env = env().await;
    for start in ["https://evil.test/", "//evil.test/x", "/\\evil.test"] {
        let r = env
            .http
            .post(env.url("/"))
            .form(&[
                ("username", ADMIN),
                ("password", "pw-Ada"),
                ("startURL", start),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302);
        assert_eq!(r.headers()["location"], "/", "{start}");
    }
}

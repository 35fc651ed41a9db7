//! The settings page in a real browser (Debian's Chromium, driven over
//! WebDriver by chromedriver), against the local stack (moto, the emulator with
//! the demo org, the five function binaries behind the local HTTP API), as an
//! admin goes through the guide's step 2: save the settings (an invalid instance
//! URL first), link the account on the emulator's consent page, auto-match the
//! users and change one, sync, see a call with a working Task link, disconnect.
//! Once in French, once in English, each as a workspace of its own.
//!
//! A screenshot of every step is saved under `target/console-screenshots/<lang>/`
//! (printed on failure). With `UPDATE_SCREENSHOTS=1`, the English tabs are also
//! copied to `docs/screenshots/`, which the README shows.
//!
//! Needs `chromium` and `chromium-driver` (infra/scripts/test.sh installs them).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use local_stack::demo::{ORG, publish_modjo_users};
use local_stack::stack::{AwsTarget, LocalStack, Options, SalesforceTarget};
use serde_json::{Value, json};
use shared::domain::{ConnectionStatus, MappingSource, TenantId};
use shared::ports::{ConnectionStore, UserMappingStore};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ADMIN_USERNAME: &str = "admin@acme-demo.com";
const ADMIN_PASSWORD: &str = "demo1234";

type Step<T> = Result<T, String>;

/// chromedriver on a free loopback port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: infra/scripts/test.sh installs chromium and chromium-driver"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A new browser with an empty profile, speaking `lang`.
    async fn browser(&self, lang: &str, profile: &Path) -> Client {
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                    format!("--lang={lang}"),
                    format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": { "intl.accept_languages": lang },
            }
        });
        let caps = caps.as_object().cloned().expect("capabilities");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&self.url)
                .await
            {
                Ok(client) => return client,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot start a browser session through chromedriver: {e}"),
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the page says, in each language (from the page's own dictionary).
struct Words {
    lang: &'static str,
    ip_literal: &'static str,
    saved: &'static str,
    connected_badge: &'static str,
    disconnected_badge: &'static str,
    unmatched: &'static str,
    auto: &'static str,
    manual: &'static str,
    open_task: &'static str,
    denied: &'static str,
}

const FRENCH: Words = Words {
    lang: "fr-FR",
    ip_literal: "Utilisez votre domaine Salesforce, pas une adresse IP (par exemple https://acme.my.salesforce.com).",
    saved: "Réglages enregistrés.",
    connected_badge: "Connectée",
    disconnected_badge: "Déconnectée",
    unmatched: "Aucun utilisateur Salesforce n'a cet e-mail : choisissez-en un, ou laissez le propriétaire par défaut",
    auto: "Associé par e-mail",
    manual: "Choisi à la main",
    open_task: "Ouvrir la tâche",
    denied: "L'accès n'a pas été autorisé sur la page de Salesforce. Cliquez à nouveau sur « Associer votre compte » et choisissez Autoriser.",
};

const ENGLISH: Words = Words {
    lang: "en-US",
    ip_literal: "Use your Salesforce domain, not an IP address (for example https://acme.my.salesforce.com).",
    saved: "Settings saved.",
    connected_badge: "Connected",
    disconnected_badge: "Disconnected",
    unmatched: "No Salesforce user has this email: choose one, or leave it to the fallback owner",
    auto: "Matched by email",
    manual: "Chosen by hand",
    open_task: "Open the Task",
    denied: "Access was not allowed on Salesforce's page. Click “Link your account” again and choose Allow.",
};

/// One admin's session in the browser.
struct Session<'a> {
    stack: &'a LocalStack,
    c: Client,
    tenant: TenantId,
    words: &'a Words,
    shots: PathBuf,
    n: usize,
}

impl Session<'_> {
    /// A screenshot of the whole page (the window grows to the page's height).
    async fn shot(&mut self, name: &str) -> Step<PathBuf> {
        self.n += 1;
        let size = self
            .c
            .execute(
                "return [window.outerWidth, document.documentElement.scrollHeight + window.outerHeight - window.innerHeight]",
                vec![],
            )
            .await
            .map_err(|e| e.to_string())?;
        let (width, height) = (
            size[0].as_u64().unwrap_or(1280) as u32,
            size[1].as_u64().unwrap_or(1000).clamp(400, 4000) as u32,
        );
        let original = self.c.get_window_size().await.map_err(|e| e.to_string())?;
        self.c
            .set_window_size(width, height)
            .await
            .map_err(|e| e.to_string())?;
        let png = self.c.screenshot().await.map_err(|e| e.to_string());
        self.c
            .set_window_size(original.0 as u32, original.1 as u32)
            .await
            .map_err(|e| e.to_string())?;
        let png = png?;
        let path = self.shots.join(format!("{:02}-{name}.png", self.n));
        std::fs::write(&path, png).map_err(|e| e.to_string())?;
        Ok(path)
    }

    async fn css(&self, selector: &str) -> Step<fantoccini::elements::Element> {
        self.c
            .find(Locator::Css(selector))
            .await
            .map_err(|e| format!("{selector}: {e}"))
    }

    async fn text(&self, selector: &str) -> Step<String> {
        self.css(selector)
            .await?
            .text()
            .await
            .map_err(|e| format!("{selector}: {e}"))
    }

    async fn click(&self, selector: &str) -> Step<()> {
        self.css(selector)
            .await?
            .click()
            .await
            .map_err(|e| format!("click {selector}: {e}"))
    }

    async fn type_into(&self, selector: &str, text: &str) -> Step<()> {
        let field = self.css(selector).await?;
        field.clear().await.map_err(|e| e.to_string())?;
        field.send_keys(text).await.map_err(|e| e.to_string())
    }

    /// Waits until `selector`'s text satisfies `check`; its text.
    async fn wait_text(
        &self,
        selector: &str,
        limit: Duration,
        check: impl Fn(&str) -> bool,
    ) -> Step<String> {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < limit {
            if let Ok(text) = self.text(selector).await {
                if check(&text) {
                    return Ok(text);
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(format!(
            "{selector}: still {last:?} after {} s",
            limit.as_secs()
        ))
    }

    async fn attr(&self, selector: &str, name: &str) -> Step<Option<String>> {
        self.css(selector)
            .await?
            .attr(name)
            .await
            .map_err(|e| e.to_string())
    }

    /// The six steps of the issue.
    async fn guide(&mut self, call_id: &str) -> Step<()> {
        let emu = self.stack.emulator.as_ref().ok_or("no emulator")?;
        let w = self.words;
        let (_, key, secret) = self
            .stack
            .seeded_apps
            .iter()
            .find(|(org, _, _)| org == ORG)
            .cloned()
            .ok_or("the demo org has no connected app")?;

        // The page follows the browser's language.
        self.c
            .goto(
                &self
                    .stack
                    .console_url(self.tenant.as_str(), "usr_admin", "admin"),
            )
            .await
            .map_err(|e| e.to_string())?;
        let lang = self
            .c
            .execute("return document.documentElement.lang", vec![])
            .await
            .map_err(|e| e.to_string())?;
        if lang != json!(&w.lang[..2]) {
            return Err(format!("the page speaks {lang}, the browser {}", w.lang));
        }
        let address = self.c.current_url().await.map_err(|e| e.to_string())?;
        if address.fragment().is_some() || address.query().is_some() {
            return Err(format!("the token stayed in the address bar: {address}"));
        }
        self.wait_text("#summary", Duration::from_secs(10), |t| !t.ends_with('…'))
            .await?;

        // 1. Settings, an invalid instance URL first.
        self.type_into("#consumerKey", &key).await?;
        self.type_into("#consumerSecret", &secret).await?;
        self.type_into("#instanceUrl", "https://10.0.0.7/").await?;
        self.click("#settings-save").await?;
        let refused = self
            .wait_text("#instanceUrl-error", Duration::from_secs(10), |t| {
                !t.is_empty()
            })
            .await?;
        if refused != w.ip_literal {
            return Err(format!("the refusal reads {refused:?}"));
        }
        if self.attr("#instanceUrl", "aria-invalid").await?.as_deref() != Some("true") {
            return Err("the refused field is not marked invalid".into());
        }
        self.shot("settings-invalid-url").await?;
        self.type_into("#instanceUrl", emu.base_url()).await?;
        // Summaries as Notes: off until the admin ticks it.
        self.click("#summariesAsNotes").await?;
        self.click("#settings-save").await?;
        self.wait_text("#settings-status", Duration::from_secs(10), |t| {
            t == w.saved
        })
        .await?;
        let stored = self.stored_connection().await?;
        if !stored.summaries_as_notes {
            return Err("the ticked Notes setting was not saved".into());
        }
        self.shot("settings-saved").await?;

        // 2. Link the account on Salesforce's (the emulator's) consent page:
        // denied first, then allowed.
        self.click("#link").await?;
        self.wait_text("h2", Duration::from_secs(10), |t| t.contains("Log in"))
            .await?;
        self.click("button[value=Deny]").await?;
        let denied = self
            .wait_text("#banner", Duration::from_secs(20), |t| !t.is_empty())
            .await?;
        if denied != w.denied {
            return Err(format!("after Deny the page says {denied:?}"));
        }
        self.shot("access-denied").await?;
        self.click("#link").await?;
        self.wait_text("h2", Duration::from_secs(10), |t| t.contains("Log in"))
            .await?;
        self.type_into("#username", ADMIN_USERNAME).await?;
        self.type_into("#password", ADMIN_PASSWORD).await?;
        self.shot("consent").await?;
        self.click("button[value=Allow]").await?;
        let banner = self
            .wait_text("#banner", Duration::from_secs(20), |t| {
                t.contains(ADMIN_USERNAME)
            })
            .await?;
        let org_id = self
            .stored_connection()
            .await?
            .org_id
            .ok_or("no org id stored after linking")?;
        if !banner.contains(&org_id) {
            return Err(format!(
                "the banner does not name the org {org_id}: {banner}"
            ));
        }
        self.wait_text("#connection-badge", Duration::from_secs(5), |t| {
            t == w.connected_badge
        })
        .await?;
        self.shot("linked").await?;

        // 3. Users: auto-match, change one, save.
        self.click("#tab-users").await?;
        self.wait_text("#state-usr_newhire", Duration::from_secs(15), |t| {
            !t.is_empty()
        })
        .await?;
        self.click("#auto-match").await?;
        self.wait_text("#state-usr_newhire", Duration::from_secs(15), |t| {
            t == w.unmatched
        })
        .await?;
        self.wait_text("#state-usr_lucas", Duration::from_secs(5), |t| t == w.auto)
            .await?;
        self.shot("users-auto-matched").await?;
        let olivia = emu
            .query(
                ORG,
                "SELECT Id FROM User WHERE Username = 'olivia.brown@acme-demo.com'",
                false,
            )
            .map_err(|e| e.to_string())?
            .first()
            .and_then(|u| u["Id"].as_str().map(str::to_string))
            .ok_or("no Olivia in the demo org")?;
        self.css("#map-usr_newhire")
            .await?
            .select_by_value(&olivia)
            .await
            .map_err(|e| e.to_string())?;
        self.click("#users-save").await?;
        self.wait_text("#state-usr_newhire", Duration::from_secs(15), |t| {
            t == w.manual
        })
        .await?;
        let mapping = self
            .stack_store()
            .get_mapping(&self.tenant, "usr_newhire")
            .await
            .map_err(|e| e.to_string())?
            .ok_or("usr_newhire was not mapped in DynamoDB")?;
        if mapping.sf_user_id != olivia || mapping.source != MappingSource::Manual {
            return Err(format!("stored mapping {mapping:?}"));
        }
        self.shot("users-saved").await?;

        // 4. A sync, and its status.
        self.click("#tab-sync").await?;
        let calls_before = emu.counters(ORG).map_err(|e| e.to_string())?.api_used;
        self.click("#sync-now").await?;
        self.wait_text("#sync-progress", Duration::from_secs(5), |t| !t.is_empty())
            .await?;
        let start = Instant::now();
        while self.attr("#sync-progress", "data-state").await?.as_deref() != Some("done") {
            if start.elapsed() > Duration::from_secs(240) {
                return Err("the sync did not finish in 240 s".into());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let rows = self
            .c
            .find_all(Locator::Css("#objects-table tbody tr[data-object]"))
            .await
            .map_err(|e| e.to_string())?;
        if rows.len() < 9 {
            return Err(format!("{} objects shown after the sync", rows.len()));
        }
        let spent = emu.counters(ORG).map_err(|e| e.to_string())?.api_used - calls_before;
        let contact_calls = self
            .text("#objects-table tr[data-object=Contact] td:nth-of-type(4)")
            .await?;
        if spent == 0 || !contact_calls.chars().any(|c| c.is_ascii_digit()) {
            return Err(format!("API calls: {spent} spent, shown {contact_calls:?}"));
        }
        self.shot("sync").await?;

        // 5. A call, as Modjo's platform sends it, in the list with its Task.
        let started = (chrono::Utc::now() - chrono::Duration::minutes(30))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let event = json!({
            "version": 1, "tenantId": self.tenant.as_str(), "callId": call_id,
            "url": format!("https://app.modjo.ai/calls/{call_id}"),
            "title": "Découverte — Boulangerie Durand", "direction": "outbound",
            "startedAt": started, "durationSeconds": 640, "hostUserId": "usr_sophie",
            "participants": [
                {"role": "external", "email": "sarah.blanc@boulangeriedurand.fr"},
                {"role": "internal", "userId": "usr_sophie"}
            ]
        });
        self.stack
            .aws
            .sqs
            .send_message()
            .queue_url(&self.stack.resources.call_events_queue)
            .message_body(event.to_string())
            .send()
            .await
            .map_err(|e| format!("send the call: {e}"))?;
        self.click("#tab-calls").await?;
        let row = format!("#calls-table tr[data-call={call_id}]");
        let start = Instant::now();
        loop {
            if let Ok(state) = self.attr(&row, "data-state").await {
                if matches!(state.as_deref(), Some("created" | "enriched")) {
                    break;
                }
            }
            if start.elapsed() > Duration::from_secs(90) {
                return Err(format!("{call_id} was not logged in 90 s"));
            }
            self.click("#calls-refresh").await?;
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
        let link = format!("{row} a.task-link");
        if self.text(&link).await? != w.open_task {
            return Err("no Task link".into());
        }
        self.shot("calls").await?;
        let home = self.c.window().await.map_err(|e| e.to_string())?;
        self.click(&link).await?;
        let start = Instant::now();
        let task_window = loop {
            let windows = self.c.windows().await.map_err(|e| e.to_string())?;
            if let Some(w) = windows.into_iter().find(|w| *w != home) {
                break w;
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err("the Task link opened no tab".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        self.c
            .switch_to_window(task_window)
            .await
            .map_err(|e| e.to_string())?;
        let title = self
            .wait_text("#record-title", Duration::from_secs(10), |t| !t.is_empty())
            .await?;
        let tasks = emu
            .query(
                ORG,
                &format!("SELECT Subject FROM Task WHERE CallObject = 'modjo:{call_id}'"),
                false,
            )
            .map_err(|e| e.to_string())?;
        let subject = tasks
            .first()
            .and_then(|t| t["Subject"].as_str())
            .map(str::to_string);
        if subject.as_deref() != Some(title.as_str()) {
            return Err(format!(
                "the Task page shows {title:?}, Salesforce has {subject:?}"
            ));
        }
        self.shot("task-in-salesforce").await?;
        self.c.close_window().await.map_err(|e| e.to_string())?;
        self.c
            .switch_to_window(home)
            .await
            .map_err(|e| e.to_string())?;

        // 6. Disconnect, after the confirmation.
        self.click("#tab-settings").await?;
        self.click("#disconnect").await?;
        self.wait_text("#confirm-title", Duration::from_secs(5), |t| !t.is_empty())
            .await?;
        self.shot("disconnect-confirm").await?;
        self.click("#confirm-ok").await?;
        self.wait_text("#connection-badge", Duration::from_secs(20), |t| {
            t == w.disconnected_badge
        })
        .await?;
        let stored = self.stored_connection().await?;
        if stored.status != ConnectionStatus::Disconnected {
            return Err(format!("stored status {:?}", stored.status));
        }
        self.shot("disconnected").await?;
        Ok(())
    }

    fn stack_store(&self) -> shared::adapters::dynamo::DynamoStore {
        shared::adapters::dynamo::DynamoStore::new(
            self.stack.aws.dynamodb.clone(),
            &self.stack.resources.table,
        )
    }

    /// The tenant's connection as DynamoDB holds it.
    async fn stored_connection(&self) -> Step<shared::domain::Connection> {
        self.stack_store()
            .get_connection(&self.tenant)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "no connection".to_string())
    }

    /// Keyboard: the tabs answer the arrow keys, and the page reads on a phone.
    async fn keyboard_and_phone(&mut self) -> Step<()> {
        self.click("#tab-settings").await?;
        self.css("#tab-settings")
            .await?
            .send_keys("\u{e014}")
            .await
            .map_err(|e| e.to_string())?;
        let selected = self.attr("#tab-users", "aria-selected").await?;
        let focused = self
            .c
            .execute("return document.activeElement.id", vec![])
            .await
            .map_err(|e| e.to_string())?;
        if selected.as_deref() != Some("true") || focused != json!("tab-users") {
            return Err(format!(
                "ArrowRight on Settings: Users selected {selected:?}, focus on {focused}"
            ));
        }
        self.c
            .set_window_size(390, 844)
            .await
            .map_err(|e| e.to_string())?;
        self.click("#tab-calls").await?;
        let overflow = self
            .c
            .execute(
                "return document.documentElement.scrollWidth > window.innerWidth",
                vec![],
            )
            .await
            .map_err(|e| e.to_string())?;
        if overflow != Value::Bool(false) {
            return Err("the page scrolls sideways on a phone".into());
        }
        self.shot("phone-calls").await?;
        self.c
            .set_window_size(1280, 1000)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

async fn run(
    stack: &LocalStack,
    driver: &Driver,
    words: &'static Words,
    shots: &Path,
) -> Result<(), String> {
    let tenant =
        TenantId::parse(&format!("console-{}", &words.lang[..2])).map_err(|e| e.to_string())?;
    publish_modjo_users(stack, tenant.as_str()).await?;
    let profile = shots.join("profile");
    std::fs::create_dir_all(&profile).map_err(|e| e.to_string())?;
    let c = driver.browser(words.lang, &profile).await;
    let mut session = Session {
        stack,
        c: c.clone(),
        tenant,
        words,
        shots: shots.to_path_buf(),
        n: 0,
    };
    let call_id = format!("browser_call_{}", &words.lang[..2]);
    let mut result = session.guide(&call_id).await;
    if result.is_ok() {
        result = session.keyboard_and_phone().await;
    }
    if result.is_err() {
        let _ = session.shot("failure").await;
    }
    let _ = c.close().await;
    let _ = std::fs::remove_dir_all(&profile);
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_completes_the_guide_in_the_browser_in_french_and_in_english() {
    let root = local_stack::repo_root();
    let shots_root = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("console-screenshots");
    let driver = Driver::start();
    let stack = LocalStack::start(Options {
        schedule_every: Duration::from_secs(3600),
        ..Options::new(
            0,
            local_stack::functions::built_for_tests(),
            std::env::temp_dir().join(format!("modjo-console-logs-{}", std::process::id())),
            SalesforceTarget::Emulator {
                seed: root.join("infra/sf-emulator/demo-org.json"),
            },
            AwsTarget::Moto,
        )
    })
    .await
    .expect("the local stack starts");

    let mut failures = Vec::new();
    for words in [&FRENCH, &ENGLISH] {
        let shots = shots_root.join(&words.lang[..2]);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).expect("screenshot folder");
        if let Err(e) = run(&stack, &driver, words, &shots).await {
            failures.push(format!(
                "{}: {e}\n  screenshots: {}\n  function logs: {}",
                words.lang,
                shots.display(),
                stack.log_dir.display()
            ));
        }
    }
    stack.shutdown().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        let docs = root.join("docs/screenshots");
        std::fs::create_dir_all(&docs).expect("docs/screenshots");
        let en = shots_root.join("en");
        for (from, to) in [
            ("05-linked.png", "settings.png"),
            ("07-users-saved.png", "users.png"),
            ("08-sync.png", "sync.png"),
            ("09-calls.png", "calls.png"),
            ("13-phone-calls.png", "phone-calls.png"),
        ] {
            std::fs::copy(en.join(from), docs.join(to)).unwrap_or_else(|e| panic!("{from}: {e}"));
        }
    }
}

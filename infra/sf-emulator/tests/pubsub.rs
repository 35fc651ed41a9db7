//! Pub/Sub API conformance: a tonic client built from the emulator's
//! hand-written messages drives `eventbus.v1.PubSub`; payloads are decoded
//! with apache-avro and the schema that GetSchema returns.
#![allow(clippy::unwrap_used)]

use apache_avro::types::Value as Avro;
use serde_json::{Value, json};
use sf_emulator::cdc::{decode_bitmap_fields, schema_for_topic};
use sf_emulator::pubsub::proto::{
    FetchRequest, FetchResponse, ReplayPreset, SchemaInfo, SchemaRequest, TopicInfo, TopicRequest,
};
use sf_emulator::{AppSpec, Emulator, EventType, Fault, Options, OrgSpec, UserSpec};
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};

const OPP: &str = "/data/OpportunityChangeEvent";
const OCR: &str = "/data/OpportunityContactRoleChangeEvent";
const CONTACT: &str = "/data/ContactChangeEvent";
const ADMIN: &str = "admin@acme.test";
const V: &str = "/services/data/v62.0";

struct Px {
    emu: Emulator,
    http: reqwest::Client,
    token: String,
    org_id: String,
    key: String,
}

async fn setup(cdc: &[&str]) -> Px {
    let emu = Emulator::start(Options {
        pubsub: true,
        pubsub_keepalive: Duration::from_millis(200),
        ..Default::default()
    })
    .await
    .unwrap();
    let org = emu
        .create_org(OrgSpec {
            key: Some("acme".into()),
            cdc: cdc.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .unwrap();
    emu.create_user(
        "acme",
        UserSpec {
            username: ADMIN.into(),
            email: ADMIN.into(),
            last_name: "Admin".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let app = emu
        .create_app(
            "acme",
            AppSpec {
                callback_url: "http://127.0.0.1:9/cb".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let mut px = Px {
        emu,
        http: reqwest::Client::new(),
        token: String::new(),
        org_id: org.org_id,
        key: app.consumer_key,
    };
    px.token = px.mint();
    px
}

impl Px {
    fn mint(&self) -> String {
        let t = self.emu.mint_tokens("acme", &self.key, ADMIN).unwrap();
        t["access_token"].as_str().unwrap().to_string()
    }

    async fn rest(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        client: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("{}{V}{path}", self.emu.base_url());
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.http.request(m, url).bearer_auth(&self.token);
        if let Some(c) = client {
            rb = rb.header("Sforce-Call-Options", format!("client={c}"));
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn create_opp(&self, name: &str, client: Option<&str>) -> String {
        let (s, b) = self
            .rest(
                "POST",
                "/sobjects/Opportunity",
                Some(json!({"Name": name, "StageName": "Prospecting", "CloseDate": "2026-03-01", "Amount": 1200.5})),
                client,
            )
            .await;
        assert_eq!(s, 201, "{b}");
        b["id"].as_str().unwrap().to_string()
    }

    async fn client(&self) -> PubSubClient {
        PubSubClient::connect(&self.emu.pubsub_url().unwrap(), self.auth()).await
    }

    fn auth(&self) -> Auth {
        Auth {
            token: self.token.clone(),
            instance: self.emu.base_url().to_string(),
            tenant: self.org_id.clone(),
        }
    }
}

#[derive(Clone)]
struct Auth {
    token: String,
    instance: String,
    tenant: String,
}

/// A client in the shape tonic-build generates, over the emulator's messages.
struct PubSubClient {
    inner: tonic::client::Grpc<Channel>,
    auth: Auth,
}

impl PubSubClient {
    async fn connect(url: &str, auth: Auth) -> PubSubClient {
        let ch = Channel::from_shared(url.to_string())
            .unwrap()
            .connect()
            .await
            .unwrap();
        PubSubClient {
            inner: tonic::client::Grpc::new(ch),
            auth,
        }
    }

    fn request<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        let md = r.metadata_mut();
        if !self.auth.token.is_empty() {
            md.insert("accesstoken", self.auth.token.parse().unwrap());
        }
        md.insert("instanceurl", self.auth.instance.parse().unwrap());
        md.insert("tenantid", self.auth.tenant.parse().unwrap());
        r
    }

    async fn get_topic(&mut self, topic: &str) -> Result<TopicInfo, Status> {
        self.inner.ready().await.unwrap();
        let req = self.request(TopicRequest {
            topic_name: topic.into(),
        });
        let path = http::uri::PathAndQuery::from_static("/eventbus.v1.PubSub/GetTopic");
        self.inner
            .unary(req, path, tonic_prost::ProstCodec::default())
            .await
            .map(|r| r.into_inner())
    }

    async fn get_schema(&mut self, id: &str) -> Result<SchemaInfo, Status> {
        self.inner.ready().await.unwrap();
        let req = self.request(SchemaRequest {
            schema_id: id.into(),
        });
        let path = http::uri::PathAndQuery::from_static("/eventbus.v1.PubSub/GetSchema");
        self.inner
            .unary(req, path, tonic_prost::ProstCodec::default())
            .await
            .map(|r| r.into_inner())
    }

    /// Opens a subscription: the first FetchRequest is sent at once.
    async fn subscribe(
        &mut self,
        first: FetchRequest,
    ) -> Result<
        (
            tokio::sync::mpsc::UnboundedSender<FetchRequest>,
            Streaming<FetchResponse>,
        ),
        Status,
    > {
        self.inner.ready().await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<FetchRequest>();
        tx.send(first).unwrap();
        let stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
        let req = self.request(stream);
        let path = http::uri::PathAndQuery::from_static("/eventbus.v1.PubSub/Subscribe");
        let resp = self
            .inner
            .streaming(req, path, tonic_prost::ProstCodec::default())
            .await?;
        Ok((tx, resp.into_inner()))
    }
}

fn fetch(topic: &str, preset: ReplayPreset, replay: Vec<u8>, n: i32) -> FetchRequest {
    FetchRequest {
        topic_name: topic.into(),
        replay_preset: preset as i32,
        replay_id: replay,
        num_requested: n,
        auth_refresh: String::new(),
    }
}

async fn next(s: &mut Streaming<FetchResponse>) -> Result<FetchResponse, Status> {
    match tokio::time::timeout(Duration::from_secs(5), s.message()).await {
        Ok(Ok(Some(m))) => Ok(m),
        Ok(Ok(None)) => panic!("stream ended"),
        Ok(Err(e)) => Err(e),
        Err(_) => panic!("no message within 5 s"),
    }
}

/// Next response carrying events (keepalives skipped).
async fn next_events(s: &mut Streaming<FetchResponse>) -> FetchResponse {
    loop {
        let r = next(s).await.unwrap();
        if !r.events.is_empty() {
            return r;
        }
    }
}

fn error_code(s: &Status) -> String {
    s.metadata()
        .get("error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn to_json(v: Avro) -> Value {
    match v {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => json!(b),
        Avro::Int(i) => json!(i),
        Avro::Long(l) => json!(l),
        Avro::Double(d) => json!(d),
        Avro::String(s) => json!(s),
        Avro::Enum(_, s) => json!(s),
        Avro::Union(_, inner) => to_json(*inner),
        Avro::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Avro::Record(fields) => {
            let mut m = serde_json::Map::new();
            for (k, v) in fields {
                m.insert(k, to_json(v));
            }
            Value::Object(m)
        }
        other => panic!("unexpected Avro value {other:?}"),
    }
}

/// Decodes an event's payload with the schema fetched by its id.
async fn decode(c: &mut PubSubClient, schema_id: &str, payload: &[u8]) -> Value {
    let info = c.get_schema(schema_id).await.unwrap();
    let schema = apache_avro::Schema::parse_str(&info.schema_json).unwrap();
    let mut r = payload;
    let v = apache_avro::from_avro_datum(&schema, &mut r, None).unwrap();
    assert!(r.is_empty(), "the datum is the whole payload");
    to_json(v)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn fields(topic: &str, bitmaps: &Value) -> Vec<String> {
    let mut f = decode_bitmap_fields(schema_for_topic(topic).unwrap(), &strings(bitmaps));
    f.sort();
    f
}

fn u64_of(b: &[u8]) -> u64 {
    u64::from_be_bytes(b.try_into().unwrap())
}

#[tokio::test]
async fn get_topic_and_schema() {
    let px = setup(&["Opportunity", "OpportunityContactRole"]).await;
    let mut c = px.client().await;
    let t = c.get_topic(OPP).await.unwrap();
    assert_eq!(t.topic_name, OPP);
    assert_eq!(t.tenant_guid, px.org_id);
    assert!(t.can_subscribe && !t.can_publish);
    assert_eq!(t.schema_id.len(), 22);
    assert!(!t.rpc_id.is_empty());
    let s = c.get_schema(&t.schema_id).await.unwrap();
    assert_eq!(s.schema_id, t.schema_id);
    let parsed = apache_avro::Schema::parse_str(&s.schema_json).unwrap();
    let apache_avro::Schema::Record(rec) = parsed else {
        panic!("record")
    };
    assert_eq!(rec.name.name, "OpportunityChangeEvent");
    assert_eq!(rec.name.namespace.as_deref(), Some("com.sforce.eventbus"));
    assert_eq!(rec.fields[0].name, "ChangeEventHeader");
    let j: Value = serde_json::from_str(&s.schema_json).unwrap();
    let amount = j["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Amount")
        .unwrap();
    assert_eq!(amount["type"], json!(["null", "double"]));
    assert_eq!(amount["default"], Value::Null);
    let close = j["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "CloseDate")
        .unwrap();
    assert_eq!(close["type"], json!(["null", "long"]));
    // Stable: the same id on another emulator.
    let other = setup(&["Opportunity"]).await;
    let mut c2 = other.client().await;
    assert_eq!(c2.get_topic(OPP).await.unwrap().schema_id, t.schema_id);
    // OCR topic, the multi-entity channel.
    assert_ne!(c.get_topic(OCR).await.unwrap().schema_id, t.schema_id);
    assert_eq!(
        c.get_topic("/data/ChangeEvents").await.unwrap().schema_id,
        ""
    );
    // Unknown topic; topic of an object without CDC; unknown schema.
    for topic in ["/data/NopeChangeEvent", CONTACT, "OpportunityChangeEvent"] {
        let e = c.get_topic(topic).await.unwrap_err();
        assert_eq!(e.code(), Code::NotFound, "{topic}");
        assert!(
            e.message().contains("not found") && e.message().contains("rpcId: "),
            "{}",
            e.message()
        );
        assert_eq!(
            error_code(&e),
            "sfdc.platform.eventbus.grpc.topic.not.found"
        );
    }
    assert_eq!(
        c.get_schema("nope").await.unwrap_err().code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn authentication_errors() {
    let px = setup(&["Opportunity"]).await;
    let url = px.emu.pubsub_url().unwrap();
    let good = px.auth();
    let cases = [
        Auth {
            token: String::new(),
            ..good.clone()
        },
        Auth {
            token: "00Dbogus!token".into(),
            ..good.clone()
        },
        Auth {
            tenant: "00D000000000001AAA".into(),
            ..good.clone()
        },
        Auth {
            instance: "https://other.my.salesforce.com".into(),
            ..good.clone()
        },
    ];
    for auth in cases {
        let mut c = PubSubClient::connect(&url, auth).await;
        let e = c.get_topic(OPP).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        assert_eq!(
            error_code(&e),
            "sfdc.platform.eventbus.grpc.service.auth.error"
        );
        let e = c
            .subscribe(fetch(OPP, ReplayPreset::Latest, vec![], 1))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
    }
    // A 15-character tenant id is accepted.
    let mut c = PubSubClient::connect(
        &url,
        Auth {
            tenant: good.tenant[..15].into(),
            ..good
        },
    )
    .await;
    c.get_topic(OPP).await.unwrap();
}

#[tokio::test]
async fn subscribe_latest_and_decode_create_update_delete_undelete() {
    let px = setup(&["Opportunity"]).await;
    let mut c = px.client().await;
    let (_tx, mut s) = c
        .subscribe(fetch(OPP, ReplayPreset::Latest, vec![], 10))
        .await
        .unwrap();
    let id = px.create_opp("Big deal", Some("modjo")).await;

    let r = next_events(&mut s).await;
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.pending_num_requested, 9);
    let e = &r.events[0];
    assert_eq!(r.latest_replay_id, e.replay_id);
    let pe = e.event.as_ref().unwrap();
    assert_eq!(pe.id.len(), 36);
    let v = decode(&mut c, &pe.schema_id, &pe.payload).await;
    let h = &v["ChangeEventHeader"];
    assert_eq!(h["entityName"], "Opportunity");
    assert_eq!(h["changeType"], "CREATE");
    assert_eq!(strings(&h["recordIds"]), vec![id.clone()]);
    assert_eq!(
        h["changeOrigin"],
        "com/salesforce/api/rest/62.0;client=modjo"
    );
    assert_eq!(h["sequenceNumber"], 1);
    assert_eq!(h["changedFields"], json!([]));
    assert_eq!(h["nulledFields"], json!([]));
    assert_eq!(h["diffFields"], json!([]));
    assert!(h["commitTimestamp"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(h["commitNumber"].as_i64().unwrap() > 0);
    assert_eq!(h["commitUser"].as_str().unwrap().len(), 18);
    assert!(!h["transactionKey"].as_str().unwrap().is_empty());
    assert_eq!(v["Name"], "Big deal");
    assert_eq!(v["StageName"], "Prospecting");
    assert_eq!(v["Amount"], 1200.5);
    assert_eq!(v["IsClosed"], false);
    // Dates: days since the epoch; datetimes: epoch milliseconds.
    assert_eq!(v["CloseDate"], 20_513);
    assert_eq!(v["CreatedDate"].as_i64().unwrap() % 1000, 0);
    assert!(v["CreatedDate"].as_i64().unwrap() > 1_600_000_000_000);
    assert_eq!(v["OwnerId"].as_str().unwrap().len(), 18);
    assert_eq!(v["Description"], Value::Null);
    assert!(
        v.get("Id").is_none() && v.get("SystemModstamp").is_none() && v.get("IsDeleted").is_none()
    );

    // UPDATE: only the changed fields carry values; nulled fields listed.
    let (st, b) = px
        .rest(
            "PATCH",
            &format!("/sobjects/Opportunity/{id}"),
            Some(json!({"StageName": "Closed Won", "Amount": null})),
            None,
        )
        .await;
    assert_eq!(st, 204, "{b}");
    let r = next_events(&mut s).await;
    let pe = r.events[0].event.as_ref().unwrap();
    let v = decode(&mut c, &pe.schema_id, &pe.payload).await;
    let h = &v["ChangeEventHeader"];
    assert_eq!(h["changeType"], "UPDATE");
    assert_eq!(h["changeOrigin"], "com/salesforce/api/rest/62.0");
    assert_eq!(
        fields(OPP, &h["changedFields"]),
        vec![
            "Amount",
            "IsClosed",
            "IsWon",
            "LastModifiedDate",
            "StageName"
        ]
    );
    assert_eq!(fields(OPP, &h["nulledFields"]), vec!["Amount"]);
    assert_eq!(v["StageName"], "Closed Won");
    assert_eq!(v["IsWon"], true);
    assert_eq!(v["Amount"], Value::Null);
    assert_eq!(v["Name"], Value::Null, "unchanged fields are null");
    assert!(v["LastModifiedDate"].is_i64());
    assert_eq!(r.latest_replay_id, r.events[0].replay_id);

    // DELETE: the header only.
    let (st, _) = px
        .rest("DELETE", &format!("/sobjects/Opportunity/{id}"), None, None)
        .await;
    assert_eq!(st, 204);
    let r = next_events(&mut s).await;
    let pe = r.events[0].event.as_ref().unwrap();
    let v = decode(&mut c, &pe.schema_id, &pe.payload).await;
    assert_eq!(v["ChangeEventHeader"]["changeType"], "DELETE");
    assert_eq!(v["ChangeEventHeader"]["changedFields"], json!([]));
    let obj = v.as_object().unwrap();
    assert!(
        obj.iter()
            .all(|(k, v)| k == "ChangeEventHeader" || v.is_null())
    );

    // UNDELETE (control API): every field; not made through the API.
    px.emu.undelete("acme", &[&id]).unwrap();
    let r = next_events(&mut s).await;
    let pe = r.events[0].event.as_ref().unwrap();
    let v = decode(&mut c, &pe.schema_id, &pe.payload).await;
    assert_eq!(v["ChangeEventHeader"]["changeType"], "UNDELETE");
    assert_eq!(v["ChangeEventHeader"]["changeOrigin"], "");
    assert_eq!(v["Name"], "Big deal");
    assert_eq!(v["StageName"], "Closed Won");
    assert_eq!(r.pending_num_requested, 6);
}

#[tokio::test]
async fn earliest_and_custom_replay() {
    let px = setup(&["Opportunity"]).await;
    let ids = [
        px.create_opp("A", None).await,
        px.create_opp("B", None).await,
        px.create_opp("C", None).await,
    ];
    let mut c = px.client().await;
    let (_tx, mut s) = c
        .subscribe(fetch(OPP, ReplayPreset::Earliest, vec![], 100))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        got.extend(next_events(&mut s).await.events);
    }
    let replays: Vec<u64> = got.iter().map(|e| u64_of(&e.replay_id)).collect();
    assert!(replays.windows(2).all(|w| w[0] < w[1]), "{replays:?}");
    let mut seen = Vec::new();
    for e in &got {
        let pe = e.event.as_ref().unwrap();
        let v = decode(&mut c, &pe.schema_id, &pe.payload).await;
        seen.push(strings(&v["ChangeEventHeader"]["recordIds"])[0].clone());
    }
    assert_eq!(seen, ids.to_vec());

    // CUSTOM starts strictly after the given id.
    let (_tx2, mut s2) = c
        .subscribe(fetch(
            OPP,
            ReplayPreset::Custom,
            got[0].replay_id.clone(),
            100,
        ))
        .await
        .unwrap();
    let mut after = Vec::new();
    while after.len() < 2 {
        after.extend(next_events(&mut s2).await.events);
    }
    assert_eq!(after[0].replay_id, got[1].replay_id);
    assert_eq!(after[1].replay_id, got[2].replay_id);

    // CUSTOM from the tip: nothing but keepalives carrying it.
    let tip = px.emu.latest_replay_id("acme").unwrap();
    assert_eq!(tip, got[2].replay_id);
    let (_tx3, mut s3) = c
        .subscribe(fetch(OPP, ReplayPreset::Custom, tip.clone(), 5))
        .await
        .unwrap();
    let k = next(&mut s3).await.unwrap();
    assert!(k.events.is_empty());
    assert_eq!(k.latest_replay_id, tip);

    // CUSTOM without a replay id; a malformed one; one beyond the tip.
    let e = c
        .subscribe(fetch(OPP, ReplayPreset::Custom, vec![], 5))
        .await;
    let e = match e {
        Ok((_t, mut s)) => next(&mut s).await.unwrap_err(),
        Err(e) => e,
    };
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        error_code(&e),
        "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed"
    );
    for bad in [vec![1, 2, 3], (u64_of(&tip) + 5).to_be_bytes().to_vec()] {
        let (_t, mut s) = c
            .subscribe(fetch(OPP, ReplayPreset::Custom, bad, 5))
            .await
            .unwrap();
        let e = next(&mut s).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(
            error_code(&e),
            "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
        );
    }
}

#[tokio::test]
async fn flow_control() {
    let px = setup(&["Opportunity"]).await;
    for i in 0..5 {
        px.create_opp(&format!("O{i}"), None).await;
    }
    let mut c = px.client().await;
    let (tx, mut s) = c
        .subscribe(fetch(OPP, ReplayPreset::Earliest, vec![], 2))
        .await
        .unwrap();
    let mut n = 0;
    let mut last_pending = -1;
    while n < 2 {
        let r = next_events(&mut s).await;
        n += r.events.len();
        last_pending = r.pending_num_requested;
    }
    assert_eq!(n, 2);
    assert_eq!(last_pending, 0);
    // Nothing more (no events, no keepalives) until more is requested.
    assert!(
        tokio::time::timeout(Duration::from_millis(700), s.message())
            .await
            .is_err()
    );
    tx.send(fetch("", ReplayPreset::Latest, vec![], 2)).unwrap();
    let mut n = 0;
    while n < 2 {
        n += next_events(&mut s).await.events.len();
    }
    assert_eq!(n, 2);
    // More than 100 requested: the server counts 100.
    tx.send(fetch(OPP, ReplayPreset::Latest, vec![], 150))
        .unwrap();
    let r = next_events(&mut s).await;
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.pending_num_requested, 99);
    let k = next(&mut s).await.unwrap();
    assert!(k.events.is_empty());
    assert_eq!(k.pending_num_requested, 99);
    // A non-positive count fails the stream.
    tx.send(fetch("", ReplayPreset::Latest, vec![], 0)).unwrap();
    let e = loop {
        match next(&mut s).await {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        error_code(&e),
        "sfdc.platform.eventbus.grpc.subscription.fetch.requested.events.invalid"
    );

    // Another topic in a later request fails the stream.
    let (tx, mut s) = c
        .subscribe(fetch(OPP, ReplayPreset::Latest, vec![], 1))
        .await
        .unwrap();
    tx.send(fetch(OCR, ReplayPreset::Latest, vec![], 1))
        .unwrap();
    let e = loop {
        match next(&mut s).await {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(e.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn keepalives_carry_the_latest_replay_id() {
    let px = setup(&["Opportunity", "OpportunityContactRole"]).await;
    px.create_opp("X", None).await;
    let mut c = px.client().await;
    let (_tx, mut s) = c
        .subscribe(fetch(OPP, ReplayPreset::Latest, vec![], 5))
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    let k = next(&mut s).await.unwrap();
    assert!(k.events.is_empty());
    assert_eq!(k.pending_num_requested, 5);
    assert_eq!(k.latest_replay_id, px.emu.latest_replay_id("acme").unwrap());
    assert!(!k.rpc_id.is_empty());
    let k2 = next(&mut s).await.unwrap();
    assert!(k2.events.is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(300));
    // An event on another topic moves the bus: the keepalive follows it.
    let opp = px.create_opp("Y", None).await;
    let _ = next_events(&mut s).await;
    let contact = px
        .emu
        .seed(
            "acme",
            &[sf_emulator::SeedRecord {
                object: "Contact".into(),
                reference: None,
                fields: json!({"LastName": "Doe"}).as_object().unwrap().clone(),
            }],
        )
        .unwrap();
    px.emu
        .seed(
            "acme",
            &[sf_emulator::SeedRecord {
                object: "OpportunityContactRole".into(),
                reference: None,
                fields: json!({"OpportunityId": opp, "ContactId": contact[0]})
                    .as_object()
                    .unwrap()
                    .clone(),
            }],
        )
        .unwrap();
    let tip = px.emu.latest_replay_id("acme").unwrap();
    let k3 = loop {
        let k = next(&mut s).await.unwrap();
        assert!(k.events.is_empty(), "no OCR event on the Opportunity topic");
        if k.latest_replay_id == tip {
            break k;
        }
    };
    assert_eq!(k3.pending_num_requested, 4);
}

#[tokio::test]
async fn bitmaps_including_nested_compound_fields() {
    let px = setup(&["Contact"]).await;
    let mut c = px.client().await;
    let (_tx, mut s) = c
        .subscribe(fetch(CONTACT, ReplayPreset::Latest, vec![], 10))
        .await
        .unwrap();
    let (st, b) = px
        .rest("POST", "/sobjects/Contact", Some(json!({"LastName": "Doe", "FirstName": "Jane", "Salutation": "Ms.", "Email": "j@x.test"})), None)
        .await;
    assert_eq!(st, 201, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    let r = next_events(&mut s).await;
    let pe = r.events[0].event.as_ref().unwrap();
    let v = decode(&mut c, &pe.schema_id, &pe.payload).await;
    assert_eq!(
        v["Name"],
        json!({"Salutation": "Ms.", "FirstName": "Jane", "LastName": "Doe"})
    );
    assert_eq!(v["MailingAddress"], Value::Null);
    assert_eq!(v["Email"], "j@x.test");

    let (st, _) = px
        .rest("PATCH", &format!("/sobjects/Contact/{id}"), Some(json!({"FirstName": "Janet", "Salutation": null, "MailingCity": "Paris", "Title": "CEO"})), None)
        .await;
    assert_eq!(st, 204);
    let r = next_events(&mut s).await;
    let pe = r.events[0].event.as_ref().unwrap();
    let schema = c.get_schema(&pe.schema_id).await.unwrap();
    let j: Value = serde_json::from_str(&schema.schema_json).unwrap();
    let tops: Vec<&str> = j["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let name_pos = tops.iter().position(|n| *n == "Name").unwrap();
    let addr_pos = tops.iter().position(|n| *n == "MailingAddress").unwrap();
    let title_pos = tops.iter().position(|n| *n == "Title").unwrap();
    let lmd_pos = tops.iter().position(|n| *n == "LastModifiedDate").unwrap();
    let v = decode(&mut c, &pe.schema_id, &pe.payload).await;
    let h = &v["ChangeEventHeader"];
    // Encoding: the top-level bitmap (bit i = field position i, big-endian
    // hex, whole bytes), then "N-0x…" for members of compound field N
    // (Name = Salutation, FirstName, LastName; MailingAddress = City, Country).
    let mut top = 0u128;
    top |= 1 << title_pos;
    top |= 1 << lmd_pos;
    let bytes = (128 - top.leading_zeros()).div_ceil(8) as usize;
    let expected_top = format!("0x{:0width$X}", top, width = bytes * 2);
    assert!(name_pos < addr_pos);
    assert_eq!(
        strings(&h["changedFields"]),
        vec![
            expected_top,
            format!("{name_pos}-0x03"),
            format!("{addr_pos}-0x01")
        ]
    );
    assert_eq!(
        strings(&h["nulledFields"]),
        vec![format!("{name_pos}-0x01")]
    );
    assert_eq!(
        fields(CONTACT, &h["changedFields"]),
        vec![
            "LastModifiedDate",
            "MailingAddress.City",
            "Name.FirstName",
            "Name.Salutation",
            "Title"
        ]
    );
    assert_eq!(fields(CONTACT, &h["nulledFields"]), vec!["Name.Salutation"]);
    assert_eq!(
        v["Name"],
        json!({"Salutation": null, "FirstName": "Janet", "LastName": null})
    );
    assert_eq!(
        v["MailingAddress"],
        json!({"City": "Paris", "Country": null})
    );
    assert_eq!(v["Title"], "CEO");
    assert_eq!(v["Email"], Value::Null);
}

#[tokio::test]
async fn one_event_for_records_changed_together() {
    let px = setup(&["Opportunity", "OpportunityContactRole"]).await;
    let ids = [
        px.create_opp("A", None).await,
        px.create_opp("B", None).await,
        px.create_opp("C", None).await,
    ];
    let mut c = px.client().await;
    let (_tx, mut s) = c
        .subscribe(fetch(OPP, ReplayPreset::Latest, vec![], 10))
        .await
        .unwrap();
    let records: Vec<Value> = ids
        .iter()
        .map(|id| json!({"attributes": {"type": "Opportunity"}, "id": id, "NextStep": "Call back"}))
        .collect();
    let (st, b) = px
        .rest(
            "PATCH",
            "/composite/sobjects",
            Some(json!({"allOrNone": true, "records": records})),
            Some("bulk"),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let r = next_events(&mut s).await;
    assert_eq!(r.events.len(), 1, "one event for the three records");
    let pe = r.events[0].event.as_ref().unwrap();
    let v = decode(&mut c, &pe.schema_id, &pe.payload).await;
    let h = &v["ChangeEventHeader"];
    assert_eq!(strings(&h["recordIds"]), ids.to_vec());
    assert_eq!(h["changeType"], "UPDATE");
    assert_eq!(
        h["changeOrigin"],
        "com/salesforce/api/rest/62.0;client=bulk"
    );
    assert_eq!(
        fields(OPP, &h["changedFields"]),
        vec!["LastModifiedDate", "NextStep"]
    );
    assert_eq!(v["NextStep"], "Call back");
    // Different values: separate events of one transaction.
    let records: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| json!({"attributes": {"type": "Opportunity"}, "id": id, "NextStep": format!("step {i}")}))
        .collect();
    let (st, _) = px
        .rest(
            "PATCH",
            "/composite/sobjects",
            Some(json!({"records": records})),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let mut evs = Vec::new();
    while evs.len() < 3 {
        evs.extend(next_events(&mut s).await.events);
    }
    let mut keys = Vec::new();
    for (i, e) in evs.iter().enumerate() {
        let pe = e.event.as_ref().unwrap();
        let v = decode(&mut c, &pe.schema_id, &pe.payload).await;
        assert_eq!(v["ChangeEventHeader"]["sequenceNumber"], i as i64 + 1);
        keys.push(
            v["ChangeEventHeader"]["transactionKey"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert!(keys.iter().all(|k| *k == keys[0]));
}

#[tokio::test]
async fn cdc_disabled_produces_no_events() {
    let px = setup(&[]).await;
    let mut c = px.client().await;
    let e = c
        .subscribe(fetch(OPP, ReplayPreset::Latest, vec![], 1))
        .await;
    let e = match e {
        Ok((_t, mut s)) => next(&mut s).await.unwrap_err(),
        Err(e) => e,
    };
    assert_eq!(e.code(), Code::NotFound);
    let id = px.create_opp("quiet", None).await;
    assert!(px.emu.cdc_events("acme").unwrap().is_empty());
    assert_eq!(px.emu.latest_replay_id("acme").unwrap(), vec![0; 8]);
    px.emu.set_cdc("acme", "Opportunity", true).unwrap();
    assert_eq!(px.emu.cdc_objects("acme").unwrap(), vec!["Opportunity"]);
    let (_tx, mut s) = c
        .subscribe(fetch(OPP, ReplayPreset::Earliest, vec![], 5))
        .await
        .unwrap();
    let k = next(&mut s).await.unwrap();
    assert!(
        k.events.is_empty(),
        "changes made while CDC was off are not published"
    );
    let (st, _) = px
        .rest(
            "PATCH",
            &format!("/sobjects/Opportunity/{id}"),
            Some(json!({"NextStep": "go"})),
            None,
        )
        .await;
    assert_eq!(st, 204);
    assert_eq!(next_events(&mut s).await.events.len(), 1);
    px.emu.set_cdc("acme", "Opportunity", false).unwrap();
    px.create_opp("quiet again", None).await;
    assert_eq!(px.emu.cdc_events("acme").unwrap().len(), 1);
    assert!(px.emu.set_cdc("acme", "Task", true).is_err());
}

#[tokio::test]
async fn gap_and_overflow_events() {
    let px = setup(&["Opportunity"]).await;
    let a = px.create_opp("A", None).await;
    let b = px.create_opp("B", None).await;
    let mut c = px.client().await;
    let (_tx, mut s) = c
        .subscribe(fetch(OPP, ReplayPreset::Latest, vec![], 10))
        .await
        .unwrap();
    px.emu
        .inject_gap("acme", EventType::GapUpdate, &[&a, &b[..15]])
        .unwrap();
    px.emu.inject_gap_overflow("acme", "Opportunity").unwrap();
    let mut evs = Vec::new();
    while evs.len() < 2 {
        evs.extend(next_events(&mut s).await.events);
    }
    let pe = evs[0].event.as_ref().unwrap();
    let v = decode(&mut c, &pe.schema_id, &pe.payload).await;
    let h = &v["ChangeEventHeader"];
    assert_eq!(h["changeType"], "GAP_UPDATE");
    assert_eq!(strings(&h["recordIds"]), vec![a.clone(), b.clone()]);
    assert_eq!(h["sequenceNumber"], 1);
    assert!(
        v.as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| k == "ChangeEventHeader" || v.is_null())
    );
    let pe = evs[1].event.as_ref().unwrap();
    let v = decode(&mut c, &pe.schema_id, &pe.payload).await;
    assert_eq!(v["ChangeEventHeader"]["changeType"], "GAP_OVERFLOW");
    assert_eq!(v["ChangeEventHeader"]["entityName"], "Opportunity");
    assert_eq!(v["ChangeEventHeader"]["recordIds"], json!([]));
    // Gaps need CDC on the object.
    assert!(px.emu.inject_gap_overflow("acme", "Contact").is_err());
}

#[tokio::test]
async fn expired_replay_id_fails_the_subscription() {
    let mut px = setup(&["Opportunity"]).await;
    px.create_opp("old", None).await;
    let old = px.emu.latest_replay_id("acme").unwrap();
    px.create_opp("older tip", None).await;
    px.emu.advance(Duration::from_secs(73 * 3600));
    px.token = px.mint(); // the 2 h idle timeout ended the old session
    px.create_opp("new", None).await;
    let mut c = px.client().await;
    let (_tx, mut s) = c
        .subscribe(fetch(OPP, ReplayPreset::Custom, old.clone(), 5))
        .await
        .unwrap();
    let e = next(&mut s).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        error_code(&e),
        "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
    );
    assert!(
        e.message().starts_with("The Replay ID validation failed."),
        "{}",
        e.message()
    );
    // EARLIEST starts after the dropped events.
    let (_tx, mut s) = c
        .subscribe(fetch(OPP, ReplayPreset::Earliest, vec![], 5))
        .await
        .unwrap();
    let r = next_events(&mut s).await;
    assert_eq!(r.events.len(), 1);
    assert_eq!(px.emu.cdc_events("acme").unwrap().len(), 1);
    // A shorter window (configurable).
    px.emu
        .set_cdc_retention("acme", Duration::from_secs(60))
        .unwrap();
    px.emu.advance(Duration::from_secs(61));
    assert!(px.emu.cdc_events("acme").unwrap().is_empty());
}

#[tokio::test]
async fn expired_session_ends_the_subscription() {
    let px = setup(&["Opportunity"]).await;
    let mut c = px.client().await;
    let (_tx, mut s) = c
        .subscribe(fetch(OPP, ReplayPreset::Latest, vec![], 5))
        .await
        .unwrap();
    assert!(next(&mut s).await.unwrap().events.is_empty());
    px.emu.inject("acme", Fault::ExpireSessions).unwrap();
    let e = loop {
        match next(&mut s).await {
            Ok(r) => assert!(r.events.is_empty()),
            Err(e) => break e,
        }
    };
    assert_eq!(e.code(), Code::Unauthenticated);
    assert_eq!(
        error_code(&e),
        "sfdc.platform.eventbus.grpc.service.auth.error"
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(2), s.message())
            .await
            .unwrap()
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn unknown_topic_and_change_events_channel() {
    let px = setup(&["Opportunity", "OpportunityContactRole"]).await;
    let mut c = px.client().await;
    let e = match c
        .subscribe(fetch(
            "/data/BogusChangeEvent",
            ReplayPreset::Latest,
            vec![],
            1,
        ))
        .await
    {
        Ok((_t, mut s)) => next(&mut s).await.unwrap_err(),
        Err(e) => e,
    };
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(
        error_code(&e),
        "sfdc.platform.eventbus.grpc.topic.not.found"
    );
    // /data/ChangeEvents carries every selected object, each with its schema.
    let (_tx, mut s) = c
        .subscribe(fetch(
            "/data/ChangeEvents",
            ReplayPreset::Latest,
            vec![],
            10,
        ))
        .await
        .unwrap();
    let opp = px.create_opp("multi", None).await;
    let (st, b) = px
        .rest(
            "POST",
            "/sobjects/Contact",
            Some(json!({"LastName": "Roe"})),
            None,
        )
        .await;
    assert_eq!(st, 201);
    let (st, _) = px
        .rest(
            "POST",
            "/sobjects/OpportunityContactRole",
            Some(json!({"OpportunityId": opp, "ContactId": b["id"]})),
            None,
        )
        .await;
    assert_eq!(st, 201);
    let mut evs = Vec::new();
    while evs.len() < 2 {
        evs.extend(next_events(&mut s).await.events);
    }
    let ids: Vec<&str> = evs
        .iter()
        .map(|e| e.event.as_ref().unwrap().schema_id.as_str())
        .collect();
    assert_eq!(ids[0], schema_for_topic(OPP).unwrap().id);
    assert_eq!(ids[1], schema_for_topic(OCR).unwrap().id);
}

#[tokio::test]
async fn control_api_routes() {
    let px = setup(&[]).await;
    let http = &px.http;
    let base = format!("{}/__emulator/orgs/acme", px.emu.base_url());
    let r: Value = http
        .post(format!("{base}/cdc"))
        .json(&json!({"enable": ["Opportunity", "OpportunityContactRole"], "retention_seconds": 3600}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["objects"],
        json!(["Opportunity", "OpportunityContactRole"])
    );
    assert_eq!(r["retention_seconds"], 3600);
    let id = px.create_opp("ctl", None).await;
    let st = http
        .post(format!("{base}/cdc/gaps"))
        .json(&json!({"change_type": "GAP_DELETE", "ids": [id]}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st.as_u16(), 204);
    let st = http
        .post(format!("{base}/cdc/gaps"))
        .json(&json!({"change_type": "GAP_OVERFLOW", "object": "OpportunityContactRole"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st.as_u16(), 204);
    let evs: Value = http
        .get(format!("{base}/cdc/events"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let types: Vec<&str> = evs
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["change_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["CREATE", "GAP_DELETE", "GAP_OVERFLOW"]);
    let state: Value = http
        .get(format!("{base}/cdc"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["latest_replay_id"]["value"], 3);
    assert_eq!(state["latest_replay_id"]["hex"], "0000000000000003");
    let st = http
        .post(format!("{base}/cdc/gaps"))
        .json(&json!({"change_type": "UPDATE", "ids": [id]}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st.as_u16(), 400);
}

#[tokio::test]
async fn binary_prints_the_pubsub_line() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sf-emulator"))
        .args(["--port", "0", "--pubsub-port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let second = lines.next_line().await.unwrap().unwrap();
    assert!(
        first.starts_with("listening on http://127.0.0.1:"),
        "{first}"
    );
    let url = second.strip_prefix("pubsub on ").unwrap();
    assert!(url.starts_with("http://127.0.0.1:"));
    // It speaks gRPC: an unauthenticated GetTopic is refused the Salesforce way.
    let mut c = PubSubClient::connect(
        url,
        Auth {
            token: "x".into(),
            instance: first.strip_prefix("listening on ").unwrap().into(),
            tenant: "00D000000000001".into(),
        },
    )
    .await;
    assert_eq!(
        c.get_topic(OPP).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    child.kill().await.unwrap();
}

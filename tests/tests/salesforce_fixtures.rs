//! The client against recorded Salesforce bodies (`../shared/salesforce-fixtures`,
//! replayed verbatim with their statuses and headers by a scripted server): every
//! query, SOSL, error, OAuth and limits shape is parsed, or classified, as
//! Salesforce means it. Tokens live in Secrets Manager and leases in DynamoDB (moto).

use std::time::Duration;

use e2e::fixtures;
use e2e::moto::AwsEnv;
use e2e::replay::{ReplayServer, Reply};
use futures::TryStreamExt;
use serde_json::{Map, Value, json};
use shared::adapters::salesforce::SalesforceClient;
use shared::domain::{ConnectionStatus, TenantId};
use shared::error::{Classify, ErrorClass};
use shared::ports::{ConnectionStore, SalesforceReads, SalesforceWrites};
use shared::salesforce::limits::Counter;
use shared::salesforce::{NewRecord, SalesforceError};
use tokio::time::Instant;

const QUERY: &str = "SELECT Id FROM Whizbang";

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn data(rest: &str) -> String {
    ReplayServer::data(rest)
}

/// A scripted org with a connected tenant holding an access token.
struct Org {
    aws: AwsEnv,
    server: ReplayServer,
    client: SalesforceClient,
    tenant: TenantId,
}

impl Org {
    async fn start() -> Self {
        let aws = AwsEnv::new().await;
        let server = ReplayServer::start().await;
        let client = ReplayServer::client(&[&server]);
        let tenant = server.connect_tenant(&aws, Some("00Dx!current")).await;
        Self {
            aws,
            server,
            client,
            tenant,
        }
    }

    async fn query(&self) -> Result<Vec<Map<String, Value>>, SalesforceError> {
        let (store, secrets) = (self.aws.store(), self.aws.secrets());
        self.client
            .session(&self.tenant, &secrets, &store, deadline())
            .query_all_pages(QUERY, false)
            .await
    }

    async fn status(&self) -> ConnectionStatus {
        self.aws
            .store()
            .get_connection(&self.tenant)
            .await
            .unwrap()
            .unwrap()
            .status
    }

    /// A token refresh answered with the recorded success `body`, its API host
    /// this server.
    fn refresh_succeeds(&self, body: &str) {
        self.server.on(
            "POST",
            "/services/oauth2/token",
            ReplayServer::token_reply(fixtures::json(body), Some(self.server.base_url())),
        );
    }
}

#[tokio::test]
async fn limit_info_headers_are_read_in_every_documented_form() {
    let org = Org::start().await;
    let headers = fixtures::lines("sfdocs/sforce_limit_info_headers.txt");
    let expected = [
        (18, 5_000, None),
        (25, 5_000, Some((17, 250))),
        (110_018, 100_000, None),
        (10_018, 100_000, None),
    ];
    assert_eq!(headers.len(), expected.len(), "{headers:?}");
    for (header, (used, max, per_app)) in headers.iter().zip(expected) {
        org.server.on(
            "GET",
            &data("query"),
            Reply::json(200, fixtures::bytes("restforce/query_empty_response.json"))
                .header("Sforce-Limit-Info", header),
        );
        org.query().await.unwrap();
        let usage = org.client.usage(&org.tenant).unwrap();
        assert_eq!((usage.used, usage.max), (used, max), "{header}");
        assert_eq!(
            usage.per_app,
            per_app.map(|(used, max)| Counter { used, max }),
            "{header}"
        );
    }
    // A header the client does not understand never fails the request.
    org.server.on(
        "GET",
        &data("query"),
        Reply::json(200, fixtures::bytes("restforce/query_empty_response.json"))
            .header("Sforce-Limit-Info", "api-usage=lots; (appName=)"),
    );
    org.query().await.unwrap();
    let usage = org.client.usage(&org.tenant).unwrap();
    assert_eq!(
        (usage.used, usage.max),
        (10_018, 100_000),
        "the last reading stays"
    );
}

#[tokio::test]
async fn recorded_query_pages_are_read_as_salesforce_means_them() {
    let org = Org::start().await;
    // Nested parent and child relationships, dates and multi-select picklists.
    org.server.on(
        "GET",
        &data("query"),
        Reply::json(
            200,
            fixtures::bytes("restforce/query_success_response.json"),
        ),
    );
    let rows = org.query().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["ParentWhizbang__r"]["Name"], "Parent Whizbang");
    assert_eq!(
        rows[0]["Whizbangs__r"]["records"][0]["Name"],
        "Child Whizbang"
    );
    assert_eq!(rows[0]["DateTime_Label"], "2011-07-07T00:37:00.000+0000");

    // Empty lookups and child subqueries come back as null.
    org.server.on(
        "GET",
        &data("query"),
        Reply::json(200, fixtures::bytes("adapted/query_relationship_null.json")),
    );
    let rows = org.query().await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["ParentWhizbang__r"], Value::Null);

    // Aggregates, and no rows.
    org.server.on(
        "GET",
        &data("query"),
        Reply::json(
            200,
            fixtures::bytes("restforce/query_aggregate_success_response.json"),
        ),
    );
    let rows = org.query().await.unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2]["expr0"], json!(400));
    org.server.on(
        "GET",
        &data("query"),
        Reply::json(200, fixtures::bytes("restforce/query_empty_response.json")),
    );
    assert!(org.query().await.unwrap().is_empty());

    // Two pages: the second read from the nextRecordsUrl Salesforce gave, as given
    // (another API version's path included).
    org.server.on(
        "GET",
        &data("query"),
        Reply::json(
            200,
            fixtures::bytes("restforce/query_paginated_first_page_response.json"),
        ),
    );
    org.server.on(
        "GET",
        "/services/data/v26.0/query/01gD",
        Reply::json(
            200,
            fixtures::bytes("restforce/query_paginated_last_page_response.json"),
        ),
    );
    let (store, secrets) = (org.aws.store(), org.aws.secrets());
    let session = org
        .client
        .session(&org.tenant, &secrets, &store, deadline());
    let pages: Vec<_> = session
        .query_pages::<Map<String, Value>>(QUERY, false)
        .try_collect()
        .await
        .unwrap();
    let labels: Vec<&str> = pages
        .iter()
        .flat_map(|p| &p.records)
        .map(|r| r["Text_Label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["First Page", "Last Page"]);
    assert_eq!(
        org.server
            .received_on("/services/data/v26.0/query/01gD")
            .len(),
        1
    );
}

#[tokio::test]
async fn a_next_records_url_off_the_instance_is_refused() {
    let org = Org::start().await;
    org.server.on(
        "GET",
        &data("query"),
        Reply::json(
            200,
            fixtures::bytes("simple-salesforce/query_all_first_page_absolute_next_url.json"),
        ),
    );
    let err = org.query().await.unwrap_err();
    assert!(matches!(err, SalesforceError::Decode(_)), "{err}");
    assert!(
        err.to_string()
            .contains("https://example.com/query/next-records-id"),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert_eq!(org.server.received().len(), 1, "nothing followed");
}

#[tokio::test]
async fn documentation_samples_that_are_not_json_are_retryable_not_retried_in_a_loop() {
    let org = Org::start().await;
    // Printed with a trailing comma: not JSON. A body that does not parse says
    // nothing wrong about the request: worth another try later, not at once (a
    // write may have been applied).
    org.server.on(
        "GET",
        &data("queryAll"),
        Reply::json(
            200,
            fixtures::bytes("sfdocs/queryall_deleted_example_verbatim.json"),
        ),
    );
    let (store, secrets) = (org.aws.store(), org.aws.secrets());
    let err = org
        .client
        .session(&org.tenant, &secrets, &store, deadline())
        .query_all_pages::<Map<String, Value>>(QUERY, true)
        .await
        .unwrap_err();
    assert!(matches!(err, SalesforceError::InvalidJson(_)), "{err}");
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert_eq!(org.server.received().len(), 1, "sent once");

    // Its corrected form reads.
    org.server.on(
        "GET",
        &data("queryAll"),
        Reply::json(
            200,
            fixtures::bytes("adapted/queryall_deleted_keyset_page2.json"),
        ),
    );
    let rows = org
        .client
        .session(&org.tenant, &secrets, &store, deadline())
        .query_all_pages::<Map<String, Value>>(QUERY, true)
        .await
        .unwrap();
    assert!(!rows.is_empty());
}

#[tokio::test]
async fn every_recorded_search_shape_is_read() {
    let org = Org::start().await;
    let (store, secrets) = (org.aws.store(), org.aws.secrets());
    let session = org
        .client
        .session(&org.tenant, &secrets, &store, deadline());
    let search = "FIND {0612345678} IN PHONE FIELDS RETURNING Contact(Id)";
    for (fixture, ids) in [
        (
            "adapted/search_searchrecords_fixed.json",
            vec!["001D000000IqhSLIAZ", "001D000000IomazIAB"],
        ),
        (
            "sfdocs/search_bare_array_v35_example.json",
            vec!["001D000000IqhSLIAZ", "001D000000IomazIAB"],
        ),
        ("restforce/search_success_response.json", vec!["foo", "bar"]),
        ("swiftlysalesforce/MockSearchResults.json", vec![]),
    ] {
        org.server.on(
            "GET",
            &data("search"),
            Reply::json(200, fixtures::bytes(fixture)),
        );
        let found = session
            .search(search)
            .await
            .unwrap_or_else(|e| panic!("{fixture}: {e}"));
        if ids.is_empty() {
            // The shape is the point: every record carries its type.
            assert!(!found.is_empty(), "{fixture}");
            assert!(
                found.iter().all(|r| r["attributes"]["type"].is_string()),
                "{fixture}"
            );
        } else {
            let got: Vec<&str> = found.iter().map(|r| r["Id"].as_str().unwrap()).collect();
            assert_eq!(got, ids, "{fixture}");
        }
    }
    // The current guide's sample, printed with trailing commas.
    org.server.on(
        "GET",
        &data("search"),
        Reply::json(
            200,
            fixtures::bytes("sfdocs/search_searchrecords_example_verbatim.json"),
        ),
    );
    let err = session.search(search).await.unwrap_err();
    assert!(matches!(err, SalesforceError::InvalidJson(_)), "{err}");
    assert_eq!(err.class(), ErrorClass::Retryable);
}

/// One request answered with a recorded error.
async fn refused_with(reply: Reply) -> (Org, SalesforceError) {
    let org = Org::start().await;
    for _ in 0..6 {
        org.server.on("GET", &data("query"), reply.clone());
    }
    let err = org.query().await.unwrap_err();
    (org, err)
}

#[tokio::test]
async fn recorded_error_bodies_are_classified_as_salesforce_means_them() {
    let json = |status, f: &str| Reply::json(status, fixtures::bytes(f));
    let cases = [
        // (answer, code read, class, requests sent)
        (
            json(400, "restforce/query_error_response.json"),
            Some("INVALID_FIELD"),
            ErrorClass::Permanent,
            1,
        ),
        (
            json(400, "restforce/search_error_response.json"),
            Some("MALFORMED_SEARCH"),
            ErrorClass::Permanent,
            1,
        ),
        (
            json(400, "restforce/write_error_response.json"),
            Some("INVALID_FIELD"),
            ErrorClass::Permanent,
            1,
        ),
        (
            json(404, "restforce/delete_error_response.json"),
            Some("NOT_FOUND"),
            ErrorClass::Permanent,
            1,
        ),
        (
            json(400, "jsforce/required_field_missing_400.json"),
            Some("REQUIRED_FIELD_MISSING"),
            ErrorClass::Permanent,
            1,
        ),
        (
            json(400, "jsforce/multiple_errors_400.json"),
            Some("FIELD_CUSTOM_VALIDATION_EXCEPTION"),
            ErrorClass::Permanent,
            1,
        ),
        // A single object rather than an array.
        (
            json(400, "restforce/composite_sobjects_error_response.json"),
            Some("INVALID_FIELD"),
            ErrorClass::Permanent,
            1,
        ),
        (
            json(400, "issues/invalid_query_locator_400.json"),
            Some("INVALID_QUERY_LOCATOR"),
            ErrorClass::Permanent,
            1,
        ),
        // The allocation is spent for hours: retryable later, never in a loop.
        (
            json(403, "issues/request_limit_exceeded_403.json"),
            Some("REQUEST_LIMIT_EXCEEDED"),
            ErrorClass::Retryable,
            1,
        ),
        // XML, and HTML pages from a proxy or a CDN: classified by their status.
        (
            Reply::xml(404, fixtures::bytes("jsforce/xml_error_response.xml")),
            Some("NOT_FOUND"),
            ErrorClass::Permanent,
            1,
        ),
        (
            Reply::html(404, fixtures::bytes("jsforce/html_error_page.html")),
            None,
            ErrorClass::Permanent,
            1,
        ),
    ];
    for (reply, code, class, sent) in cases {
        let what = String::from_utf8_lossy(&reply.body)
            .chars()
            .take(60)
            .collect::<String>();
        let (org, err) = refused_with(reply).await;
        assert_eq!(err.code(), code, "{what}: {err}");
        assert_eq!(err.class(), class, "{what}: {err}");
        assert_eq!(org.server.received().len(), sent, "{what}");
    }
    let (_, err) = refused_with(json(400, "jsforce/multiple_errors_400.json")).await;
    assert!(
        err.to_string().contains("no ACME accounts (and 1 more)"),
        "{err}"
    );
    let (_, err) = refused_with(Reply::html(
        404,
        fixtures::bytes("jsforce/html_error_page.html"),
    ))
    .await;
    assert!(err.to_string().contains("HTTP 404"), "{err}");
}

#[tokio::test]
async fn transient_answers_are_retried_then_succeed() {
    for (status, fixture) in [
        (503, "issues/server_unavailable_503.json"),
        (429, "jsforce/retry_429_object.json"),
        (503, "issues/cdn_503_service_not_available.html"),
    ] {
        let org = Org::start().await;
        let reply = if fixture.ends_with(".html") {
            Reply::html(status, fixtures::bytes(fixture))
        } else {
            Reply::json(status, fixtures::bytes(fixture))
        };
        org.server.on("GET", &data("query"), reply);
        org.server.on(
            "GET",
            &data("query"),
            Reply::json(
                200,
                fixtures::bytes("restforce/query_success_response.json"),
            ),
        );
        let rows = org
            .query()
            .await
            .unwrap_or_else(|e| panic!("{fixture}: {e}"));
        assert_eq!(rows.len(), 1, "{fixture}");
        assert_eq!(
            org.server.received().len(),
            2,
            "{fixture}: one failure, one success"
        );
    }
    // A CDN outage that lasts: retryable, and the message names the status.
    let (org, err) = refused_with(Reply::html(
        503,
        fixtures::bytes("issues/cdn_503_service_not_available.html"),
    ))
    .await;
    assert_eq!(err.class(), ErrorClass::Retryable, "{err}");
    let text = err.to_string();
    assert!(text.contains("503"), "{text}");
    assert!(text.contains("Salesforce CDN partner"), "{text}");
    assert!(org.server.received().len() > 1, "retried");
}

#[tokio::test]
async fn a_refused_session_is_refreshed_in_both_body_shapes() {
    for fixture in [
        "restforce/expired_session_response.json",
        "jsforce/invalid_session_object_401.json",
    ] {
        let org = Org::start().await;
        org.server.on(
            "GET",
            &data("query"),
            Reply::json(401, fixtures::bytes(fixture)),
        );
        org.refresh_succeeds("sfdocs/token_refresh_flow_response.json");
        org.server.on(
            "GET",
            &data("query"),
            Reply::json(
                200,
                fixtures::bytes("restforce/query_success_response.json"),
            ),
        );
        org.query()
            .await
            .unwrap_or_else(|e| panic!("{fixture}: {e}"));
        let queries = org.server.received_on(&data("query"));
        assert_eq!(queries.len(), 2, "{fixture}");
        assert_eq!(
            queries[0].header("authorization"),
            Some("Bearer 00Dx!current")
        );
        let refreshed = fixtures::json("sfdocs/token_refresh_flow_response.json");
        assert_eq!(
            queries[1].header("authorization"),
            Some(format!("Bearer {}", refreshed["access_token"].as_str().unwrap()).as_str()),
            "{fixture}: the new token"
        );
        assert_eq!(org.status().await, ConnectionStatus::Connected);
    }
}

#[tokio::test]
async fn every_recorded_token_response_is_accepted() {
    for fixture in [
        "restforce/auth_success_response.json",
        "restforce/refresh_success_response.json",
        "sfdocs/token_refresh_flow_response.json",
        "sfdocs/token_web_server_flow_response.json",
        "sfdocs/token_web_server_flow_with_refresh_token_response.json",
    ] {
        let aws = AwsEnv::new().await;
        let server = ReplayServer::start().await;
        let client = ReplayServer::client(&[&server]);
        let tenant = server.connect_tenant(&aws, None).await;
        // The doc's refresh sample has a trailing slash on its instance URL.
        let instance = format!("{}/", server.base_url());
        server.on(
            "POST",
            "/services/oauth2/token",
            ReplayServer::token_reply(fixtures::json(fixture), Some(&instance)),
        );
        server.on(
            "GET",
            &data("query"),
            Reply::json(200, fixtures::bytes("restforce/query_empty_response.json")),
        );
        let (store, secrets) = (aws.store(), aws.secrets());
        client
            .session(&tenant, &secrets, &store, deadline())
            .query_all_pages::<Value>(QUERY, false)
            .await
            .unwrap_or_else(|e| panic!("{fixture}: {e}"));
        let token = fixtures::json(fixture)["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        let query = &server.received_on(&data("query"))[0];
        assert_eq!(
            query.header("authorization"),
            Some(format!("Bearer {token}").as_str()),
            "{fixture}"
        );
    }
}

#[tokio::test]
async fn a_recorded_signature_made_with_another_secret_is_refused() {
    let org = Org::start().await;
    let tenant = org.server.connect_tenant(&org.aws, None).await;
    let mut body = fixtures::json("restforce/auth_success_response.json");
    body["instance_url"] = json!(org.server.base_url());
    org.server.on(
        "POST",
        "/services/oauth2/token",
        Reply::json(200, body.to_string()),
    );
    let (store, secrets) = (org.aws.store(), org.aws.secrets());
    let err = org
        .client
        .session(&tenant, &secrets, &store, deadline())
        .query_all_pages::<Value>(QUERY, false)
        .await
        .unwrap_err();
    assert!(matches!(err, SalesforceError::BadSignature), "{err}");
    assert!(org.server.received_on("/services/data").is_empty());
}

/// A tenant without an access token (the first request refreshes), the token
/// endpoint answering `replies` in turn, then a success.
async fn refresh_answered(
    replies: Vec<Reply>,
) -> (Org, TenantId, Result<Vec<Value>, SalesforceError>) {
    let org = Org::start().await;
    let tenant = org.server.connect_tenant(&org.aws, None).await;
    for reply in replies {
        org.server.on("POST", "/services/oauth2/token", reply);
    }
    org.refresh_succeeds("sfdocs/token_refresh_flow_response.json");
    org.server.on(
        "GET",
        &data("query"),
        Reply::json(200, fixtures::bytes("restforce/query_empty_response.json")),
    );
    let (store, secrets) = (org.aws.store(), org.aws.secrets());
    let result = org
        .client
        .session(&tenant, &secrets, &store, deadline())
        .query_all_pages::<Value>(QUERY, false)
        .await;
    (org, tenant, result)
}

async fn status_of(org: &Org, tenant: &TenantId) -> ConnectionStatus {
    org.aws
        .store()
        .get_connection(tenant)
        .await
        .unwrap()
        .unwrap()
        .status
}

#[tokio::test]
async fn a_token_request_already_being_processed_is_waited_for_never_reauth() {
    let busy = || {
        Reply::json(
            400,
            fixtures::bytes("issues/oauth_token_request_already_processing_400.json"),
        )
    };
    let (org, tenant, result) = refresh_answered(vec![busy(), busy()]).await;
    result.unwrap();
    assert_eq!(org.server.received_on("/services/oauth2/token").len(), 3);
    assert_eq!(status_of(&org, &tenant).await, ConnectionStatus::Connected);

    // Still busy when the time is up: retryable, and the tenant stays connected.
    let (org, tenant, result) = refresh_answered(vec![busy(); 10]).await;
    let err = result.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Retryable, "{err}");
    assert_eq!(err.code(), Some("invalid_grant"));
    assert_eq!(status_of(&org, &tenant).await, ConnectionStatus::Connected);
}

#[tokio::test]
async fn unknown_error_and_outages_at_the_token_endpoint_are_retried() {
    let unknown = |status| {
        Reply::json(
            status,
            fixtures::bytes("issues/oauth_unknown_error_retry.json"),
        )
    };
    let cdn = || {
        Reply::html(
            503,
            fixtures::bytes("issues/cdn_503_service_not_available.html"),
        )
    };
    for replies in [vec![unknown(400)], vec![unknown(503)], vec![cdn()]] {
        let (org, tenant, result) = refresh_answered(replies).await;
        result.unwrap();
        assert_eq!(org.server.received_on("/services/oauth2/token").len(), 2);
        assert_eq!(status_of(&org, &tenant).await, ConnectionStatus::Connected);
    }
    // A JSON error keeps its real status (not 400 for every JSON body).
    let (_, _, result) = refresh_answered(vec![unknown(503); 10]).await;
    let err = result.unwrap_err();
    assert!(
        matches!(&err, SalesforceError::OAuth { status: 503, error, .. } if error == "unknown_error"),
        "{err:?}"
    );
    assert!(err.to_string().contains("HTTP 503"), "{err}");
    // An outage that lasts keeps its real status, named in the message.
    let (org, tenant, result) = refresh_answered(vec![cdn(); 10]).await;
    let err = result.unwrap_err();
    assert!(
        matches!(err, SalesforceError::OAuth { status: 503, .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert!(err.to_string().contains("HTTP 503"), "{err}");
    assert_eq!(status_of(&org, &tenant).await, ConnectionStatus::Connected);
}

#[tokio::test]
async fn a_refused_refresh_token_means_reconnect() {
    for fixture in [
        "restforce/refresh_error_response.json",
        "restforce/auth_error_response.json",
    ] {
        let (org, tenant, result) =
            refresh_answered(vec![Reply::json(400, fixtures::bytes(fixture))]).await;
        let err = result.unwrap_err();
        assert_eq!(err.class(), ErrorClass::NeedsReauth, "{fixture}: {err}");
        assert_eq!(
            status_of(&org, &tenant).await,
            ConnectionStatus::NeedsReauth,
            "{fixture}"
        );
        assert_eq!(
            org.server.received_on("/services/oauth2/token").len(),
            1,
            "{fixture}: asked once"
        );
        assert!(org.server.received_on("/services/data").is_empty());
    }
}

#[tokio::test]
async fn the_token_responses_instance_url_is_the_api_host_within_the_allow_list() {
    let aws = AwsEnv::new().await;
    let (login, api) = (ReplayServer::start().await, ReplayServer::start().await);
    let client = ReplayServer::client(&[&login, &api]);
    let tenant = login.connect_tenant(&aws, None).await;
    login.on(
        "POST",
        "/services/oauth2/token",
        ReplayServer::token_reply(
            fixtures::json("sfdocs/token_refresh_flow_response.json"),
            Some(api.base_url()),
        ),
    );
    api.on(
        "GET",
        &data("query"),
        Reply::json(200, fixtures::bytes("restforce/query_empty_response.json")),
    );
    let (store, secrets) = (aws.store(), aws.secrets());
    client
        .session(&tenant, &secrets, &store, deadline())
        .query_all_pages::<Value>(QUERY, false)
        .await
        .unwrap();
    assert_eq!(
        api.received_on(&data("query")).len(),
        1,
        "the API host named by the token"
    );
    assert!(login.received_on("/services/data").is_empty());

    // An instance URL off the allow-list is refused, and nothing is sent to it.
    let tenant = login.connect_tenant(&aws, None).await;
    login.on(
        "POST",
        "/services/oauth2/token",
        ReplayServer::token_reply(
            fixtures::json("sfdocs/token_refresh_flow_response.json"),
            Some("https://169.254.169.254"),
        ),
    );
    let err = client
        .session(&tenant, &secrets, &store, deadline())
        .query_all_pages::<Value>(QUERY, false)
        .await
        .unwrap_err();
    assert!(matches!(err, SalesforceError::Url(_)), "{err}");
}

#[tokio::test]
async fn a_300_says_which_records_were_ambiguous() {
    let org = Org::start().await;
    org.server.on(
        "PATCH",
        &data("sobjects/Task/"),
        Reply::json(
            300,
            fixtures::bytes("restforce/upsert_multiple_error_response.json"),
        ),
    );
    let (store, secrets) = (org.aws.store(), org.aws.secrets());
    let err = org
        .client
        .session(&org.tenant, &secrets, &store, deadline())
        .update("Task", "00T000000000001AAA", &Map::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SalesforceError::MultipleChoices { urls } if urls.len() == 2),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert_eq!(err.code(), None);
    let text = err.to_string();
    assert!(
        text.contains("/services/data/v23.0/sobjects/Whizbang/foo"),
        "{text}"
    );
    assert!(
        text.contains("/services/data/v23.0/sobjects/Whizbang/bar"),
        "{text}"
    );
}

#[tokio::test]
async fn recorded_write_results_map_to_their_records() {
    let org = Org::start().await;
    let (store, secrets) = (org.aws.store(), org.aws.secrets());
    let session = org
        .client
        .session(&org.tenant, &secrets, &store, deadline());
    org.server.on(
        "POST",
        &data("sobjects/Task"),
        Reply::json(
            201,
            fixtures::bytes("restforce/create_success_response.json"),
        ),
    );
    let id = session.create("Task", &Map::new()).await.unwrap();
    assert_eq!(id, "some_id");

    org.server.on(
        "POST",
        &data("composite/sobjects"),
        Reply::json(
            200,
            fixtures::bytes("sfdocs/collections_create_mixed_results.json"),
        ),
    );
    let record = NewRecord {
        object: "Account",
        fields: Map::new(),
    };
    let results = session
        .create_many(&[record.clone(), record.clone()])
        .await
        .unwrap();
    assert!(results[0].success);
    assert_eq!(results[0].id.as_deref(), Some("001R00000066cndIAA"));
    assert_eq!(results[1].errors[0].code, "DUPLICATES_DETECTED");

    org.server.on(
        "POST",
        &data("composite/sobjects"),
        Reply::json(
            200,
            fixtures::bytes("restforce/composite_sobjects_success_response.json"),
        ),
    );
    let results = session.create_many(&[record]).await.unwrap();
    assert_eq!(results[0].id.as_deref(), Some("some_id"));

    org.server.on(
        "POST",
        &data("composite"),
        Reply::json(
            200,
            fixtures::bytes("sfdocs/composite_allornone_outer_true_inner_false_response.json"),
        ),
    );
    let answers = session.composite(true, &[]).await.unwrap();
    assert_eq!(answers[1].http_status_code, 400);
    assert_eq!(
        SalesforceError::from_response(400, answers[1].body.to_string().as_bytes()).code(),
        Some("PROCESSING_HALTED")
    );
}

#[tokio::test]
async fn recorded_limits_and_identity_bodies_are_read() {
    let org = Org::start().await;
    let (store, secrets) = (org.aws.store(), org.aws.secrets());
    let session = org
        .client
        .session(&org.tenant, &secrets, &store, deadline());
    for fixture in [
        "simple-salesforce/organization_limits_response.json",
        "swiftlysalesforce/MockLimits.json",
    ] {
        org.server.on(
            "GET",
            &data("limits"),
            Reply::json(200, fixtures::bytes(fixture)),
        );
        let limits = session.limits().await.unwrap();
        let daily = &limits["DailyApiRequests"];
        assert!(daily["Max"].as_u64().is_some(), "{fixture}: {daily}");
        assert!(daily["Remaining"].as_u64().is_some(), "{fixture}: {daily}");
    }
    org.server.on(
        "GET",
        "/id/",
        Reply::json(200, fixtures::bytes("swiftlysalesforce/MockIdentity.json")),
    );
    let recorded = fixtures::json("swiftlysalesforce/MockIdentity.json");
    let identity = session
        .identity(&format!("{}/id/00D/005", org.server.base_url()))
        .await
        .unwrap();
    assert_eq!(identity.user_id, recorded["user_id"].as_str().unwrap());
    assert_eq!(
        identity.organization_id,
        recorded["organization_id"].as_str().unwrap()
    );
    assert_eq!(identity.username, recorded["username"].as_str().unwrap());
}

#[tokio::test]
async fn a_token_endpoint_outage_during_the_callback_says_try_again() {
    use shared::app::App;
    use shared::config::{BudgetThresholds, Config, OAuthConfig};
    use shared::connect::{CallbackParams, CallbackResult, SettingsInput};
    use shared::domain::Actor;

    let aws = AwsEnv::new().await;
    let server = ReplayServer::start().await;
    let salesforce = shared::config::SalesforceConfig {
        api_version: shared::config::DEFAULT_API_VERSION.into(),
        client_name: "modjo".into(),
        extra_allowed_origins: vec![url::Url::parse(server.base_url()).unwrap()],
        pubsub_endpoint: None,
    };
    let config = Config {
        stage: "test".into(),
        table_name: aws.resources.table.clone(),
        secret_prefix: aws.resources.secret_prefix.clone(),
        salesforce,
        budget: BudgetThresholds::default(),
        metrics_namespace: "Modjo/Test".into(),
    };
    let oauth = OAuthConfig {
        callback_url: url::Url::parse(e2e::stack::CALLBACK_URL).unwrap(),
        return_url: url::Url::parse(e2e::stack::RETURN_URL).unwrap(),
        state_signing_secret_id: aws.resources.signing_key_id.clone(),
        state_ttl: Duration::from_secs(600),
    };
    let app = App::new(config, aws.store(), aws.secrets(), Some(oauth)).unwrap();
    let actor = Actor {
        tenant: TenantId::parse(&e2e::unique("acme")).unwrap(),
        user_id: "usr_admin".into(),
    };
    app.connect()
        .save_settings(
            &actor,
            SettingsInput {
                consumer_key: "3MVG9replay".into(),
                consumer_secret: Some(secrecy::SecretString::from(e2e::replay::CONSUMER_SECRET)),
                instance_url: server.base_url().into(),
                login_url: None,
                sandbox: false,
                phone_region: None,
                default_owner_id: None,
                rematch_days: None,
                retention_days: None,
                summaries_as_notes: None,
            },
        )
        .await
        .unwrap();
    let authorize = app.connect().start_connect(&actor, false).await.unwrap();
    let state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.to_string())
        .unwrap();
    server.on(
        "POST",
        "/services/oauth2/token",
        Reply::html(
            503,
            fixtures::bytes("issues/cdn_503_service_not_available.html"),
        ),
    );
    let queue = aws.queue(&aws.resources.call_events_queue);
    let (result, tenant) = app
        .connect()
        .complete_callback(
            &CallbackParams {
                code: Some("aPrxcode".into()),
                state: Some(state),
                ..Default::default()
            },
            &queue,
        )
        .await;
    assert_eq!(result, CallbackResult::Unavailable);
    assert_eq!(tenant.as_ref(), Some(&actor.tenant));
    assert_eq!(server.received_on("/services/oauth2/token").len(), 1);
}

//! The OAuth 2.0 web-server flow against a tenant's org, on the `oauth2` crate:
//! authorize URL with PKCE, code exchange, refresh, revoke, and the token
//! response's signature check.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AccessToken, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointNotSet, EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardRevocableToken, TokenResponse,
    TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use url::Url;

use super::client::Sessions;
use crate::domain::hosts::{HostPolicy, SalesforceOrigin};
use crate::ports::{AccessRefusals, LeaseStore, SalesforceLogin, SecretStore, TenantCredentials};
use crate::salesforce::TokenGrant;
use crate::salesforce::error::{SalesforceError, body_excerpt};

/// Scopes requested at authorisation: REST access, the identity URL, and a refresh
/// token for offline work.
pub const SCOPES: &[&str] = &["api", "id", "refresh_token"];

/// The fields Salesforce adds to a token response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SalesforceTokenFields {
    pub instance_url: String,
    pub id: String,
    pub issued_at: String,
    pub signature: String,
}

impl ExtraTokenFields for SalesforceTokenFields {}

/// A Salesforce token response. `token_type` may be absent: Salesforce's tokens
/// are always Bearer, and older answers (recorded by client libraries) omit it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponseType {
    access_token: AccessToken,
    #[serde(
        default = "bearer",
        deserialize_with = "oauth2::helpers::deserialize_untagged_enum_case_insensitive"
    )]
    token_type: BasicTokenType,
    #[serde(default)]
    refresh_token: Option<RefreshToken>,
    #[serde(
        default,
        rename = "scope",
        deserialize_with = "oauth2::helpers::deserialize_space_delimited_vec"
    )]
    scopes: Option<Vec<Scope>>,
    #[serde(flatten)]
    extra: SalesforceTokenFields,
}

fn bearer() -> BasicTokenType {
    BasicTokenType::Bearer
}

impl TokenResponse for TokenResponseType {
    type TokenType = BasicTokenType;

    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }

    /// Salesforce sends no expiry: a session lasts while it is used.
    fn expires_in(&self) -> Option<std::time::Duration> {
        None
    }

    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.scopes.as_ref()
    }
}
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    TokenResponseType,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// A tenant's connected app, bound to its login host and our callback URL.
pub struct OAuthApp {
    client: OAuthClient,
    consumer_secret: SecretString,
    revoke_url: String,
    hosts: HostPolicy,
}

impl OAuthApp {
    pub fn new(
        consumer_key: &str,
        consumer_secret: SecretString,
        login: &SalesforceOrigin,
        callback_url: &Url,
        hosts: HostPolicy,
    ) -> Result<Self, SalesforceError> {
        let endpoint = |path: &str| login.join(path);
        let bad = |e: url::ParseError| SalesforceError::Decode(format!("OAuth endpoint URL: {e}"));
        let client = oauth2::Client::new(ClientId::new(consumer_key.to_string()))
            .set_client_secret(ClientSecret::new(
                consumer_secret.expose_secret().to_string(),
            ))
            // Salesforce takes client credentials in the form body.
            .set_auth_type(AuthType::RequestBody)
            .set_auth_uri(AuthUrl::new(endpoint("/services/oauth2/authorize")).map_err(bad)?)
            .set_token_uri(TokenUrl::new(endpoint("/services/oauth2/token")).map_err(bad)?)
            .set_redirect_uri(RedirectUrl::from_url(callback_url.clone()));
        Ok(Self {
            client,
            consumer_secret,
            revoke_url: endpoint("/services/oauth2/revoke"),
            hosts,
        })
    }

    /// The URL the admin's browser is sent to. `state` is the signed state token;
    /// the returned verifier must be kept server-side for the callback.
    pub fn authorize_url(&self, state: &str) -> (Url, PkceCodeVerifier) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = state.to_string();
        let (url, _) = self
            .client
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(SCOPES.iter().map(|s| Scope::new(s.to_string())))
            .set_pkce_challenge(challenge)
            .url();
        (url, verifier)
    }

    /// Exchanges the callback's code (with the PKCE verifier) and verifies the answer.
    pub async fn exchange_code(
        &self,
        http: &reqwest::Client,
        code: &str,
        verifier: &SecretString,
    ) -> Result<TokenGrant, SalesforceError> {
        let client = StatusSeen::new(http);
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose_secret().to_string()))
            .request_async(&client)
            .await
            .map_err(|e| oauth_error(e, client.get()))?;
        self.verify(response)
    }

    /// Uses the refresh token. Salesforce usually returns no new refresh token; when
    /// the app rotates them, the answer carries the new one and the old one is dead.
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        refresh_token: &SecretString,
    ) -> Result<TokenGrant, SalesforceError> {
        let token = RefreshToken::new(refresh_token.expose_secret().to_string());
        let client = StatusSeen::new(http);
        let response = self
            .client
            .exchange_refresh_token(&token)
            .request_async(&client)
            .await
            .map_err(|e| oauth_error(e, client.get()))?;
        self.verify(response)
    }

    /// Revokes a refresh token (which also kills its access tokens):
    /// `POST /services/oauth2/revoke` with `token=`. Sent directly rather than through
    /// `oauth2`, whose revocation refuses the emulator's http origin; the host was
    /// validated like every other Salesforce URL.
    pub async fn revoke(
        &self,
        http: &reqwest::Client,
        refresh_token: &SecretString,
    ) -> Result<(), SalesforceError> {
        let response = http
            .post(&self.revoke_url)
            .form(&[("token", refresh_token.expose_secret())])
            .send()
            .await
            .map_err(|e| SalesforceError::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(());
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| SalesforceError::Transport(e.to_string()))?;
        Err(token_endpoint_error(status, &body))
    }

    fn verify(&self, response: TokenResponseType) -> Result<TokenGrant, SalesforceError> {
        let extra = &response.extra;
        if !signature_matches(
            &self.consumer_secret,
            &extra.id,
            &extra.issued_at,
            &extra.signature,
        ) {
            return Err(SalesforceError::BadSignature);
        }
        let instance = self.hosts.origin(&extra.instance_url)?;
        let identity_url = self.hosts.check_url(&extra.id)?;
        let mut segments = identity_url
            .path_segments()
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
        segments.retain(|s| !s.is_empty());
        let (org_id, user_id) = match segments.as_slice() {
            [.., "id", org, user] => (org.to_string(), user.to_string()),
            _ => {
                return Err(SalesforceError::Decode(
                    "identity URL without org and user ids".into(),
                ));
            }
        };
        Ok(TokenGrant {
            access_token: SecretString::from(response.access_token().secret().clone()),
            refresh_token: response
                .refresh_token()
                .map(|t| SecretString::from(t.secret().clone())),
            instance,
            identity_url,
            org_id,
            user_id,
            scope: response
                .scopes()
                .map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" ")),
        })
    }
}

/// `signature` = base64(HMAC-SHA256(key = consumer secret, message = id + issued_at)),
/// compared in constant time.
pub fn signature_matches(
    consumer_secret: &SecretString,
    id: &str,
    issued_at: &str,
    signature: &str,
) -> bool {
    let Some(expected) = sign(consumer_secret, id, issued_at) else {
        return false;
    };
    expected.as_bytes().ct_eq(signature.as_bytes()).into()
}

/// The signature Salesforce puts on a token response (see [`signature_matches`]).
pub fn sign(consumer_secret: &SecretString, id: &str, issued_at: &str) -> Option<String> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(consumer_secret.expose_secret().as_bytes()).ok()?;
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    Some(STANDARD.encode(mac.finalize().into_bytes()))
}

/// An HTTP client for the `oauth2` crate that keeps the status of the token
/// endpoint's last answer: the crate reports an error body without it.
struct StatusSeen {
    http: reqwest::Client,
    status: std::sync::atomic::AtomicU16,
}

impl StatusSeen {
    fn new(http: &reqwest::Client) -> Self {
        Self {
            http: http.clone(),
            status: std::sync::atomic::AtomicU16::new(0),
        }
    }

    fn get(&self) -> Option<u16> {
        match self.status.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            s => Some(s),
        }
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for StatusSeen {
    type Error = oauth2::HttpClientError<reqwest::Error>;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<oauth2::HttpResponse, Self::Error>>
                + Send
                + Sync
                + 'c,
        >,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let response = oauth2::AsyncHttpClient::call(&self.http, request).await?;
            self.status.store(
                response.status().as_u16(),
                std::sync::atomic::Ordering::Relaxed,
            );
            Ok(response)
        })
    }
}

/// An OAuth error body (`{"error": …, "error_description": …}`).
#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: String,
}

/// The error of a token endpoint answer with a non-success `status`: its OAuth
/// error, or `http_<status>` with what the page says when the body is not one
/// (an HTML page from a CDN).
pub fn token_endpoint_error(status: u16, body: &[u8]) -> SalesforceError {
    match serde_json::from_slice::<OAuthErrorBody>(body) {
        Ok(e) if !e.error.is_empty() => SalesforceError::OAuth {
            status,
            error: e.error,
            description: e.error_description,
        },
        _ => SalesforceError::OAuth {
            status,
            error: format!("http_{status}"),
            description: body_excerpt(body).unwrap_or_else(|| "empty answer".into()),
        },
    }
}

fn oauth_error<RE: std::error::Error + 'static>(
    e: RequestTokenError<RE, BasicErrorResponse>,
    status: Option<u16>,
) -> SalesforceError {
    match (e, status) {
        (RequestTokenError::ServerResponse(r), status) => SalesforceError::OAuth {
            status: status.unwrap_or(400),
            error: r.error().to_string(),
            description: r.error_description().cloned().unwrap_or_default(),
        },
        (RequestTokenError::Request(e), _) => SalesforceError::Transport(e.to_string()),
        // A success whose body is not a token response.
        (RequestTokenError::Parse(e, _), Some(200) | None) => {
            SalesforceError::InvalidJson(format!("token endpoint answer: {e}"))
        }
        // An error whose body is not an OAuth error (an HTML page): its status decides.
        (RequestTokenError::Parse(_, body), Some(status)) => token_endpoint_error(status, &body),
        // A success that is not JSON (wrong content type).
        (RequestTokenError::Other(e), Some(200)) => {
            SalesforceError::InvalidJson(format!("token endpoint answer: {e}"))
        }
        // An error with an empty body.
        (RequestTokenError::Other(e), Some(status)) => token_endpoint_error(status, e.as_bytes()),
        (RequestTokenError::Other(e), None) => SalesforceError::Transport(e),
    }
}

/// The login port on the container's client: each step builds the tenant's
/// connected app (no I/O) and sends its request on the shared HTTP client.
impl<S, D> SalesforceLogin for Sessions<'_, S, D>
where
    S: SecretStore,
    D: LeaseStore + AccessRefusals,
{
    fn hosts(&self) -> &HostPolicy {
        self.client().hosts()
    }

    fn authorize_url(
        &self,
        credentials: &TenantCredentials,
        callback_url: &Url,
        state: &str,
    ) -> Result<(Url, SecretString), SalesforceError> {
        let app = self.client().oauth_app(credentials, callback_url)?;
        let (url, verifier) = app.authorize_url(state);
        Ok((url, SecretString::from(verifier.secret().clone())))
    }

    async fn exchange_code(
        &self,
        credentials: &TenantCredentials,
        callback_url: &Url,
        code: &str,
        verifier: &SecretString,
    ) -> Result<TokenGrant, SalesforceError> {
        let client = self.client();
        client
            .oauth_app(credentials, callback_url)?
            .exchange_code(client.http(), code, verifier)
            .await
    }

    async fn revoke(
        &self,
        credentials: &TenantCredentials,
        callback_url: &Url,
        refresh_token: &SecretString,
    ) -> Result<(), SalesforceError> {
        let client = self.client();
        client
            .oauth_app(credentials, callback_url)?
            .revoke(client.http(), refresh_token)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_id_and_issued_at() {
        // Computed independently: printf '%s' "$id$issued_at" | openssl dgst -sha256 -hmac secret -binary | base64
        let secret = SecretString::from("secret");
        let id = "https://login.salesforce.com/id/00Dx0000000BV7z/005x00000012Q9P";
        let issued = "1278448832702";
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(format!("{id}{issued}").as_bytes());
        let good = STANDARD.encode(mac.finalize().into_bytes());
        assert!(signature_matches(&secret, id, issued, &good));
        assert!(!signature_matches(&secret, id, "1278448832703", &good));
        assert!(!signature_matches(
            &SecretString::from("other"),
            id,
            issued,
            &good
        ));
        assert!(!signature_matches(&secret, id, issued, ""));
    }

    #[test]
    fn authorize_url_carries_pkce_state_and_scopes() {
        let hosts = HostPolicy::default();
        let login = hosts.origin("https://acme.my.salesforce.com").unwrap();
        let app = OAuthApp::new(
            "3MVG9key",
            SecretString::from("s"),
            &login,
            &Url::parse("https://app.modjo.ai/integrations/salesforce/callback").unwrap(),
            hosts,
        )
        .unwrap();
        let (url, verifier) = app.authorize_url("signed.state");
        assert_eq!(
            url.origin().ascii_serialization(),
            "https://acme.my.salesforce.com"
        );
        assert_eq!(url.path(), "/services/oauth2/authorize");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "3MVG9key");
        assert_eq!(
            q["redirect_uri"],
            "https://app.modjo.ai/integrations/salesforce/callback"
        );
        assert_eq!(q["state"], "signed.state");
        assert_eq!(q["scope"], "api id refresh_token");
        assert_eq!(q["code_challenge_method"], "S256");
        let expected = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
        assert_eq!(&q["code_challenge"], expected.as_str());
        assert!(!url.as_str().contains(verifier.secret()));
    }
}

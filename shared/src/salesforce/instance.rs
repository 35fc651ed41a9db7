//! Salesforce host validation and normalisation (DESIGN §4).
//!
//! The consumer secret and the tokens are only ever sent to a host that passes
//! these checks, which closes the SSRF hole of "post our client secret to
//! whatever URL an admin (or attacker) typed". Extra origins (the emulator) are
//! allowed only when configuration names them exactly; production never does.

use std::fmt;

use url::{Host, Url};

/// Registrable domains that belong to Salesforce.
const SALESFORCE_DOMAINS: &[&str] = &[
    "salesforce.com",
    "force.com",
    "cloudforce.com",
    "salesforce.mil",
    "sfcrmproducts.cn",
];

/// Why a URL was refused. The message is safe to show to an admin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstanceUrlError {
    #[error("not a valid URL")]
    Unparseable,
    #[error("only https URLs are accepted")]
    NotHttps,
    #[error("URLs with a user name or password are refused")]
    HasCredentials,
    #[error(
        "IP addresses are refused: use your Salesforce domain (e.g. https://acme.my.salesforce.com)"
    )]
    IpLiteral,
    #[error("a host ending with a dot is refused")]
    TrailingDot,
    #[error("only the default https port is accepted")]
    NonDefaultPort,
    #[error("{0} is not a Salesforce domain (expected e.g. https://acme.my.salesforce.com)")]
    NotSalesforce(String),
}

/// A validated Salesforce origin: `https://acme.my.salesforce.com` (or, in tests,
/// an explicitly allowed emulator origin). Never has a path.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SalesforceOrigin(Url);

impl SalesforceOrigin {
    /// `https://host` without a trailing slash.
    pub fn as_str(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }

    /// Joins an absolute path (`/services/...`) onto the origin.
    pub fn join(&self, path_and_query: &str) -> String {
        format!("{}{}", self.as_str(), path_and_query)
    }
}

impl fmt::Display for SalesforceOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for SalesforceOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SalesforceOrigin({})", self.as_str())
    }
}

/// Decides which hosts the product may talk to.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    extra_origins: Vec<String>,
}

impl HostPolicy {
    /// Salesforce's domains, plus `extra_origins` matched exactly (scheme, host, port).
    pub fn new(extra_origins: &[Url]) -> Self {
        Self {
            extra_origins: extra_origins
                .iter()
                .map(|u| u.origin().ascii_serialization())
                .collect(),
        }
    }

    /// Validates a Salesforce URL typed by an admin or returned by the token
    /// endpoint (instance URL, login host), and normalises it to its origin: path,
    /// query and fragment are dropped, the host is lower-cased, and a Lightning UI
    /// host (`acme.lightning.force.com`) maps to its API host (`acme.my.salesforce.com`).
    pub fn origin(&self, raw: &str) -> Result<SalesforceOrigin, InstanceUrlError> {
        let url = self.parse(raw)?;
        if let Some(allowed) = self.extra(&url) {
            return Ok(allowed);
        }
        let host = self.salesforce_host(&url)?;
        Url::parse(&format!("https://{}", map_lightning_host(&host)))
            .map(SalesforceOrigin)
            .map_err(|_| InstanceUrlError::Unparseable)
    }

    /// Whether `url` (absolute) stays on an allowed Salesforce origin: used for the
    /// identity URL returned by the token endpoint.
    pub fn check_url(&self, raw: &str) -> Result<Url, InstanceUrlError> {
        let url = self.parse(raw)?;
        if self.extra(&url).is_none() {
            self.salesforce_host(&url)?;
        }
        Ok(url)
    }

    fn parse(&self, raw: &str) -> Result<Url, InstanceUrlError> {
        let trimmed = raw.trim();
        // Admins often paste a bare host: treat it as https.
        let candidate = if trimmed.contains("://") {
            trimmed.to_string()
        } else {
            format!("https://{trimmed}")
        };
        Url::parse(&candidate).map_err(|_| InstanceUrlError::Unparseable)
    }

    /// Whether `url`'s origin is one configuration allowed explicitly (the emulator).
    pub fn is_extra_origin(&self, url: &Url) -> bool {
        self.extra(url).is_some()
    }

    fn extra(&self, url: &Url) -> Option<SalesforceOrigin> {
        let origin = url.origin().ascii_serialization();
        let no_credentials = url.username().is_empty() && url.password().is_none();
        (no_credentials && self.extra_origins.contains(&origin))
            .then(|| Url::parse(&origin).ok().map(SalesforceOrigin))
            .flatten()
    }

    fn salesforce_host(&self, url: &Url) -> Result<String, InstanceUrlError> {
        if url.scheme() != "https" {
            return Err(InstanceUrlError::NotHttps);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InstanceUrlError::HasCredentials);
        }
        let host = match url.host() {
            Some(Host::Domain(d)) => d.to_ascii_lowercase(),
            Some(Host::Ipv4(_)) | Some(Host::Ipv6(_)) => return Err(InstanceUrlError::IpLiteral),
            None => return Err(InstanceUrlError::Unparseable),
        };
        if host.ends_with('.') {
            return Err(InstanceUrlError::TrailingDot);
        }
        if url.port().is_some_and(|p| p != 443) {
            return Err(InstanceUrlError::NonDefaultPort);
        }
        let labels: Vec<&str> = host.split('.').collect();
        let valid_labels = labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        let on_salesforce = SALESFORCE_DOMAINS.iter().any(|domain| {
            host.strip_suffix(domain)
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.'))
        });
        if valid_labels && on_salesforce {
            Ok(host)
        } else {
            Err(InstanceUrlError::NotSalesforce(host))
        }
    }
}

/// `acme.lightning.force.com` → `acme.my.salesforce.com`;
/// `acme--dev.sandbox.lightning.force.com` → `acme--dev.sandbox.my.salesforce.com`;
/// `acme.my.salesforce-setup.com` is not on our list and is refused earlier.
fn map_lightning_host(host: &str) -> String {
    match host.strip_suffix(".lightning.force.com") {
        Some(prefix) => format!("{prefix}.my.salesforce.com"),
        None => host.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HostPolicy {
        HostPolicy::default()
    }

    #[test]
    fn accepts_and_normalises_salesforce_hosts() {
        let cases = [
            (
                "https://acme.my.salesforce.com",
                "https://acme.my.salesforce.com",
            ),
            (
                "https://ACME.my.salesforce.com/",
                "https://acme.my.salesforce.com",
            ),
            ("acme.my.salesforce.com", "https://acme.my.salesforce.com"),
            (
                "https://acme.my.salesforce.com/lightning/page/home?x=1#y",
                "https://acme.my.salesforce.com",
            ),
            (
                "https://acme.lightning.force.com/lightning/o/Contact/list",
                "https://acme.my.salesforce.com",
            ),
            (
                "https://acme--dev.sandbox.lightning.force.com",
                "https://acme--dev.sandbox.my.salesforce.com",
            ),
            (
                "https://acme--dev.sandbox.my.salesforce.com",
                "https://acme--dev.sandbox.my.salesforce.com",
            ),
            ("https://na85.salesforce.com", "https://na85.salesforce.com"),
            (
                "https://acme.my.salesforce.com:443",
                "https://acme.my.salesforce.com",
            ),
        ];
        for (raw, expected) in cases {
            let origin = policy()
                .origin(raw)
                .unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(origin.as_str(), expected, "{raw}");
        }
        for login in [
            "https://login.salesforce.com",
            "https://test.salesforce.com",
        ] {
            assert_eq!(policy().origin(login).unwrap().as_str(), login);
        }
    }

    #[test]
    fn refuses_ssrf_attempts() {
        use InstanceUrlError::*;
        type Check = fn(&InstanceUrlError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("http://acme.my.salesforce.com", |e| *e == NotHttps),
            ("https://169.254.169.254/latest/meta-data", |e| {
                *e == IpLiteral
            }),
            ("https://2852039166", |e| *e == IpLiteral),
            ("https://0xa9fea9fe", |e| *e == IpLiteral),
            ("https://[::1]", |e| *e == IpLiteral),
            ("https://127.0.0.1:8443", |e| *e == IpLiteral),
            ("https://evil.com", |e| matches!(e, NotSalesforce(_))),
            ("https://salesforce.com.evil.com", |e| {
                matches!(e, NotSalesforce(_))
            }),
            ("https://evilsalesforce.com", |e| {
                matches!(e, NotSalesforce(_))
            }),
            ("https://salesforce.com", |e| matches!(e, NotSalesforce(_))),
            ("https://acme.my.salesforce.com@evil.com", |e| {
                *e == HasCredentials
            }),
            ("https://user:pw@acme.my.salesforce.com", |e| {
                *e == HasCredentials
            }),
            ("https://evil.com\\@acme.my.salesforce.com", |e| {
                matches!(e, NotSalesforce(_))
            }),
            ("https://evil.com#.salesforce.com", |e| {
                matches!(e, NotSalesforce(_))
            }),
            ("https://evil.com?.salesforce.com", |e| {
                matches!(e, NotSalesforce(_))
            }),
            ("https://acme.my.salesforce.com.", |e| *e == TrailingDot),
            ("https://acme.my.salesforce.com:8443", |e| {
                *e == NonDefaultPort
            }),
            ("https://acme.my.salesforce.com.evil.com", |e| {
                matches!(e, NotSalesforce(_))
            }),
            ("https://acme_x.my.salesforce.com", |e| {
                matches!(e, NotSalesforce(_))
            }),
            ("ftp://acme.my.salesforce.com", |e| *e == NotHttps),
            ("javascript:alert(1)", |e| {
                *e == NotHttps || *e == Unparseable
            }),
            ("", |e| *e == Unparseable),
            ("https://", |e| *e == Unparseable),
        ];
        for (raw, expected) in cases {
            match policy().origin(raw) {
                Ok(o) => panic!("{raw:?} accepted as {o}"),
                Err(e) => assert!(expected(&e), "{raw:?}: unexpected error {e:?}"),
            }
        }
    }

    #[test]
    fn extra_origins_are_exact() {
        let extra = [Url::parse("http://127.0.0.1:8443").unwrap()];
        let p = HostPolicy::new(&extra);
        assert_eq!(
            p.origin("http://127.0.0.1:8443/services/data")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8443"
        );
        // Another port, scheme or credentials: refused.
        assert!(p.origin("http://127.0.0.1:8444").is_err());
        assert!(p.origin("https://127.0.0.1:8443").is_err());
        assert!(p.origin("http://u:p@127.0.0.1:8443").is_err());
        assert!(p.check_url("http://127.0.0.1:8443/id/00D/005").is_ok());
        assert!(p.check_url("http://169.254.169.254/id/00D/005").is_err());
        // Production rules still apply to everything else.
        assert!(p.origin("https://acme.my.salesforce.com").is_ok());
    }

    #[test]
    fn join_builds_urls_on_the_origin() {
        let o = policy().origin("https://acme.my.salesforce.com/x").unwrap();
        assert_eq!(
            o.join("/services/data/v62.0/query?q=x"),
            "https://acme.my.salesforce.com/services/data/v62.0/query?q=x"
        );
    }
}

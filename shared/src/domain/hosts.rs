//! Which hosts the product may talk to (DESIGN §4): Salesforce instance and login
//! hosts, validated and normalised, and the Pub/Sub API endpoint.
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

/// Production's login host, and the sandboxes'.
pub const LOGIN_HOST: &str = "login.salesforce.com";
pub const SANDBOX_LOGIN_HOST: &str = "test.salesforce.com";

/// Pods (shared instances) named by a host's first label: classic ones (`na85`,
/// `eu40`, `ap15`, `cs42` for sandboxes, `um5`, `gs0`) and Hyperforce ones (a
/// country code, a number and `s`: `usa2s`, `deu4s`).
const CLASSIC_PODS: &[&str] = &["na", "eu", "ap", "cs", "um", "gs"];
const HYPERFORCE_PODS: &[&str] = &[
    "usa", "can", "aus", "ind", "jpn", "deu", "fra", "gbr", "sgp", "bra", "kor", "che", "swe",
    "isr", "ita", "esp", "zaf", "are",
];

/// A pod named by `host` (`eu40.lightning.force.com`, `na85.salesforce.com`), and
/// whether it is a sandbox pod.
fn pod(host: &str) -> Option<(&str, bool)> {
    let label = host
        .strip_suffix(".lightning.force.com")
        .or_else(|| host.strip_suffix(".salesforce.com"))?;
    if label.contains('.') {
        return None;
    }
    let letters = label.bytes().take_while(u8::is_ascii_lowercase).count();
    let (prefix, rest) = label.split_at(letters);
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (number, tail) = rest.split_at(digits);
    let classic = CLASSIC_PODS.contains(&prefix) && tail.is_empty();
    let hyperforce = HYPERFORCE_PODS.contains(&prefix) && tail == "s";
    ((1..=3).contains(&number.len()) && (classic || hyperforce)).then_some((label, prefix == "cs"))
}

/// An org's address as an admin typed it, made into the hosts the product uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgAddress {
    /// Where the API is reached until the token response names the org's own host.
    pub instance: SalesforceOrigin,
    /// Where the org signs in: its My Domain, or the login host of a pod
    /// (`login.salesforce.com`; `test.salesforce.com` for sandbox pods).
    pub login: SalesforceOrigin,
    /// What was changed, in plain words for the admin.
    pub notes: Vec<String>,
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

    /// Validates and normalises an org's address (see [`Self::origin`]), derives its
    /// login host, and says what was changed.
    pub fn org_address(&self, raw: &str) -> Result<OrgAddress, InstanceUrlError> {
        let instance = self.origin(raw)?;
        let url = self.parse(raw)?;
        if self.extra(&url).is_some() {
            return Ok(OrgAddress {
                login: instance.clone(),
                instance,
                notes: Vec::new(),
            });
        }
        let typed = self.salesforce_host(&url)?;
        let mut notes = Vec::new();
        let login = match pod(&typed) {
            Some((name, sandbox)) => {
                let login_host = if sandbox {
                    SANDBOX_LOGIN_HOST
                } else {
                    LOGIN_HOST
                };
                let login = self.origin(login_host)?;
                notes.push(format!(
                    "{typed} is a Salesforce server shared by many orgs (pod {}), not your org's own address: Modjo signs in through {login}{}, then uses the address Salesforce gives for your org.",
                    name.to_ascii_uppercase(),
                    if sandbox { " (sandbox pod)" } else { "" },
                ));
                login
            }
            None => {
                if typed != instance.host() {
                    notes.push(format!(
                        "{typed} is the address of Salesforce's Lightning pages; Modjo uses your org's API address, {instance}."
                    ));
                }
                instance.clone()
            }
        };
        let extra_parts =
            !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some();
        if extra_parts {
            notes.push(format!(
                "Only the address of the org is kept ({instance}); the rest of the link is not needed."
            ));
        }
        Ok(OrgAddress {
            instance,
            login,
            notes,
        })
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
/// a pod's Lightning host, which has no My Domain twin, → the pod's own host
/// (`eu40.lightning.force.com` → `eu40.salesforce.com`);
/// `acme.my.salesforce-setup.com` is not on our list and is refused earlier.
fn map_lightning_host(host: &str) -> String {
    match host.strip_suffix(".lightning.force.com") {
        Some(prefix) if pod(host).is_some() => format!("{prefix}.salesforce.com"),
        Some(prefix) => format!("{prefix}.my.salesforce.com"),
        None => host.to_string(),
    }
}

/// Salesforce's Pub/Sub API endpoint.
pub const PUBSUB_ENDPOINT: &str = "https://api.pubsub.salesforce.com:7443";

/// A validated Pub/Sub endpoint: Salesforce's own host (`*.pubsub.salesforce.com`
/// over https), or an origin allowed explicitly by configuration (the emulator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubSubEndpoint(Url);

impl PubSubEndpoint {
    pub fn parse(raw: &str, hosts: &HostPolicy) -> Result<Self, InstanceUrlError> {
        let url = Url::parse(raw).map_err(|_| InstanceUrlError::Unparseable)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InstanceUrlError::HasCredentials);
        }
        if hosts.is_extra_origin(&url) {
            return Ok(Self(url));
        }
        if url.scheme() != "https" {
            return Err(InstanceUrlError::NotHttps);
        }
        match url.host() {
            Some(Host::Domain(h))
                if h == "api.pubsub.salesforce.com" || h.ends_with(".pubsub.salesforce.com") =>
            {
                Ok(Self(url))
            }
            Some(Host::Domain(h)) => Err(InstanceUrlError::NotSalesforce(h.to_string())),
            Some(_) => Err(InstanceUrlError::IpLiteral),
            None => Err(InstanceUrlError::Unparseable),
        }
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Over TLS: every endpoint but an emulator allowed by configuration.
    pub fn is_https(&self) -> bool {
        self.0.scheme() == "https"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_salesforce_or_explicitly_allowed() {
        let hosts = HostPolicy::default();
        assert!(PubSubEndpoint::parse(PUBSUB_ENDPOINT, &hosts).is_ok());
        assert!(
            PubSubEndpoint::parse("https://api.deu.pubsub.salesforce.com:7443", &hosts).is_ok()
        );
        for bad in [
            "http://api.pubsub.salesforce.com:7443",
            "https://evil.com:7443",
            "https://api.pubsub.salesforce.com.evil.com",
            "https://10.0.0.1:7443",
            "https://x@api.pubsub.salesforce.com",
            "http://127.0.0.1:7443",
        ] {
            assert!(PubSubEndpoint::parse(bad, &hosts).is_err(), "{bad}");
        }
        let emulator = HostPolicy::new(&[Url::parse("http://127.0.0.1:7443").unwrap()]);
        assert!(PubSubEndpoint::parse("http://127.0.0.1:7443", &emulator).is_ok());
        assert!(PubSubEndpoint::parse("http://127.0.0.1:7444", &emulator).is_err());
        assert!(PubSubEndpoint::parse("http://u:p@127.0.0.1:7443", &emulator).is_err());
    }

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
    fn pods_sign_in_at_salesforces_login_hosts() {
        let cases = [
            // typed, API host until OAuth, login host
            (
                "https://eu40.lightning.force.com",
                "https://eu40.salesforce.com",
                "https://login.salesforce.com",
            ),
            (
                "https://na85.salesforce.com",
                "https://na85.salesforce.com",
                "https://login.salesforce.com",
            ),
            (
                "https://um5.lightning.force.com/lightning/page/home",
                "https://um5.salesforce.com",
                "https://login.salesforce.com",
            ),
            (
                "https://cs42.lightning.force.com",
                "https://cs42.salesforce.com",
                "https://test.salesforce.com",
            ),
            (
                "https://cs42.salesforce.com",
                "https://cs42.salesforce.com",
                "https://test.salesforce.com",
            ),
            (
                "https://usa2s.lightning.force.com",
                "https://usa2s.salesforce.com",
                "https://login.salesforce.com",
            ),
            // Not pods: My Domains sign in at themselves.
            (
                "https://acme.lightning.force.com",
                "https://acme.my.salesforce.com",
                "https://acme.my.salesforce.com",
            ),
            (
                "https://acme2.lightning.force.com",
                "https://acme2.my.salesforce.com",
                "https://acme2.my.salesforce.com",
            ),
            (
                "https://na85.my.salesforce.com",
                "https://na85.my.salesforce.com",
                "https://na85.my.salesforce.com",
            ),
            (
                "https://acme--dev.sandbox.my.salesforce.com",
                "https://acme--dev.sandbox.my.salesforce.com",
                "https://acme--dev.sandbox.my.salesforce.com",
            ),
            (
                "https://login.salesforce.com",
                "https://login.salesforce.com",
                "https://login.salesforce.com",
            ),
            (
                "https://test.salesforce.com",
                "https://test.salesforce.com",
                "https://test.salesforce.com",
            ),
        ];
        for (typed, instance, login) in cases {
            let a = policy()
                .org_address(typed)
                .unwrap_or_else(|e| panic!("{typed}: {e}"));
            assert_eq!(
                (a.instance.as_str(), a.login.as_str()),
                (instance, login),
                "{typed}"
            );
        }
    }

    #[test]
    fn the_admin_is_told_what_was_changed() {
        let pod = policy()
            .org_address("https://eu40.lightning.force.com")
            .unwrap();
        assert_eq!(pod.notes.len(), 1, "{:?}", pod.notes);
        assert!(
            pod.notes[0].contains("eu40.lightning.force.com"),
            "{}",
            pod.notes[0]
        );
        assert!(
            pod.notes[0].contains("https://login.salesforce.com"),
            "{}",
            pod.notes[0]
        );
        let sandbox = policy().org_address("cs42.salesforce.com").unwrap();
        assert!(
            sandbox.notes[0].contains("https://test.salesforce.com"),
            "{}",
            sandbox.notes[0]
        );
        let lightning = policy()
            .org_address("https://acme.lightning.force.com/lightning/o/Contact/list?x=1")
            .unwrap();
        assert_eq!(lightning.notes.len(), 2, "{:?}", lightning.notes);
        assert!(lightning.notes[0].contains("https://acme.my.salesforce.com"));
        assert!(lightning.notes[1].contains("rest of the link"));
        let plain = policy()
            .org_address("https://acme.my.salesforce.com")
            .unwrap();
        assert!(plain.notes.is_empty(), "{:?}", plain.notes);
        assert!(policy().org_address("https://eu40.evil.com").is_err());
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

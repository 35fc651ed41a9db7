//! The settings page (`GET /integrations/salesforce/console`): static HTML, CSS
//! and JavaScript embedded in the binary, served publicly (the page holds no
//! data; every data request it makes carries the admin's bearer token).
//!
//! Served with a strict Content-Security-Policy: scripts and styles only from
//! this origin and never inline, data requests only to this origin, no framing,
//! no form posts, and Trusted Types required, so that the page cannot build
//! markup from strings at all.

use std::sync::OnceLock;

use lambda_http::{Body, Request, Response};
use sha2::{Digest, Sha256};

use super::ApiError;

/// The page's Content-Security-Policy.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; \
trusted-types 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const PAGE: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("console/index.html"),
};

/// The files the page loads (`console/<name>`).
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("console/app.js"),
    },
    Asset {
        name: "i18n.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("console/i18n.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("console/app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_str!("console/icon.svg"),
    },
];

/// The names of the files under `console/`.
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.name)
}

/// `GET console`.
pub fn page(request: &Request) -> Response<Body> {
    serve(&PAGE, request)
}

/// `GET console/<name>`.
pub fn asset(name: &str, request: &Request) -> Result<Response<Body>, ApiError> {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|a| serve(a, request))
        .ok_or_else(|| ApiError::new(404, "not_found", "no such file"))
}

/// A strong validator of the file's content, computed once per file.
fn etag(asset: &Asset) -> &'static str {
    static TAGS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        std::iter::once(&PAGE)
            .chain(ASSETS)
            .map(|a| {
                let digest = Sha256::digest(a.body.as_bytes());
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                (a.name, format!("\"{hex}\""))
            })
            .collect()
    });
    tags.iter()
        .find(|(name, _)| *name == asset.name)
        .map(|(_, tag)| tag.as_str())
        .unwrap_or("\"0\"")
}

fn serve(asset: &Asset, request: &Request) -> Response<Body> {
    let tag = etag(asset);
    let fresh = request
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut response = if fresh {
        let mut r = Response::new(Body::Empty);
        *r.status_mut() = http::StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(Body::Text(asset.body.to_string()))
    };
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = http::HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set("content-type", asset.content_type);
    set("etag", tag);
    // Revalidated on every load: a deploy shows at once, unchanged files cost a 304.
    set("cache-control", "no-cache");
    set("content-security-policy", CONTENT_SECURITY_POLICY);
    set("x-frame-options", "DENY");
    set("x-content-type-options", "nosniff");
    set("referrer-policy", "no-referrer");
    set("cross-origin-opener-policy", "same-origin");
    set("cross-origin-resource-policy", "same-origin");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_script_or_style_and_loads_only_its_assets() {
        let html = PAGE.body;
        for (start, _) in html.match_indices("<script") {
            let tag = &html[start..start + html[start..].find('>').unwrap()];
            assert!(
                tag.contains("src=\"console/"),
                "inline or foreign script: {tag}"
            );
            let close = &html[start..];
            let body_start = close.find('>').unwrap() + 1;
            assert!(
                close[body_start..].starts_with("</script>"),
                "script with a body"
            );
        }
        assert!(!html.contains("<style"), "inline style element");
        assert!(!html.contains(" style=\""), "inline style attribute");
        for tag in html.split('<').skip(1) {
            let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
            for attribute in tag.split_whitespace().skip(1) {
                assert!(
                    !(attribute.starts_with("on") && attribute.contains('=')),
                    "inline event handler in <{tag}>"
                );
            }
        }
        // Everything loaded or linked comes from this origin.
        for attribute in ["src=\"", "href=\""] {
            for (at, _) in html.match_indices(attribute) {
                let value = &html[at + attribute.len()..];
                let value = &value[..value.find('"').unwrap()];
                assert!(
                    value.starts_with("console/") || value.starts_with('#'),
                    "{attribute}{value}"
                );
            }
        }
        for js in ["app.js", "i18n.js"] {
            let body = ASSETS.iter().find(|a| a.name == js).unwrap().body;
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "eval(",
                "document.write",
                "new Function",
            ] {
                assert!(!body.contains(banned), "{js} uses {banned}");
            }
        }
    }

    #[test]
    fn etags_differ_per_file() {
        let tags: std::collections::HashSet<&str> =
            std::iter::once(&PAGE).chain(ASSETS).map(etag).collect();
        assert_eq!(tags.len(), ASSETS.len() + 1);
    }
}

//! `POST composite`: up to 25 subrequests in one API call, with `@{ref.field}`
//! references to earlier results and optional all-or-none.

use crate::http::Resp;
use crate::rest::{ApiCtx, MAX_COMPOSITE, dispatch, kind};
use crate::world::World;
use http::Method;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

const MAX_QUERY_OR_COLLECTION: usize = 5;

fn halted(message: &str) -> Value {
    json!([{ "errorCode": "PROCESSING_HALTED", "message": message }])
}

/// One entry of `compositeResponse`, keys in Salesforce's order.
fn sub_response(body: Value, headers: Map<String, Value>, status: u16, reference: &str) -> Value {
    let mut entry = Map::with_capacity(4);
    entry.insert("body".into(), body);
    entry.insert("httpHeaders".into(), Value::Object(headers));
    entry.insert("httpStatusCode".into(), status.into());
    entry.insert("referenceId".into(), reference.into());
    Value::Object(entry)
}

const ROLLED_BACK: &str =
    "The transaction was rolled back since another operation in the same transaction failed.";

/// True for an sObject Collections result with a failed record.
fn has_failed_record(body: &Value) -> bool {
    matches!(body, Value::Array(rows) if rows.iter().any(|r| r.get("success") == Some(&Value::Bool(false))))
}

/// Follows `a.b[0].c` in a JSON value.
fn lookup<'a>(mut v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    for seg in path {
        let (name, rest) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (*seg, ""),
        };
        if !name.is_empty() {
            v = v.get(name)?;
        }
        let mut idx_text = rest;
        while let Some(stripped) = idx_text.strip_prefix('[') {
            let close = stripped.find(']')?;
            let n: usize = stripped[..close].parse().ok()?;
            v = match v {
                Value::Array(a) => a.get(n)?,
                _ => return None,
            };
            idx_text = &stripped[close + 1..];
        }
    }
    Some(v)
}

/// Replaces `@{ref.path}` in a string. A string that is exactly one reference
/// takes the referenced JSON value.
fn resolve_text(s: &str, results: &HashMap<String, Value>) -> Result<Value, String> {
    if !s.contains("@{") {
        return Ok(Value::String(s.to_string()));
    }
    let mut out = String::new();
    let mut rest = s;
    let mut whole: Option<Value> = None;
    while let Some(start) = rest.find("@{") {
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let expr = &rest[start + 2..start + end];
        let mut parts = expr.split('.');
        let reference = parts.next().unwrap_or("");
        let path: Vec<&str> = parts.collect();
        let value = results
            .get(reference)
            .and_then(|body| lookup(body, &path))
            .ok_or_else(|| {
                format!(
                    "Invalid reference specified. No value for {expr} found in {reference}. Provided referenceId ('{reference}') does not exist or its associated subrequest had an error."
                )
            })?;
        if start == 0 && start + end + 1 == rest.len() && out.is_empty() {
            whole = Some(value.clone());
        }
        out.push_str(&rest[..start]);
        match value {
            Value::String(t) => out.push_str(t),
            Value::Null => out.push_str("null"),
            other => out.push_str(&other.to_string()),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    match whole {
        Some(v) if rest.is_empty() => Ok(v),
        _ => Ok(Value::String(out)),
    }
}

fn resolve_json(v: &Value, results: &HashMap<String, Value>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => resolve_text(s, results)?,
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| resolve_json(x, results))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), resolve_json(x, results)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

struct Sub {
    method: Method,
    url: String,
    reference: String,
    body: Option<serde_json::Value>,
    /// `httpHeaders`: headers of the subrequest.
    headers: Vec<(String, String)>,
}

/// Headers a subrequest inherits from the top-level request and may not set:
/// "If you do, the top-level request fails and returns an HTTP 400 response"
/// (REST API guide, Composite Subrequest).
const INHERITED: &[&str] = &["accept", "authorization", "content-type"];

fn http_headers(item: &serde_json::Value) -> Result<Vec<(String, String)>, Resp> {
    let Some(h) = item.get("httpHeaders") else {
        return Ok(Vec::new());
    };
    let Some(map) = h.as_object() else {
        return Err(Resp::error(
            400,
            "JSON_PARSER_ERROR",
            "httpHeaders must be a JSON object of header names and string values",
        ));
    };
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        let Some(v) = v.as_str() else {
            return Err(Resp::error(
                400,
                "JSON_PARSER_ERROR",
                &format!("httpHeaders: the value of {k} must be a string"),
            ));
        };
        if INHERITED.contains(&k.to_ascii_lowercase().as_str()) {
            return Err(Resp::error(
                400,
                "INVALID_API_INPUT",
                &format!(
                    "The {k} header cannot be set in a subrequest: subrequests inherit Accept, Authorization and Content-Type from the composite request"
                ),
            ));
        }
        out.push((k.clone(), v.to_string()));
    }
    Ok(out)
}

fn parse_subrequests(body: Option<&serde_json::Value>) -> Result<(bool, Vec<Sub>), Resp> {
    let Some(b) = body.and_then(|b| b.as_object()) else {
        return Err(Resp::error(
            400,
            "JSON_PARSER_ERROR",
            "The request body must be a JSON object",
        ));
    };
    let all_or_none = b
        .get("allOrNone")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let Some(list) = b.get("compositeRequest").and_then(|v| v.as_array()) else {
        return Err(Resp::error(
            400,
            "JSON_PARSER_ERROR",
            "compositeRequest: a JSON array of subrequests is required",
        ));
    };
    if list.is_empty() {
        return Err(Resp::error(
            400,
            "INVALID_API_INPUT",
            "compositeRequest must not be empty",
        ));
    }
    if list.len() > MAX_COMPOSITE {
        return Err(Resp::error(
            400,
            "LIMIT_EXCEEDED",
            &format!(
                "Exceeded max limit of subrequests: a composite request can have at most {MAX_COMPOSITE} subrequests"
            ),
        ));
    }
    let mut subs = Vec::new();
    let mut refs: Vec<String> = Vec::new();
    for item in list {
        let get = |k: &str| item.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let (Some(method), Some(url), Some(reference)) =
            (get("method"), get("url"), get("referenceId"))
        else {
            return Err(Resp::error(
                400,
                "INVALID_API_INPUT",
                "Each subrequest needs method, url and referenceId",
            ));
        };
        // "The referenceId must start with a letter or a number" and "must
        // not contain anything besides letters, numbers, or underscores"; from
        // API 52.0 "any illegal characters in reference IDs cause the whole
        // request to fail".
        let valid_ref = reference
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && reference
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_ref {
            return Err(Resp::error(
                400,
                "INVALID_API_INPUT",
                &format!(
                    "Invalid referenceId '{reference}': it must start with a letter or a number and use letters, numbers and underscores"
                ),
            ));
        }
        if refs.contains(&reference) {
            return Err(Resp::error(
                400,
                "INVALID_API_INPUT",
                &format!("Duplicate referenceId provided in the request: {reference}"),
            ));
        }
        refs.push(reference.clone());
        let method = match method.to_ascii_uppercase().as_str() {
            "GET" => Method::GET,
            "POST" => Method::POST,
            "PATCH" => Method::PATCH,
            "DELETE" => Method::DELETE,
            "PUT" => Method::PUT,
            other => {
                return Err(Resp::error(
                    400,
                    "INVALID_API_INPUT",
                    &format!("Unsupported method in subrequest: {other}"),
                ));
            }
        };
        subs.push(Sub {
            method,
            url,
            reference,
            body: item.get("body").cloned(),
            headers: http_headers(item)?,
        });
    }
    Ok((all_or_none, subs))
}

/// (version, path segments, query parameters).
type SplitUrl = (String, Vec<String>, Vec<(String, String)>);

fn split_url(url: &str) -> Option<SplitUrl> {
    let rest = url.strip_prefix("/services/data/")?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (ver, tail) = path.split_once('/').unwrap_or((path, ""));
    let version = ver.strip_prefix('v')?.to_string();
    let segs: Vec<String> = tail
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let params = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    Some((version, segs, params))
}

/// POST composite.
pub fn composite(world: &mut World, ctx: &ApiCtx, body: Option<&serde_json::Value>) -> Resp {
    let (all_or_none, subs) = match parse_subrequests(body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let heavy = subs
        .iter()
        .filter(|s| {
            split_url(&s.url).is_some_and(|(_, segs, _)| {
                matches!(
                    kind(&s.method, &segs),
                    "query"
                        | "queryAll"
                        | "queryMore"
                        | "collectionsCreate"
                        | "collectionsUpdate"
                        | "collectionsRetrieve"
                )
            })
        })
        .count();
    if heavy > MAX_QUERY_OR_COLLECTION {
        return Resp::error(
            400,
            "LIMIT_EXCEEDED",
            "A composite request can contain at most 5 query or sObject Collections subrequests",
        );
    }
    let sp = world.orgs[ctx.org].savepoint();
    let mut results: HashMap<String, Value> = HashMap::new();
    let mut out: Vec<Value> = Vec::new();
    let mut failed_at: Option<usize> = None;
    for (i, sub) in subs.iter().enumerate() {
        let resolved = resolve_text(&sub.url, &results).map(|u| match u {
            Value::String(s) => s,
            other => other.to_string(),
        });
        let resolved_body = match &sub.body {
            Some(b) => resolve_json(b, &results).map(Some),
            None => Ok(None),
        };
        let resp = match (resolved, resolved_body) {
            (Err(msg), _) | (_, Err(msg)) => Resp::json(400, halted(&msg)),
            (Ok(url), Ok(b)) => match split_url(&url) {
                None => Resp::error(
                    400,
                    "INVALID_API_INPUT",
                    &format!("Invalid subrequest url: {url}"),
                ),
                Some((version, segs, params)) => {
                    let k = kind(&sub.method, &segs);
                    let version = crate::versions::parse(&format!("v{version}"));
                    if let crate::versions::Version::Retired(v) = &version {
                        crate::rest::gone(v)
                    } else if version == crate::versions::Version::Unknown {
                        Resp::not_found()
                    } else if matches!(k, "composite" | "search" | "other" | "limits") {
                        Resp::error(
                            400,
                            "INVALID_API_INPUT",
                            &format!(
                                "This resource is not supported in a composite subrequest: {url}"
                            ),
                        )
                    } else {
                        // Conditional and query-option headers come from the
                        // subrequest's httpHeaders, not from the composite
                        // request.
                        let mut sub_ctx = ctx.clone();
                        if let crate::versions::Version::Served(v) = version {
                            sub_ctx.version = v;
                        }
                        let pairs = || sub.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                        sub_ctx.cond = crate::conditional::Conditions::from_pairs(pairs());
                        sub_ctx.batch = crate::rest::batch_size(
                            pairs()
                                .find(|(k, _)| k.eq_ignore_ascii_case("sforce-query-options"))
                                .map(|(_, v)| v),
                        );
                        dispatch(world, &sub_ctx, &sub.method, &segs, &params, b.as_ref())
                    }
                }
            },
        };
        let body = match &resp.body {
            crate::http::Body_::Json(j) => j.clone(),
            _ => Value::Null,
        };
        let mut headers = Map::new();
        if resp.status == 201
            && let Some(id) = body.get("id").and_then(Value::as_str)
            && let Some((version, segs, _)) = split_url(&sub.url)
            && segs.len() >= 2
        {
            headers.insert(
                "Location".into(),
                format!("/services/data/v{version}/sobjects/{}/{id}", segs[1]).into(),
            );
        }
        for (k, v) in &resp.headers {
            if k.eq_ignore_ascii_case("ETag") {
                headers.insert("ETag".into(), v.as_str().into());
            }
        }
        let ok = resp.status < 400;
        // With allOrNone, a collection whose records partly failed fails the
        // transaction too (REST API guide, "allOrNone Parameters in Composite
        // and Collections Requests", outer true / inner false): the later
        // subrequests are halted and everything is rolled back.
        let failed = !ok || (all_or_none && has_failed_record(&body));
        out.push(sub_response(
            body.clone(),
            headers,
            resp.status,
            &sub.reference,
        ));
        if ok {
            results.insert(sub.reference.clone(), body);
        }
        if failed && all_or_none {
            failed_at = Some(i);
            break;
        }
    }
    let o = &mut world.orgs[ctx.org];
    if let Some(fail) = failed_at {
        o.rollback(sp);
        let mut fixed = Vec::new();
        for (i, sub) in subs.iter().enumerate() {
            if i == fail {
                fixed.push(out[i].clone());
                continue;
            }
            fixed.push(sub_response(
                halted(ROLLED_BACK),
                Map::new(),
                400,
                &sub.reference,
            ));
        }
        out = fixed;
    } else {
        o.release(sp);
    }
    Resp::json(
        200,
        Value::from_iter([("compositeResponse", Value::Array(out))]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let mut results = HashMap::new();
        results.insert(
            "acc".to_string(),
            json!({ "id": "001xx", "records": [{ "Id": "003yy" }] }),
        );
        assert_eq!(
            resolve_text("/services/data/v62.0/sobjects/Account/@{acc.id}", &results).unwrap(),
            Value::String("/services/data/v62.0/sobjects/Account/001xx".into())
        );
        assert_eq!(
            resolve_text("@{acc.records[0].Id}", &results).unwrap(),
            Value::String("003yy".into())
        );
        assert!(resolve_text("@{nope.id}", &results).is_err());
        assert!(resolve_text("@{acc.missing}", &results).is_err());
    }
}

//! Extism's `http_request`: a real HTTP client, restricted to the granted hosts.
//!
//! Checked before any connection is made: the scheme (http, https), no userinfo in the URL,
//! the host and port against the allowlist (an entry without a port allows only the scheme's
//! default port). Redirects are not followed: a 3xx goes back to the plugin, whose next
//! request is checked again. The request may take no longer than what is left of the call's
//! deadline, and the response body no more than the output limit.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::HostFault;
use crate::capability::host_pattern_matches;

/// The request a plugin passes, as the Extism PDKs encode it.
#[derive(Debug, Deserialize)]
pub struct HttpRequest {
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub method: Option<String>,
}

#[derive(Debug, Default)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// The `host[:port]` the URL addresses, if the allowlist lets the plugin reach it.
pub fn check_url(url: &str, allowlist: &[String]) -> Result<ureq::http::Uri, HostFault> {
    let uri: ureq::http::Uri = url.parse().map_err(|e| HostFault::Denied(format!("`{url}` is not an http(s) URL: {e}")))?;
    let scheme = uri.scheme_str().unwrap_or("");
    if scheme != "http" && scheme != "https" {
        return Err(HostFault::Denied(format!("`{url}`: only http and https are allowed")));
    }
    let authority = uri.authority().ok_or_else(|| HostFault::Denied(format!("`{url}` has no host")))?;
    if authority.as_str().contains('@') {
        return Err(HostFault::Denied(format!("`{url}`: credentials in the URL are not allowed")));
    }
    let default_port = if scheme == "https" { 443 } else { 80 };
    let host = authority.host();
    let target = match authority.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host.to_string(),
    };
    if !allowlist.iter().any(|pattern| host_pattern_matches(pattern, &target)) {
        return Err(HostFault::Denied(format!("`{target}` is not an allowed HTTP host")));
    }
    Ok(uri)
}

/// Makes the request. `Err` only for what the plugin did wrong or was not allowed; a network
/// failure is a response with status 0, as the plugin cannot be blamed for it.
pub fn send(
    request: &HttpRequest,
    body: Option<&[u8]>,
    allowlist: &[String],
    time_left: Duration,
    max_body: u64,
) -> Result<HttpResponse, HostFault> {
    let uri = check_url(&request.url, allowlist)?;
    let method = request.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    let mut builder = ureq::http::Request::builder().method(method.as_str()).uri(uri);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let http_request = builder
        .body(body.map(<[u8]>::to_vec).unwrap_or_default())
        .map_err(|e| HostFault::BadCall(format!("invalid request: {e}")))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(time_left))
        .max_redirects(0)
        // Hand a redirect back to the plugin as a response (its status and headers), not an error.
        .max_redirects_will_error(false)
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into();
    let mut response = match agent.run(http_request) {
        Ok(response) => response,
        Err(_) => return Ok(HttpResponse::default()),
    };
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = response.body_mut().with_config().limit(max_body).read_to_vec().map_err(|e| match e {
        ureq::Error::BodyExceedsLimit(_) => HostFault::OutputTooLarge(format!("the response body is over {max_body} bytes")),
        other => HostFault::Denied(format!("reading the response: {other}")),
    })?;
    Ok(HttpResponse { status, headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_before_connecting() {
        let allow = vec!["api.example.com".to_string(), "127.0.0.1:8080".to_string()];
        assert!(check_url("https://api.example.com/v1", &allow).is_ok());
        assert!(check_url("http://api.example.com:80/", &allow).is_ok());
        assert!(check_url("http://127.0.0.1:8080/x", &allow).is_ok());
        for denied in [
            "https://api.example.com:8443/",
            "https://evil.com/",
            "https://api.example.com.evil.com/",
            "https://user@api.example.com/",
            "https://api.example.com@evil.com/",
            "http://127.0.0.1/",
            "http://127.0.0.1:8081/",
            "http://2130706433:8080/",
            "file:///etc/passwd",
            "ftp://api.example.com/",
        ] {
            assert!(check_url(denied, &allow).is_err(), "{denied}");
        }
    }
}

//! Extism's `http_request`: a real HTTP client, restricted to the granted hosts.
//!
//! Checked before any connection is made: the scheme (http, https), no userinfo in the URL,
//! the host and port against the allowlist (an entry without a port allows only the scheme's
//! default port). Redirects are not followed: a 3xx goes back to the plugin, whose next
//! request is checked again. The request may take no longer than what is left of the call's
//! deadline (then the call ends `timeout`), and the response body no more than the output
//! limit. The plugin cannot set hop-by-hop or routing headers (`Host`, `Connection`, `Proxy-*`,
//! …), and a granted host *name* never leads to a non-public address unless the policy opts in.

use std::collections::BTreeMap;
use std::time::Duration;

use std::net::IpAddr;

use serde::Deserialize;

use crate::fault::HostFault;
use super::extism::Kernel;
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
    // What the refusals quote of the URL: its length is the plugin's to choose.
    let shown = crate::text::shorten(url, 256);
    let uri: ureq::http::Uri = url.parse().map_err(|e| HostFault::Denied(format!("`{shown}` is not an http(s) URL: {e}")))?;
    let scheme = uri.scheme_str().unwrap_or("");
    if scheme != "http" && scheme != "https" {
        return Err(HostFault::Denied(format!("`{shown}`: only http and https are allowed")));
    }
    let authority = uri.authority().ok_or_else(|| HostFault::Denied(format!("`{shown}` has no host")))?;
    if authority.as_str().contains('@') {
        return Err(HostFault::Denied(format!("`{shown}`: credentials in the URL are not allowed")));
    }
    let default_port = if scheme == "https" { 443 } else { 80 };
    let host = authority.host();
    let target = match authority.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host.to_string(),
    };
    if !allowlist.iter().any(|pattern| host_pattern_matches(pattern, &target)) {
        let target = crate::text::shorten(&target, 256);
        return Err(HostFault::Denied(format!("`{target}` is not an allowed HTTP host")));
    }
    Ok(uri)
}

/// Headers a plugin may not set: they would let it pick another virtual host behind an
/// allowed address, smuggle a second request, or talk to a proxy.
const FORBIDDEN_HEADERS: &[&str] =
    &["host", "connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer", "upgrade", "expect"];

/// Response headers handed back to the plugin may take at most this many bytes (as JSON).
const MAX_HEADER_BYTES: usize = 64 * 1024;

fn check_headers(headers: &BTreeMap<String, String>) -> Result<(), HostFault> {
    for name in headers.keys() {
        let lower = name.to_ascii_lowercase();
        if FORBIDDEN_HEADERS.contains(&lower.as_str()) || lower.starts_with("proxy-") {
            let name = crate::text::shorten(name, 256);
            return Err(HostFault::Denied(format!("the plugin may not set the `{name}` header")));
        }
    }
    Ok(())
}

/// The kernel's `http_request`: the request's JSON and body from Extism blocks, the response
/// body back as a block; status and headers kept for `http_status_code` and `http_headers`.
pub fn request(kernel: &mut Kernel, request: u64, body: u64) -> Result<u64, HostFault> {
    // What the host holds for the request while it runs: the parsed request (its URL and
    // headers: at most its JSON's length, plus a header's bookkeeping each, charged from the
    // JSON's length twice over) and one copy of the body, which the HTTP client then owns.
    // Charged before either is made; released when the request is over.
    let request_bytes = kernel.memory.block(request)?.len() as u64;
    let body_bytes = match body {
        0 => 0,
        handle => kernel.memory.block(handle)?.len() as u64,
    };
    let held = request_bytes.saturating_mul(2).saturating_add(body_bytes);
    kernel.budget.charge(held, "an HTTP request")?;
    let sent = send_from_blocks(kernel, request, body);
    kernel.budget.release(held);
    let response = sent?;
    kernel.http_status = i32::from(response.status);
    let headers = serde_json::to_string(&response.headers).expect("headers serialise");
    kernel.set_http_headers((response.status != 0).then_some(headers))?;
    kernel.alloc_bytes(&response.body)
}

/// The request in the kernel's blocks, parsed where it lies and sent with one copy of its body.
fn send_from_blocks(kernel: &Kernel, request: u64, body: u64) -> Result<HttpResponse, HostFault> {
    let request: HttpRequest = serde_json::from_slice(kernel.memory.block(request)?)
        .map_err(|e| HostFault::BadCall(format!("the HTTP request is not valid JSON: {e}")))?;
    let body = match body {
        0 => None,
        handle => Some(kernel.memory.block(handle)?.to_vec()),
    };
    let time_left = kernel.deadline.saturating_duration_since(std::time::Instant::now());
    // The response body is held in host memory until it is copied into a block: it may take no
    // more than the output limit, nor than the budget leaves for that copy.
    let max_body = kernel.output_cap.min(kernel.budget.available() / 2);
    send(&request, body, &kernel.http_allowlist, kernel.http_private, time_left, max_body)
}

/// Makes the request. `Err` for what the plugin did wrong or was not allowed, and for the
/// deadline (`timeout`); a network failure is a response with status 0, as the plugin cannot
/// be blamed for it.
pub fn send(
    request: &HttpRequest,
    body: Option<Vec<u8>>,
    allowlist: &[String],
    allow_private: bool,
    time_left: Duration,
    max_body: u64,
) -> Result<HttpResponse, HostFault> {
    let uri = check_url(&request.url, allowlist)?;
    check_headers(&request.headers)?;
    if time_left.is_zero() {
        return Err(HostFault::Timeout("the call's deadline passed before the HTTP request".to_string()));
    }
    let method = request.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    let mut builder = ureq::http::Request::builder().method(method.as_str()).uri(uri.clone());
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let http_request = builder
        .body(body.unwrap_or_default())
        .map_err(|e| HostFault::BadCall(format!("invalid request: {e}")))?;
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(time_left))
        .max_redirects(0)
        // Hand a redirect back to the plugin as a response (its status and headers), not an error.
        .max_redirects_will_error(false)
        .http_status_as_error(false)
        .max_response_header_size(MAX_HEADER_BYTES)
        .proxy(None)
        .build();
    let resolver = GuardedResolver::new(allow_private);
    let refused = resolver.refused.clone();
    let agent = ureq::Agent::with_parts(config, ureq::unversioned::transport::DefaultConnector::default(), resolver);
    let failure = |error: ureq::Error| -> Result<HttpResponse, HostFault> {
        if let Some(message) = refused.lock().expect("resolver note").take() {
            return Err(HostFault::Denied(message));
        }
        match error {
            ureq::Error::Timeout(_) => Err(HostFault::Timeout(format!("the HTTP request to `{}` ran into the deadline", request.url))),
            ureq::Error::BodyExceedsLimit(_) => {
                Err(HostFault::OutputTooLarge(format!("the response body is over {max_body} bytes")))
            }
            // Anything else is the network's doing: status 0, as documented.
            _ => Ok(HttpResponse::default()),
        }
    };
    let mut response = match agent.run(http_request) {
        Ok(response) => response,
        Err(error) => return failure(error),
    };
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = match response.body_mut().with_config().limit(max_body).read_to_vec() {
        Ok(body) => body,
        Err(error) => return failure(error),
    };
    Ok(HttpResponse { status, headers, body })
}

/// Resolves as ureq does, then keeps only public addresses for a host *name*: a granted name
/// must not lead to loopback, private, link-local (cloud metadata) or other special addresses
/// unless the policy opts in. An IP literal was granted as such, and is connected to as is.
/// ureq connects to exactly the addresses returned here, so a name is resolved once per
/// request and cannot be rebound between the check and the connection.
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
    inner: ureq::unversioned::resolver::DefaultResolver,
    /// Why the addresses were refused, for the plugin's error.
    refused: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl GuardedResolver {
    fn new(allow_private: bool) -> GuardedResolver {
        GuardedResolver { allow_private, inner: Default::default(), refused: Default::default() }
    }
}

impl ureq::unversioned::resolver::Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let resolved = self.inner.resolve(uri, config, timeout)?;
        let host = uri.host().unwrap_or_default();
        let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok();
        if literal || self.allow_private {
            return Ok(resolved);
        }
        let mut kept = self.inner.empty();
        for addr in resolved.iter().filter(|a| is_public(a.ip())) {
            kept.push(*addr);
        }
        if kept.is_empty() {
            *self.refused.lock().expect("resolver note") = Some(format!(
                "`{host}` resolves only to non-public addresses ({}); the policy does not allow them for a host name",
                resolved.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>().join(", ")
            ));
            return Err(ureq::Error::HostNotFound);
        }
        Ok(kept)
    }
}

/// Whether an address is on the public internet: not loopback, private, link-local (which holds
/// the cloud metadata services), shared (CGNAT), documentation, multicast, broadcast or
/// unspecified, in IPv4, IPv6 or IPv4 mapped into IPv6.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064 && v6.segments()[1] == 0xff9b)
        }
    }
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

    #[test]
    fn routing_headers_are_refused() {
        for name in ["Host", "connection", "Transfer-Encoding", "content-length", "Proxy-Authorization", "TE", "Upgrade"] {
            let headers = BTreeMap::from([(name.to_string(), "x".to_string())]);
            assert!(matches!(check_headers(&headers), Err(HostFault::Denied(_))), "{name}");
        }
        let headers = BTreeMap::from([("Accept".to_string(), "x".to_string()), ("X-Api-Key".to_string(), "k".to_string())]);
        assert!(check_headers(&headers).is_ok());
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
            "::1", "::", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "224.0.0.1", "255.255.255.255"] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}

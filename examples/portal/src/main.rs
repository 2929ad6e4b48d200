//! `portal`: a web page with two boxes (a time layout, a formula) whose answers come from the time and
//! calc services, found by DNS SRV lookups of `_time._tcp.<domain>` and `_calc._tcp.<domain>`. When an
//! instance fails, the next one is tried; the page shows which instance answered. `GET /time/{layout}`
//! and `GET /calc/{formula}` (also under `/api/`) are the original example portal's API.
//!
//! Settings (environment): `ECSSD_DOMAIN` (default `servicediscovery.internal`), `DNS_SERVER`
//! (`ip:port`; default: the system resolver), `AUTH_USER`/`AUTH_PASSWORD` (sent to time and calc),
//! `PORT` (default 8080), `BIND_ADDRESS` (default `::`, IPv6 and IPv4; see `ecssd_example_web::bind`).
//! The page is `page.html`, compiled in.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use ecssd_example_web::{Auth, Body, error, health, path_argument};
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};

use ecssd_example_portal::discovery::Discovery;
use ecssd_example_portal::upstream::Upstream;

const PAGE: &str = include_str!("page.html");

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let domain = std::env::var("ECSSD_DOMAIN").unwrap_or_else(|_| "servicediscovery.internal".into());
    let server = match std::env::var("DNS_SERVER") {
        Ok(text) => Some(text.parse::<SocketAddr>().map_err(|e| {
            std::io::Error::other(format!("DNS_SERVER={text:?} is not ip:port (e.g. 127.0.0.1:53): {e}"))
        })?),
        Err(_) => None,
    };
    let discovery = Discovery::new(&domain, server).map_err(std::io::Error::other)?;
    let upstream = Arc::new(Upstream::new(discovery, Auth::from_env()));
    let listener = ecssd_example_web::bind(8080).await?;
    ecssd_example_web::serve(listener, move |request| {
        let upstream = upstream.clone();
        async move { answer(request, &upstream).await }
    })
    .await
}

async fn answer<B>(request: Request<B>, upstream: &Upstream) -> Response<Body> {
    let path = request.uri().path();
    if path == "/health" {
        return health();
    }
    if path == "/" {
        let mut page = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
        page.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
        );
        return page;
    }
    // The original portal's paths (`/time/{format}`, `/calc/{formula}`, which its page and clients
    // use) and this one's `/api/` paths answer alike.
    let path = path.strip_prefix("/api").unwrap_or(path);
    if let Some(layout) = path_argument(path, "/time/") {
        return upstream.call("_time._tcp", &format!("/time/{}", encode(&layout))).await;
    }
    if let Some(formula) = path_argument(path, "/calc/") {
        return upstream.call("_calc._tcp", &format!("/calc/{}", encode(&formula))).await;
    }
    error(StatusCode::NOT_FOUND, "not found: try / or /time/{layout} or /calc/{formula}")
}

/// Percent-encodes a path argument (a formula may hold `/`, a layout spaces).
fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

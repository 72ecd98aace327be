//! Serves the web UI from the binary: the files of `ui/dist` are embedded at build time (see
//! build.rs) so a single binary carries its UI. `/` answers index.html (the UI routes with URL
//! hashes, so no server-side rewrites are needed), `/assets/*` the content-hashed bundles with
//! year-long cache headers, gzip-compressed when the client accepts it. A binary built without
//! the UI answers `/` with a page saying how to build it.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file of the built UI.
pub struct Asset {
    /// Path relative to ui/dist, with `/` separators.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// Gzip-compressed body, when compressing made it smaller.
    pub gzip: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Whether the web UI was built into this binary.
pub fn embedded() -> bool {
    find("index.html").is_some()
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// True when Accept-Encoding lists gzip (or `*`) without `q=0`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let Some(v) = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    v.split(',').any(|part| {
        let mut it = part.split(';');
        let coding = it.next().unwrap_or("").trim();
        if !coding.eq_ignore_ascii_case("gzip") && coding != "*" {
            return false;
        }
        !it.any(|p| {
            let p = p.trim().replace(' ', "");
            p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
        })
    })
}

fn serve(a: &'static Asset, headers: &HeaderMap, cache: &'static str) -> Response {
    let mut resp = match a.gzip {
        Some(gz) if accepts_gzip(headers) => {
            let mut r = gz.into_response();
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        }
        _ => a.body.into_response(),
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if a.gzip.is_some() {
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    resp
}

async fn index(headers: HeaderMap) -> Response {
    match find("index.html") {
        Some(a) => serve(a, &headers, "no-cache"),
        None => Html(NOT_BUILT).into_response(),
    }
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match find(&format!("assets/{path}")) {
        Some(a) => serve(a, &headers, IMMUTABLE),
        None => (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
    }
}

/// Whether `template` is one of the routes [`routes`] adds for a top-level file of ui/dist.
pub fn is_top_level_file(template: &str) -> bool {
    template
        .strip_prefix('/')
        .is_some_and(|p| !p.contains('/') && p != "index.html" && find(p).is_some())
}

/// Adds the UI routes: `/`, `/index.html`, `/assets/*` and the other top-level files of ui/dist
/// (favicon …). The API routes are registered explicitly, so they always win over these.
pub fn routes<S: Clone + Send + Sync + 'static>(mut router: Router<S>) -> Router<S> {
    router = router
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/assets/{*path}", get(asset));
    for a in ASSETS {
        if a.path == "index.html" || a.path.contains('/') {
            continue;
        }
        router = router.route(
            &format!("/{}", a.path),
            get(
                move |headers: HeaderMap| async move { serve(a, &headers, "public, max-age=3600") },
            ),
        );
    }
    router
}

const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sextant</title>
<style>body{font:15px/1.5 system-ui,sans-serif;background:#111217;color:#d8d9da;max-width:760px;margin:40px auto;padding:0 16px}
code,pre{background:#22252b;padding:2px 6px;border-radius:3px}pre{padding:10px}a{color:#3d8bfd}</style></head>
<body><h1>Sextant</h1>
<p>The web UI is not built into this binary. Build it, then rebuild Sextant:</p>
<pre>cd ui &amp;&amp; npm install &amp;&amp; npm run build
cd .. &amp;&amp; cargo run --release -- serve</pre>
<p>(Needs Node.js 20+ and npm: <code>apt-get install nodejs npm</code>.)</p>
<p>The APIs are live without it: <a href="/api/v1/labels">/api/v1/labels</a>,
<a href="/api/v1/status/tsdb">/api/v1/status/tsdb</a>, <a href="/api/v1/targets">/api/v1/targets</a>,
<a href="/api/v1/alerts">/api/v1/alerts</a>, <a href="/metrics">/metrics</a>.</p>
</body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        m
    }

    async fn get_path(path: &str, enc: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let app = routes(Router::new().route("/api/v1/labels", get(|| async { "api" })));
        let mut req = axum::http::Request::get(path);
        if let Some(e) = enc {
            req = req.header(header::ACCEPT_ENCODING, e);
        }
        let resp = app
            .oneshot(req.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let st = resp.status();
        let hs = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (st, hs, body)
    }

    #[tokio::test]
    async fn serves_index_or_build_instructions() {
        let (st, hs, body) = get_path("/", None).await;
        assert_eq!(st, StatusCode::OK);
        assert!(hs[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let text = String::from_utf8_lossy(&body);
        if embedded() {
            assert!(text.contains("<div id=\"app\">"), "{text}");
        } else {
            assert!(
                text.contains("npm install &amp;&amp; npm run build"),
                "{text}"
            );
        }
        let (st, _, body) = get_path("/api/v1/labels", None).await;
        assert_eq!((st, body.as_slice()), (StatusCode::OK, b"api".as_slice()));
        let (st, _, _) = get_path("/assets/no-such-file.js", None).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn assets_are_cached_and_gzipped() {
        let Some(js) = ASSETS
            .iter()
            .find(|a| a.path.starts_with("assets/") && a.path.ends_with(".js"))
        else {
            eprintln!("ui/dist not built; skipping the asset test");
            return;
        };
        let path = format!("/{}", js.path);
        let (st, hs, body) = get_path(&path, Some("gzip, br")).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(hs[header::CACHE_CONTROL], IMMUTABLE);
        assert_eq!(hs[header::CONTENT_ENCODING], "gzip");
        assert!(hs[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript"));
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(body.as_slice()),
            &mut plain,
        )
        .unwrap();
        assert_eq!(plain, js.body);
        let (_, hs, body) = get_path(&path, None).await;
        assert!(hs.get(header::CONTENT_ENCODING).is_none());
        assert_eq!(body, js.body);
    }

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip(&h("gzip, deflate, br")));
        assert!(accepts_gzip(&h("br;q=1.0, gzip;q=0.8")));
        assert!(accepts_gzip(&h("*")));
        assert!(!accepts_gzip(&h("gzip;q=0")));
        assert!(!accepts_gzip(&h("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}

//! `time`: `GET /time/{layout}` answers the current time formatted by a Go-style layout (e.g.
//! `15:04 Jan 2`), as JSON with the container and instance that answered, under the original example's
//! field names (`containerid`, `instanceid`). Basic auth is required; `/health` is open.

use std::time::{SystemTime, UNIX_EPOCH};

use ecssd_example_time::layout::{Moment, format};
use ecssd_example_web::{Body, Identity, error, json};
use hyper::{Response, StatusCode};

/// Longest layout accepted: the answer grows with it.
const MAX_LAYOUT: usize = 256;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    ecssd_example_web::run_service("/time/", "use GET /time/{layout}, e.g. /time/15:04 Jan 2", answer).await
}

fn answer(layout: &str, identity: &Identity) -> Response<Body> {
    if layout.len() > MAX_LAYOUT {
        return error(StatusCode::BAD_REQUEST, &format!("the layout is longer than {MAX_LAYOUT} bytes"));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let moment = Moment::from_unix(now.as_secs() as i64, now.subsec_nanos(), 0, "UTC");
    json(
        StatusCode::OK,
        &serde_json::json!({
            "layout": layout,
            "value": format(layout, &moment),
            "containerid": identity.container,
            "instanceid": identity.instance,
        }),
    )
}

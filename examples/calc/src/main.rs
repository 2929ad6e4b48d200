//! `calc`: `GET /calc/{formula}` evaluates `+ - * / ^`, parentheses, unary minus and decimals, e.g.
//! `(2+2)*3` gives 12, as JSON with the container and instance that answered. Bad input gets a 400
//! with a JSON error. Basic auth is required; `/health` is open.

use ecssd_example_calc::formula;
use ecssd_example_web::{Body, Identity, json};
use hyper::{Response, StatusCode};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    ecssd_example_web::run_service("/calc/", "use GET /calc/{formula}, e.g. /calc/(2+2)*3", answer).await
}

fn answer(text: &str, identity: &Identity) -> Response<Body> {
    match formula::evaluate(text) {
        Ok(value) => json(
            StatusCode::OK,
            &serde_json::json!({
                "formula": text,
                "value": value,
                "container": identity.container,
                "instance": identity.instance,
            }),
        ),
        Err(e) => json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": e.to_string(), "formula": text.chars().take(64).collect::<String>() }),
        ),
    }
}

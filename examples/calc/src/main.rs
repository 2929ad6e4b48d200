//! `calc`: `GET /calc/{formula}` evaluates `+ - * / ^`, parentheses, unary minus and plus, decimals,
//! constants such as `pi` and functions such as `sqrt(x)` (see [`formula`]), e.g. `(2+2)*3` or
//! `sqrt(16)+2^3` gives 12, as JSON with the container and instance that answered, under the original
//! example's field names (`containerid`, `instanceid`). Bad input (including `sqrt(-1)` or `1/0`) gets a
//! 400 with a JSON error. Basic auth is required; `/health` is open.

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
                "containerid": identity.container,
                "instanceid": identity.instance,
            }),
        ),
        Err(e) => json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": e.to_string(), "formula": text.chars().take(64).collect::<String>() }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;

    use hyper::body::Body as _;

    use super::*;

    async fn call(formula: &str) -> (StatusCode, serde_json::Value) {
        let identity = Identity { container: "calc-1".into(), instance: "i-1".into() };
        let mut response = answer(formula, &identity);
        let body = response.body_mut();
        let frame = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await.unwrap().unwrap();
        (response.status(), serde_json::from_slice(frame.data_ref().unwrap()).unwrap())
    }

    #[tokio::test]
    async fn answers_a_number_or_a_400_naming_the_problem() {
        let (status, answer) = call("sqrt(16)+2^3").await;
        assert_eq!(status, StatusCode::OK);
        let expected = serde_json::json!({
            "formula": "sqrt(16)+2^3", "value": 12.0, "containerid": "calc-1", "instanceid": "i-1",
        });
        assert_eq!(answer, expected, "a number value, and the original's containerid/instanceid");
        for (formula, message) in [
            ("sqrt(-1)", "sqrt(-1) has no finite real value; sqrt needs x >= 0"),
            ("log(2)", "unknown function 'log'"),
            ("sqrt(1,2)", "sqrt takes exactly one argument"),
        ] {
            let (status, answer) = call(formula).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            assert!(answer["error"].as_str().unwrap().contains(message), "{answer}");
            assert_eq!(answer["formula"], formula);
        }
    }
}

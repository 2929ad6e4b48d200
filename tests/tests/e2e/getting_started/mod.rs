//! What a new user meets first: the documentation (which must match the code) and the demo (which
//! must leave nothing behind however it is stopped).

mod demo;
mod docs;

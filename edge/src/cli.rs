//! The binaries' shared edge. Flag and environment parsing: clap, except that an invalid value that came
//! from an environment variable is reported under that variable's name. clap names only the flag,
//! which someone configuring a task definition or a Lambda function never typed.

use std::ffi::OsString;
use std::fmt::Display;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue};

/// Parses `T` from the command line and environment, or exits with clap's message (status 2).
pub fn parse<T: clap::Parser>() -> T {
    let args: Vec<OsString> = std::env::args_os().collect();
    match T::try_parse_from(&args) {
        Ok(parsed) => parsed,
        Err(error) => {
            if let Some((variable, value)) = variable_behind(&error, &T::command(), &args) {
                eprintln!("error: environment variable {variable}={value:?} is not valid");
                eprint!("{error}");
                std::process::exit(2);
            }
            error.exit()
        }
    }
}

/// clap value parser for a log filter (`ECSSD_LOG_LEVEL`): a mistyped level must fail at start, naming
/// the variable, not silently log at another level.
pub fn log_filter(text: &str) -> Result<String, String> {
    const EXPECTED: &str = "expected a level (trace, debug, info, warn, error, off) or a tracing filter such \
                            as `ecssd_sidecar=debug,info`";
    // tracing reads a bare word as a target to log at every level, so a misspelt level (`verbose`)
    // would silence everything else: a bare word must be a level.
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bare = !directive.contains(['=', '[']);
        if bare && !LEVELS.iter().any(|level| directive.eq_ignore_ascii_case(level)) {
            return Err(format!("`{directive}` is not a level; {EXPECTED}"));
        }
    }
    tracing_subscriber::EnvFilter::try_new(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("{e}; {EXPECTED}"))
}

/// Runs a binary's async entry point on a current-thread runtime (one task's worth of work needs no
/// more) and turns its outcome into the exit status; a failure is logged with its whole cause chain
/// under `failure`.
pub fn block_on<E: Display>(failure: &str, start: impl Future<Output = Result<(), E>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(start) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "{failure}");
            ExitCode::FAILURE
        }
    }
}

/// The environment variable (and its value) that supplied the invalid value, if the flag was not typed.
fn variable_behind(
    error: &clap::Error,
    command: &clap::Command,
    args: &[OsString],
) -> Option<(String, String)> {
    let ContextValue::String(invalid) = error.get(ContextKind::InvalidArg)? else { return None };
    let argument = command.get_arguments().find(|argument| {
        argument.get_long().is_some_and(|long| {
            let flag = format!("--{long}");
            invalid == &flag
                || invalid.starts_with(&format!("{flag} "))
                || invalid.starts_with(&format!("{flag}="))
        })
    })?;
    let variable = argument.get_env()?.to_string_lossy().into_owned();
    let flag = format!("--{}", argument.get_long()?);
    let typed = args.iter().skip(1).any(|arg| arg.to_string_lossy().starts_with(&flag));
    let value = std::env::var(&variable).ok()?;
    (!typed).then_some((variable, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_filters() {
        for good in ["info", "WARN", "off", "ecssd_sidecar=debug,info", "info,aws_smithy_runtime=warn", ""] {
            assert_eq!(log_filter(good).as_deref(), Ok(good), "{good}");
        }
        for bad in ["verbose", "info,loud", "ecssd=loud"] {
            let error = log_filter(bad).expect_err(bad);
            assert!(error.contains("expected a level"), "{bad}: {error}");
        }
    }
}

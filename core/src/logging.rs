//! Logging that never carries patient data, in every binary of this project.
//!
//! Three ways a record's values could reach a log are closed here, once, rather than at each
//! call site:
//! - **Dependencies log payloads at `trace`**: `lambda_runtime` logs each invocation's raw body
//!   (`raw JSON event received from Lambda`: a whole Pipes batch), the AWS SDK request and
//!   response bodies, `aws-sigv4` the request URI (which holds resource ids). [`LogFilter`] lets
//!   this project's crates log at the level asked for, and **no other crate below `debug`**,
//!   whatever `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL` say.
//! - **Panic messages**: the default panic hook prints the message, which a mapping may have
//!   formatted with a value. [`install_panic_hook`] logs where it panicked, never what it said.
//! - **Our own lines** name fields, kinds, counts and eventIDs, never values: that is a rule of
//!   each crate, checked by the tests (in process and on the shipped binaries at `trace`).
//!
//! So no log line may carry a payload for debugging, at any level: to see a record, read the
//! dead letter or the error event, which are data, not logs.

use tracing::{Level, Metadata, Subscriber, span, subscriber::Interest};
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::LevelFilter,
    layer::{Context, Filter, SubscriberExt},
    util::SubscriberInitExt,
};

/// The log filter's variable (`info` by default in a Lambda, `warn` in the CLI).
pub const ENV_RUST_LOG: &str = "RUST_LOG";
/// The level Lambda's advanced logging controls set (`TRACE` … `FATAL`); it wins over
/// `RUST_LOG`, as in `lambda_runtime`'s own subscriber.
pub const ENV_LAMBDA_LOG_LEVEL: &str = "AWS_LAMBDA_LOG_LEVEL";

/// The crates whose targets follow the directives all the way down to `trace`: this project's.
const OWN_TARGET_PREFIX: &str = "fhir_pipes";

/// The filter directives of the environment read through `var`: `AWS_LAMBDA_LOG_LEVEL`, else
/// `RUST_LOG`; `None` when neither is set.
pub fn directives_from(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let lambda_level = var(ENV_LAMBDA_LOG_LEVEL).filter(|level| !level.trim().is_empty()).map(|level| {
        // Lambda's FATAL has no tracing level of its own.
        if level.trim().eq_ignore_ascii_case("fatal") { "error".to_owned() } else { level.trim().to_ascii_lowercase() }
    });
    lambda_level.or_else(|| var(ENV_RUST_LOG))
}

/// `EnvFilter` directives (as in `RUST_LOG`) for this project's crates, with every other crate
/// capped at `debug` (see the module's documentation). Invalid directives fall back to
/// `default`.
#[derive(Debug)]
pub struct LogFilter {
    directives: EnvFilter,
}

impl LogFilter {
    /// The filter of `directives`, or of `default` when they are absent or invalid.
    pub fn new(directives: Option<&str>, default: &str) -> Self {
        let directives = directives
            .and_then(|directives| EnvFilter::try_new(directives).ok())
            .unwrap_or_else(|| EnvFilter::new(default));
        Self { directives }
    }

    /// Whether a callsite may log at all, before the directives are asked.
    fn permitted(metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with(OWN_TARGET_PREFIX) || *metadata.level() <= Level::DEBUG
    }
}

impl<S: Subscriber> Filter<S> for LogFilter {
    fn enabled(&self, metadata: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        Self::permitted(metadata) && Filter::<S>::enabled(&self.directives, metadata, cx)
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if Self::permitted(metadata) {
            Filter::<S>::callsite_enabled(&self.directives, metadata)
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Filter::<S>::max_level_hint(&self.directives)
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, cx: Context<'_, S>) {
        Filter::<S>::on_new_span(&self.directives, attrs, id, cx)
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, cx: Context<'_, S>) {
        Filter::<S>::on_record(&self.directives, id, values, cx)
    }

    fn on_enter(&self, id: &span::Id, cx: Context<'_, S>) {
        Filter::<S>::on_enter(&self.directives, id, cx)
    }

    fn on_exit(&self, id: &span::Id, cx: Context<'_, S>) {
        Filter::<S>::on_exit(&self.directives, id, cx)
    }

    fn on_close(&self, id: span::Id, cx: Context<'_, S>) {
        Filter::<S>::on_close(&self.directives, id, cx)
    }
}

/// A panic hook that logs the panic's location (error level), never its message, replacing the
/// default hook that prints the message to stderr.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
        tracing::error!(
            location = location.as_deref().unwrap_or("unknown"),
            "panicked (the message is not logged: it may quote a record's value)"
        );
    }));
}

/// The logging of a Lambda: JSON lines on stdout (CloudWatch Logs), the directives of the
/// environment (`info` by default), the PHI-safe panic hook.
pub fn init_lambda_logging() {
    let filter = LogFilter::new(directives_from(|name| std::env::var(name).ok()).as_deref(), "info");
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_filter(filter);
    tracing_subscriber::registry().with(layer).init();
    install_panic_hook();
}

/// The logging of the command line: human-readable lines on stderr (stdout carries events),
/// `RUST_LOG` (`warn` by default), the PHI-safe panic hook.
pub fn init_cli_logging() {
    let filter = LogFilter::new(std::env::var(ENV_RUST_LOG).ok().as_deref(), "warn");
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).with_filter(filter);
    tracing_subscriber::registry().with(layer).init();
    install_panic_hook();
}

/// A subscriber with [`LogFilter`] over `layer`, for tests that capture what a binary would log.
pub fn filtered<L>(layer: L, filter: LogFilter) -> impl Subscriber + Send + Sync
where
    L: Layer<tracing_subscriber::Registry> + Send + Sync,
{
    tracing_subscriber::registry().with(layer.with_filter(filter))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled(directives: Option<&str>, default: &str) -> [bool; 7] {
        let subscriber =
            filtered(tracing_subscriber::fmt::layer().with_writer(std::io::sink), LogFilter::new(directives, default));
        tracing::subscriber::with_default(subscriber, || {
            [
                tracing::enabled!(target: "fhir_pipes_enrichers::enrich", Level::TRACE),
                tracing::enabled!(target: "fhir_pipes_enrichers::enrich", Level::INFO),
                tracing::enabled!(target: "lambda_runtime::layers::api_response", Level::TRACE),
                tracing::enabled!(target: "lambda_runtime::layers::api_response", Level::DEBUG),
                tracing::enabled!(target: "aws_smithy_runtime::client", Level::TRACE),
                tracing::enabled!(target: "aws_sigv4::http_request", Level::TRACE),
                tracing::enabled!(target: "h2::codec", Level::TRACE),
            ]
        })
    }

    /// Regression: `lambda_runtime` logged every invocation's whole body at `RUST_LOG=trace`
    /// (only the SDK and SigV4 were capped). And the cap never raises a level: it was once a
    /// directive `aws_config=debug`, which *raised* the SDK to `debug` under `info`. One test:
    /// tracing caches each callsite's interest, so subscribers of parallel tests would race.
    #[test]
    fn regression_no_dependency_logs_at_trace_and_the_cap_never_raises_a_level() {
        assert_eq!(enabled(Some("trace"), "info"), [true, true, false, true, false, false, false]);
        assert_eq!(
            enabled(Some("lambda_runtime=trace,h2=trace"), "info"),
            [false, false, false, true, false, false, false]
        );
        assert_eq!(enabled(None, "info"), [false, true, false, false, false, false, false]);
        assert_eq!(enabled(None, "warn"), [false; 7]);
        assert_eq!(enabled(Some("not a [valid directive"), "warn"), [false; 7], "invalid directives fall back");
    }

    #[test]
    fn lambdas_log_level_wins_over_rust_log() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        };
        assert_eq!(directives_from(env(&[])), None);
        assert_eq!(directives_from(env(&[(ENV_RUST_LOG, "debug")])).as_deref(), Some("debug"));
        assert_eq!(
            directives_from(env(&[(ENV_RUST_LOG, "debug"), (ENV_LAMBDA_LOG_LEVEL, "TRACE")])).as_deref(),
            Some("trace")
        );
        assert_eq!(directives_from(env(&[(ENV_LAMBDA_LOG_LEVEL, "FATAL")])).as_deref(), Some("error"));
        assert_eq!(
            directives_from(env(&[(ENV_LAMBDA_LOG_LEVEL, " "), (ENV_RUST_LOG, "warn")])).as_deref(),
            Some("warn")
        );
    }
}

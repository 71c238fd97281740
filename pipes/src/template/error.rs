//! Why a template could not be turned into a runnable pipe, and where in the template.

use crate::filter::FilterError;

/// A template the local runtime cannot run. `path` is a dotted location in the template, e.g.
/// `Resources.PatientPipe.Properties.SourceParameters.DynamoDBStreamParameters.BatchSize`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template file cannot be read.
    #[error("cannot read the template {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not YAML (or JSON) of a template.
    #[error("the template is not valid YAML: {0}")]
    Yaml(String),
    /// A YAML tag that is not a CloudFormation intrinsic function, e.g. `!Foo`.
    #[error("{path}: unsupported YAML tag `{tag}`")]
    UnsupportedTag {
        /// Where in the template.
        path: String,
        /// The tag.
        tag: String,
    },
    /// An intrinsic function the local runtime does not evaluate (e.g. `Fn::ImportValue`).
    #[error("{path}: `{function}` is not supported by the local runtime")]
    UnsupportedFunction {
        /// Where in the template.
        path: String,
        /// The function.
        function: String,
    },
    /// A construct with the wrong shape, e.g. `Fn::If` without three arguments.
    #[error("{path}: {message}")]
    Invalid {
        /// Where in the template.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// `--parameter` names a parameter the template does not declare.
    #[error("unknown parameter `{name}`; the template declares: {declared}")]
    UnknownParameter {
        /// The name given.
        name: String,
        /// The declared names, comma separated.
        declared: String,
    },
    /// A `--parameter` not of the form `Key=Value`.
    #[error("parameter `{0}` must be given as Key=Value")]
    ParameterSyntax(String),
    /// The requested pipe is not in the template.
    #[error("no AWS::Pipes::Pipe named `{requested}` in the template (pipes: {available})")]
    PipeNotFound {
        /// The logical id asked for.
        requested: String,
        /// The pipes present, comma separated.
        available: String,
    },
    /// The template has no pipe at all.
    #[error("the template declares no AWS::Pipes::Pipe resource")]
    NoPipe,
    /// No pipe's `Condition` holds with the parameters given.
    #[error(
        "none of the template's pipes ({pipes}) is created with these parameters: enable one (e.g. give its table's stream ARN) or name it with --pipe"
    )]
    NoPipeCreated {
        /// The pipes present, comma separated.
        pipes: String,
    },
    /// A filter pattern EventBridge Pipes would reject.
    #[error("{path}: invalid filter pattern: {source}")]
    Filter {
        /// Where in the template.
        path: String,
        /// What is wrong with the pattern.
        source: FilterError,
    },
    /// The enrichment function's binary has no shipped mapping.
    #[error("{path}: the enrichment function runs `{binary}`, which has no shipped mapping (known binaries: {known})")]
    UnknownEnricher {
        /// Where in the template.
        path: String,
        /// The binary name from `CodeUri`.
        binary: String,
        /// The shipped binaries, comma separated.
        known: String,
    },
}

impl TemplateError {
    pub(crate) fn invalid(path: &str, message: impl Into<String>) -> Self {
        Self::Invalid { path: path.to_owned(), message: message.into() }
    }
}

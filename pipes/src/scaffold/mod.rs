//! `fhir-pipes new mapping <Resource>`: the files of a new mapping, from templates embedded in
//! the binary, so that the tests pass right away and the user edits from there:
//!
//! - `mappings/src/<module>.rs` (the mapping, with unit tests) and its `pub mod`/`pub use` lines
//!   in `mappings/src/lib.rs`;
//! - `fixtures/<name>/` with a sample input, its expected output and a README;
//! - `enrichers/src/bin/<name>-enricher.rs` and the entry in `enrichers/src/resources.rs`;
//! - the Pipe blocks in `pipes/template.yaml` (parameter group, parameters, condition,
//!   resources, outputs), the same as every shipped resource's.
//!
//! Nothing is overwritten: when any file exists or any edit is already there, nothing is written.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
};

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The resource name is not a FHIR R4 resource type.
    #[error("`{0}` is not a FHIR R4 resource type (CamelCase, e.g. Device, MedicationRequest)")]
    UnknownResource(String),
    /// The directory is not a checkout of this repository.
    #[error("{0} is not the fhir-pipes repository root (no {1}); pass --dir")]
    NotTheRepository(PathBuf, &'static str),
    /// Some files or edits already exist.
    #[error("refusing to overwrite; already present: {}", .0.join(", "))]
    AlreadyExists(Vec<String>),
    /// A file to edit lacks the place where the generated text goes.
    #[error("{file}: cannot find {what}; was it edited by hand?")]
    NoInsertionPoint {
        /// The file.
        file: String,
        /// What was looked for.
        what: &'static str,
    },
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// The parts of a scaffold; all by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// The mapping module and its lines in `mappings/src/lib.rs`.
    Mapping,
    /// The fixture folder.
    Fixtures,
    /// The Lambda binary.
    Binary,
    /// The entry in the resource registry.
    Registry,
    /// The Pipe blocks in `pipes/template.yaml`.
    Template,
}

impl Part {
    /// Every part.
    pub const ALL: [Part; 5] = [Part::Mapping, Part::Fixtures, Part::Binary, Part::Registry, Part::Template];
}

/// The names derived from a resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The FHIR resource type, e.g. `MedicationRequest`.
    pub resource: String,
    /// Kebab case: registry name, fixture folder, binary prefix (`medication-request`).
    pub name: String,
    /// Snake case: the Rust module (`medication_request`).
    pub module: String,
    /// The domain table in the samples (`MedicationRequests`).
    pub table: String,
}

impl Names {
    /// The names of `resource`, which must be a FHIR R4 resource type.
    pub fn new(resource: &str) -> Result<Self, ScaffoldError> {
        if fhir_sdk::r4b::resources::ResourceType::from_str(resource).is_err()
            || !resource.starts_with(|c: char| c.is_ascii_uppercase())
        {
            return Err(ScaffoldError::UnknownResource(resource.to_owned()));
        }
        let mut words = Vec::new();
        for (index, c) in resource.char_indices() {
            if c.is_ascii_uppercase() && index > 0 {
                words.push('_');
            }
            words.push(c.to_ascii_lowercase());
        }
        let module: String = words.into_iter().collect();
        Ok(Self {
            resource: resource.to_owned(),
            name: module.replace('_', "-"),
            module,
            table: format!("{resource}s"),
        })
    }

    fn render(&self, template: &str) -> String {
        template
            .replace("{{Resource}}", &self.resource)
            .replace("{{name}}", &self.name)
            .replace("{{module}}", &self.module)
            .replace("{{table}}", &self.table)
            .replace("{{event_id_insert}}", &event_id(&self.name, "insert"))
            .replace("{{event_id_remove}}", &event_id(&self.name, "remove"))
    }
}

/// A stable 32-hex-digit eventID (two FNV-1a hashes), unique per resource and record.
fn event_id(name: &str, record: &str) -> String {
    let fnv = |seed: u64| {
        format!("scaffold/{name}/{record}")
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325 ^ seed, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
    };
    format!("{:016x}{:016x}", fnv(0), fnv(1))
}

const MAPPING: &str = include_str!("templates/mapping.rs.tmpl");
const BINARY: &str = include_str!("templates/bin.rs.tmpl");
const REGISTRY_ENTRY: &str = include_str!("templates/entry.rs.tmpl");
const SAMPLE_INPUT: &str = include_str!("templates/input.json.tmpl");
const SAMPLE_EXPECTED: &str = include_str!("templates/expected.json.tmpl");
const FIXTURE_README: &str = include_str!("templates/fixture-readme.md.tmpl");
const PIPE_GROUP: &str = include_str!("templates/pipe-group.yaml");
const PIPE_PARAMETERS: &str = include_str!("templates/pipe-parameters.yaml");
const PIPE_CONDITIONS: &str = include_str!("templates/pipe-conditions.yaml");
const PIPE_RESOURCES: &str = include_str!("templates/pipe-resources.yaml");
const PIPE_OUTPUTS: &str = include_str!("templates/pipe-outputs.yaml");

const LIB: &str = "mappings/src/lib.rs";
const REGISTRY: &str = "enrichers/src/resources.rs";
const TEMPLATE: &str = "pipes/template.yaml";
/// The line of the registry above which entries are added.
pub const REGISTRY_MARKER: &str = "    // `fhir-pipes new mapping` adds entries above this line.";

/// One change to make: a new file, or the new text of an existing one.
#[derive(Debug)]
struct Change {
    path: PathBuf,
    text: String,
    new_file: bool,
}

/// Generates `parts` of the mapping of `resource` in the repository at `root`; returns the
/// files written (created or edited), or writes nothing when anything is in the way.
pub fn new_mapping(root: &Path, resource: &str, parts: &[Part]) -> Result<Vec<PathBuf>, ScaffoldError> {
    let names = Names::new(resource)?;
    for marker in [LIB, REGISTRY, TEMPLATE] {
        if !root.join(marker).is_file() {
            return Err(ScaffoldError::NotTheRepository(root.to_path_buf(), marker));
        }
    }
    let mut changes = Vec::new();
    let mut present = Vec::new();
    let mut new_file = |relative: String, text: String, changes: &mut Vec<Change>| {
        let path = root.join(&relative);
        if path.exists() {
            present.push(relative);
        }
        changes.push(Change { path, text, new_file: true });
    };
    if parts.contains(&Part::Mapping) {
        new_file(format!("mappings/src/{}.rs", names.module), names.render(MAPPING), &mut changes);
    }
    if parts.contains(&Part::Fixtures) {
        let folder = format!("fixtures/{}", names.name);
        new_file(format!("{folder}/sample.input.json"), names.render(SAMPLE_INPUT), &mut changes);
        new_file(format!("{folder}/sample.expected.json"), names.render(SAMPLE_EXPECTED), &mut changes);
        new_file(format!("{folder}/README.md"), names.render(FIXTURE_README), &mut changes);
    }
    if parts.contains(&Part::Binary) {
        new_file(format!("enrichers/src/bin/{}-enricher.rs", names.name), names.render(BINARY), &mut changes);
    }
    type Edit = fn(&str, &Names) -> Result<String, Conflict>;
    let edits: [(Part, &str, Edit, String); 3] = [
        (Part::Mapping, LIB, edit_lib, format!("{LIB} (pub mod {})", names.module)),
        (Part::Registry, REGISTRY, edit_registry, format!("{REGISTRY} (entry \"{}\")", names.name)),
        (Part::Template, TEMPLATE, edit_template, format!("{TEMPLATE} ({}Pipe)", names.resource)),
    ];
    for (part, file, edit, what_is_present) in edits {
        if !parts.contains(&part) {
            continue;
        }
        match edit(&read(&root.join(file))?, &names) {
            Ok(edited) => changes.push(Change { path: root.join(file), text: edited, new_file: false }),
            Err(Conflict::Present) => present.push(what_is_present),
            Err(Conflict::Missing(what)) => return Err(no_insertion_point(file, what)),
        }
    }
    if !present.is_empty() {
        return Err(ScaffoldError::AlreadyExists(present));
    }
    let mut written = Vec::with_capacity(changes.len());
    for change in changes {
        if change.new_file
            && let Some(parent) = change.path.parent()
        {
            std::fs::create_dir_all(parent)
                .map_err(|source| ScaffoldError::Io { path: parent.to_path_buf(), source })?;
        }
        std::fs::write(&change.path, change.text)
            .map_err(|source| ScaffoldError::Io { path: change.path.clone(), source })?;
        written.push(change.path);
    }
    Ok(written)
}

fn read(path: &Path) -> Result<String, ScaffoldError> {
    std::fs::read_to_string(path).map_err(|source| ScaffoldError::Io { path: path.to_path_buf(), source })
}

fn no_insertion_point(file: &str, what: &'static str) -> ScaffoldError {
    ScaffoldError::NoInsertionPoint { file: file.to_owned(), what }
}

/// Why an edit cannot be made.
#[derive(Debug, PartialEq, Eq)]
enum Conflict {
    /// The generated text is there already.
    Present,
    /// The place to insert it is not.
    Missing(&'static str),
}

/// Adds `pub mod <module>;` and `pub use <module>::<Resource>Mapping;` in sorted position.
fn edit_lib(text: &str, names: &Names) -> Result<String, Conflict> {
    let module_line = format!("pub mod {};", names.module);
    let use_line = format!("pub use {}::{}Mapping;", names.module, names.resource);
    if text.lines().any(|line| line == module_line) {
        return Err(Conflict::Present);
    }
    let text = insert_sorted(text, "pub mod ", &module_line).ok_or(Conflict::Missing("the `pub mod` lines"))?;
    insert_sorted(&text, "pub use ", &use_line).ok_or(Conflict::Missing("the `pub use` lines"))
}

/// Inserts `line` among the consecutive lines starting with `prefix`, keeping them sorted.
fn insert_sorted(text: &str, prefix: &str, line: &str) -> Option<String> {
    let mut lines: Vec<&str> = text.lines().collect();
    let first = lines.iter().position(|l| l.starts_with(prefix))?;
    let count = lines[first..].iter().take_while(|l| l.starts_with(prefix)).count();
    let position = lines[first..first + count].iter().position(|l| *l > line).map_or(first + count, |p| first + p);
    lines.insert(position, line);
    Some(lines.join("\n") + "\n")
}

/// Adds the registry entry above the marker and the mapping to the `fhir_pipes_mappings` import.
fn edit_registry(text: &str, names: &Names) -> Result<String, Conflict> {
    if text.contains(&format!("name: \"{}\",", names.name)) {
        return Err(Conflict::Present);
    }
    let marker = text.find(REGISTRY_MARKER).ok_or(Conflict::Missing("the new-entry marker line"))?;
    let mut edited = String::with_capacity(text.len() + 256);
    edited.push_str(&text[..marker]);
    edited.push_str(&names.render(REGISTRY_ENTRY));
    edited.push_str(&text[marker..]);

    let import = "use fhir_pipes_mappings::{";
    let start = edited.find(import).ok_or(Conflict::Missing("`use fhir_pipes_mappings::{…};`"))? + import.len();
    let end = start + edited[start..].find("};").ok_or(Conflict::Missing("the end of the mappings import"))?;
    let mut items: Vec<String> =
        edited[start..end].split(',').map(|item| item.trim().to_owned()).filter(|item| !item.is_empty()).collect();
    items.push(format!("{}Mapping", names.resource));
    items.sort();
    edited.replace_range(start..end, &wrap_use_list(&items, import.len() + "};".len()));
    Ok(edited)
}

/// The items of a `use …::{…};` as rustfmt writes them (max_width 120): on the line when they
/// fit, else one indented block filled greedily with a trailing comma.
fn wrap_use_list(items: &[String], surrounding: usize) -> String {
    let one_line = items.join(", ");
    if surrounding + one_line.len() <= MAX_WIDTH {
        return one_line;
    }
    let mut block = String::from("\n   ");
    let mut line_width = 4;
    for item in items {
        if line_width + 1 + item.len() + 1 > MAX_WIDTH {
            block.push_str("\n   ");
            line_width = 4;
        }
        block.push(' ');
        block.push_str(item);
        block.push(',');
        line_width += 1 + item.len() + 1;
    }
    block.push('\n');
    block
}

/// rustfmt.toml's max_width.
const MAX_WIDTH: usize = 120;

/// Adds the resource's blocks at the end of the parameter groups, parameters, conditions,
/// resources and outputs.
fn edit_template(text: &str, names: &Names) -> Result<String, Conflict> {
    if text.contains(&format!("  {}Pipe:\n", names.resource)) {
        return Err(Conflict::Present);
    }
    let mut edited = text.to_owned();
    // Each top-level section ends where the next begins; a blank line separates them.
    for (next_section, block, what) in [
        ("\n\nParameters:\n", PIPE_GROUP, "the end of Metadata (before `Parameters:`)"),
        ("\n\nConditions:\n", PIPE_PARAMETERS, "the end of Parameters (before `Conditions:`)"),
        ("\n\nGlobals:\n", PIPE_CONDITIONS, "the end of Conditions (before `Globals:`)"),
        ("\n\nOutputs:\n", PIPE_RESOURCES, "the end of Resources (before `Outputs:`)"),
    ] {
        let at = edited.find(next_section).ok_or(Conflict::Missing(what))? + 1;
        // Parameter and resource blocks are set apart by a blank line, as the Patient ones.
        let separator = if block == PIPE_RESOURCES || block == PIPE_PARAMETERS { "\n" } else { "" };
        edited.insert_str(at, &format!("{separator}{}", names.render(block)));
    }
    if !edited.ends_with('\n') {
        edited.push('\n');
    }
    edited.push_str(&names.render(PIPE_OUTPUTS));
    Ok(edited)
}

#[cfg(test)]
mod tests;

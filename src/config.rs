//! Configuration files: TOML whose keys are the long options of the subcommand
//! (`max-connections = 1000`, `listen = ["tcp://0.0.0.0:7700"]`, `no-admin = true`).
//!
//! The file has no schema of its own: clap's definition of the subcommand is the schema. A
//! file's entries become `--key=value` arguments, and the command line is parsed again with
//! them after the options given on it, leaving out every key the command line (or its
//! environment variable) already set. So every option has a key, a value in the file goes
//! through the same parser and checks as on the command line, and flags override the file.
//! [`effective`] reads every option back for `--print-config` and for comparing two loads.
//!
//! Reading the file is [`ConfigFile::read`]; everything else here is free of IO.

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};
use std::any::TypeId;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The options every subcommand with a configuration file has.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// Read options from this TOML file: each key is an option's long name
    /// (`max-connections = 1000`, `listen = ["tcp://0.0.0.0:7700"]`); options on the
    /// command line win. SIGHUP reads it again.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (defaults, file and command line) as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// Options that are not keys of a file: the file's own, and clap's.
const NOT_KEYS: [&str; 4] = ["config", "print-config", "help", "version"];

/// A file's value for one key, as command-line values.
#[derive(Debug, Clone, PartialEq)]
enum Values {
    /// `true` or `false`, for an option without a value.
    Flag(bool),
    /// One value or several.
    Given(Vec<String>),
}

/// One key of a file.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    key: String,
    line: usize,
    values: Values,
}

/// A parsed configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigFile {
    path: PathBuf,
    entries: Vec<Entry>,
}

/// Why a configuration file was refused: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// The line (1-based), when known.
    pub line: Option<usize>,
    /// The key, when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ": line {line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ", key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigFile {
    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            line: None,
            key: None,
            message: format!("cannot read it: {e}"),
        })?;
        ConfigFile::parse(path, &text)
    }

    /// Parses `text`, the contents of the file at `path`: TOML with top-level keys whose
    /// values are strings, numbers, booleans or arrays of them.
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let error = |line, key: Option<&str>, message: String| ConfigError {
            path: path.to_path_buf(),
            line,
            key: key.map(str::to_string),
            message,
        };
        let table: BTreeMap<Spanned<String>, Spanned<toml::Value>> =
            toml::from_str(text).map_err(|e| {
                let line = e.span().map(|s| line_of(s.start));
                error(line, None, e.message().to_string())
            })?;
        let mut entries = Vec::with_capacity(table.len());
        for (key, value) in table {
            let line = line_of(key.span().start);
            let values = values(value.get_ref())
                .map_err(|message| error(Some(line), Some(key.get_ref()), message))?;
            entries.push(Entry {
                key: key.into_inner(),
                line,
                values,
            });
        }
        entries.sort_by_key(|e| e.line);
        Ok(ConfigFile {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The file's entries as arguments of `command` (a subcommand, built), leaving out the
    /// keys `given` (its matches on the command line alone) took from the command line or
    /// the environment.
    fn args(&self, command: &Command, given: &ArgMatches) -> Result<Vec<OsString>, ConfigError> {
        let mut args = Vec::new();
        for entry in &self.entries {
            let Some(arg) = command
                .get_arguments()
                .find(|a| a.get_long() == Some(entry.key.as_str()))
                .filter(|_| !NOT_KEYS.contains(&entry.key.as_str()))
            else {
                return Err(self.error(entry, format!("not an option of `{}`", command.get_name())));
            };
            let explicit = matches!(
                given.value_source(arg.get_id().as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            );
            if explicit {
                continue;
            }
            let takes_values = !matches!(arg.get_action(), ArgAction::SetTrue);
            match (&entry.values, takes_values) {
                (Values::Flag(true), false) => args.push(format!("--{}", entry.key).into()),
                (Values::Flag(false), false) => {}
                (Values::Given(_), false) => {
                    return Err(self.error(entry, "expects true or false".into()))
                }
                (Values::Flag(_), true) => {
                    return Err(self.error(entry, "expects a value, not true or false".into()))
                }
                (Values::Given(values), true) => {
                    if values.len() != 1 && !matches!(arg.get_action(), ArgAction::Append) {
                        return Err(self.error(entry, "takes one value, not a list".into()));
                    }
                    for v in values {
                        args.push(format!("--{}={v}", entry.key).into());
                    }
                }
            }
        }
        Ok(args)
    }

    /// The error of `entry`.
    fn error(&self, entry: &Entry, message: String) -> ConfigError {
        ConfigError {
            path: self.path.clone(),
            line: Some(entry.line),
            key: Some(entry.key.clone()),
            message,
        }
    }

    /// The error of the entry a clap error is about, when it is about one of the file's keys.
    fn blame(&self, e: &clap::Error) -> Option<ConfigError> {
        use clap::error::{ContextKind, ContextValue};
        let named = [ContextKind::InvalidArg, ContextKind::PriorArg]
            .into_iter()
            .filter_map(|kind| match e.get(kind) {
                Some(ContextValue::String(s)) => Some(vec![s.clone()]),
                Some(ContextValue::Strings(v)) => Some(v.clone()),
                _ => None,
            })
            .flatten();
        for name in named {
            let long = name.trim_start_matches("--");
            let long = long.split([' ', '=']).next().unwrap_or_default();
            if let Some(entry) = self.entries.iter().find(|en| en.key == long) {
                return Some(self.error(entry, clap_message(e)));
            }
        }
        None
    }
}

/// A TOML value as the values of one option.
fn values(value: &toml::Value) -> Result<Values, String> {
    let scalar = |v: &toml::Value| match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        _ => Err(format!(
            "expects a string or a number, not {}",
            v.type_str()
        )),
    };
    match value {
        toml::Value::Boolean(b) => Ok(Values::Flag(*b)),
        toml::Value::Array(items) => items
            .iter()
            .map(scalar)
            .collect::<Result<_, _>>()
            .map(Values::Given),
        other => scalar(other).map(|v| Values::Given(vec![v])),
    }
}

/// The first line of a clap error, without its `error: ` prefix.
fn clap_message(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// Why a command line with its configuration file could not be read.
#[derive(Debug)]
pub enum LoadError {
    /// The command line itself (clap prints it, with the usage).
    Cli(clap::Error),
    /// The configuration file.
    File(ConfigError),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Cli(e) => f.write_str(&clap_message(e)),
            LoadError::File(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for LoadError {}

/// The matches of `argv` for `command`, with the subcommand's `--config` file read in; and
/// the file's path, when there is one.
pub fn load(
    command: &Command,
    argv: &[OsString],
) -> Result<(ArgMatches, Option<PathBuf>), LoadError> {
    let cli = command
        .clone()
        .try_get_matches_from(argv)
        .map_err(LoadError::Cli)?;
    let Some((name, given)) = cli.subcommand() else {
        return Ok((cli, None));
    };
    let path = given
        .try_get_one::<PathBuf>("config")
        .ok()
        .flatten()
        .cloned();
    let Some(path) = path else {
        return Ok((cli, None));
    };
    let file = ConfigFile::read(&path).map_err(LoadError::File)?;
    let mut built = command.clone();
    built.build();
    let sub = built
        .find_subcommand(name)
        .expect("the subcommand just parsed exists");
    let extra = file.args(sub, given).map_err(LoadError::File)?;
    let all: Vec<OsString> = argv.iter().cloned().chain(extra).collect();
    let matches = command
        .clone()
        .try_get_matches_from(all)
        .map_err(|e| file.blame(&e).map_or(LoadError::Cli(e), LoadError::File))?;
    Ok((matches, Some(path)))
}

/// One option's effective value.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// The option's long name, the file's key.
    pub key: String,
    /// Its value; `None` when it has none (an optional option not given).
    pub value: Option<toml::Value>,
    /// True when the value is a secret (a password, a token): not printed.
    pub secret: bool,
    /// True when the value is the option's default (given neither in the file nor on the
    /// command line).
    pub default: bool,
}

/// Every option of `command` (a subcommand, built) and its value in `matches`, in the order
/// of the command's definition.
pub fn effective(command: &Command, matches: &ArgMatches) -> Vec<Setting> {
    command
        .get_arguments()
        .filter_map(|arg| {
            let key = arg.get_long()?;
            if NOT_KEYS.contains(&key) {
                return None;
            }
            let id = arg.get_id().as_str();
            let value = match arg.get_action() {
                ArgAction::SetTrue => Some(toml::Value::Boolean(matches.get_flag(id))),
                action => {
                    let parsed = arg.get_value_parser().type_id();
                    let integer = INTEGERS.iter().any(|t| parsed == t());
                    let raw: Vec<toml::Value> = matches
                        .get_raw(id)
                        .into_iter()
                        .flatten()
                        .map(|v| typed(&v.to_string_lossy(), integer))
                        .collect();
                    match (action, raw.len()) {
                        (_, 0) => None,
                        (ArgAction::Append, _) => Some(toml::Value::Array(raw)),
                        _ => raw.into_iter().next(),
                    }
                }
            };
            Some(Setting {
                key: key.to_string(),
                value,
                secret: arg.is_hide_env_values_set(),
                default: matches.value_source(id) == Some(ValueSource::DefaultValue),
            })
        })
        .collect()
}

/// The integer types options parse to: their values are TOML integers.
const INTEGERS: [fn() -> TypeId; 5] = [
    TypeId::of::<usize>,
    TypeId::of::<u64>,
    TypeId::of::<u32>,
    TypeId::of::<i32>,
    TypeId::of::<i64>,
];

/// A raw value as TOML: an integer when the option is an integer written as one.
fn typed(raw: &str, integer: bool) -> toml::Value {
    match raw.parse::<i64>() {
        Ok(i) if integer => toml::Value::Integer(i),
        _ => toml::Value::String(raw.to_string()),
    }
}

/// The settings as a configuration file. Defaults, options without a value (whose default
/// is decided at run time, or that are off when absent) and secrets are comments, so that the
/// text read back as a file gives the same settings.
pub fn render(settings: &[Setting]) -> String {
    let mut out = String::new();
    for s in settings {
        let line = match (&s.value, s.secret, s.default) {
            (None, _, _) => format!("# {} is not set\n", s.key),
            (Some(_), true, _) => format!("# {} is set (not shown)\n", s.key),
            (Some(v), false, true) => format!("# {} = {v} (default)\n", s.key),
            (Some(v), false, false) => format!("{} = {v}\n", s.key),
        };
        out.push_str(&line);
    }
    out
}

#[cfg(test)]
mod tests;

//! Rules: the stage between query and alerting. Prometheus rule files are loaded and validated
//! ([`file`]), evaluated group by group on a schedule ([`manager`], [`group`], [`rule`]) with
//! alert labels and annotations expanded by Go-compatible templates ([`template`]); results go
//! back to storage through [`RuleStorage`], alerts to a [`Notifier`]. [`unittest`] runs
//! promtool's rule unit tests.

pub mod file;
pub mod gofmt;
pub mod group;
pub mod manager;
pub mod rule;
pub mod slo;
pub mod template;
pub mod unittest;

pub use file::{load_file, parse_rules, GroupDef, RuleDef, RuleFileError, RuleKind};
pub use group::Group;
pub use manager::{expand_globs, load_files, Manager, ManagerOptions, Notifier};
pub use rule::{Alert, AlertState, EvalCtx, Health, NotifyAlert, OutSample, Rule, RuleStorage};

//! Agent run events: a tool that drives AI agents reports each finished run or session as one
//! JSON event (agent, role, phase, model, tokens, duration, outcome, self-evaluation, tool
//! calls, ...) and Sextant turns the events into Prometheus counters and a histogram, so agent
//! fleets get their RED metrics and self-evaluation SLOs without instrumenting the agents.
//!
//! - [`parse`]: strict validation against the published JSON Schema, errors as JSON pointers.
//! - [`service`]: the counters in memory, written through a [`crate::Sink`], re-written between
//!   events, saved across restarts, with dedup by `(session_id, event_id)`.
//!
//! User documentation: `docs/agent-events.md`.

pub mod parse;
pub mod service;

pub use parse::{parse_events, Event, EventError, SCHEMA_JSON};
pub use service::{AgentEvents, EventTotals, EventsConfig, EventsError, IngestOutcome};

#[cfg(test)]
mod tests;

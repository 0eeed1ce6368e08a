//! Process lifecycle: signals (design §6), draining, in-place reload, and exiting as soon as
//! the last in-flight request is done instead of always sleeping out the grace period.

pub mod exit;
pub mod inflight;
pub mod reload;
pub mod signals;

pub use exit::ExitWhenIdle;
pub use inflight::InFlight;
pub use reload::{reload, ReloadReport, ReloadService};
pub use signals::StraitSignals;

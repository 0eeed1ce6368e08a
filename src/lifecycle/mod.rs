//! Process lifecycle: signals (design §6), draining, in-place reload, and exiting as soon as
//! the last in-flight request is done instead of always sleeping out the grace period.

pub(crate) mod exit;
pub(crate) mod inflight;
pub(crate) mod notify;
pub(crate) mod ready;
pub(crate) mod reload;
pub(crate) mod signals;
pub(crate) mod watch;

pub(crate) use exit::ExitWhenIdle;
pub(crate) use inflight::{InFlight, InFlightCounter};
pub(crate) use reload::{reload, reload_plan, ReloadService};
pub(crate) use signals::StraitSignals;

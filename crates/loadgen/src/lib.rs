//! avp-loadgen: capacity tests for avpd with honest latency.
//!
//! The binary drives load through a hand-rolled mio client loop ([`worker`]), closed loop
//! (a fixed number of requests outstanding per connection) or open loop (a fixed schedule,
//! latency measured from the scheduled send time, see [`pacing`]). Each connection ([`conn`])
//! speaks through an [`avp_proto::PeerSession`], which writes the requests and matches and
//! checks every answer; the answers are timed into HdrHistograms ([`stats`]); [`report`] turns
//! the merged figures into the table, the JSON report ([`report::RunReport`]), the `.hgrm`
//! file ([`hgrm`]) and plots ([`plot`]). [`sweep`] steps the open-loop rate up until an SLO
//! breaks and [`compare`] puts two JSON reports side by side. The protocol is avp-proto's:
//! this crate never encodes or decodes a frame by hand. With the default `embedded` feature,
//! [`embedded`] starts an avpd node in the process.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod busy;
pub mod charts;
pub mod clock;
pub mod compare;
pub mod conn;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod error;
pub mod fleet;
pub mod hgrm;
pub mod hist;
pub mod hlog;
pub mod html;
pub mod live;
pub mod merge;
pub mod mix;
pub mod observe;
pub mod output;
pub mod pacing;
pub mod plot;
pub mod progress;
pub mod report;
pub mod request;
pub mod run;
pub mod source;
pub mod stats;
pub mod summary;
pub mod sweep;
pub mod table;
pub mod timeline;
pub mod timers;
pub mod worker;

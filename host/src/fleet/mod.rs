//! The fleet: the filters community groups upload, shared by every
//! instance through the registry, a compacted Kafka topic that
//! every `bandpass serve` instance of a fleet follows from its start, so
//! that an upload, a change or a deletion made through any instance's
//! admin API reaches every instance, and a restarted instance finds the
//! filters again, with no new infrastructure.
//!
//! One record per filter, keyed `<group>/<filter>`; its value is the
//! filter's [`Record`] (JSON) followed by the component's bytes, and a
//! deletion is a tombstone (no value). Compaction keeps the latest record
//! of each key. The topic is created with one partition (one order for
//! every change) and a `max.message.bytes` fitting the largest upload.
//!
//! Owns: the record format, the topic, the follower thread, and turning
//! records into [`Deployment`]s (loading components, reusing what runs).
//! Must never: run a record whose group is not configured here, whose
//! names are not names, whose component is not the one its sha256 says,
//! or whose limits are over its group's maximum (the admin API checks
//! all of that and the canary before it writes; a record written to the
//! topic some other way is checked again); or let one record that does
//! not load take the others down. Anyone who can write to the topic can
//! register code: restrict it with Kafka ACLs to the instances.

//!
//! Rooms: [`record`] (what one record holds, and its bytes on the topic),
//! [`topic`] (creating, checking and reading the topic), [`follower`]
//! ([`Fleet`]: the registry as one instance follows it, and the
//! deployments it makes), [`policy`] (the rules an upload and a record
//! both face), [`canary`] (the run on real alerts every upload
//! goes through), [`admission`] (whether an upload may join: the policy,
//! then the component's checks as one job).

pub mod admission;
pub mod canary;
pub mod follower;
pub mod policy;
pub mod record;
pub mod topic;

pub use admission::{Admission, Admitted, Upload};
pub use follower::{Fleet, Running, WriteError};
pub use policy::{Denial, Policy, Rule, Usage};
pub use record::{Entry, Record};

//! The report's ground truth: every BI figure, tallied from the plan (the events as the
//! generator decided them, in production order) and the world's records — never from the
//! pipeline. Definitions follow `schemas/clickhouse/VIEWS.md`: event time is the client
//! time, days, months, weekdays and hours are Asia/Shanghai's, and each valid event is
//! counted once (retry copies are dropped, malformed records dead-lettered).
//!
//! The tally runs in sections, each in a module of its own: the fans' activity and follows
//! (`fans`), the reads per article and push (`reads`), the scans and chats per associate
//! (`associates`), then the headline figures pooled from them (`shapes`); the figures'
//! types are in `report`. This file sequences them and re-exports what `generate` uses.

mod associates;
mod fans;
mod reads;
mod report;
mod shapes;

use crate::generate::plan::Planned;
use crate::spec::Spec;
use crate::world::World;

pub(crate) use fans::interactions;
pub use reads::source_name;
pub use report::{
    AccountActivity, ArticleTruth, AssociateDay, AssociateMonth, AssociateTruth, FollowCounts,
    Heatmap, MonthActivity, PushTruth, Reads, Report, Shapes, SCREENS,
};

/// Tallies the report from the plan (valid events in production order) and the world.
pub(crate) fn tally(spec: &Spec, world: &World, planned: &[Planned]) -> Report {
    let mut r = Report::default();
    let per_fan = interactions(planned);
    fans::tally_activity(&mut r, world, &per_fan);
    let reads = reads::tally_reads(&mut r, world, planned);
    let in_span_sources = fans::tally_follows(&mut r, world);
    let chats = associates::tally_associates(&mut r, world, planned);
    shapes::tally_shapes(&mut r, spec, world, &per_fan, reads, in_span_sources, chats);
    r
}

//! Routing: which node runs a job. Pure functions of their inputs, no I/O,
//! no clock of their own.

/// What a queued job needs from a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    /// Linear memory the job may use.
    pub memory: u64,
    /// Fuel the job reserves.
    pub fuel: u64,
    /// Scratch space the job may fill.
    pub disk: u64,
}

/// A node as the scheduler sees it at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView<K> {
    /// The node's key.
    pub key: K,
    /// Whether the job is within the node's per-job ceilings.
    pub admits: bool,
    /// Slots not running a job.
    pub free_slots: u32,
    /// Memory not promised to running jobs.
    pub free_memory: u64,
    /// Scratch space not promised to running jobs.
    pub free_disk: u64,
    /// Fuel in the node's bucket not reserved by running jobs.
    pub spare_fuel: u64,
    /// Whether the node already caches the job's module.
    pub has_module: bool,
}

/// Why a node does not fit a job, in the order the checks are made: a node
/// that fails a later check got further.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Misfit {
    /// The job is over the node's per-job ceilings.
    Ceilings,
    /// No free slot.
    Slots,
    /// Not enough free memory.
    Memory,
    /// Not enough free scratch space.
    Disk,
    /// Not enough spare fuel in the node's quota.
    Fuel,
}

impl<K> NodeView<K> {
    /// The first reason the node does not fit `d`; `None` when it fits.
    pub fn misfit(&self, d: &Demand) -> Option<Misfit> {
        if !self.admits {
            Some(Misfit::Ceilings)
        } else if self.free_slots == 0 {
            Some(Misfit::Slots)
        } else if self.free_memory < d.memory {
            Some(Misfit::Memory)
        } else if self.free_disk < d.disk {
            Some(Misfit::Disk)
        } else if self.spare_fuel < d.fuel {
            Some(Misfit::Fuel)
        } else {
            None
        }
    }
}

/// The node for a job: among the nodes whose ceilings admit it, with a free
/// slot, enough free memory and scratch space and enough spare fuel, one that caches the module if any does, and of
/// those the one with the most spare fuel. `None` when nothing fits.
pub fn choose<K: Ord + Clone>(demand: &Demand, nodes: &[NodeView<K>]) -> Option<K> {
    nodes
        .iter()
        .filter(|n| n.misfit(demand).is_none())
        // Ties on fuel go to the smallest key, so the choice is deterministic.
        .max_by(|a, b| (a.has_module, a.spare_fuel, &b.key).cmp(&(b.has_module, b.spare_fuel, &a.key)))
        .map(|n| n.key.clone())
}

/// Why a job waits when no node is connected at all.
pub const NO_NODE: &str = "waiting: no node is connected";

/// Why a queued job waits: when some node fits it, its turn has not come;
/// otherwise the failure of the node that got furthest through the checks.
/// `refused` counts the nodes left out because they refused the job.
pub fn why_waiting<K>(demand: &Demand, nodes: &[NodeView<K>], refused: usize) -> String {
    if nodes.is_empty() {
        return match refused {
            0 => NO_NODE.into(),
            _ => "waiting: refused by every node (offered again at their next heartbeat)".into(),
        };
    }
    let misfits: Option<Vec<Misfit>> = nodes.iter().map(|n| n.misfit(demand)).collect();
    let Some(best) = misfits.and_then(|m| m.into_iter().max()) else {
        return "waiting: its turn has not come yet".into();
    };
    match best {
        Misfit::Ceilings => "waiting: over every node's per-job ceilings".into(),
        Misfit::Slots => "waiting: every slot is busy".into(),
        Misfit::Memory => format!("waiting: no node with {} of memory free", bytes(demand.memory)),
        Misfit::Disk => format!("waiting: no node with {} of scratch space free", bytes(demand.disk)),
        Misfit::Fuel => format!("waiting: no node with {} fuel left in its quota", grid_core::format_fuel(demand.fuel)),
    }
}

/// Why a job waits that no node could take even with nothing running on
/// it (`idle` holds the nodes so seen, leaving out the `avoided` ones that
/// lost the job); `None` when some node could, or none is connected.
pub fn why_parked<K>(demand: &Demand, idle: &[NodeView<K>], avoided: usize) -> Option<String> {
    if idle.is_empty() {
        return (avoided > 0).then(|| "waiting: lost by every connected node; it waits for another".into());
    }
    let misfits: Option<Vec<Misfit>> = idle.iter().map(|n| n.misfit(demand)).collect();
    match misfits?.into_iter().max()? {
        Misfit::Ceilings => Some("waiting: over every node's per-job ceilings".into()),
        Misfit::Slots => Some("waiting: no node that admits it takes jobs (no slots, draining or quarantined)".into()),
        Misfit::Memory => Some(format!("waiting: no node has {} of memory in all", bytes(demand.memory))),
        Misfit::Disk => Some(format!("waiting: no node has {} of scratch space in all", bytes(demand.disk))),
        // A bucket refills: fuel is never a reason to wait for ever.
        Misfit::Fuel => None,
    }
}

/// A size as people write it, as `--memory` and `--disk-limit` take it.
fn bytes(n: u64) -> String {
    grid_core::units::format_size(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(
        key: &'static str,
        free_slots: u32,
        free_memory: u64,
        spare_fuel: u64,
        has_module: bool,
    ) -> NodeView<&'static str> {
        NodeView { key, admits: true, free_slots, free_memory, free_disk: 1 << 30, spare_fuel, has_module }
    }

    fn check(demand: Demand, nodes: &[NodeView<&'static str>], expected: Option<&str>) {
        assert_eq!(choose(&demand, nodes), expected, "demand {demand:?} over {nodes:#?}");
    }

    const SMALL: Demand = Demand { memory: 100, fuel: 1000, disk: 4096 };

    #[test]
    fn most_spare_fuel_wins() {
        check(SMALL, &[node("a", 1, 1000, 5000, false), node("b", 1, 1000, 9000, false)], Some("b"));
    }

    #[test]
    fn cache_affinity_beats_spare_fuel() {
        check(SMALL, &[node("a", 1, 1000, 5000, true), node("b", 1, 1000, 9000, false)], Some("a"));
    }

    #[test]
    fn cached_node_that_cannot_fit_is_skipped() {
        check(SMALL, &[node("a", 0, 1000, 9000, true), node("b", 1, 1000, 2000, false)], Some("b"));
        check(SMALL, &[node("a", 1, 50, 9000, true), node("b", 1, 1000, 2000, false)], Some("b"));
        check(SMALL, &[node("a", 1, 1000, 999, true), node("b", 1, 1000, 2000, false)], Some("b"));
    }

    #[test]
    fn ceilings_and_disk_rule_nodes_out() {
        let capped = NodeView { admits: false, ..node("a", 1, 1000, 9000, true) };
        check(SMALL, &[capped, node("b", 1, 1000, 2000, false)], Some("b"));
        let full_disk = NodeView { free_disk: 100, ..node("a", 1, 1000, 9000, true) };
        check(SMALL, &[full_disk], None);
    }

    #[test]
    fn waiting_reasons_name_what_is_missing() {
        let reason = |nodes: &[NodeView<&'static str>]| why_waiting(&SMALL, nodes, 0);
        assert_eq!(reason(&[]), "waiting: no node is connected");
        assert_eq!(
            why_waiting::<&str>(&SMALL, &[], 2),
            "waiting: refused by every node (offered again at their next heartbeat)"
        );
        assert_eq!(
            reason(&[NodeView { admits: false, ..node("a", 1, 1000, 9000, false) }]),
            "waiting: over every node's per-job ceilings"
        );
        assert_eq!(reason(&[node("a", 0, 1000, 9000, false)]), "waiting: every slot is busy");
        let big = Demand { memory: 2 << 30, fuel: 1000, disk: 0 };
        assert_eq!(
            why_waiting(&big, &[node("a", 1, 1 << 30, 9000, false)], 0),
            "waiting: no node with 2GiB of memory free"
        );
        assert_eq!(
            reason(&[NodeView { free_disk: 0, ..node("a", 1, 1000, 9000, false) }]),
            "waiting: no node with 4KiB of scratch space free"
        );
        assert_eq!(reason(&[node("a", 1, 1000, 10, false)]), "waiting: no node with 1k fuel left in its quota");
        // The node that got furthest names the reason.
        assert_eq!(
            reason(&[node("a", 0, 1000, 9000, false), node("b", 1, 1000, 10, false)]),
            "waiting: no node with 1k fuel left in its quota"
        );
        assert_eq!(
            reason(&[node("a", 0, 1000, 9000, false), node("b", 1, 1000, 9000, false)]),
            "waiting: its turn has not come yet"
        );
    }

    #[test]
    fn parked_reasons_name_what_no_node_has() {
        let parked = |demand: &Demand, nodes: &[NodeView<&'static str>]| why_parked(demand, nodes, 0);
        assert_eq!(parked(&SMALL, &[]), None, "no node connected is not a reason to park");
        assert_eq!(
            why_parked::<&str>(&SMALL, &[], 1).as_deref(),
            Some("waiting: lost by every connected node; it waits for another")
        );
        assert_eq!(parked(&SMALL, &[node("a", 1, 1000, 9000, false)]), None);
        assert_eq!(
            parked(&SMALL, &[NodeView { admits: false, ..node("a", 1, 1000, 9000, false) }]).as_deref(),
            Some("waiting: over every node's per-job ceilings")
        );
        assert_eq!(
            parked(&SMALL, &[node("zero", 0, 1000, 9000, false)]).as_deref(),
            Some("waiting: no node that admits it takes jobs (no slots, draining or quarantined)")
        );
        let big = Demand { memory: 2 << 30, fuel: 1000, disk: 0 };
        assert_eq!(
            parked(&big, &[node("a", 1, 1 << 30, 9000, false)]).as_deref(),
            Some("waiting: no node has 2GiB of memory in all")
        );
    }

    #[test]
    fn nothing_fits_means_wait() {
        check(SMALL, &[], None);
        check(
            SMALL,
            &[node("a", 0, 1000, 9000, false), node("b", 1, 99, 9000, false), node("c", 1, 1000, 10, false)],
            None,
        );
    }

    #[test]
    fn ties_are_deterministic() {
        check(SMALL, &[node("b", 1, 1000, 5000, false), node("a", 1, 1000, 5000, false)], Some("a"));
    }
}

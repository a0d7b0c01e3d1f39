//! Hotels partitioned over nodes: the cluster file every node shares, and which node a
//! request for a hotel belongs to.
//!
//! The file names the nodes (an id and the address clients and the proxy reach it at) and
//! the partitions (an id, the hotels it holds, its primary and its standbys). A node in a
//! cluster serves the hotels of the partitions it owns and answers any other hotel with
//! 421 `misdirected`, naming the owner when one is known, so no hotel is ever served by
//! two nodes. A partition's owner is its primary; `/readyz?partition=<id>` is 200 only on
//! the owner, which is what the proxy's health check routes by (see
//! `innkeep cluster haproxy-config`).
//!
//! With NATS, owning a partition also takes its lease ([`Leases`], kept by the binary's
//! `lease` module): the primary serves the partition only while it holds the lease, and
//! answers 503 `not_owner` before it has it and for ever after it lost it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use innkeep_engine::HotelId;
use serde::Deserialize;

/// Most nodes a cluster file may name.
pub const MAX_NODES: usize = 256;
/// Most partitions a cluster file may name.
pub const MAX_PARTITIONS: usize = 1024;
/// Most hotels all partitions together may hold.
pub const MAX_HOTELS: usize = 100_000;
/// Shortest lease a cluster file may set: renewals every quarter of it must get through
/// a loaded machine's scheduling and a NATS round trip.
pub const MIN_LEASE_TTL_MS: u64 = 1_000;
/// Longest lease a cluster file may set: a dead owner's partition waits this long.
pub const MAX_LEASE_TTL_MS: u64 = 60_000;
/// The lease when the file sets none: a dead primary's partition can move within #18's
/// 5 s.
pub const DEFAULT_LEASE_TTL_MS: u64 = 3_000;
/// Longest node or partition id. Ids become HAProxy section and server names and a query
/// value, so they are short and plain.
pub const MAX_ID_LEN: usize = 32;

/// Why a cluster file was refused. Each names the entry at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// Not TOML, or not the file's shape (unknown or missing keys, wrong types).
    #[error("not a valid cluster file: {0}")]
    Syntax(String),
    /// A node or partition id that is empty, too long, or not `[A-Za-z0-9_-]`.
    #[error("{what} id {id:?} must be 1 to {MAX_ID_LEN} ASCII letters, digits, '-' or '_'")]
    BadId {
        /// `node` or `partition`.
        what: &'static str,
        /// The id as written.
        id: String,
    },
    /// Two nodes or two partitions with one id.
    #[error("{what} {id:?} is named twice")]
    Duplicate {
        /// `node` or `partition`.
        what: &'static str,
        /// The repeated id.
        id: String,
    },
    /// A node's address is not `host:port`.
    #[error("node {node:?}: address {address:?} must be host:port with a port from 1 to 65535")]
    BadAddress {
        /// The node.
        node: String,
        /// The address as written.
        address: String,
    },
    /// A partition names a node the file does not list, or the same node twice.
    #[error("partition {partition:?}: {detail}")]
    BadMember {
        /// The partition.
        partition: String,
        /// What is wrong.
        detail: String,
    },
    /// A hotel id that is not a valid hotel code.
    #[error("partition {partition:?}: hotel {hotel:?}: {detail}")]
    BadHotel {
        /// The partition.
        partition: String,
        /// The hotel as written.
        hotel: String,
        /// Why it is not a hotel code.
        detail: String,
    },
    /// A hotel held by two partitions (it would be served by two nodes).
    #[error("hotel {hotel:?} is in partitions {first:?} and {second:?}; a hotel belongs to one partition")]
    HotelTwice {
        /// The hotel.
        hotel: String,
        /// The partition listing it first.
        first: String,
        /// The other one.
        second: String,
    },
    /// No nodes or no partitions, or more of something than the limits allow.
    #[error("{0}")]
    Size(String),
    /// `lease_ttl_ms` out of range.
    #[error("lease_ttl_ms {0} must be from {MIN_LEASE_TTL_MS} to {MAX_LEASE_TTL_MS}")]
    BadLeaseTtl(u64),
    /// This node's id is not one of the file's nodes.
    #[error("this node's id {0:?} is not one of the cluster file's nodes")]
    UnknownNode(String),
}

/// A node of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Its id, unique in the file.
    pub id: String,
    /// `host:port` where clients and the proxy reach its HTTP API.
    pub address: String,
}

/// A partition: hotels served together by one node at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Its id, unique in the file.
    pub id: String,
    /// The node that serves it (an index into [`ClusterFile::nodes`]).
    pub primary: usize,
    /// Nodes that stand by for it (indexes into [`ClusterFile::nodes`]); never the primary.
    pub standbys: Vec<usize>,
    /// The hotels it holds, in the file's order.
    pub hotels: Vec<HotelId>,
}

/// A validated cluster file: nodes, partitions, and which partition holds each hotel.
#[derive(Clone, Debug)]
pub struct ClusterFile {
    /// The nodes, in the file's order.
    nodes: Vec<Node>,
    /// The partitions, in the file's order.
    partitions: Vec<Partition>,
    /// Each listed hotel's partition (an index into `partitions`).
    partition_of: HashMap<String, usize>,
    /// How long a partition's lease lasts unless renewed (with NATS): every node must
    /// agree on it, so it is the shared file's.
    lease_ttl_ms: u64,
}

/// The file as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    #[serde(default = "default_lease_ttl_ms")]
    lease_ttl_ms: u64,
    nodes: Vec<NodeRepr>,
    partitions: Vec<PartitionRepr>,
}

fn default_lease_ttl_ms() -> u64 {
    DEFAULT_LEASE_TTL_MS
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeRepr {
    id: String,
    address: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionRepr {
    id: String,
    primary: String,
    #[serde(default)]
    standbys: Vec<String>,
    hotels: Vec<String>,
}

fn check_id(what: &'static str, id: &str) -> Result<(), ClusterError> {
    let plain = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        Ok(())
    } else {
        Err(ClusterError::BadId {
            what,
            id: id.to_owned(),
        })
    }
}

/// Whether `address` is `host:port`: a host of visible ASCII without spaces, ':' only
/// inside brackets (an IPv6 literal), and a port from 1 to 65535.
fn is_host_port(address: &str) -> bool {
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    };
    port_ok && host_ok
}

impl ClusterFile {
    /// Reads and validates a cluster file's text.
    pub fn parse(text: &str) -> Result<Self, ClusterError> {
        let repr: FileRepr =
            toml::from_str(text).map_err(|e| ClusterError::Syntax(e.to_string()))?;
        if !(MIN_LEASE_TTL_MS..=MAX_LEASE_TTL_MS).contains(&repr.lease_ttl_ms) {
            return Err(ClusterError::BadLeaseTtl(repr.lease_ttl_ms));
        }
        if repr.nodes.is_empty() || repr.partitions.is_empty() {
            return Err(ClusterError::Size(
                "a cluster file names at least one node and one partition".to_owned(),
            ));
        }
        if repr.nodes.len() > MAX_NODES || repr.partitions.len() > MAX_PARTITIONS {
            return Err(ClusterError::Size(format!(
                "a cluster file names at most {MAX_NODES} nodes and {MAX_PARTITIONS} partitions"
            )));
        }
        let mut node_index = HashMap::new();
        let mut nodes = Vec::with_capacity(repr.nodes.len());
        for n in repr.nodes {
            check_id("node", &n.id)?;
            if !is_host_port(&n.address) {
                return Err(ClusterError::BadAddress {
                    node: n.id,
                    address: n.address,
                });
            }
            if node_index.insert(n.id.clone(), nodes.len()).is_some() {
                return Err(ClusterError::Duplicate {
                    what: "node",
                    id: n.id,
                });
            }
            nodes.push(Node {
                id: n.id,
                address: n.address,
            });
        }
        let hotel_count: usize = repr.partitions.iter().map(|p| p.hotels.len()).sum();
        if hotel_count > MAX_HOTELS {
            return Err(ClusterError::Size(format!(
                "a cluster file holds at most {MAX_HOTELS} hotels; this one lists {hotel_count}"
            )));
        }
        let mut partition_ids = HashSet::new();
        let mut partition_of: HashMap<String, usize> = HashMap::with_capacity(hotel_count);
        let mut partitions: Vec<Partition> = Vec::with_capacity(repr.partitions.len());
        for p in repr.partitions {
            check_id("partition", &p.id)?;
            if !partition_ids.insert(p.id.clone()) {
                return Err(ClusterError::Duplicate {
                    what: "partition",
                    id: p.id,
                });
            }
            let member = |id: &str| {
                node_index
                    .get(id)
                    .copied()
                    .ok_or_else(|| ClusterError::BadMember {
                        partition: p.id.clone(),
                        detail: format!("node {id:?} is not one of the file's nodes"),
                    })
            };
            let primary = member(&p.primary)?;
            let mut standbys = Vec::with_capacity(p.standbys.len());
            for s in &p.standbys {
                let s = member(s)?;
                if s == primary || standbys.contains(&s) {
                    return Err(ClusterError::BadMember {
                        partition: p.id.clone(),
                        detail: format!(
                            "node {:?} is named twice (a standby is never the primary)",
                            nodes[s].id
                        ),
                    });
                }
                standbys.push(s);
            }
            let index = partitions.len();
            let mut hotels = Vec::with_capacity(p.hotels.len());
            for raw in p.hotels {
                let hotel = HotelId::parse(&raw).map_err(|e| ClusterError::BadHotel {
                    partition: p.id.clone(),
                    hotel: raw.clone(),
                    detail: e.to_string(),
                })?;
                if let Some(first) = partition_of.insert(raw.clone(), index) {
                    let first = if first == index {
                        p.id.clone()
                    } else {
                        partitions[first].id.clone()
                    };
                    return Err(ClusterError::HotelTwice {
                        hotel: raw,
                        first,
                        second: p.id,
                    });
                }
                hotels.push(hotel);
            }
            partitions.push(Partition {
                id: p.id,
                primary,
                standbys,
                hotels,
            });
        }
        // A standby follows streams before its engine starts; a running engine takes no
        // events from elsewhere. So a node that serves a partition cannot stand by for
        // another: it would never take it over.
        for p in &partitions {
            if let Some(&s) = p
                .standbys
                .iter()
                .find(|&&s| partitions.iter().any(|q| q.primary == s))
            {
                return Err(ClusterError::BadMember {
                    partition: p.id.clone(),
                    detail: format!(
                        "standby {:?} is the primary of a partition: a standby is a node \
                         of its own (it follows the streams before its engine starts, and a \
                         serving node takes no events from elsewhere)",
                        nodes[s].id
                    ),
                });
            }
        }
        Ok(Self {
            nodes,
            partitions,
            partition_of,
            lease_ttl_ms: repr.lease_ttl_ms,
        })
    }

    /// How long a partition's lease lasts unless renewed.
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.lease_ttl_ms)
    }

    /// The nodes, in the file's order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The partitions, in the file's order.
    pub fn partitions(&self) -> &[Partition] {
        &self.partitions
    }

    /// The partition holding `hotel`, if one does.
    pub fn partition_of(&self, hotel: &str) -> Option<&Partition> {
        self.partition_of
            .get(hotel)
            .map(|&index| &self.partitions[index])
    }

    /// The node serving `partition` now: its primary.
    pub fn owner(&self, partition: &Partition) -> &Node {
        &self.nodes[partition.primary]
    }
}

/// This node's view of its cluster: the file and which node it is.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// The shared file.
    file: ClusterFile,
    /// This node (an index into the file's nodes).
    this: usize,
    /// With NATS: the leases of the partitions this node is primary of; it serves one only
    /// while it holds its lease. `None`: it serves them all along.
    leases: Option<Arc<Leases>>,
}

/// The leases of a node's partitions: which ones it may serve, and until when. Each
/// partition's lease keeper (the binary's `lease` module) is the only writer of its entry;
/// every request for the partition reads it.
#[derive(Debug)]
pub struct Leases {
    /// What `until_ms` counts from.
    epoch: Instant,
    /// Per partition of the file: this node may serve it until this many milliseconds
    /// after `epoch`, plus one; 0 while it does not hold the lease.
    until_ms: Vec<AtomicU64>,
    /// Per partition: the lease was lost. A node that lost a partition's lease may have
    /// missed what the next owner did, so it never serves the partition again (a restart
    /// recovers, and takes the lease only once nobody else holds it).
    lost: Vec<AtomicBool>,
    /// Lease keepers that have not yet finished their first attempt: until they have,
    /// the node is not ready.
    unsettled: AtomicUsize,
    /// Bumped at every change, for those who wait on one.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Leases {
    fn new(partitions: usize, keepers: usize) -> Self {
        Self {
            epoch: Instant::now(),
            until_ms: (0..partitions).map(|_| AtomicU64::new(0)).collect(),
            lost: (0..partitions).map(|_| AtomicBool::new(false)).collect(),
            unsettled: AtomicUsize::new(keepers),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// Partition `index` may be served until `until` (its lease was taken or renewed);
    /// nothing once the lease was lost.
    pub fn hold_until(&self, index: usize, until: Instant) {
        if self.lost[index].load(Ordering::Acquire) {
            return;
        }
        // Plus one: 0 means not held.
        let until_ms = self.millis(until).saturating_add(1);
        self.until_ms[index].store(until_ms, Ordering::Release);
        self.changed.send_modify(|n| *n += 1);
    }

    /// Partition `index`'s lease is lost: it is never served here again.
    pub fn lose(&self, index: usize) {
        self.lost[index].store(true, Ordering::Release);
        self.until_ms[index].store(0, Ordering::Release);
        self.changed.send_modify(|n| *n += 1);
    }

    /// Whether partition `index` may be served now.
    pub fn holds(&self, index: usize) -> bool {
        let until = self.until_ms[index].load(Ordering::Acquire);
        until != 0 && self.millis(Instant::now()).saturating_add(1) < until
    }

    /// Whether this node held partition `index`'s lease at some point.
    pub fn was_held(&self, index: usize) -> bool {
        self.until_ms[index].load(Ordering::Acquire) != 0 || self.is_lost(index)
    }

    /// Whether partition `index`'s lease was lost.
    pub fn is_lost(&self, index: usize) -> bool {
        self.lost[index].load(Ordering::Acquire)
    }

    /// A lease keeper finished its first attempt (took the lease, or found another
    /// node holding it). Each keeper calls this once.
    pub fn settle(&self) {
        let _ = self
            .unsettled
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        self.changed.send_modify(|n| *n += 1);
    }

    /// Whether every lease keeper finished its first attempt.
    pub fn settled(&self) -> bool {
        self.unsettled.load(Ordering::Acquire) == 0
    }

    /// Changes from now on: each `hold_until`, `lose` and `settle`.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// Where a request for a hotel belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement<'a> {
    /// On this node.
    Here,
    /// On this node, which does not hold the partition's lease now (503 `not_owner`).
    NotHeld {
        /// The partition holding the hotel.
        partition: &'a str,
    },
    /// On another node: the partition's owner.
    Elsewhere {
        /// The partition holding the hotel.
        partition: &'a str,
        /// Its owner.
        owner: &'a Node,
    },
    /// No partition holds the hotel: no node serves it.
    Nowhere,
}

impl Cluster {
    /// The view of node `node_id` of `file`.
    pub fn new(file: ClusterFile, node_id: &str) -> Result<Self, ClusterError> {
        let this = file
            .nodes
            .iter()
            .position(|n| n.id == node_id)
            .ok_or_else(|| ClusterError::UnknownNode(node_id.to_owned()))?;
        Ok(Self {
            file,
            this,
            leases: None,
        })
    }

    /// The same view, where serving a partition also takes holding its lease ([`Leases`],
    /// none held yet).
    pub fn leased(self) -> Self {
        let keepers = self.primary_of().count();
        let leases = Leases::new(self.file.partitions.len(), keepers);
        Self {
            leases: Some(Arc::new(leases)),
            ..self
        }
    }

    /// The leases, when serving takes them.
    pub fn leases(&self) -> Option<&Arc<Leases>> {
        self.leases.as_ref()
    }

    /// The partitions this node is primary of, with their indexes in the file.
    pub fn primary_of(&self) -> impl Iterator<Item = (usize, &Partition)> + '_ {
        self.file
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.primary == self.this)
    }

    /// The partitions this node stands by for, with their indexes in the file.
    pub fn standby_of(&self) -> impl Iterator<Item = (usize, &Partition)> + '_ {
        self.file
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.standbys.contains(&self.this))
    }

    /// The shared file.
    pub fn file(&self) -> &ClusterFile {
        &self.file
    }

    /// This node.
    pub fn this_node(&self) -> &Node {
        &self.file.nodes[self.this]
    }

    /// Where a request for `hotel` belongs.
    pub fn place(&self, hotel: &str) -> Placement<'_> {
        let Some(&index) = self.file.partition_of.get(hotel) else {
            return Placement::Nowhere;
        };
        let p = &self.file.partitions[index];
        let elsewhere = Placement::Elsewhere {
            partition: &p.id,
            owner: self.file.owner(p),
        };
        match &self.leases {
            // Whoever holds the lease serves: the primary, or a standby that took over.
            Some(leases) if leases.holds(index) => Placement::Here,
            Some(leases) if p.primary == self.this || leases.was_held(index) => {
                Placement::NotHeld { partition: &p.id }
            }
            Some(_) => elsewhere,
            None if p.primary == self.this => Placement::Here,
            None => elsewhere,
        }
    }

    /// Whether this node owns partition `id` now; `None` for a partition the file does not
    /// name.
    pub fn owns(&self, id: &str) -> Option<bool> {
        self.file
            .partitions
            .iter()
            .position(|p| p.id == id)
            .map(|index| match &self.leases {
                Some(leases) => leases.holds(index),
                None => self.file.partitions[index].primary == self.this,
            })
    }

    /// `Ok` if a request for `hotel` belongs here, else 421 `misdirected` naming the owner
    /// when there is one.
    pub fn check(&self, hotel: &str) -> Result<(), crate::ApiError> {
        match self.place(hotel) {
            Placement::Here => Ok(()),
            Placement::NotHeld { partition } => Err(crate::ApiError::NotOwner {
                partition: partition.to_owned(),
            }),
            Placement::Elsewhere { partition, owner } => Err(crate::ApiError::Misdirected {
                hotel: hotel.to_owned(),
                owner: Some(Owner {
                    partition: partition.to_owned(),
                    node: owner.id.clone(),
                    address: owner.address.clone(),
                }),
            }),
            Placement::Nowhere => Err(crate::ApiError::Misdirected {
                hotel: hotel.to_owned(),
                owner: None,
            }),
        }
    }
}

/// The node a misdirected request should go to, as told in the problem (`owner`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Owner {
    /// The partition holding the hotel.
    #[schema(example = "p1")]
    pub partition: String,
    /// The id of the node serving it.
    #[schema(example = "node-a")]
    pub node: String,
    /// Where that node's HTTP API is (`host:port`).
    #[schema(example = "10.0.0.5:8080")]
    pub address: String,
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "partition {} is served by node {} at {}",
            self.partition, self.node, self.address
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        [[nodes]]
        id = "a"
        address = "127.0.0.1:8081"
        [[nodes]]
        id = "b"
        address = "node-b.internal:8082"
        [[nodes]]
        id = "c"
        address = "[::1]:8083"

        [[partitions]]
        id = "p1"
        primary = "a"
        standbys = ["c"]
        hotels = ["H1", "H2"]

        [[partitions]]
        id = "p2"
        primary = "b"
        standbys = ["c"]
        hotels = ["H3"]
    "#;

    #[test]
    fn places_each_hotel_on_its_partitions_primary() {
        let file = ClusterFile::parse(FILE).unwrap();
        assert_eq!(file.nodes().len(), 3);
        assert_eq!(file.partitions()[0].standbys, vec![2]);
        let a = Cluster::new(file.clone(), "a").unwrap();
        assert_eq!(a.place("H1"), Placement::Here);
        assert_eq!(a.place("H2"), Placement::Here);
        assert_eq!(
            a.place("H3"),
            Placement::Elsewhere {
                partition: "p2",
                owner: &file.nodes()[1]
            }
        );
        assert_eq!(a.place("H4"), Placement::Nowhere);
        // Exact: hotel codes are case-sensitive.
        assert_eq!(a.place("h1"), Placement::Nowhere);
        assert_eq!(a.owns("p1"), Some(true));
        assert_eq!(a.owns("p2"), Some(false));
        assert_eq!(a.owns("p3"), None);
        let c = Cluster::new(file, "c").unwrap();
        assert!(matches!(c.place("H1"), Placement::Elsewhere { .. }));
        assert_eq!(c.owns("p2"), Some(false));
    }

    #[test]
    fn with_leases_a_primary_serves_a_partition_only_while_it_holds_its_lease() {
        let a = Cluster::new(ClusterFile::parse(FILE).unwrap(), "a")
            .unwrap()
            .leased();
        let leases = a.leases().unwrap().clone();
        // `a` is primary of p1 (index 0) only: one keeper to wait for.
        assert_eq!(
            a.primary_of()
                .map(|(i, p)| (i, p.id.as_str()))
                .collect::<Vec<_>>(),
            vec![(0, "p1")]
        );
        assert!(!leases.settled());
        // Not held yet: 503 `not_owner`, and not owned for the proxy's check.
        assert_eq!(a.place("H1"), Placement::NotHeld { partition: "p1" });
        let e = a.check("H1").unwrap_err();
        assert_eq!((e.code(), e.status().as_u16()), ("not_owner", 503));
        assert_eq!(a.owns("p1"), Some(false));
        // Another partition's hotel is still misdirected, whatever the leases.
        assert_eq!(a.check("H3").unwrap_err().code(), "misdirected");
        let changes = leases.subscribe();
        leases.settle();
        assert!(leases.settled());
        assert!(changes.has_changed().unwrap());
        // Held: served, until the moment it was held until.
        leases.hold_until(0, Instant::now() + Duration::from_secs(60));
        assert_eq!(a.place("H1"), Placement::Here);
        assert!(a.check("H2").is_ok());
        assert_eq!(a.owns("p1"), Some(true));
        leases.hold_until(0, Instant::now());
        assert!(!leases.holds(0));
        assert_eq!(a.check("H1").unwrap_err().code(), "not_owner");
        assert!(!leases.is_lost(0));
        // Lost: never served again, whatever a late renewal says.
        leases.hold_until(0, Instant::now() + Duration::from_secs(60));
        assert_eq!(a.owns("p1"), Some(true));
        leases.lose(0);
        assert!(leases.is_lost(0));
        leases.hold_until(0, Instant::now() + Duration::from_secs(60));
        assert_eq!(a.owns("p1"), Some(false));
        assert_eq!(a.check("H1").unwrap_err().code(), "not_owner");
        // Without leases, the primary serves all along.
        let plain = Cluster::new(ClusterFile::parse(FILE).unwrap(), "a").unwrap();
        assert!(plain.leases().is_none());
        assert!(plain.check("H1").is_ok());
    }

    #[test]
    fn a_standby_is_never_a_primary_too() {
        let mutual = r#"
            [[nodes]]
            id = "a"
            address = "h:1"
            [[nodes]]
            id = "b"
            address = "h:2"
            [[partitions]]
            id = "p1"
            primary = "a"
            standbys = ["b"]
            hotels = ["H1"]
            [[partitions]]
            id = "p2"
            primary = "b"
            hotels = ["H2"]
        "#;
        let e = ClusterFile::parse(mutual).unwrap_err();
        assert!(
            matches!(&e, ClusterError::BadMember { partition, detail }
                if partition == "p1" && detail.contains("standby \"b\" is the primary")),
            "{e}"
        );
    }

    #[test]
    fn the_lease_ttl_is_the_files_and_bounded() {
        let file = ClusterFile::parse(FILE).unwrap();
        assert_eq!(
            file.lease_ttl(),
            Duration::from_millis(DEFAULT_LEASE_TTL_MS)
        );
        let set = ClusterFile::parse(&format!("lease_ttl_ms = 1500\n{FILE}")).unwrap();
        assert_eq!(set.lease_ttl(), Duration::from_millis(1_500));
        for bad in [0, MIN_LEASE_TTL_MS - 1, MAX_LEASE_TTL_MS + 1] {
            let e = ClusterFile::parse(&format!("lease_ttl_ms = {bad}\n{FILE}")).unwrap_err();
            assert_eq!(e, ClusterError::BadLeaseTtl(bad));
            assert!(e.to_string().contains("lease_ttl_ms"), "{e}");
        }
    }

    #[test]
    fn misdirected_names_the_owner_when_there_is_one() {
        let b = Cluster::new(ClusterFile::parse(FILE).unwrap(), "b").unwrap();
        assert!(b.check("H3").is_ok());
        let e = b.check("H1").unwrap_err();
        assert_eq!(e.code(), "misdirected");
        assert_eq!(e.status().as_u16(), 421);
        let problem = e.problem();
        let owner = problem.owner.unwrap();
        assert_eq!(
            (
                owner.partition.as_str(),
                owner.node.as_str(),
                owner.address.as_str()
            ),
            ("p1", "a", "127.0.0.1:8081")
        );
        let e = b.check("NOPE").unwrap_err();
        assert_eq!(e.code(), "misdirected");
        assert!(e.problem().owner.is_none());
        assert!(e.to_string().contains("no partition"), "{e}");
    }

    #[test]
    fn refuses_what_would_serve_a_hotel_twice_or_nowhere() {
        let cases: &[(&str, &str)] = &[
            ("nodes = []\npartitions = []", "at least one node"),
            ("nodes = [{ id = \"a\", address = \"h:1\" }]\npartitions = []", "at least one node"),
            (
                "nodes = [{ id = \"a\", address = \"h:1\", extra = 1 }]\npartitions = [{ id = \"p\", primary = \"a\", hotels = [] }]",
                "unknown field",
            ),
            (
                "nodes = [{ id = \"a b\", address = \"h:1\" }]\npartitions = [{ id = \"p\", primary = \"a\", hotels = [] }]",
                "node id \"a b\"",
            ),
            (
                "nodes = [{ id = \"a\", address = \"h\" }]\npartitions = [{ id = \"p\", primary = \"a\", hotels = [] }]",
                "host:port",
            ),
            (
                "nodes = [{ id = \"a\", address = \"h:0\" }]\npartitions = [{ id = \"p\", primary = \"a\", hotels = [] }]",
                "host:port",
            ),
            (
                "nodes = [{ id = \"a\", address = \"h h:80\" }]\npartitions = [{ id = \"p\", primary = \"a\", hotels = [] }]",
                "host:port",
            ),
            (
                "nodes = [{ id = \"a\", address = \"h:1\" }, { id = \"a\", address = \"h:2\" }]\npartitions = [{ id = \"p\", primary = \"a\", hotels = [] }]",
                "node \"a\" is named twice",
            ),
            (
                "nodes = [{ id = \"a\", address = \"h:1\" }]\npartitions = [{ id = \"p\", primary = \"z\", hotels = [] }]",
                "node \"z\" is not one",
            ),
            (
                "nodes = [{ id = \"a\", address = \"h:1\" }]\npartitions = [{ id = \"p\", primary = \"a\", standbys = [\"a\"], hotels = [] }]",
                "never the primary",
            ),
            (
                "nodes = [{ id = \"a\", address = \"h:1\" }]\npartitions = [{ id = \"p\", primary = \"a\", hotels = [\"H/1\"] }]",
                "hotel \"H/1\"",
            ),
            (
                "nodes = [{ id = \"a\", address = \"h:1\" }]\npartitions = [{ id = \"p\", primary = \"a\", hotels = [\"H\"] }, { id = \"q\", primary = \"a\", hotels = [\"H\"] }]",
                "in partitions \"p\" and \"q\"",
            ),
            (
                "nodes = [{ id = \"a\", address = \"h:1\" }]\npartitions = [{ id = \"p\", primary = \"a\", hotels = [\"H\", \"H\"] }]",
                "in partitions \"p\" and \"p\"",
            ),
            (
                "nodes = [{ id = \"a\", address = \"h:1\" }]\npartitions = [{ id = \"p\", primary = \"a\", hotels = [] }, { id = \"p\", primary = \"a\", hotels = [] }]",
                "partition \"p\" is named twice",
            ),
        ];
        for (text, expected) in cases {
            let e = ClusterFile::parse(text).unwrap_err().to_string();
            assert!(e.contains(expected), "{text}: {e} (expected {expected:?})");
        }
        let file = ClusterFile::parse(FILE).unwrap();
        assert_eq!(
            Cluster::new(file, "d").unwrap_err(),
            ClusterError::UnknownNode("d".to_owned())
        );
    }

    #[test]
    fn limits_the_hotels_a_file_may_list() {
        let hotels: Vec<String> = (0..=MAX_HOTELS).map(|i| format!("\"H{i}\"")).collect();
        let text = format!(
            "nodes = [{{ id = \"a\", address = \"h:1\" }}]\npartitions = [{{ id = \"p\", primary = \"a\", hotels = [{}] }}]",
            hotels.join(",")
        );
        let e = ClusterFile::parse(&text).unwrap_err().to_string();
        assert!(e.contains("at most 100000 hotels"), "{e}");
    }

    #[test]
    fn addresses() {
        for ok in [
            "127.0.0.1:8080",
            "node-b.internal:1",
            "[::1]:65535",
            "h_1:80",
        ] {
            assert!(is_host_port(ok), "{ok}");
        }
        for bad in [
            "", ":80", "h:", "h:65536", "h:-1", "[::1:80", "::1:80", "h :80", "[zz]:80",
        ] {
            assert!(!is_host_port(bad), "{bad}");
        }
    }
}

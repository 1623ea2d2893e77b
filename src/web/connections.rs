//! The cap on open connections (`--web.max-connections`). At the cap a new connection takes the
//! place of the one idle the longest (waiting for its TLS handshake or its next request), so a
//! scraper still gets in while idle or slow clients hold every slot; when every connection is
//! busy with a request, the new one is closed instead. Connections, and the memory and file
//! descriptors they hold, stay within the cap.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;

/// Prometheus' default for the same flag.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

pub struct Connections {
    max: usize,
    started: Instant,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    slots: BTreeMap<u64, Slot>,
}

struct Slot {
    activity: Arc<Activity>,
    /// Closes the connection when sent to (or dropped).
    shed: oneshot::Sender<()>,
}

/// Whether a connection is serving a request, and since when it has not.
pub struct Activity {
    requests: AtomicUsize,
    /// Milliseconds after [`Connections::started`].
    idle_since: AtomicU64,
    started: Instant,
}

/// A connection's place under the cap; it gives the place back when dropped.
pub struct Admitted {
    id: u64,
    connections: Arc<Connections>,
    pub activity: Arc<Activity>,
    /// Completes when the connection is shed to make room for a newer one.
    pub shed: oneshot::Receiver<()>,
}

impl Connections {
    pub fn new(max: usize) -> Arc<Connections> {
        Arc::new(Connections {
            max: max.max(1),
            started: Instant::now(),
            open: Mutex::new(Open::default()),
        })
    }

    /// Admits a new connection, shedding the longest idle one at the cap; `None` when every
    /// connection is busy.
    pub fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let mut open = self.open.lock().expect("connections lock");
        if open.slots.len() >= self.max {
            let oldest_idle = open
                .slots
                .iter()
                .filter(|(_, slot)| slot.activity.requests.load(Ordering::Acquire) == 0)
                .min_by_key(|(_, slot)| slot.activity.idle_since.load(Ordering::Acquire))
                .map(|(id, _)| *id)?;
            if let Some(slot) = open.slots.remove(&oldest_idle) {
                let _ = slot.shed.send(());
            }
        }
        let id = open.next_id;
        open.next_id += 1;
        let activity = Arc::new(Activity {
            requests: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            started: self.started,
        });
        activity.mark_idle();
        let (shed, shed_receiver) = oneshot::channel();
        open.slots.insert(id, Slot { activity: activity.clone(), shed });
        Some(Admitted { id, connections: self.clone(), activity, shed: shed_receiver })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.connections.open.lock().expect("connections lock").slots.remove(&self.id);
    }
}

impl Activity {
    /// Marks a request in progress until the returned guard is dropped.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.requests.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    fn mark_idle(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.idle_since.store(now, Ordering::Release);
    }
}

pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.mark_idle();
        self.0.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_idle_connection_makes_room() {
        let connections = Connections::new(2);
        let mut first = connections.admit().unwrap();
        let second = connections.admit().unwrap();
        let _busy = second.activity.busy();
        let mut third = connections.admit().expect("the idle first one is shed");
        assert!(first.shed.try_recv().is_ok(), "first was told to close");
        let _also_busy = third.activity.busy();
        assert!(connections.admit().is_none(), "all busy: no room");
        drop(first);
        assert!(third.shed.try_recv().is_err(), "third still open");
        assert_eq!(connections.open.lock().unwrap().slots.len(), 2);
    }
}

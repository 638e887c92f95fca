//! A small least-recently-used set of open file handles, so a torrent with thousands of files
//! never holds thousands of descriptors. The lock is held only to look up or insert an
//! `Arc<File>`; opening, reading, writing and closing happen outside it.

use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

struct Entry {
    file: usize,
    handle: Arc<File>,
    last_used: u64,
}

#[derive(Default)]
struct State {
    clock: u64,
    entries: Vec<Entry>,
}

pub(super) struct HandleCache {
    capacity: usize,
    state: Mutex<State>,
}

impl HandleCache {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent, so a panic elsewhere cannot corrupt it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The handle of file `file`, opened with `open` on a miss. `open` returns `Ok(None)` when
    /// the file does not exist; nothing is cached then.
    pub(super) fn get<E>(
        &self,
        file: usize,
        open: impl FnOnce() -> Result<Option<File>, E>,
    ) -> Result<Option<Arc<File>>, E> {
        {
            let mut state = self.lock();
            state.clock += 1;
            let now = state.clock;
            if let Some(entry) = state.entries.iter_mut().find(|e| e.file == file) {
                entry.last_used = now;
                return Ok(Some(Arc::clone(&entry.handle)));
            }
        }
        let Some(opened) = open()? else {
            return Ok(None);
        };
        let opened = Arc::new(opened);
        let evicted;
        let handle = {
            let mut state = self.lock();
            state.clock += 1;
            let now = state.clock;
            // Another thread may have opened the same file meanwhile: keep one handle.
            if let Some(entry) = state.entries.iter_mut().find(|e| e.file == file) {
                entry.last_used = now;
                evicted = None;
                Arc::clone(&entry.handle)
            } else {
                evicted = if state.entries.len() >= self.capacity {
                    state
                        .entries
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, e)| e.last_used)
                        .map(|(i, _)| i)
                        .map(|i| state.entries.swap_remove(i))
                } else {
                    None
                };
                state.entries.push(Entry {
                    file,
                    handle: Arc::clone(&opened),
                    last_used: now,
                });
                opened
            }
        };
        // Closing is a syscall: done here, after the lock is released.
        drop(evicted);
        Ok(Some(handle))
    }

    /// Handles cached now (for tests of the bound).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_temp() -> Result<Option<File>, std::io::Error> {
        tempfile::tempfile().map(Some)
    }

    #[test]
    fn keeps_at_most_capacity_and_evicts_the_least_recently_used() {
        let cache = HandleCache::new(2);
        let opens = std::cell::Cell::new(0);
        let counted = || {
            opens.set(opens.get() + 1);
            open_temp()
        };
        cache.get(0, counted).unwrap();
        cache.get(1, counted).unwrap();
        cache.get(0, counted).unwrap(); // 0 is now more recent than 1
        assert_eq!(opens.get(), 2, "a hit must not reopen");
        cache.get(2, counted).unwrap(); // evicts 1
        assert_eq!(cache.len(), 2);
        cache.get(0, counted).unwrap();
        assert_eq!(opens.get(), 3, "0 stayed cached");
        cache.get(1, counted).unwrap();
        assert_eq!(opens.get(), 4, "1 was evicted and had to be reopened");
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_missing_file_is_not_cached() {
        let cache = HandleCache::new(4);
        let got = cache.get(7, || Ok::<_, std::io::Error>(None)).unwrap();
        assert!(got.is_none());
        assert_eq!(cache.len(), 0);
    }
}

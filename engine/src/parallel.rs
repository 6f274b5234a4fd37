//! Work spread over a few threads.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The most threads [`in_parallel`] starts.
const MAX_THREADS: usize = 8;

/// Runs `work` for the items `0..count` on a few threads, each thread with a state made by
/// `init`, and returns the results in item order, or the first error (after which the
/// threads take no new item).
pub(crate) fn in_parallel<S, T: Send, E: Send>(
    count: usize,
    init: impl Fn() -> Result<S, E> + Sync,
    work: impl Fn(&mut S, usize) -> Result<T, E> + Sync,
) -> Result<Vec<T>, E> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_THREADS)
        .min(count)
        .max(1);
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(None);
    let done = Mutex::new(Vec::with_capacity(count));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let result = init().and_then(|mut state| {
                    let mut mine = Vec::new();
                    while failed.lock().is_ok_and(|failed| failed.is_none()) {
                        let item = next.fetch_add(1, Ordering::Relaxed);
                        if item >= count {
                            break;
                        }
                        mine.push((item, work(&mut state, item)?));
                    }
                    Ok(mine)
                });
                match result {
                    Ok(mine) => done.lock().map(|mut done| done.extend(mine)).unwrap_or_default(),
                    Err(error) => failed
                        .lock()
                        .map(|mut failed| {
                            failed.get_or_insert(error);
                        })
                        .unwrap_or_default(),
                }
            });
        }
    });
    if let Some(error) = failed.into_inner().ok().flatten() {
        return Err(error);
    }
    let mut done = done.into_inner().unwrap_or_default();
    done.sort_by_key(|(item, _)| *item);
    Ok(done.into_iter().map(|(_, result)| result).collect())
}

//! Work spread over all cores, for the few places where one call has much of it.

/// `f` of each of `items`, in order: on all cores when there are at least `min` items, here
/// otherwise (starting threads costs more than a few items).
pub(crate) fn map_on_all_cores<T: Sync, R: Send>(
    items: &[T],
    min: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if items.len() < min.max(1) || threads == 1 {
        return items.iter().map(f).collect();
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|chunk| scope.spawn(move || chunk.iter().map(f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("work spread over cores does not panic"))
            .collect()
    })
}

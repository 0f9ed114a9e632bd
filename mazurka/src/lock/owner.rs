//! Who owns a reentrant hold: the current tokio task, or the thread outside of any task —
//! the analogue of Java's owning thread for `ReentrantLock`.

/// The owner of a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Owner {
    Task(tokio::task::Id),
    Thread(std::thread::ThreadId),
}

impl Owner {
    /// The caller: its tokio task if it runs in one, else its thread.
    #[inline]
    pub(crate) fn current() -> Owner {
        match tokio::task::try_id() {
            Some(id) => Owner::Task(id),
            None => Owner::Thread(std::thread::current().id()),
        }
    }
}

//! The file watch on a manifest directory (and an environment's bases): a write in it
//! starts a pass at once.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::Notify;

/// Watches `dir` (recursively) and wakes `trigger` on writes. Only writes count: mooring's
/// own reads (open, access time) must not wake it. The loop waits a moment after a
/// wake-up, so a burst of writes (an editor, a git checkout) makes one pass. `None` when
/// the platform has no watcher or the directory cannot be watched (changes are then seen
/// every interval); keep the returned watcher alive for as long as the watch should last.
pub fn watch(dir: &Path, trigger: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
    use notify::event::ModifyKind;
    use notify::{EventKind, Watcher};
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(e) = event
            && matches!(
                e.kind,
                EventKind::Create(_)
                    | EventKind::Remove(_)
                    | EventKind::Modify(
                        ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any
                    )
            )
        {
            trigger.notify_one();
        }
    });
    match watcher {
        Ok(mut w) => match w.watch(dir, notify::RecursiveMode::Recursive) {
            Ok(()) => {
                // An environment directory: its bases are its manifests too.
                for base in crate::manifest::environment::base_dirs(dir) {
                    if let Err(e) = w.watch(&base, notify::RecursiveMode::Recursive) {
                        tracing::warn!(base = %base.display(), error = %e, "cannot watch a base directory; its changes are seen every interval");
                    }
                }
                Some(w)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the manifest directory; changes are seen every interval");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "no file watcher; changes are seen every interval");
            None
        }
    }
}

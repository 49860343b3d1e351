#if canImport(Glibc)
import Glibc
#endif

/// A node starts with the mask its supervisor's main() set (swarmd blocks
/// its signals first thing, and `swarmd node` is the same binary): undo that,
/// so TERM, INT and QUIT reach the node's flag handlers.
public enum NodeProcessSetup {
    public static func prepare() {
        var empty = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, nil)
    }
}

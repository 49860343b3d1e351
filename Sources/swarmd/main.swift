import SwarmdKit

// First thing, before any thread exists: block the signals swarmd reads from
// its signalfd, so that no thread (the Swift runtime's, librdkafka's) ever
// takes them. `swarmd node` sets its own mask.
Supervisor.blockSignals()
Swarmd.main()

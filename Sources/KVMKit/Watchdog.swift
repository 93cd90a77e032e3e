import CKVM

/// A per-thread timer that interrupts KVM_RUN if the guest never exits.
public enum Watchdog {
    public static func arm(milliseconds: Int) throws(KVMError) {
        _ = try checked(Int(ckvm_watchdog_arm(UInt32(milliseconds))), "timer_create(watchdog)")
    }

    public static func disarm() { ckvm_watchdog_disarm() }

    /// Runs `body` with the watchdog armed; always disarms.
    public static func guarding<R>(milliseconds: Int, _ body: () throws -> R) throws -> R {
        try arm(milliseconds: milliseconds)
        defer { disarm() }
        return try body()
    }
}

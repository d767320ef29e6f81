/// What happened to a backend, as seen by traffic (passive) or by a probe (active).
public enum HealthEvent: Equatable, Sendable {
    /// A connect was refused, reset or timed out: the backend is down at once.
    case connectFailed(ConnectFailure)
    /// An operator (or the admin API) marked it down: down at once, and health checks bring it back.
    case markedDown
    /// The backend answered a client (clears a run of failed checks).
    case answered
    case probeSucceeded
    case probeFailed(ConnectFailure)
}

public enum HealthTransition: Equatable, Sendable {
    case none
    case wentDown
    case wentUp
}

/// A backend's health as a pure state machine: consecutive failures and successes against the `fall`
/// and `rise` thresholds. It packs into one word so the pool can keep it in an atomic and every worker
/// can apply events with a compare-and-swap (see `BackendTable.apply`).
public struct HealthState: Equatable, Sendable {
    public var isUp: Bool
    public var failStreak: UInt8
    public var successStreak: UInt8
    /// Bumped on every transition: lets a reader see that something changed between two looks.
    public var transitions: UInt32

    public init(isUp: Bool = true, failStreak: UInt8 = 0, successStreak: UInt8 = 0, transitions: UInt32 = 0) {
        self.isUp = isUp
        self.failStreak = failStreak
        self.successStreak = successStreak
        self.transitions = transitions
    }

    public mutating func apply(_ event: HealthEvent, rise: Int, fall: Int) -> HealthTransition {
        switch event {
        case .connectFailed, .markedDown:
            successStreak = 0
            failStreak = UInt8(clamping: Int(failStreak) + 1)
            return goDown()
        case .probeFailed:
            successStreak = 0
            if !isUp { return .none }
            failStreak = UInt8(clamping: Int(failStreak) + 1)
            return Int(failStreak) >= fall ? goDown() : .none
        case .answered:
            if isUp { failStreak = 0 }
            return .none
        case .probeSucceeded:
            if isUp {
                failStreak = 0
                return .none
            }
            successStreak = UInt8(clamping: Int(successStreak) + 1)
            if Int(successStreak) >= rise {
                isUp = true
                failStreak = 0
                successStreak = 0
                transitions &+= 1
                return .wentUp
            }
            return .none
        }
    }

    private mutating func goDown() -> HealthTransition {
        if !isUp { return .none }
        isUp = false
        successStreak = 0
        transitions &+= 1
        return .wentDown
    }

    // Packed layout: bit 0 down, bits 8-15 failStreak, 16-23 successStreak, 32-63 transitions.
    public init(packed: UInt64) {
        isUp = packed & 1 == 0
        failStreak = UInt8(truncatingIfNeeded: packed >> 8)
        successStreak = UInt8(truncatingIfNeeded: packed >> 16)
        transitions = UInt32(truncatingIfNeeded: packed >> 32)
    }

    public var packed: UInt64 {
        (isUp ? 0 : 1) | UInt64(failStreak) << 8 | UInt64(successStreak) << 16 | UInt64(transitions) << 32
    }
}

/// An integer as kernel developers read it: `hex(0x1f)` is "0x1f".  The one hex formatter
/// of kvmcheck's messages.
public func hex<T: BinaryInteger>(_ value: T) -> String { "0x" + String(value, radix: 16) }

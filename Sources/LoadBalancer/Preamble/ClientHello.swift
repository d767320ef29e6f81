/// Why a ClientHello was refused.
public enum ClientHelloError: String, Sendable, Equatable, CustomStringConvertible {
    /// A record that is not a handshake record, of another major version, empty, or over 2^14 bytes.
    case badRecord = "TLS record malformed"
    /// The first handshake message is not a ClientHello.
    case notClientHello = "first handshake message is not a ClientHello"
    /// A length field that does not fit the message it is in.
    case badLength = "ClientHello length fields inconsistent"
    /// A server_name extension that is malformed, lists more than one name, names another type than
    /// host_name, or whose name is empty, longer than 255 bytes or not made of `A-Za-z0-9.-_`.
    case badServerName = "server_name extension malformed"
    /// The ClientHello did not end within `ClientHello.maxBytes`.
    case tooLarge = "ClientHello larger than 16 KiB"
    /// The connection ended inside the ClientHello.
    case truncated = "connection ended inside the ClientHello"

    public var description: String { rawValue }
}

/// The outcome of looking for the server name in the first bytes of a connection.
public enum ClientHelloParse: Sendable, Equatable {
    case needMore
    /// The name, lowercased, is in the caller's buffer: `nameLength` bytes.
    case ok(nameLength: Int)
    /// The first bytes are not a TLS handshake record (plain HTTP, SSH, SSLv2...).
    case notTLS
    /// A well-formed ClientHello without a server_name extension (or without any extension).
    case noSNI
    case invalid(ClientHelloError)
}

/// Finds the server name (SNI) in a TLS ClientHello without terminating TLS: RFC 8446 section 4.1.2
/// and RFC 5246 section 7.4.1.2 for the ClientHello, RFC 6066 section 3 for server_name, RFC 8446
/// section 5.1 for records. TLS 1.0-1.3 ClientHellos share this layout. Extensions may come in any
/// order and unknown ones, GREASE values (RFC 8701) among them, are skipped. The ClientHello may be
/// split over several TLS records and over any number of reads: the caller passes everything read so
/// far and calls again with more on `.needMore`. Pure and bounded: it reads only within `bytes`, and
/// gives up once `maxBytes` have been seen without the name.
public enum ClientHello {
    /// The most bytes looked at: a ClientHello that has not yielded its name within them is refused.
    public static let maxBytes = 16 * 1024
    /// Longest accepted name (a DNS name is at most 253 bytes; RFC 6066 allows up to 2^16-1).
    public static let maxNameLength = 255

    /// Looks for the server name at the start of `bytes`, copying it lowercased into `name` (which
    /// needs `maxNameLength` bytes). `ended`: the connection has ended, so nothing more will come.
    public static func serverName(
        in bytes: UnsafeRawBufferPointer, into name: UnsafeMutableRawBufferPointer, ended: Bool = false
    ) -> ClientHelloParse {
        let n = bytes.count
        if n == 0 { return ended ? .invalid(.truncated) : .needMore }
        if bytes[0] != 0x16 { return .notTLS }  // handshake(22)
        if n >= 2 && bytes[1] != 0x03 { return .notTLS }  // TLS's legacy major version
        var c = Cursor(bytes)
        do throws(Cursor.Stop) {
            return try parse(&c, into: name)
        } catch {
            switch error {
            case .invalid(let why): return .invalid(why)
            case .needMore:
                if n >= maxBytes { return .invalid(.tooLarge) }
                return ended ? .invalid(.truncated) : .needMore
            }
        }
    }

    private static func parse(_ c: inout Cursor, into name: UnsafeMutableRawBufferPointer) throws(Cursor.Stop) -> ClientHelloParse {
        guard name.count >= maxNameLength else { throw .invalid(.badServerName) }
        guard try c.u8() == 1 else { throw .invalid(.notClientHello) }  // client_hello(1)
        let length = try c.u24()
        // legacy_version(2) random(32) session_id(1+) cipher_suites(2+2) compression(1+1) at least.
        guard length >= 2 + 32 + 1 + 4 + 2 else { throw .invalid(.badLength) }
        guard length <= maxBytes else { throw .invalid(.tooLarge) }
        let end = c.taken + length

        try c.skip(2 + 32)  // legacy_version, random
        let sessionID = try c.u8()
        guard sessionID <= 32 else { throw .invalid(.badLength) }
        try c.skip(sessionID)
        let suites = try c.u16()
        guard suites >= 2, suites % 2 == 0 else { throw .invalid(.badLength) }
        try c.skip(suites)
        let compressions = try c.u8()
        guard compressions >= 1 else { throw .invalid(.badLength) }
        try c.skip(compressions)
        guard c.taken <= end else { throw .invalid(.badLength) }
        if c.taken == end { return .noSNI }  // TLS 1.2 allows a ClientHello without extensions

        let extensions = try c.u16()
        guard c.taken + extensions == end else { throw .invalid(.badLength) }
        while c.taken < end {
            guard end - c.taken >= 4 else { throw .invalid(.badLength) }
            let type = try c.u16()
            let size = try c.u16()
            guard size <= end - c.taken else { throw .invalid(.badLength) }
            guard type == 0 else {  // server_name(0)
                try c.skip(size)
                continue
            }
            // ServerNameList: one entry of host_name(0) (RFC 6066: no two names of one type, and the
            // layout of other types is undefined, so they cannot be skipped).
            guard size >= 2 + 1 + 2 + 1 else { throw .invalid(.badServerName) }
            guard try c.u16() == size - 2 else { throw .invalid(.badServerName) }
            guard try c.u8() == 0 else { throw .invalid(.badServerName) }
            let length = try c.u16()
            guard length >= 1, length <= maxNameLength, length == size - 5 else { throw .invalid(.badServerName) }
            for i in 0..<length {
                var ch = try c.u8()
                switch ch {
                case 0x41...0x5A: ch += 0x20
                case 0x61...0x7A, 0x30...0x39, 0x2D, 0x2E, 0x5F: break
                default: throw .invalid(.badServerName)
                }
                name[i] = UInt8(ch)
            }
            return .ok(nameLength: length)
        }
        return .noSNI
    }

    /// Reads the handshake byte stream across TLS records, forward only, never past `bytes`.
    struct Cursor {
        enum Stop: Error { case needMore, invalid(ClientHelloError) }

        let bytes: UnsafeRawBufferPointer
        /// Next byte to read in `bytes`.
        var position = 0
        /// Bytes of the current record's fragment not read yet.
        var recordLeft = 0
        /// Handshake bytes read so far.
        var taken = 0

        init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        /// Steps over a record header: handshake(22), major version 3, 1 to 2^14 bytes (RFC 8446 5.1:
        /// no zero-length handshake fragments; other records may not interleave inside a handshake).
        private mutating func nextRecord() throws(Stop) {
            let left = bytes.count - position
            if left >= 1 && bytes[position] != 0x16 { throw .invalid(.badRecord) }
            if left >= 2 && bytes[position + 1] != 0x03 { throw .invalid(.badRecord) }
            guard left >= 5 else { throw .needMore }
            let length = Int(bytes[position + 3]) << 8 | Int(bytes[position + 4])
            guard length >= 1, length <= 16384 else { throw .invalid(.badRecord) }
            position += 5
            recordLeft = length
        }

        mutating func u8() throws(Stop) -> Int {
            if recordLeft == 0 { try nextRecord() }
            guard position < bytes.count else { throw .needMore }
            let b = bytes[position]
            position += 1
            recordLeft -= 1
            taken += 1
            return Int(b)
        }

        mutating func u16() throws(Stop) -> Int { try u8() << 8 | u8() }
        mutating func u24() throws(Stop) -> Int { try u8() << 16 | u8() << 8 | u8() }

        mutating func skip(_ count: Int) throws(Stop) {
            var count = count
            while count > 0 {
                if recordLeft == 0 { try nextRecord() }
                let step = min(count, recordLeft)
                guard bytes.count - position >= step else { throw .needMore }
                position += step
                recordLeft -= step
                taken += step
                count -= step
            }
        }
    }
}

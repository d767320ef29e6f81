/// The dashboard page: one self-contained HTML document (styles and script inline, no other host).
enum Dashboard {
    static let page: [UInt8] = Array(html.utf8)
    static let html = """
    <!doctype html><title>lb</title><p>dashboard</p>
    """
}

struct Page<Item: Sendable>: Sendable {
    var items: [Item]
    /// The cursor for the next page; nil on the last.
    var next: String?
}

/// Takes a list page's items one by one as the store loads them; the store
/// loads no more once it is full (and then gives a `next` cursor).
protocol PageCollector: Sendable {
    associatedtype Item
    var isFull: Bool { get }
    mutating func add(_ item: Item)
}

/// Every item up to the page's `limit`, in an array.
struct ItemList<Item: Sendable>: PageCollector {
    var items: [Item] = []
    var isFull: Bool { false }
    mutating func add(_ item: Item) { items.append(item) }
}

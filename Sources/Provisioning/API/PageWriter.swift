import Essentials

/// A list answer, `{"items":[...],"next":...}`, written item by item into
/// one buffer as the store loads the items: each is rendered and serialised
/// once, straight into the answer, so the work is linear in the answer's
/// size and memory is the answer plus one item. It is full once its items
/// hold `budget` bytes (a page may end early to stay about 1 MiB), and
/// never before it holds one item.
struct PageWriter<Item: Sendable>: PageCollector {
    static var defaultBudget: Int { 1 << 20 }
    let budget: Int
    let render: @Sendable (Item) -> JSON
    private(set) var body: [UInt8] = Array(#"{"items":["#.utf8)
    private(set) var count = 0

    init(budget: Int = PageWriter.defaultBudget, render: @escaping @Sendable (Item) -> JSON) {
        self.budget = budget
        self.render = render
    }

    var isFull: Bool { count > 0 && body.count >= budget }

    mutating func add(_ item: Item) {
        if count > 0 { body.append(UInt8(ascii: ",")) }
        render(item).write(into: &body)
        count += 1
    }

    /// The whole answer, with the cursor of the next page.
    consuming func finish(next: String?) -> [UInt8] {
        body.append(contentsOf: #"],"next":"#.utf8)
        JSON.optional(next).write(into: &body)
        body.append(UInt8(ascii: "}"))
        return body
    }
}
